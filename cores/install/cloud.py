"""``keadm init``: the embedded control plane when there is no cluster, the CRDs, CloudCore.

Kubeconfig resolution as kubectl users expect: ``--kube-config``, then ``$KUBECONFIG``, then
``~/.kube/config``; none found, or one that points at this installation's own control plane,
means the embedded control plane. Every step is idempotent where it can be and recorded in the
installation manifest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

from cores.common import config as configs
from cores.common import layout as layouts
from cores.common import supervision
from cores.controlplane import launcher
from cores.install import InstallError, Manifest, Step, apply_sets



@dataclasses.dataclass
class InitOptions:
    layout: layouts.Layout
    advertise_address: str = ""
    kube_config: str = ""
    sets: tuple[str, ...] = ()
    force: bool = False
    controlplane_port: int = 6443
    readiness_timeout: float = 60.0


def find_kubeconfig(explicit: str) -> Path | None:
    for candidate in (explicit, os.environ.get("KUBECONFIG", "").split(":")[0], str(Path.home() / ".kube" / "config")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    if explicit:
        raise InstallError(f"--kube-config {explicit} does not exist")
    return None


def cluster_ca(kubeconfig: Path) -> bytes | None:
    """The PEM of the current context's cluster CA in ``kubeconfig``, inline or by file; None without one."""
    import base64

    import yaml

    try:
        document = yaml.safe_load(kubeconfig.read_text()) or {}
        contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
        clusters = {c.get("name"): c.get("cluster") or {} for c in document.get("clusters") or []}
        current = contexts.get(document.get("current-context")) or next(iter(contexts.values()), {})
        cluster = clusters.get(current.get("cluster")) or next(iter(clusters.values()), {})
        if cluster.get("certificate-authority-data"):
            pem = base64.b64decode(cluster["certificate-authority-data"])
        elif cluster.get("certificate-authority"):
            path = Path(cluster["certificate-authority"])
            pem = (path if path.is_absolute() else kubeconfig.parent / path).read_bytes()
        else:
            return None
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    return pem if b"BEGIN CERTIFICATE" in pem else None


def is_own_controlplane(kubeconfig: Path, layout: layouts.Layout) -> bool:
    """A kubeconfig that is this installation's admin kubeconfig counts as embedded."""
    return kubeconfig.resolve() == layout.admin_kubeconfig.resolve()


def port_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _spec(layout: layouts.Layout, readiness_timeout: float) -> supervision.ServiceSpec:
    return supervision.ServiceSpec(
        component="cloudcore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
        argv=(*launcher.keadm_argv(), "run", "cloud", "--config", str(layout.cloudcore_config)),
        readiness_timeout=readiness_timeout,
    )


