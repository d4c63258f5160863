"""Upstream KubeEdge's own binaries, run as peers of ours in interop tests (never shipped).

The binaries (cloudcore, edgecore, kube-apiserver, built from public sources) come xz-compressed
with a ``SHA256SUMS`` file. :func:`unpack` checks and unpacks them into a directory once;
``scripts/test.sh`` does so when they are there and points :data:`BIN_ENV` at the result, and
tests that need them are skipped, naming that variable, when it is unset.

:func:`cloudcore_spec` gives a :class:`~cores.common.supervision.ServiceSpec` for an upstream
cloudcore with its own directories and free ports (its ``--defaultconfig``, with what the
binaries' README says must change on these machines), started and stopped by PID like ours.
"""

from __future__ import annotations

import dataclasses
import hashlib
import lzma
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from cores.common.supervision import ServiceSpec

BIN_ENV = "KEADM_UPSTREAM_BIN"
NAMES = ("cloudcore", "edgecore", "kube-apiserver")


def binary(name: str) -> Path | None:
    """The unpacked upstream ``name`` from :data:`BIN_ENV`, or None when it is not there."""
    directory = os.environ.get(BIN_ENV, "")
    path = Path(directory) / name if directory else None
    return path if path is not None and os.access(path, os.X_OK) else None


