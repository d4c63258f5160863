"""``keadm join``: set up this machine as an edge node of a KubeEdge cloud."""

from __future__ import annotations

import click

from keadm.steps import directory_options, layout_from, run_steps


@click.command(help="""Join this machine to a KubeEdge cloud as an edge node: checks the cloud and the token,
gets the node certificate, writes edgecore.yaml and starts EdgeCore. Nothing is downloaded.

\b
Examples:
  keadm join --cloudcore-ipport=192.168.1.10:10000 --token=<keadm gettoken output>
  keadm join -e 192.168.1.10:10000 -t <token> -i edge-1 -l zone=a,rack=3
""")
@click.option("-e", "--cloudcore-ipport", required=True, help="IP:port of CloudCore's WebSocket endpoint, e.g. 192.168.1.10:10000.")
@click.option("-t", "--token", default="", help="The join token printed by `keadm gettoken` on the cloud.")
@click.option("-i", "--edgenode-name", default="", help="Name of this node (default: the hostname).")
@click.option("-s", "--certport", default=10002, show_default=True, help="CloudCore's certificate (bootstrap) port.")
@click.option("-p", "--remote-runtime-endpoint", default="unix:///run/containerd/containerd.sock", show_default=True,
              help="CRI endpoint of the container runtime.")
@click.option("-l", "--labels", default="", help="Node labels, key=value[,key=value].")
@click.option("--cgroupdriver", type=click.Choice(["cgroupfs", "systemd"]), default="cgroupfs", show_default=True)
@click.option("--set", "sets", multiple=True, help="Set an edgecore.yaml key, e.g. --set modules.edgeHub.heartbeat=10 (repeatable).")
@click.option("--node-ip", default="", help="The node's InternalIP (default: this host's address).")
@click.option("--skip-runtime-check", is_flag=True, help="Do not require the container runtime to answer before joining.")
@directory_options
def join(cloudcore_ipport: str, token: str, edgenode_name: str, certport: int, remote_runtime_endpoint: str, labels: str,
         cgroupdriver: str, sets: tuple[str, ...], node_ip: str, skip_runtime_check: bool,
         config_dir: str, data_dir: str, log_dir: str) -> int:
    from rich.console import Console

    from cores.install import InstallError
    from cores.install.edge import EdgeInstaller, JoinOptions, parse_labels
    from keadm.main import UserError

    if not token:
        raise UserError("--token is required: run `keadm gettoken` on the cloud and pass its output")
    try:
        installer = EdgeInstaller(JoinOptions(
            layout=layout_from(config_dir, data_dir, log_dir), cloudcore_ipport=cloudcore_ipport, token=token.strip(),
            node_name=edgenode_name, certport=certport, runtime_endpoint=remote_runtime_endpoint,
            labels=parse_labels(labels), cgroup_driver=cgroupdriver, sets=sets, skip_runtime_check=skip_runtime_check,
            node_ip=node_ip,
        ))
    except InstallError as error:
        raise UserError(str(error)) from None
    run_steps(installer.steps(), on_failure=installer.rollback)
    Console(highlight=False).print(f"\n[bold green]Node {installer.node_name} joined and connected.[/] "
                                   f"Logs: {installer.layout.log_dir}")
    return 0
