"""Local OCI images built from ``/bin/busybox``, so pods run without any registry.

An image here is a one-layer OCI archive: ``oci-layout``, ``index.json`` and ``blobs/sha256/*``
(layer tar, config, manifest), plus a docker-style ``manifest.json`` naming the same config and
layer, so ``ctr images import`` and other importers all accept it. The layer holds ``bin/busybox``
and one symlink per applet; every timestamp and owner is fixed, so the same busybox always gives
the same digests and re-importing an image changes nothing.

Names are ``localhost/...``: CRI rewrites a short name such as ``busybox`` to
``docker.io/library/busybox`` and then finds nothing locally.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import platform
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

BUSYBOX_IMAGE = "localhost/busybox:local"
PAUSE_IMAGE = "localhost/pause:local"
# The pause container only has to hold the pod's namespaces open; busybox's sleep does that.
PAUSE_ENTRYPOINT = ("sleep", "2147483647")

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What to build: the image name, the busybox binary, and the default command."""

    name: str
    busybox: Path = Path("/bin/busybox")
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("sh",)


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    name: str
    archive: Path
    manifest_digest: str  # "sha256:..."
    config_digest: str
    layer_digest: str


def oci_architecture() -> str:
    machine = platform.machine()
    return _ARCHITECTURES.get(machine, machine)


def busybox_applets(busybox: Path) -> list[str]:
    """The applet names this busybox provides (``busybox --list``), e.g. ``sh``, ``sleep``."""
    listing = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True)
    return sorted({name for name in listing.stdout.split() if name and "/" not in name and name != "busybox"})


def build_layer(busybox: Path, applets: Sequence[str]) -> bytes:
    """An uncompressed, reproducible tar: ``bin/busybox``, ``bin/<applet>`` symlinks, a few empty dirs."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("proc", 0o555), ("sys", 0o555),
                                ("dev", 0o755), ("tmp", 0o1777), ("root", 0o700)):
            tar.addfile(_entry(directory, tarfile.DIRTYPE, mode))
        data = busybox.read_bytes()
        member = _entry("bin/busybox", tarfile.REGTYPE, 0o755)
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
        for applet in sorted(set(applets)):
            link = _entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
            link.linkname = "busybox"
            tar.addfile(link)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        member = _entry("etc/passwd", tarfile.REGTYPE, 0o644)
        member.size = len(passwd)
        tar.addfile(member, io.BytesIO(passwd))
    return out.getvalue()


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_archive(spec: ImageSpec, destination: Path, applets: Sequence[str] | None = None) -> BuiltImage:
    """Write the OCI archive for ``spec`` to ``destination`` (a ``.tar`` file) and describe it."""
    layer = build_layer(spec.busybox, busybox_applets(spec.busybox) if applets is None else applets)
    layer_digest = _digest(layer)
    config = _json_bytes({
        "architecture": oci_architecture(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            **({"Entrypoint": list(spec.entrypoint)} if spec.entrypoint else {}),
            **({"Cmd": list(spec.cmd)} if spec.cmd and not spec.entrypoint else {}),
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": f"kubeedge-py: {spec.busybox} and its applets"}],
    })
    config_digest = _digest(config)
    manifest = _json_bytes({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": len(layer)}],
    })
    manifest_digest = _digest(manifest)
    index = _json_bytes({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "platform": {"architecture": oci_architecture(), "os": "linux"},
            "annotations": {
                "io.containerd.image.name": spec.name,
                "org.opencontainers.image.ref.name": spec.name.rsplit(":", 1)[-1],
            },
        }],
    })
    docker_manifest = _json_bytes([{
        "Config": _blob_path(config_digest),
        "RepoTags": [spec.name],
        "Layers": [_blob_path(layer_digest)],
    }])
    files = [
        ("oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
        ("manifest.json", docker_manifest),
        (_blob_path(layer_digest), layer),
        (_blob_path(config_digest), config),
        (_blob_path(manifest_digest), manifest),
    ]
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            tar.addfile(_entry(directory, tarfile.DIRTYPE, 0o755))
        for name, data in files:
            member = _entry(name, tarfile.REGTYPE, 0o644)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    partial.replace(destination)
    return BuiltImage(spec.name, destination, manifest_digest, config_digest, layer_digest)


def standard_images(busybox: Path = Path("/bin/busybox")) -> tuple[ImageSpec, ImageSpec]:
    """The two images every test and demo needs: busybox (``sh``) and pause (``sleep`` forever)."""
    return (
        ImageSpec(BUSYBOX_IMAGE, busybox),
        ImageSpec(PAUSE_IMAGE, busybox, entrypoint=PAUSE_ENTRYPOINT, cmd=()),
    )


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
