"""ObjectSync and ClusterObjectSync (``reliablesyncs.kubeedge.io/v1alpha1``): what each node has acked.

Name ``<node>.<object uid>``; namespaced objects get an ObjectSync in their namespace, cluster
scoped ones (nodes) a ClusterObjectSync. Created when an object is first queued for a node,
with no ``status.objectResourceVersion`` yet (read as "0", upstream writes "0"); set to the acked version on each ack; deleted when
the node acks a delete. SyncController reads them to resend what a node is missing.
"""

from __future__ import annotations

import logging
from typing import Any

from cores.cloud.kube import Kube, KubeError

log = logging.getLogger("kubeedge.cloudhub")

GROUP_VERSION = "reliablesyncs.kubeedge.io/v1alpha1"


def sync_name(node: str, uid: str) -> str:
    return f"{node}.{uid}"


def node_of(sync_name_: str) -> str:
    """The node of an ObjectSync name: everything before the last dot (the uid has none)."""
    return sync_name_.rsplit(".", 1)[0]


def path(namespace: str | None, name: str = "") -> str:
    base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/objectsyncs" if namespace else f"/apis/{GROUP_VERSION}/clusterobjectsyncs"
    return f"{base}/{name}" if name else base


async def record_queued(kube: Kube, node: str, obj: dict[str, Any]) -> None:
    metadata = obj.get("metadata") or {}
    namespace, uid = metadata.get("namespace"), metadata.get("uid", "")
    body = {
        "apiVersion": GROUP_VERSION, "kind": "ObjectSync" if namespace else "ClusterObjectSync",
        "metadata": {"name": sync_name(node, uid), **({"namespace": namespace} if namespace else {})},
        "spec": {"objectAPIVersion": obj.get("apiVersion", "v1"), "objectKind": obj.get("kind", ""),
                 "objectName": metadata.get("name", "")},
    }
    try:
        await kube.request("POST", path(namespace), body)
    except KubeError as error:
        if error.code != 409:
            raise
    # No status yet means "0" (nothing acked) to SyncController, as upstream's explicit "0" does;
    # leaving it out saves an API call for every object queued.


async def set_version(kube: Kube, node: str, namespace: str | None, uid: str, resource_version: str) -> None:
    await kube.request("PATCH", path(namespace, sync_name(node, uid)) + "/status",
                       {"status": {"objectResourceVersion": resource_version}}, content_type="application/merge-patch+json")


async def remove(kube: Kube, node: str, namespace: str | None, uid: str) -> None:
    try:
        await kube.request("DELETE", path(namespace, sync_name(node, uid)))
    except KubeError as error:
        if error.code != 404:
            raise


async def list_all(kube: Kube) -> list[dict[str, Any]]:
    """Every ObjectSync and ClusterObjectSync (an empty list when the CRDs are not installed)."""
    found: list[dict[str, Any]] = []
    for collection in (f"/apis/{GROUP_VERSION}/objectsyncs", path(None)):
        try:
            found += (await kube.request("GET", collection)).get("items") or []
        except KubeError as error:
            if error.code != 404:
                raise
    return found
