"""The README's first command, for what exists today: configs, certificates and token, supervised cores.

It grows with the project until it is: init -> join -> a pod running at the edge, its status printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from certs import token, x509
from cores.common import config as configs
from cores.common.supervision import ServiceSpec, start, status, stop

console = Console()
KEADM = str(Path(sys.executable).with_name("keadm"))


def step(text: str) -> None:
    console.print(f"[bold cyan]==>[/] {text}")


def write_configs(base: Path) -> dict[str, Path]:
    paths = {}
    for side in ("cloud", "edge"):
        printed = subprocess.run([KEADM, "run", side, "--defaultconfig"], check=True, capture_output=True, text=True)
        doc = configs.yaml.safe_load(printed.stdout)
        if side == "edge":
            doc["database"]["dataSource"] = str(base / "edge" / "edgecore.db")
            hub = doc["modules"]["edgeHub"]
            hub["tlsCaFile"], hub["tlsCertFile"] = str(base / "edge/ca/rootCA.crt"), str(base / "edge/certs/server.crt")
            hub["tlsPrivateKeyFile"] = str(base / "edge/certs/server.key")
        path = base / side / f"{side}core.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(configs.dump(doc))
        subprocess.run([KEADM, "run", side, "--config", str(path), "--check-config"], check=True, capture_output=True)
        console.print(f"    {side}core config written and checked: {path}")
        paths[side] = path
    return paths


def certificates(base: Path, node: str) -> None:
    ca_cert, ca_key = x509.create_ca()
    ca_der = x509.cert_to_der(ca_cert)
    issued = token.create_token(ca_der, x509.key_to_sec1_der(ca_key))
    console.print(f"    CA created; join token (as `keadm gettoken` will print it): {issued[:24]}...")
    jwt = token.verify_ca_hash(issued, ca_der)  # what the edge checks against the /ca.crt it fetched
    expiry = token.verify_token(jwt, x509.key_to_sec1_der(ca_key))  # what the cloud checks
    key = x509.generate_key()
    csr = x509.create_node_csr(node, key)
    signed = x509.sign_node_csr(x509.csr_to_der(csr), ca_cert, ca_key, node)
    console.print(f"    token verified (expires {expiry:%Y-%m-%d %H:%M} UTC); node certificate issued for "
                  f"{x509.verify_node_certificate(signed, ca_cert)!r}")
    certs_dir = base / "edge" / "certs"
    certs_dir.mkdir(parents=True, exist_ok=True)
    (certs_dir / "server.crt").write_bytes(x509.cert_to_pem(signed))
    (certs_dir / "server.key").write_bytes(x509.key_to_pem(key))


def spec_for(base: Path, side: str, config: Path) -> ServiceSpec:
    return ServiceSpec(
        component=f"{side}core", config_dir=base / side, log_dir=base / side / "log", run_dir=base / side / "run",
        argv=(KEADM, "run", side, "--config", str(config)), readiness_timeout=30,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/keadm-demo"), help="where the demo keeps its files")
    base = parser.parse_args().dir.resolve()
    for side in ("cloud", "edge"):
        stop(spec_for(base, side, base / side / f"{side}core.yaml"))  # a previous demo's cores
    shutil.rmtree(base, ignore_errors=True)

    step("keadm version")
    subprocess.run([KEADM, "version"], check=True)
    step("writing CloudCore and EdgeCore configs from the defaults (keadm run cloud|edge --defaultconfig)")
    paths = write_configs(base)
    step("KubeEdge CA, join token and a node certificate (certs library)")
    certificates(base, "demo-edge")
    step("starting CloudCore and EdgeCore as managed background processes")
    specs = [spec_for(base, side, paths[side]) for side in ("cloud", "edge")]
    try:
        for spec in specs:
            start(spec, ready=lambda spec=spec: spec.log_file.exists() and "is running" in spec.log_file.read_text())
        table = Table("component", "running", "pid", "log")
        for spec in specs:
            state = status(spec)
            table.add_row(spec.component, str(state.running), str(state.pid), str(spec.log_file))
        console.print(table)
        for spec in specs:
            console.print(f"[dim]{spec.log_file}:[/]\n" + spec.log_file.read_text())
    finally:
        step("stopping them (SIGTERM, clean shutdown)")
        for spec in reversed(specs):
            stop(spec)
    console.print("[bold green]done[/]: modules not implemented yet are named in the logs above; "
                  "see the README for what works today.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
