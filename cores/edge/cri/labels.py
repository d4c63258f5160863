"""The labels on everything Edged creates through CRI.

The first four are kubelet's own keys (``pkg/kubelet/types/labels.go``), so tools written for
kubelet nodes read our pods and containers the same way; ``kubeedge.io/node-name`` tells apart
the pods of several EdgeCores that share one containerd, and is the filter each edge lists by.
"""

from __future__ import annotations

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
NODE_NAME = "kubeedge.io/node-name"


def labels_for_node(node: str) -> dict[str, str]:
    """The label selector that lists what one edge node created."""
    if not node:
        raise ValueError("node name must not be empty")
    return {NODE_NAME: node}


def labels_for_pod(node: str, namespace: str, name: str, uid: str) -> dict[str, str]:
    """Labels of a pod sandbox: which node made it, and which pod it is."""
    for field, value in (("namespace", namespace), ("name", name), ("uid", uid)):
        if not value:
            raise ValueError(f"pod {field} must not be empty")
    return {**labels_for_node(node), POD_NAMESPACE: namespace, POD_NAME: name, POD_UID: uid}


def labels_for_container(node: str, namespace: str, name: str, uid: str, container: str) -> dict[str, str]:
    """Labels of a container: its pod's labels plus the container's name in the pod spec."""
    if not container:
        raise ValueError("container name must not be empty")
    return {**labels_for_pod(node, namespace, name, uid), CONTAINER_NAME: container}
