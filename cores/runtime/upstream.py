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


def cloudcore_spec(cloudcore: Path, base: Path, kubeconfig: Path, verbosity: int = 2) -> UpstreamCloud:
    document, websocket_port, https_port = cloudcore_config(cloudcore, base, kubeconfig)
    config = base / "config" / "cloudcore.yaml"
    config.write_text(yaml.safe_dump(document))
    spec = ServiceSpec(component="cloudcore", config_dir=base / "config", log_dir=base / "log", run_dir=base / "run",
                       argv=(str(cloudcore), "--config", str(config), f"-v={verbosity}"), readiness_timeout=60.0)
    return UpstreamCloud(spec, config, websocket_port, https_port)
