"""``keadm run cloud|edge``: run the bundled CloudCore or EdgeCore in this process.

This is what service units and managed background processes execute. It never imports
``rich``, and ``run edge`` never imports anything of the cloud's.
"""

from __future__ import annotations

import importlib
import sys

import click

from cores.common import config as configs

SIDES = {
    "cloud": ("CloudCore", "/etc/kubeedge/config/cloudcore.yaml", "cores.cloud.app"),
    "edge": ("EdgeCore", "/etc/kubeedge/config/edgecore.yaml", "cores.edge.app"),
    "controlplane": ("ControlPlane", "/etc/kubeedge/config/controlplane.yaml", "cores.controlplane.server"),
}

_DEFAULT_HEADER = (
    "# With --defaultconfig, keadm prints the full configuration with every field and its default value.\n"
    "# Adjust it and run it with --config. It suits advanced users; --minconfig prints a short one.\n\n"
)
_MIN_HEADER = (
    "# With --minconfig, keadm prints a short configuration to start from.\n"
    "# Adjust it and run it with --config; fields left out take their defaults.\n\n"
)


@click.group(help="Run CloudCore, EdgeCore or the embedded control plane in the foreground (what the installed service executes).")
def run() -> None:
    pass


def _file(side: str) -> str:
    return "controlplane.yaml" if side == "controlplane" else f"{side}core.yaml"


def _side_command(side: str) -> click.Command:
    kind_name, default_path, app_module = SIDES[side]

    @click.command(
        name=side,
        help=(
            f"Run {kind_name} with the modules enabled in its config. Stops cleanly on SIGTERM or SIGINT.\n\n"
            f"\b\nExamples:\n  keadm run {side} --defaultconfig > {_file(side)}\n"
            f"  keadm run {side} --config {_file(side)} --check-config\n  keadm run {side} --config {_file(side)} -v"
        ),
    )
    @click.option("--config", "config_path", default=default_path, show_default=True, help=f"{kind_name} config file ('-' or /dev/stdin read standard input).")
    @click.option("--defaultconfig", is_flag=True, help="Print the full default config as YAML and exit.")
    @click.option("--minconfig", is_flag=True, help="Print a short config to start from as YAML and exit.")
    @click.option("--check-config", is_flag=True, help="Load and validate the config, print it with defaults applied, and exit.")
    @click.option("-v", "--verbose", count=True, help="More log detail: -v our debug lines, -vv libraries' too.")
    @click.option("--hollow", is_flag=True, hidden=side != "edge",
                  help="Replace Edged with a stand-in that reports every pod Running without running it (scale tests).")
    def command(config_path: str, defaultconfig: bool, minconfig: bool, check_config: bool, verbose: int, hollow: bool) -> int:
        kind = configs.KINDS[side]
        if defaultconfig:
            click.echo(_DEFAULT_HEADER + configs.dump(configs.default_document(kind)), nl=False)
            return 0
        if minconfig:
            click.echo(_MIN_HEADER + configs.dump(configs.min_document(kind)), nl=False)
            return 0
        from cores.common import logs

        logs.setup(verbose)
        config = configs.load(kind, "/dev/stdin" if config_path == "-" else config_path)
        if check_config:
            click.echo(configs.dump(config.document), nl=False)
            return 0
        app = importlib.import_module(app_module)
        code: int = app.main(config, hollow=True) if hollow else app.main(config)
        sys.stdout.flush()
        return code

    return command


for _side in SIDES:
    run.add_command(_side_command(_side))
