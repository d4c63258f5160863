"""Object bookkeeping kube-apiserver does on every write, as pure functions on JSON dicts.

Create fills uid, creationTimestamp, generation and the name from ``generateName``; update keeps
what the client may not change (uid, creationTimestamp, deletion marks) and the part of the
object owned by the other endpoint (status on the main resource, everything but status on
``/status``); generation moves when the desired state (anything outside metadata and status)
changes.
"""

from __future__ import annotations

import copy
import datetime
import secrets
import uuid
from typing import Any

from cores.controlplane.registry import ResourceType

# kube-apiserver's generateName suffix: 5 characters from this alphabet (no vowels, no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Kinds whose metadata.generation the server maintains (custom resources always have it).
GENERATION_KINDS = frozenset({"Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob", "CustomResourceDefinition"})
_SERVER_OWNED_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


# Offsets (grace periods) are clamped to a century: a client's 2^63 seconds must not overflow datetime.
MAX_OFFSET_SECONDS = 100 * 365 * 24 * 3600


def now_rfc3339(offset_seconds: float = 0) -> str:
    offset = max(-MAX_OFFSET_SECONDS, min(offset_seconds, MAX_OFFSET_SECONDS))
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    if not isinstance(value, dict):
        value = {}
        obj["metadata"] = value
    return value


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def has_generation(resource: ResourceType) -> bool:
    return resource.kind in GENERATION_KINDS or resource.group not in _BUILTIN_GROUPS


_BUILTIN_GROUPS = frozenset({"", "coordination.k8s.io", "apiextensions.k8s.io", "apps"})


def desired_state(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what a change of bumps ``generation``."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def prepare_create(resource: ResourceType, obj: dict[str, Any], namespace: str | None) -> None:
    """Fill the server-owned fields of a new object (in place)."""
    metadata = meta(obj)
    obj["apiVersion"] = resource.api_version
    obj["kind"] = resource.kind
    if not metadata.get("name") and metadata.get("generateName"):
        metadata["name"] = generated_name(metadata["generateName"])
    if resource.namespaced:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = now_rfc3339()
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
        metadata.pop(key, None)
    if has_generation(resource):
        metadata["generation"] = 1
    else:
        metadata.pop("generation", None)
    if resource.has_status and resource.group not in _BUILTIN_GROUPS:
        obj.pop("status", None)  # custom resources: status only through /status


def prepare_update(
    resource: ResourceType, new: dict[str, Any], old: dict[str, Any], subresource: str
) -> dict[str, Any]:
    """The object to store for an update of ``old`` with ``new`` through ``subresource`` ("" or "status")."""
    if subresource == "status":
        result = copy.deepcopy(old)
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        return result
    result = copy.deepcopy(new)
    result["apiVersion"], result["kind"] = resource.api_version, resource.kind
    metadata, old_meta = meta(result), old.get("metadata") or {}
    for key in _SERVER_OWNED_META:
        if key in old_meta:
            metadata[key] = old_meta[key]
        else:
            metadata.pop(key, None)
    if resource.namespaced:
        metadata["namespace"] = old_meta.get("namespace")
    if resource.has_status:
        if "status" in old:
            result["status"] = old["status"]  # the main resource never changes status
        else:
            result.pop("status", None)
    if has_generation(resource) and desired_state(result) != desired_state(old) and resource.kind != "Pod":
        metadata["generation"] = int(old_meta.get("generation") or 0) + 1
    return result


def unchanged(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """True when an update would store the same object (a no-op keeps the resourceVersion)."""
    a, b = copy.copy(new), copy.copy(old)
    a["metadata"] = {k: v for k, v in (new.get("metadata") or {}).items() if k != "resourceVersion"}
    b["metadata"] = {k: v for k, v in (old.get("metadata") or {}).items() if k != "resourceVersion"}
    return a == b


def owner_uids(obj: dict[str, Any]) -> set[str]:
    return {ref.get("uid", "") for ref in (obj.get("metadata") or {}).get("ownerReferences") or []}
