"""Resource strings: every one in the captures parses; builders and the node prefix; malformed ones."""

from __future__ import annotations

import pytest

from cores.common import resource as res
from tests.captures import capture_records


def test_every_captured_resource_parses() -> None:
    seen = set()
    for where, record in capture_records():
        value = record["frame"]["route"].get("resource")
        if value:
            seen.add(value)
            parsed = res.parse(value)
            assert str(parsed) == value, where
    assert {"null/node/peer-edge-cap", "kube-node-lease/lease/peer-edge-cap", "membership/detail", "node"} <= seen


def test_object_forms() -> None:
    pod = res.parse_object("default/pod/nginx")
    assert (pod.namespace, pod.type, pod.name, pod.cluster_scoped) == ("default", "pod", "nginx", False)
    node = res.parse_object("null/nodepatch/edge-1")
    assert node.cluster_scoped and node.namespace_or_none is None
    assert res.parse_object("default/pod", allow_list=True) == res.ObjectResource("default", "pod")
    assert res.build(None, "node", "edge-1") == "null/node/edge-1"
    assert res.build("kube-node-lease", "lease", "edge-1") == "kube-node-lease/lease/edge-1"


def test_device_and_task_forms() -> None:
    twin = res.parse("device/default/thermo-1/twin/edge_updated")
    assert isinstance(twin, res.DeviceResource) and twin.device_id == "default/thermo-1" and twin.kind == "twin"
    task = res.parse("operations.kubeedge.io/v1alpha2/nodeupgradejob/job1/node/edge-1")
    assert isinstance(task, res.TaskResource) and task.node == "edge-1" and task.job == "job1"
    assert res.parse("membership") == res.SpecialResource("membership")


def test_node_prefix() -> None:
    cloud = res.add_node_prefix("edge-1", "default/pod/p")
    assert cloud == "node/edge-1/default/pod/p"
    assert res.split_node_prefix(cloud) == ("edge-1", "default/pod/p")
    assert res.has_node_prefix(cloud) and not res.has_node_prefix("default/pod/p")
    assert res.node_id_of("node/edge-1/membership/detail") == "edge-1"
    assert res.node_id_of("operations.kubeedge.io/v1alpha2/nodeupgradejob/j/node/e2") == "e2"


@pytest.mark.parametrize(
    "value,fragment",
    [
        ("", "empty"),
        ("default", "segment"),
        ("default/pod/a/b", "segment"),
        ("Default/pod/x", "DNS-1123"),
        ("default//x", "not a word"),
        ("default/pod/ ", "spaces"),
        ("device/default/x/other/y", "twin|state"),
        ("device//x/twin/y", "empty segment"),
    ],
)
def test_malformed(value: str, fragment: str) -> None:
    with pytest.raises(res.ResourceError) as caught:
        res.parse(value)
    assert fragment in str(caught.value) and "malformed resource" in str(caught.value)


def test_malformed_prefix_and_builders() -> None:
    with pytest.raises(res.ResourceError, match="node/\\{nodeID\\}"):
        res.split_node_prefix("default/pod/p")
    with pytest.raises(res.ResourceError, match="node id"):
        res.add_node_prefix("a/b", "default/pod/p")
    with pytest.raises(res.ResourceError):
        res.build("default", "pod", "a/b")
    with pytest.raises(res.ResourceError, match="names no node"):
        res.node_id_of("default/pod/p")
    with pytest.raises(res.ResourceError):
        res.parse_object("default/pod")  # a name is required unless listing
