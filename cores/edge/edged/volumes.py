"""Pod volumes on disk: ``<rootDirectory>/pods/<uid>/volumes/<plugin>/<volume>``, bind-mounted by CRI.

configMap, secret, downwardAPI and projected volumes are written the way kubelet's AtomicWriter
does: the payload goes into a fresh hidden directory, ``..data`` is switched to it with one
``rename`` of a symlink, and each visible name is a symlink through ``..data``. A running
container therefore sees an update all at once, never a half-written file. emptyDir is a plain
directory; hostPath is the host's path (created for the ``*OrCreate`` types). A projected
``serviceAccountToken`` source is the token of a TokenRequest bound to the pod, which Edged asks
the cloud for (:func:`token_request`) and hands in through the lookup as kind
``serviceaccounttoken`` under :func:`token_key`.

These functions do file I/O: Edged runs them off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cores.edge.cri import api
from cores.edge.edged import safety
from cores.edge.edged.podspec import Lookup, SpecError, field_value, resource_value

log = logging.getLogger("kubeedge.edged")

PLUGINS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret", "emptyDir": "kubernetes.io~empty-dir",
           "downwardAPI": "kubernetes.io~downward-api", "projected": "kubernetes.io~projected"}
READ_ONLY_KINDS = ("configMap", "secret", "downwardAPI", "projected")
DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600  # a projected token's lifetime when the source names none


def pod_dir(root: str, uid: str) -> Path:
    return Path(root) / "pods" / uid


def needs_missing(pod: Mapping[str, Any], found: Mapping[tuple[str, str], Any]) -> bool:
    """Whether a volume of the pod cannot be set up without an object ``found`` lacks (None).
    Objects only the environment names do not hold the volumes up: they fail later, per container."""
    missing = {key for key, obj in found.items() if obj is None}
    if any(kind == "serviceaccounttoken" for kind, _ in missing):
        return True  # only projected volumes ask for tokens
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for ref in referenced_objects({"spec": {"volumes": [volume]}}):
            source = volume.get("configMap") or volume.get("secret") or {}
            if ref in missing and not source.get("optional"):
                return True
    return False


def volume_kind(volume: Mapping[str, Any]) -> str:
    for kind in ("configMap", "secret", "emptyDir", "hostPath", "downwardAPI", "projected"):
        if kind in volume:
            return kind
    return next((k for k in volume if k != "name"), "unknown")


def volume_path(root: str, uid: str, volume: Mapping[str, Any]) -> Path:
    kind = volume_kind(volume)
    if kind == "hostPath":
        return Path(str(volume["hostPath"]["path"]))
    return pod_dir(root, uid) / "volumes" / PLUGINS.get(kind, kind) / str(volume["name"])


def referenced_objects(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod's volumes and env use."""
    spec = pod.get("spec") or {}
    found: set[tuple[str, str]] = set()
    for volume in spec.get("volumes") or []:
        if volume.get("configMap"):
            found.add(("configmap", str(volume["configMap"].get("name"))))
        if volume.get("secret"):
            found.add(("secret", str(volume["secret"].get("secretName"))))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("configMap"):
                found.add(("configmap", str(source["configMap"].get("name"))))
            if source.get("secret"):
                found.add(("secret", str(source["secret"].get("name"))))
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for source in container.get("envFrom") or []:
            if source.get("configMapRef"):
                found.add(("configmap", str(source["configMapRef"].get("name"))))
            if source.get("secretRef"):
                found.add(("secret", str(source["secretRef"].get("name"))))
        for entry in container.get("env") or []:
            value_from = entry.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                found.add(("configmap", str(value_from["configMapKeyRef"].get("name"))))
            if value_from.get("secretKeyRef"):
                found.add(("secret", str(value_from["secretKeyRef"].get("name"))))
    return found


