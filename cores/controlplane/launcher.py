"""Starting and stopping the embedded control plane as a supervised process.

The one library call ``keadm init`` and the tests use: write ``controlplane.yaml`` (if missing),
start ``keadm run controlplane`` under :mod:`cores.common.supervision`, wait until ``/readyz``
answers over TLS, and hand back where the admin kubeconfig is.
"""

from __future__ import annotations

import dataclasses
import ssl
import sys
import urllib.request
from pathlib import Path

from cores.common import config as configs
from cores.common import supervision

COMPONENT: supervision.Component = "controlplane"


def keadm_argv() -> tuple[str, ...]:
    """How to run this very keadm: the frozen binary itself, or this interpreter with ``-m keadm``."""
    if getattr(sys, "frozen", False):
        return (sys.executable,)
    return (sys.executable, "-m", "keadm")


@dataclasses.dataclass(frozen=True)
class ControlPlane:
    config_path: Path
    config: configs.Config
    spec: supervision.ServiceSpec

    @property
    def kubeconfig(self) -> Path:
        return Path(self.config.adminKubeconfig)

    @property
    def url(self) -> str:
        from cores.controlplane.server import server_url

        return server_url(self.config)

    @property
    def ca_file(self) -> Path:
        return Path(self.config.pkiDir) / "ca.crt"


def write_config(config_dir: Path, data_dir: Path, *, port: int = 6443, bind_address: str = "0.0.0.0",
                 advertise_address: str | None = None, kubeconfig: Path | None = None,
                 overrides: dict | None = None) -> Path:
    """Write ``<config_dir>/controlplane.yaml`` with every path under the given directories."""
    document = configs.default_document(configs.CONTROLPLANE, address=advertise_address)
    document["server"]["port"] = port
    document["server"]["bindAddress"] = bind_address
    document["dataDir"] = str(data_dir / "controlplane")
    document["pkiDir"] = str(config_dir / "controlplane" / "pki")
    document["adminKubeconfig"] = str(kubeconfig or config_dir / "admin.kubeconfig")
    document = configs.overlay(document, overrides or {})
    path = config_dir / "config" / "controlplane.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(configs.dump(document))
    return path


def service_spec(config_path: Path, log_dir: Path, run_dir: Path, readiness_timeout: float = 30) -> supervision.ServiceSpec:
    return supervision.ServiceSpec(
        component=COMPONENT, config_dir=config_path.parent, log_dir=log_dir, run_dir=run_dir,
        argv=(*keadm_argv(), "run", "controlplane", "--config", str(config_path)), readiness_timeout=readiness_timeout,
    )


def is_ready(config: configs.Config) -> bool:
    from cores.controlplane.server import server_url

    ca = Path(config.pkiDir) / "ca.crt"
    if not ca.exists():
        return False
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(server_url(config) + "/readyz", context=context, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def start(config_path: Path, log_dir: Path, run_dir: Path, readiness_timeout: float = 30) -> ControlPlane:
    config = configs.load(configs.CONTROLPLANE, config_path)
    spec = service_spec(config_path, log_dir, run_dir, readiness_timeout)
    supervision.start(spec, ready=lambda: is_ready(config))
    return ControlPlane(config_path, config, spec)


def stop(plane: ControlPlane, grace: float = 10) -> bool:
    return supervision.stop(plane.spec, grace)
