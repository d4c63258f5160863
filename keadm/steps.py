"""Running an installer's steps for a person: one progress line per step, a clear failure line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from cores.common.layout import Layout
from cores.install import InstallError, Step
from keadm.main import UserError

DEFAULT_CONFIG_DIR, DEFAULT_DATA_DIR, DEFAULT_LOG_DIR = "/etc/kubeedge", "/var/lib/kubeedge", "/var/log/kubeedge"


def directory_options(function: Callable[..., object]) -> Callable[..., object]:
    """--config-dir, --data-dir, --log-dir, as every install command takes them."""
    for flag, default, what in reversed((
        ("--log-dir", DEFAULT_LOG_DIR, "logs of the components keadm starts"),
        ("--data-dir", DEFAULT_DATA_DIR, "databases, pid files, the installation record"),
        ("--config-dir", DEFAULT_CONFIG_DIR, "configs, certificates, kubeconfig"),
    )):
        function = click.option(flag, default=default, show_default=True, type=click.Path(file_okay=False), help=f"Directory for {what}.")(function)
    return function


def layout_from(config_dir: str, data_dir: str, log_dir: str) -> Layout:
    return Layout(Path(config_dir).absolute(), Path(data_dir).absolute(), Path(log_dir).absolute())


class StepFailed(UserError):
    """A step failed and its line already says why: nothing more to print."""

    def show(self, file: object = None) -> None:
        return None


def run_steps(steps: Sequence[Step], on_failure: Callable[[], None] | None = None) -> None:
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for step in steps:
        try:
            with console.status(f"{step.title} ..."):
                detail = step.run()
        except InstallError as error:
            console.print(f"[red]✗[/] {step.title}: {error}")
            if on_failure is not None:
                on_failure()
            raise StepFailed(str(error)) from None
        except BaseException:
            if on_failure is not None:
                on_failure()
            raise
        console.print(f"[green]✓[/] {step.title}" + (f": {detail}" if detail else ""))