class CloudInstaller:
    def __init__(self, options: InitOptions) -> None:
        self.options = options
        self.layout = options.layout
        self.manifest = Manifest("cloud", str(self.layout.config_dir), str(self.layout.data_dir), str(self.layout.log_dir))
        self.kubeconfig: Path | None = None
        self.embedded = False
        self.document: dict[str, Any] = {}
        self.token = ""

    @property
    def advertise_address(self) -> str:
        return self.options.advertise_address.split(",")[0] if self.options.advertise_address else configs.host_address()

    def steps(self) -> list[Step]:
        return [
            Step("Preflight checks", self.preflight),
            Step("Kubernetes API", self.kubernetes),
            Step("CustomResourceDefinitions", self.crds),
            Step("cloudcore.yaml", self.write_config),
            Step("CloudCore", self.start_cloudcore),
            Step("Join token", self.wait_token),
        ]

    # steps ----------------------------------------------------------------------------------
    def preflight(self) -> str:
        existing = Manifest.load(self.layout.data_dir)
        if existing is not None and not self.options.force:
            raise InstallError(f"KubeEdge is already installed here ({existing.side}, {Manifest.location(self.layout.data_dir)}): "
                               "run `keadm reset` first, or `keadm init --force` to reinstall over it")
        if existing is not None:
            self.manifest = existing  # --force: keep track of what the first run created
        for directory in (self.layout.config_dir, self.layout.data_dir, self.layout.log_dir):
            self.manifest.make_dir(directory)
            if not os.access(directory, os.W_OK):
                raise InstallError(f"{directory} is not writable: run as root or choose other directories")
        self.document = self._cloudcore_document()
        hub = self.document["modules"]["cloudHub"]
        ports = [(hub["websocket"]["address"], hub["websocket"]["port"]), (hub["https"]["address"], hub["https"]["port"])]
        running = supervision.status(_spec(self.layout, 1)).running
        for address, port in ports:
            if not running and not port_free(address, int(port)):
                raise InstallError(f"port {port} is in use: stop what listens there or pick another port with "
                                   f"--set modules.cloudHub.websocket.port=... / https.port=...")
        self.manifest.save()
        return "directories writable, ports free"

    def _cloudcore_document(self) -> dict[str, Any]:
        # The stream server trusts the API server's client CA: the embedded control plane's own, or on a
        # real cluster the file at tlsStreamCAFile (its ca.crt copied there: the one step it needs).
        found = find_kubeconfig(self.options.kube_config)
        embedded = found is None or is_own_controlplane(found, self.layout)
        stream_ca = self.layout.config_dir / "controlplane" / "pki" / "ca.crt" if embedded else None
        # On a real cluster the API server dials edge nodes' kubelet port, which only a DNAT to the
        # stream server answers: the iptables manager makes it (internal mode, as upstream).
        document = layouts.cloudcore_document(self.layout, kubeconfig=self.layout.admin_kubeconfig,
                                              advertise_address=self.advertise_address, stream_ca=stream_ca,
                                              iptables_manager=not embedded)
        if self.options.advertise_address:
            document["modules"]["cloudHub"]["advertiseAddress"] = [a for a in self.options.advertise_address.split(",") if a]
        apply_sets(document, self.options.sets, configs.CLOUDCORE.schema)
        return document

    def _stream_ca(self, kubeconfig: Path) -> str:
        """The stream server must trust kube-apiserver's kubelet client certificate. On kubeadm-made
        clusters (and most others) the cluster CA signs it: copy the kubeconfig's CA there unless a
        file is already in place (the operator's choice, kept)."""
        target = Path(self.document["modules"]["cloudStream"]["tlsStreamCAFile"])
        if target.exists():
            return f"; the stream server trusts {target} as it is"
        pem = cluster_ca(kubeconfig)
        if pem is None:
            return (f"; no CA in {kubeconfig}: put the CA of kube-apiserver's --kubelet-client-certificate "
                    f"at {target} for kubectl logs and exec")
        self.manifest.make_dir(target.parent)
        target.write_bytes(pem)
        self.manifest.created(target)
        return f"; its CA copied to {target} (the stream server trusts kube-apiserver's kubelet client certificate from it)"

    def kubernetes(self) -> str:
        found = find_kubeconfig(self.options.kube_config)
        if found is not None and not is_own_controlplane(found, self.layout):
            self.kubeconfig = found
            self.document["kubeAPIConfig"]["kubeConfig"] = str(found)
            return f"using the cluster of {found}" + self._stream_ca(found)
        self.embedded = True
        self.kubeconfig = self.layout.admin_kubeconfig
        config_path = self.layout.config_dir / "config" / "controlplane.yaml"
        if not config_path.exists():
            self.manifest.make_dir(config_path.parent)
            launcher.write_config(self.layout.config_dir, self.layout.data_dir, port=self.options.controlplane_port,
                                  advertise_address=self.advertise_address, kubeconfig=self.layout.admin_kubeconfig)
            self.manifest.created(config_path)
            self.manifest.created(self.layout.admin_kubeconfig)
            self.manifest.created(self.layout.config_dir / "controlplane")
            self.manifest.created(self.layout.data_dir / "controlplane")
        spec = launcher.service_spec(config_path, self.layout.log_dir, self.layout.run_dir, self.options.readiness_timeout)
        if not supervision.status(spec).running:
            if not port_free("0.0.0.0", self.options.controlplane_port):
                raise InstallError(f"port {self.options.controlplane_port} is in use: pick another with --controlplane-port")
            launcher.start(config_path, self.layout.log_dir, self.layout.run_dir, self.options.readiness_timeout)
        self._record_component("controlplane")
        return f"embedded control plane on port {self.options.controlplane_port}, admin kubeconfig {self.kubeconfig}"

    def _record_component(self, component: supervision.Component) -> None:
        if component not in self.manifest.components:
            self.manifest.components.append(component)
        self.manifest.created(self.layout.log_dir / f"{component}.log")
        self.manifest.created(self.layout.run_dir)
        self.manifest.save()

    def _kube(self) -> Any:
        from cores.cloud.kube import Kube

        assert self.kubeconfig is not None
        return Kube(str(self.kubeconfig))

    def crds(self) -> str:
        from cores.cloud.crds import ensure_crds
        from cores.cloud.kube import KubeError

        kube = self._kube()
        try:
            names = asyncio.run(ensure_crds(kube))
        except KubeError as error:
            raise InstallError(f"cannot create the CRDs: {error}") from None
        finally:
            kube.close()
        return ", ".join(name.split(".")[0] for name in names)

    def write_config(self) -> str:
        self.manifest.make_dir(self.layout.cloudcore_config.parent)
        layouts.write(self.manifest.created(self.layout.cloudcore_config), self.document)
        certificates = self.layout.certificate_paths()
        self.manifest.created(Path(certificates["ca"]).parent)
        self.manifest.created(Path(certificates["cert"]).parent)
        self.manifest.save()
        return str(self.layout.cloudcore_config)

    def start_cloudcore(self) -> str:
        spec = _spec(self.layout, self.options.readiness_timeout)
        if supervision.status(spec).running:
            supervision.stop(spec)
        self._record_component("cloudcore")

        def ready() -> bool:
            return spec.log_file.exists() and "websocket server listening" in spec.log_file.read_text()

        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        if spec.log_file.exists():
            spec.log_file.write_text("")
        pid = supervision.start(spec, ready=ready)
        return f"running (pid {pid}), log {spec.log_file}"

    def wait_token(self) -> str:
        deadline = time.monotonic() + self.options.readiness_timeout
        while time.monotonic() < deadline:
            token = read_token(self.kubeconfig)
            if token:
                self.token = token
                return "ready"
            time.sleep(0.2)
        raise InstallError("CloudCore did not publish a join token (secret kubeedge/tokensecret); see its log")

    def join_command(self) -> str:
        port = self.document["modules"]["cloudHub"]["websocket"]["port"]
        https_port = self.document["modules"]["cloudHub"]["https"]["port"]
        certport = "" if int(https_port) == 10002 else f" --certport={https_port}"
        return f"keadm join --cloudcore-ipport={self.advertise_address}:{port}{certport} --token={self.token}"


def read_token(kubeconfig: Path | None) -> str:
    """``tokendata`` of secret kubeedge/tokensecret, or "" when it is not there yet."""
    import base64

    from cores.cloud.kube import Kube, KubeError

    kube = Kube(str(kubeconfig) if kubeconfig else "")
    try:
        secret = asyncio.run(kube.get_secret("kubeedge", "tokensecret"))
    except KubeError:
        return ""
    finally:
        kube.close()
    data = ((secret or {}).get("data") or {}).get("tokendata")
    return base64.b64decode(data).decode().strip() if data else ""
