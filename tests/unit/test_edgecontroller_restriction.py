"""CloudCore's NodeRestriction for the one kind of pod a node may create: its own static pods' mirrors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cores.cloud.edgecontroller import _mirror_pod_refusal

MIRROR: dict[str, Any] = {
    "metadata": {"name": "web-edge-1", "namespace": "default",
                 "annotations": {"kubernetes.io/config.mirror": "abc", "kubernetes.io/config.source": "file"},
                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "edge-1", "uid": "node-uid", "controller": True}]},
    "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "i"}]},
}


def changed(path: str, value: Any) -> dict[str, Any]:
    pod = copy.deepcopy(MIRROR)
    *parents, last = path.split(".")
    target = pod
    for part in parents:
        target = target[part]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return pod


def test_its_own_mirror_pod_is_allowed() -> None:
    assert _mirror_pod_refusal("edge-1", "node-uid", MIRROR) == ""
    assert _mirror_pod_refusal("edge-1", "node-uid", changed("metadata.ownerReferences", None)) == ""


@pytest.mark.parametrize("pod, reason", [
    (changed("metadata.annotations", {}), "only mirror pods"),
    (changed("spec.nodeName", "edge-2"), "bound to itself"),
    (changed("spec.serviceAccountName", "admin"), "service account"),
    (changed("spec.volumes", [{"name": "s", "secret": {"secretName": "cluster-admin-token"}}]), "secrets, configmaps"),
    (changed("spec.volumes", [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]), "service account tokens"),
    (changed("spec.volumes", [{"name": "p", "persistentVolumeClaim": {"claimName": "data"}}]), "persistent volume claims"),
    (changed("spec.containers", [{"name": "c", "image": "i", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]), "secrets, configmaps"),
    (changed("metadata.ownerReferences", [{"apiVersion": "v1", "kind": "Node", "name": "edge-1", "uid": "other", "controller": True}]), "owned by its node"),
    (changed("metadata.ownerReferences", [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "u", "controller": True}]), "owned by its node"),
    (changed("metadata.ownerReferences", [*MIRROR["metadata"]["ownerReferences"]] * 2), "owned by its node"),
])
def test_anything_else_is_refused_with_the_reason(pod: dict[str, Any], reason: str) -> None:
    assert reason in _mirror_pod_refusal("edge-1", "node-uid", pod)
