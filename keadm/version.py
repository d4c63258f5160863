"""``keadm version``."""

from __future__ import annotations

import platform

import click

from keadm import KUBEEDGE_COMPAT_VERSION, __version__


@click.command(help="Print the version of keadm and the KubeEdge release it is compatible with.")
@click.option("-o", "--output", type=click.Choice(["text", "short"]), default="text", help="short: the version only.")
def version(output: str) -> None:
    if output == "short":
        click.echo(__version__)
        return
    click.echo(
        f"keadm {__version__} (compatible with KubeEdge {KUBEEDGE_COMPAT_VERSION}; "
        f"Python {platform.python_version()}, {platform.system().lower()}/{platform.machine()})"
    )
