"""The ``keadm`` root command: lazy subcommands, and errors shown as one line, never a traceback.

Subcommands are imported only when invoked, so ``keadm run edge`` loads neither ``rich`` nor
anything the cloud needs.
"""

from __future__ import annotations

import datetime
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import click

HELP = """\
keadm: install, join and run KubeEdge (CloudCore and EdgeCore) with one command.

\b
Wire-compatible with KubeEdge v1.23: an upstream edgecore can join our CloudCore
and our EdgeCore can join an upstream CloudCore.

\b
Examples:
  On the cloud (an embedded control plane comes with it when no kubeconfig is found):
    keadm init --advertise-address=<this host's IP>
    keadm gettoken
  On an edge:
    keadm join --cloudcore-ipport=<cloud IP>:10000 --token=<keadm gettoken output>
  At an edge, this node's pods (cloud reachable or not):
    keadm ctl get pods -A
    keadm debug diagnose node
  Undo either, on that machine:
    keadm reset --force
  Run a core in the foreground with your own config:
    keadm run cloud --defaultconfig > cloudcore.yaml
    keadm run cloud --config cloudcore.yaml
    keadm run edge --config edgecore.yaml --check-config
"""

# name -> "module:attribute"; imported on first use.
COMMANDS = {
    "version": "keadm.version:version",
    "run": "keadm.run:run",
    "init": "keadm.init:init",
    "gettoken": "keadm.gettoken:gettoken",
    "join": "keadm.join:join",
    "reset": "keadm.reset:reset",
    "debug": "keadm.debug:debug",
    "ctl": "keadm.ctl:ctl",
}


class UserError(click.ClickException):
    """A mistake the user can fix: shown as one line with what to do, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command


@click.group(cls=LazyGroup, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    pass


def crash_log_path() -> Path:
    """Where a traceback goes: $KEADM_LOG_DIR, else /var/log/kubeedge if writable, else the temp dir."""
    for candidate in (os.environ.get("KEADM_LOG_DIR"), "/var/log/kubeedge"):
        if candidate and os.access(candidate, os.W_OK):
            return Path(candidate) / "keadm-error.log"
    return Path(tempfile.gettempdir()) / "keadm-error.log"


def _report_crash(error: BaseException) -> int:
    path = crash_log_path()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
    try:
        with path.open("a", encoding="utf-8") as log_file:
            log_file.write(f"--- {stamp} keadm {' '.join(sys.argv[1:])}\n")
            log_file.write("".join(traceback.format_exception(error)))
        where = f"the full trace is in {path}"
    except OSError:
        where = "the trace could not be written to a log file"
    click.echo(f"error: unexpected {type(error).__name__}: {error} ({where}; please report it)", err=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``keadm`` console script; returns the exit code."""
    from cores.common.config import ConfigError  # light: yaml only

    try:
        result = cli.main(args=argv, prog_name="keadm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        return 1
    except PermissionError as error:
        click.echo(f"error: permission denied: {error.filename or error}; run as root or choose other directories", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the last line of defence
        return _report_crash(error)
    return result if isinstance(result, int) else 0
