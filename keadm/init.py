"""``keadm init``: set up the cloud side on this machine."""

from __future__ import annotations

import click

from keadm.steps import directory_options, layout_from, run_steps


@click.command(help="""Set up the cloud side: the Kubernetes API (an embedded control plane when no kubeconfig is
found), KubeEdge's CRDs, and CloudCore, started in the background.

\b
Examples:
  keadm init --advertise-address=192.168.1.10
  keadm init --kube-config=/root/.kube/config --set modules.cloudHub.nodeLimit=2000
""")
@click.option("--advertise-address", default="", help="IP(s) edges use to reach CloudCore, comma-separated (default: this host's address).")
@click.option("--kube-config", default="", help="Kubeconfig of an existing cluster (else $KUBECONFIG, then ~/.kube/config, else the embedded control plane).")
@click.option("--set", "sets", multiple=True, help="Set a cloudcore.yaml key, e.g. --set modules.cloudHub.nodeLimit=2000 (repeatable).")
@click.option("--controlplane-port", default=6443, show_default=True, help="Port of the embedded control plane.")
@click.option("--force", is_flag=True, help="Install over an existing installation in these directories.")
@click.option("--foreground", is_flag=True, help="Stay in the foreground after setting up, until interrupted (then stop everything).")
@directory_options
def init(advertise_address: str, kube_config: str, sets: tuple[str, ...], controlplane_port: int, force: bool,
         foreground: bool, config_dir: str, data_dir: str, log_dir: str) -> int:
    from rich.console import Console

    from cores.install.cloud import CloudInstaller, InitOptions

    layout = layout_from(config_dir, data_dir, log_dir)
    installer = CloudInstaller(InitOptions(layout=layout, advertise_address=advertise_address, kube_config=kube_config,
                                           sets=sets, force=force, controlplane_port=controlplane_port))
    run_steps(installer.steps())
    console = Console(highlight=False, soft_wrap=True)
    console.print("\n[bold green]KubeEdge cloud is up.[/]")
    if installer.embedded:
        console.print(f"  kubectl:    kubectl --kubeconfig {layout.admin_kubeconfig} get nodes")
    console.print(f"  token:      keadm gettoken --config-dir {layout.config_dir}")
    console.print(f"  on an edge: {installer.join_command()}")
    console.print(f"  logs:       {layout.log_dir}")
    if foreground:
        _stay(layout)
    return 0


def _stay(layout: object) -> None:
    import signal
    import time

    from cores.install import Manifest
    from cores.install.reset import stop_components

    manifest = Manifest.load(layout.data_dir)  # type: ignore[attr-defined]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    if manifest is not None:
        stop_components(manifest)
