"""``keadm reset``: undo ``init`` or ``join`` on this machine."""

from __future__ import annotations

import sys

import click

from keadm.steps import directory_options, layout_from


@click.command(help="""Stop what `keadm init` or `keadm join` started here and remove what they created, nothing
else (on an edge, also the containers this node created). Safe to run twice.

\b
Examples:
  keadm reset --force
  keadm reset edge --config-dir /etc/kubeedge --data-dir /var/lib/kubeedge
""")
@click.argument("side", required=False, type=click.Choice(["cloud", "edge"]))
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@directory_options
def reset(side: str | None, force: bool, config_dir: str, data_dir: str, log_dir: str) -> int:
    from rich.console import Console

    from cores.install import Manifest
    from cores.install.reset import reset as do_reset
    from keadm.main import UserError

    console = Console(highlight=False)
    layout = layout_from(config_dir, data_dir, log_dir)
    manifest = Manifest.load(layout.data_dir)
    if manifest is None:
        console.print(f"Nothing to reset: no installation recorded in {layout.data_dir}.")
        return 0
    if side and side != manifest.side:
        raise UserError(f"this machine's installation in {layout.data_dir} is the {manifest.side} side, not {side}")
    if not force:
        if not sys.stdin.isatty():
            raise UserError("reset removes this installation; confirm with --force when not at a terminal")
        click.confirm(f"Remove the KubeEdge {manifest.side} installation in {layout.config_dir}, {layout.data_dir}?", abort=True)
    result = do_reset(manifest)
    for component in result["stopped"]:  # type: ignore[attr-defined]
        console.print(f"[green]✓[/] stopped {component}")
    if result["containers"]:
        console.print(f"[green]✓[/] removed {result['containers']} containers and sandboxes of node {manifest.node_name}")
    if result["runtime_problem"]:
        console.print(f"[yellow]![/] could not clean containers: {result['runtime_problem']}")
    console.print(f"[green]✓[/] removed {len(result['removed'])} files and directories")  # type: ignore[arg-type]
    return 0
