"""Labels every pod and container Edged creates carries (cores.edge.cri.labels)."""

import pytest

from cores.edge.cri import labels


def test_pod_labels_use_kubelet_keys_and_the_node_name() -> None:
    assert labels.labels_for_pod("edge-1", "default", "web", "uid-1") == {
        "kubeedge.io/node-name": "edge-1",
        "io.kubernetes.pod.namespace": "default",
        "io.kubernetes.pod.name": "web",
        "io.kubernetes.pod.uid": "uid-1",
    }


def test_container_labels_add_the_container_name() -> None:
    got = labels.labels_for_container("edge-1", "default", "web", "uid-1", "nginx")
    assert got == {**labels.labels_for_pod("edge-1", "default", "web", "uid-1"), "io.kubernetes.container.name": "nginx"}


def test_node_selector_is_a_subset_of_every_label_set() -> None:
    selector = labels.labels_for_node("edge-1")
    assert selector.items() <= labels.labels_for_pod("edge-1", "ns", "p", "u").items()
    assert selector.items() <= labels.labels_for_container("edge-1", "ns", "p", "u", "c").items()


@pytest.mark.parametrize("args", [
    ("", "ns", "p", "u"), ("n", "", "p", "u"), ("n", "ns", "", "u"), ("n", "ns", "p", ""),
])
def test_empty_fields_are_refused(args: tuple[str, str, str, str]) -> None:
    with pytest.raises(ValueError):
        labels.labels_for_pod(*args)
    with pytest.raises(ValueError):
        labels.labels_for_container(*args, "c")


def test_empty_container_name_is_refused() -> None:
    with pytest.raises(ValueError, match="container name"):
        labels.labels_for_container("n", "ns", "p", "u", "")


def test_constants_are_kubelets() -> None:
    assert (labels.POD_NAME, labels.POD_NAMESPACE, labels.POD_UID, labels.CONTAINER_NAME) == (
        "io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid", "io.kubernetes.container.name")
    assert labels.NODE_NAME == "kubeedge.io/node-name"
