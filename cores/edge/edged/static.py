"""Static pods: manifests in ``staticPodPath`` that the node runs by itself, cloud or not.

As kubelet does it: each ``*.yaml``/``*.yml``/``*.json`` file (hidden files skipped) holds one
Pod. The pod is named ``<name>-<node>``, lives in its namespace (``default`` if none), is bound to
this node and tolerates every ``NoExecute`` taint; its UID is a hash of the node, the file and the
pod, so it is the same after a restart (Edged adopts its running containers) and changes when the
file changes (the old pod is stopped, the new one started). The annotations
``kubernetes.io/config.{hash,source,seen}`` say where it came from.

The cloud sees a static pod through its *mirror pod*: the same pod, created in the API by the
node, annotated ``kubernetes.io/config.mirror: <hash>`` and owned by the Node. Mirror pods the
cloud sends back are never run; Edged reports the static pod's status onto its mirror, recreates
a mirror deleted in the cloud, and replaces one whose hash is out of date.

Pure functions: reading the directory is the only I/O (Edged runs it off the event loop).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("kubeedge.edged")

CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    pass


def is_mirror(pod: Mapping[str, Any]) -> bool:
    return CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def is_static(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_SOURCE) == "file"


def pod_hash(pod: Mapping[str, Any]) -> str:
    return str(((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH) or "")


def static_pod(document: Any, source: str, node_name: str) -> dict[str, Any]:
    """The pod a manifest describes, as this node runs it; ManifestError when it is not a usable Pod."""
    if not isinstance(document, dict) or document.get("kind") != "Pod":
        raise ManifestError("not a Pod (kind: Pod, apiVersion: v1 expected)")
    if document.get("apiVersion") not in (None, "v1"):
        raise ManifestError(f"apiVersion {document.get('apiVersion')!r} is not v1")
    meta = document.get("metadata") or {}
    if not meta.get("name"):
        raise ManifestError("metadata.name is missing")
    containers = (document.get("spec") or {}).get("containers")
    if not containers or not all(isinstance(c, dict) and c.get("name") and c.get("image") for c in containers):
        raise ManifestError("spec.containers must list containers with a name and an image")
    pod = copy.deepcopy(document)
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    meta = pod.setdefault("metadata", {})
    for server_field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "managedFields"):
        meta.pop(server_field, None)
    meta["name"] = f"{meta['name']}-{node_name}"
    meta["namespace"] = meta.get("namespace") or "default"
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node_name
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container["image"])
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
    tolerations = spec.setdefault("tolerations", [])
    if not any(t.get("operator") == "Exists" and t.get("effect") == "NoExecute" and not t.get("key") for t in tolerations):
        tolerations.append({"operator": "Exists", "effect": "NoExecute"})
    pod.pop("status", None)
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(f"host:{node_name}file:{source}".encode())
    digest.update(json.dumps(pod, sort_keys=True, separators=(",", ":")).encode())
    uid = digest.hexdigest()
    meta["uid"] = uid
    annotations = meta.setdefault("annotations", {})
    annotations[CONFIG_HASH] = uid
    annotations[CONFIG_SOURCE] = "file"
    annotations[CONFIG_SEEN] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    pod["status"] = {"phase": "Pending"}
    return pod


def read_manifests(directory: Path, node_name: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(pods by UID, errors by file) for every manifest in ``directory``; a missing directory is empty."""
    pods: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    if not directory.is_dir():
        return pods, errors
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix not in SUFFIXES or not path.is_file():
            continue
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            if len(documents) != 1:
                raise ManifestError(f"{len(documents)} documents; a static pod manifest holds exactly one Pod")
            pod = static_pod(documents[0], str(path), node_name)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ManifestError, AttributeError, TypeError, ValueError) as error:
            # one bad file (a list where a mapping belongs, ...) is named and skipped; the others run
            errors[str(path)] = str(error).splitlines()[0] if str(error) else type(error).__name__
            continue
        pods[pod["metadata"]["uid"]] = pod
    return pods, errors


def mirror_pod(pod: Mapping[str, Any], node_name: str, node_uid: str) -> dict[str, Any]:
    """The mirror pod to create in the API for a static pod: no UID (the server gives one), owned by the Node."""
    mirror = copy.deepcopy(dict(pod))
    meta = mirror["metadata"]
    meta.pop("uid", None)
    meta["annotations"][CONFIG_MIRROR] = pod_hash(pod)
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid, "controller": True}]
    mirror.pop("status", None)
    return mirror