def unpack(source: Path, destination: Path) -> list[str]:
    """Unpack every ``<name>.xz`` of ``source`` listed in its SHA256SUMS into ``destination``,
    checking each; a file already there with the right sum is kept. The names unpacked."""
    sums = {}
    for line in (source / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            sums[name.strip()] = digest
    destination.mkdir(parents=True, exist_ok=True)
    done = []
    for name, digest in sorted(sums.items()):
        packed, target = source / f"{name}.xz", destination / name
        if not packed.exists():
            continue
        if not (target.exists() and _sha256(target) == digest):
            partial = target.with_suffix(".partial")
            with lzma.open(packed) as reader, partial.open("wb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
            if _sha256(partial) != digest:
                partial.unlink()
                raise RuntimeError(f"{packed}: unpacked file does not match SHA256SUMS")
            partial.chmod(0o755)
            partial.replace(target)
        done.append(name)
    return done


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class UpstreamCloud:
    spec: ServiceSpec
    config: Path
    websocket_port: int
    https_port: int
    tunnel_port: int = 0  # cloudStream's, when it is enabled
    stream_port: int = 0

    def log(self) -> str:
        return self.spec.log_file.read_text(errors="replace") if self.spec.log_file.exists() else ""


def cloudcore_config(cloudcore: Path, base: Path, kubeconfig: Path) -> tuple[dict[str, Any], int, int]:
    """Upstream's default config for a cloudcore of its own under ``base`` on free loopback ports."""
    document = yaml.safe_load(subprocess.run([str(cloudcore), "--defaultconfig"], capture_output=True, text=True,
                                             check=True, timeout=60).stdout)
    websocket_port, https_port = free_port(), free_port()
    document["commonConfig"]["monitorServer"]["bindAddress"] = f"127.0.0.1:{free_port()}"
    document["kubeAPIConfig"]["kubeConfig"] = str(kubeconfig)
    hub = document["modules"]["cloudHub"]
    hub["advertiseAddress"] = ["127.0.0.1"]
    hub["tlsCAFile"], hub["tlsCAKeyFile"] = str(base / "ca" / "rootCA.crt"), str(base / "ca" / "rootCA.key")
    hub["tlsCertFile"], hub["tlsPrivateKeyFile"] = str(base / "certs" / "server.crt"), str(base / "certs" / "server.key")
    hub["unixsocket"]["address"] = f"unix://{base / 'kubeedge.sock'}"
    hub["https"].update(address="127.0.0.1", port=https_port)
    hub["websocket"].update(address="127.0.0.1", port=websocket_port)
    stream = document["modules"]["cloudStream"]
    for key in list(stream):
        if key.startswith("tls") and key.endswith("File"):
            stream[key] = stream[key].replace("/etc/kubeedge", str(base))
    document["modules"]["iptablesManager"]["enable"] = False
    for folder in ("ca", "certs", "config", "log", "run"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    return document, websocket_port, https_port


def cloudcore_spec(cloudcore: Path, base: Path, kubeconfig: Path, verbosity: int = 2, router_port: int = 0,
                   stream_tls: tuple[Path, Path, Path] | None = None, stream_port: int = 0,
                   dynamic_controller: bool = False) -> UpstreamCloud:
    """An upstream cloudcore under ``base``; its Router on 127.0.0.1:``router_port`` when given.

    ``stream_tls`` (client CA, certificate, key of the stream server) enables cloudStream on free
    ports: upstream's tunnel serves CloudHub's certificate, and its stream server exits at start
    without these files. Both bind every address (upstream listens on ``:port``).
    """
    document, websocket_port, https_port = cloudcore_config(cloudcore, base, kubeconfig)
    if router_port:
        document["modules"]["router"].update(enable=True, address="127.0.0.1", port=router_port)
    document["modules"]["dynamicController"]["enable"] = dynamic_controller
    tunnel_port = 0
    if stream_tls is None:
        stream_port = 0
    else:
        tunnel_port, stream_port = free_port(), stream_port or free_port()
        ca, cert, key = stream_tls
        document["modules"]["cloudStream"].update(enable=True, tunnelPort=tunnel_port, streamPort=stream_port,
                                                  tlsStreamCAFile=str(ca), tlsStreamCertFile=str(cert),
                                                  tlsStreamPrivateKeyFile=str(key))
    config = base / "config" / "cloudcore.yaml"
    config.write_text(yaml.safe_dump(document))
    spec = ServiceSpec(component="cloudcore", config_dir=base / "config", log_dir=base / "log", run_dir=base / "run",
                       argv=(str(cloudcore), "--config", str(config), f"-v={verbosity}"), readiness_timeout=60.0)
    return UpstreamCloud(spec, config, websocket_port, https_port, tunnel_port, stream_port)


# --- a real kube-apiserver on Debian's etcd ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RealCluster:
    """etcd and kube-apiserver v1.36 on loopback, with an admin kubeconfig (no controllers run)."""

    etcd: ServiceSpec
    apiserver: ServiceSpec
    kubeconfig: Path
    ca_file: Path
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def real_cluster_specs(apiserver: Path, base: Path, etcd: str = "etcd") -> RealCluster:
    """Specs for etcd and kube-apiserver under ``base``: their PKI (this project's, as the embedded
    control plane makes it: CA, serving and ``system:masters`` admin certificates, the service
    account key pair), data and logs, and the flags the binaries' README found to work here."""
    from cores.controlplane import pki as pkis

    etcd_port, etcd_peer, port = free_port(), free_port(), free_port()
    paths = pkis.ensure_pki(base / "pki", ["127.0.0.1"], ["localhost"], "10.96.0.1")
    kubeconfig = base / "admin.kubeconfig"
    pkis.write_kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", paths)
    for folder in ("etcd-data", "etcd/config", "etcd/log", "etcd/run", "apiserver/config", "apiserver/log",
                   "apiserver/run", "apiserver/certs"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    etcd_spec = ServiceSpec(
        component="controlplane", config_dir=base / "etcd" / "config", log_dir=base / "etcd" / "log",
        run_dir=base / "etcd" / "run", readiness_timeout=60.0,
        argv=(etcd, "--data-dir", str(base / "etcd-data"), "--listen-client-urls", etcd_url,
              "--advertise-client-urls", etcd_url, "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
              "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
              "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}"))
    api_spec = ServiceSpec(
        component="controlplane", config_dir=base / "apiserver" / "config", log_dir=base / "apiserver" / "log",
        run_dir=base / "apiserver" / "run", readiness_timeout=90.0,
        argv=(str(apiserver), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
              f"--secure-port={port}", f"--cert-dir={base / 'apiserver' / 'certs'}",
              f"--tls-cert-file={paths.server_cert}", f"--tls-private-key-file={paths.server_key}",
              f"--client-ca-file={paths.ca_cert}", "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
              f"--service-account-key-file={paths.service_account_public_key}",
              f"--service-account-signing-key-file={paths.service_account_key}",
              "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=Node,RBAC",
              f"--kubelet-client-certificate={paths.kubelet_client_cert}", f"--kubelet-client-key={paths.kubelet_client_key}",
              "--kubelet-preferred-address-types=InternalIP"))
    return RealCluster(etcd_spec, api_spec, kubeconfig, paths.ca_cert, port)


# --- upstream edgecore ----------------------------------------------------------------------------

def edgecore_spec(edgecore: Path, base: Path, *, node: str, token: str, websocket_port: int, https_port: int,
                  runtime_endpoint: str, pause_image: str, verbosity: int = 2, mqtt_server: str = "",
                  servicebus_port: int = 0, stream_server: str = "", metaserver_port: int = 0) -> ServiceSpec:
    """An upstream edgecore for ``node`` under ``base``, joining a cloud on 127.0.0.1: its default
    config with every path moved under ``base``, eventBus off (no broker) unless ``mqtt_server``
    names an external broker (mqttMode 2), serviceBus on ``servicebus_port`` when given, our
    containerd, and its kubelet ports moved off the defaults. With ``stream_server`` (host:port of a
    tunnel server) edgeStream is on, and the read-only port stays 10350: upstream's edgestream
    requests the URL its cloud sends, which always names 127.0.0.1:10350. Call :func:`unmount_under` after stopping it."""
    document = yaml.safe_load(subprocess.run([str(edgecore), "--defaultconfig"], capture_output=True, text=True,
                                             check=True, timeout=60).stdout)
    for folder in ("ca", "certs", "config", "log", "run", "kubelet", "manifests", "pods-logs", "data"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    document["database"]["dataSource"] = str(base / "data" / "edgecore.db")
    modules = document["modules"]
    hub = modules["edgeHub"]
    hub.update(httpServer=f"https://127.0.0.1:{https_port}", token=token, heartbeat=2,
               tlsCaFile=str(base / "ca" / "rootCA.crt"), tlsCertFile=str(base / "certs" / "server.crt"),
               tlsPrivateKeyFile=str(base / "certs" / "server.key"))
    hub["websocket"]["server"] = f"127.0.0.1:{websocket_port}"
    modules["deviceTwin"]["dmiSockPath"] = str(base / "run") + "/"
    modules["eventBus"]["enable"] = bool(mqtt_server)
    if mqtt_server:
        modules["eventBus"].update(mqttMode=2, mqttServerExternal=mqtt_server)
    if servicebus_port:
        modules["serviceBus"].update(enable=True, server="127.0.0.1", port=servicebus_port)
    edged = modules["edged"]
    edged.update(hostnameOverride=node, nodeIP="127.0.0.1", rootDirectory=str(base / "kubelet"), podSandboxImage=pause_image)
    kubelet = edged["tailoredKubeletConfig"]
    kubelet.update(containerRuntimeEndpoint=runtime_endpoint, imageServiceEndpoint=runtime_endpoint,
                   podLogsDir=str(base / "pods-logs"), staticPodPath=str(base / "manifests"),
                   readOnlyPort=10350 if stream_server else free_port(),
                   makeIPTablesUtilChains=False, port=free_port(), healthzPort=free_port())
    meta = modules["metaManager"]["metaServer"]
    meta.update(enable=bool(metaserver_port), server=f"127.0.0.1:{metaserver_port or free_port()}", tlsCaFile=str(base / "ca" / "rootCA.crt"),
                tlsCertFile=str(base / "certs" / "server.crt"), tlsPrivateKeyFile=str(base / "certs" / "server.key"))
    stream = modules["edgeStream"]
    for key in list(stream):
        if key.startswith("tls") and key.endswith("File"):
            stream[key] = stream[key].replace("/etc/kubeedge", str(base))
    if stream_server:
        stream.update(enable=True, server=stream_server)
    config = base / "config" / "edgecore.yaml"
    config.write_text(yaml.safe_dump(document))
    return ServiceSpec(component="edgecore", config_dir=base / "config", log_dir=base / "log", run_dir=base / "run",
                       argv=(str(edgecore), "--config", str(config), f"-v={verbosity}"), readiness_timeout=60.0)


def unmount_under(base: Path) -> list[str]:
    """Unmount what is mounted under ``base`` (upstream Edged leaves its root directory's bind
    mount behind when it stops), deepest first; the mount points unmounted."""
    root = str(base.resolve())
    points = []
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 1:
                point = fields[1].replace("\\040", " ")
                if point == root or point.startswith(root + "/"):
                    points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=30)
    return points