def token_sources(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every projected ``serviceAccountToken`` source of the pod's volumes."""
    return [part["serviceAccountToken"]
            for volume in (pod.get("spec") or {}).get("volumes") or []
            for part in (volume.get("projected") or {}).get("sources") or [] if part.get("serviceAccountToken")]


def token_key(source: Mapping[str, Any]) -> str:
    """What tells one projected token of a pod from another: its audience and lifetime."""
    return f"{source.get('audience') or ''}|{int(source.get('expirationSeconds') or DEFAULT_TOKEN_SECONDS)}"


def token_request(pod: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """The TokenRequest kubelet sends for a projected token: bound to this pod, so it dies with it."""
    meta = pod.get("metadata") or {}
    spec: dict[str, Any] = {
        "expirationSeconds": int(source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name"), "uid": meta.get("uid")}}
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {}, "spec": spec}


# -- payloads -------------------------------------------------------------------------------------

Payload = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


def _object_payload(kind: str, obj: Mapping[str, Any] | None, source: Mapping[str, Any], default_mode: int) -> Payload:
    name = source.get("name") if kind == "configmap" else source.get("secretName", source.get("name"))
    if obj is None:
        if source.get("optional"):
            return {}
        raise SpecError("FailedMount", f'{"configmap" if kind == "configmap" else "secret"} "{name}" not found')
    raw: dict[str, bytes] = {}
    if kind == "secret":
        raw.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
        raw.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
    else:
        raw.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
        raw.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = source.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in raw.items()}
    payload: Payload = {}
    for item in items:
        if item["key"] not in raw:
            if source.get("optional"):
                continue
            raise SpecError("FailedMount", f"configmap/secret {name}: no key {item['key']!r}")
        payload[str(item["path"])] = (raw[item["key"]], int(item.get("mode") or default_mode))
    return payload


def _downward_payload(pod: Mapping[str, Any], source: Mapping[str, Any], default_mode: int, host_ip: str, pod_ip: str) -> Payload:
    payload: Payload = {}
    containers = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
    for item in source.get("items") or []:
        if item.get("fieldRef"):
            value = field_value(pod, str(item["fieldRef"].get("fieldPath")), host_ip, pod_ip)
        else:
            ref = item.get("resourceFieldRef") or {}
            value = resource_value(containers.get(ref.get("containerName"), {}), ref)
        payload[str(item["path"])] = (value.encode(), int(item.get("mode") or default_mode))
    return payload


def payload(pod: Mapping[str, Any], volume: Mapping[str, Any], lookup: Lookup, host_ip: str, pod_ip: str) -> Payload | None:
    """The files of an atomic-writer volume, or None for the other kinds."""
    kind = volume_kind(volume)
    source = volume.get(kind) or {}
    mode = int(source.get("defaultMode") or DEFAULT_MODE)
    if kind == "configMap":
        return _object_payload("configmap", lookup("configmap", str(source.get("name"))), source, mode)
    if kind == "secret":
        return _object_payload("secret", lookup("secret", str(source.get("secretName"))), source, mode)
    if kind == "downwardAPI":
        return _downward_payload(pod, source, mode, host_ip, pod_ip)
    if kind != "projected":
        return None
    files: Payload = {}
    for part in source.get("sources") or []:
        if part.get("configMap"):
            files.update(_object_payload("configmap", lookup("configmap", str(part["configMap"].get("name"))), part["configMap"], mode))
        elif part.get("secret"):
            files.update(_object_payload("secret", lookup("secret", str(part["secret"].get("name"))), part["secret"], mode))
        elif part.get("downwardAPI"):
            files.update(_downward_payload(pod, part["downwardAPI"], mode, host_ip, pod_ip))
        elif part.get("serviceAccountToken"):
            token_source = part["serviceAccountToken"]
            issued = lookup("serviceaccounttoken", token_key(token_source))
            token = ((issued or {}).get("status") or {}).get("token")
            if not token:
                raise SpecError("FailedMount", f"volume {volume.get('name')}: no service account token yet")
            files[str(token_source.get("path") or "token")] = (str(token).encode(), mode)
    return files


# -- ownership ------------------------------------------------------------------------------------

FS_GROUP_KINDS = ("configMap", "secret", "emptyDir", "downwardAPI", "projected")  # hostPath is the host's own


def fs_group(pod: Mapping[str, Any]) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return None if value is None else int(value)


def apply_fs_group(path: Path, gid: int, read_only: bool) -> None:
    """kubelet's volume ownership: everything in the volume belongs to group ``gid``, readable (and
    for writable volumes writable) by it; directories are setgid so new files stay in the group."""
    for entry in [path, *path.rglob("*")]:
        if entry.is_symlink():
            continue  # the atomic writer's links; what they point at is walked itself
        os.chown(entry, -1, gid)
        mode = entry.stat().st_mode & 0o7777
        if entry.is_dir():
            mode |= 0o2050 if read_only else 0o2070
        else:
            mode |= 0o040 if read_only else 0o060
        entry.chmod(mode)


# -- writing ---------------------------------------------------------------------------------------

def write_atomically(target: Path, files: Payload) -> bool:
    """Make ``target`` hold exactly ``files`` (AtomicWriter layout); False when nothing changed."""
    for relative in files:
        refusal = safety.relative_path_error(relative)
        if refusal:
            raise SpecError("FailedMount", f"volume file {refusal}")
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / "..data"
    if data_link.is_symlink() and _same(target / os.readlink(data_link), files):
        return False
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    fresh = target / stamp
    fresh.mkdir()
    for relative, (content, mode) in files.items():
        path = fresh / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    fresh.chmod(0o755)
    old = os.readlink(data_link) if data_link.is_symlink() else None
    temporary = target / "..data_tmp"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(stamp)
    os.replace(temporary, data_link)  # the one atomic switch
    visible = {relative.split("/", 1)[0] for relative in files}
    for name in visible:
        link = target / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            link.symlink_to(Path("..data") / name)
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.name not in visible and entry.is_symlink():
            entry.unlink()
    if old and old != stamp:
        shutil.rmtree(target / old, ignore_errors=True)
    return True


def _same(current: Path, files: Payload) -> bool:
    if not current.is_dir():
        return False
    present = {str(p.relative_to(current)) for p in current.rglob("*") if p.is_file()}
    if present != set(files):
        return False
    return all((current / rel).read_bytes() == content and ((current / rel).stat().st_mode & 0o777) == mode
               for rel, (content, mode) in files.items())


def prepare(root: str, pod: Mapping[str, Any], lookup: Lookup, host_ip: str, pod_ip: str) -> dict[str, Path]:
    """Create or refresh every volume of the pod; volume name -> host path. Raises :class:`SpecError`."""
    uid = str((pod.get("metadata") or {}).get("uid"))
    paths: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        kind = volume_kind(volume)
        path = volume_path(root, uid, volume)
        files = payload(pod, volume, lookup, host_ip, pod_ip)
        if files is not None:
            write_atomically(path, files)
        elif kind == "emptyDir":
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
        elif kind == "hostPath":
            host_type = str(volume["hostPath"].get("type") or "")
            if host_type == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif host_type == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif host_type in ("Directory", "File", "Socket") and not path.exists():
                raise SpecError("FailedMount", f"hostPath {path} does not exist")
        else:
            log.warning("volume %s of pod %s: kind %s is not supported at the edge", volume.get("name"), uid, kind)
            continue
        gid = fs_group(pod)
        # an emptyDir is owned once, at creation: walking what the pod wrote there on every rewrite
        # of another volume would cost as much as the data (kubelet's OnRootMismatch)
        if gid is not None and kind in FS_GROUP_KINDS and not (kind == "emptyDir" and path.stat().st_gid == gid):
            apply_fs_group(path, gid, kind in READ_ONLY_KINDS)
        paths[str(volume["name"])] = path
    return paths


def refresh(root: str, pod: Mapping[str, Any], lookup: Lookup, host_ip: str, pod_ip: str, kind: str, name: str) -> bool:
    """Rewrite the volumes that use ConfigMap/Secret ``name``; True if a file changed."""
    uid = str((pod.get("metadata") or {}).get("uid"))
    changed = False
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        vkind = volume_kind(volume)
        if vkind not in ("configMap", "secret", "projected"):
            continue
        if (kind, name) not in referenced_objects({"spec": {"volumes": [volume]}}):
            continue
        files = payload(pod, volume, lookup, host_ip, pod_ip)
        if files is not None and write_atomically(volume_path(root, uid, volume), files):
            changed = True
            gid = fs_group(pod)
            if gid is not None:
                apply_fs_group(volume_path(root, uid, volume), gid, True)
    return changed


def mounts(container: Mapping[str, Any], pod: Mapping[str, Any], paths: Mapping[str, Path]) -> list[api.Mount]:
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    result = []
    for mount in container.get("volumeMounts") or []:
        path = paths.get(mount["name"])
        if path is None:
            raise SpecError("CreateContainerConfigError", f"volume {mount['name']!r} is not available")
        if mount.get("subPath"):
            volume_root, sub_path = path, str(mount["subPath"])
            refusal = safety.relative_path_error(sub_path)
            if refusal:
                raise SpecError("CreateContainerConfigError", f"subPath {refusal}")
            path = path / sub_path
            if not safety.within(volume_root, path):  # a symlink the container left in its volume
                raise SpecError("CreateContainerConfigError", f"subPath {sub_path!r} leaves volume {mount['name']!r}")
            if not path.exists() and volume_kind(volumes.get(mount["name"], {})) not in READ_ONLY_KINDS:
                path.mkdir(parents=True, exist_ok=True)
        read_only = bool(mount.get("readOnly")) or volume_kind(volumes.get(mount["name"], {})) in READ_ONLY_KINDS
        result.append(api.Mount(container_path=str(mount["mountPath"]), host_path=str(path.resolve() if mount.get("subPath") else path),
                                readonly=read_only))
    return result


def remove_pod_dir(root: str, uid: str) -> None:
    if uid:
        shutil.rmtree(pod_dir(root, uid), ignore_errors=True)
