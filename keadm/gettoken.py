"""``keadm gettoken``: print the join token, alone on one line."""

from __future__ import annotations

from pathlib import Path

import click

from keadm.main import UserError
from keadm.steps import DEFAULT_CONFIG_DIR


@click.command(help="""Print the token edges join with (secret kubeedge/tokensecret), alone on one line.

\b
Example:
  keadm join --cloudcore-ipport=192.168.1.10:10000 --token=$(keadm gettoken)
""")
@click.option("--kube-config", default="", help="Kubeconfig of the cluster (default: as init finds it, including <config-dir>/admin.kubeconfig).")
@click.option("--config-dir", default=DEFAULT_CONFIG_DIR, show_default=True, type=click.Path(file_okay=False))
def gettoken(kube_config: str, config_dir: str) -> int:
    from cores.install import InstallError
    from cores.install.cloud import find_kubeconfig, read_token

    own = Path(config_dir).absolute() / "admin.kubeconfig"
    try:
        kubeconfig = Path(kube_config) if kube_config else (own if own.exists() else find_kubeconfig(""))
    except InstallError as error:
        raise UserError(str(error)) from None
    if kubeconfig is None or not kubeconfig.exists():
        raise UserError(f"no kubeconfig found ({own} does not exist): is the cloud set up here (`keadm init`)? else pass --kube-config")
    token = read_token(kubeconfig)
    if not token:
        raise UserError("no token in secret kubeedge/tokensecret: is CloudCore running? (`keadm init` starts it)")
    click.echo(token)
    return 0
