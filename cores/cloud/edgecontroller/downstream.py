"""What EdgeController pushes to edges: watch events of their Nodes, Pods and the objects pods use.

Mapping as upstream (doc 2.5a): Added -> ``insert`` (``update`` when the pod already carries a
deletionTimestamp), Modified -> ``update`` (pods only when more than their status changed),
Deleted -> ``delete``; Secrets are always ``update``; edge Nodes ``update`` on ``null/node/<n>``.
ConfigMaps and Secrets go only to the nodes whose pods reference them. Pure functions here; the
module does the sending.
"""

from __future__ import annotations

from typing import Any

from cores.beehive import Message
from cores.common.objects import NodeView, ObjectView
from cores.common.resource import add_node_prefix, build
from cores.link import contracts

EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"
IGNORED_METADATA = ("resourceVersion", "managedFields", "generation")


def is_edge_node(node: dict[str, Any]) -> bool:
    return NodeView(node).is_edge


def with_type(obj: dict[str, Any], kind: str, api_version: str = "v1") -> dict[str, Any]:
    """Objects from a list lack kind/apiVersion; what goes to the edge always carries them."""
    if obj.get("kind") == kind and obj.get("apiVersion"):
        return obj
    return {"apiVersion": api_version, "kind": kind, **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}}


def push(node: str, operation: str, type_: str, obj: dict[str, Any], kind: str) -> Message:
    view = ObjectView(obj)
    resource = add_node_prefix(node, build(view.namespace or None, type_, view.name))
    return contracts.push(operation, resource, with_type(obj, kind), resource_version=view.resource_version)


def pod_changed(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Upstream ``isPodUpdated``: anything but status (and bookkeeping metadata) changed."""
    if old is None:
        return True

    def essence(pod: dict[str, Any]) -> dict[str, Any]:
        metadata = {k: v for k, v in (pod.get("metadata") or {}).items() if k not in IGNORED_METADATA}
        return {**{k: v for k, v in pod.items() if k not in ("status", "metadata")}, "metadata": metadata}

    return essence(new) != essence(old)


def pod_operation(event: str, pod: dict[str, Any]) -> str:
    if event == "DELETED":
        return "delete"
    if event == "ADDED" and not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "insert"
    return "update"


def service_accounts(pod: dict[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    return {spec.get("serviceAccountName") or "default"}
