"""What an edge may write (NodeRestriction and types), checked on every captured upstream write and
on the attacks a stolen node certificate makes possible."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cores.cloud.edgecontroller import admission
from tests.captures import UPSTREAM


def captured_writes(kind: str) -> list[Any]:
    found = []
    for name in ("capture1-full.jsonl", "capture2-full.jsonl"):
        for line in (UPSTREAM / name).read_text().splitlines():
            frame = json.loads(line).get("frame")
            if isinstance(frame, dict) and f"/{kind}/" in (frame.get("route") or {}).get("resource", "") \
                    and frame["route"].get("operation") == "patch":
                found.append(frame["content"])
    return found


@pytest.mark.parametrize("kind", ["nodepatch", "podpatch"])
def test_every_captured_upstream_status_patch_is_admitted(kind: str) -> None:
    patches = captured_writes(kind)
    assert patches
    for content in patches:
        patch, reason = admission.parse_patch(content)
        assert not reason
        assert admission.status_patch_refusal(patch, "node" if kind == "nodepatch" else "pod") == ""


@pytest.mark.parametrize("status, where", [
    ({"conditions": "Ready"}, "status.conditions: expected a list, got string"),
    ({"conditions": [{"type": 1}]}, "status.conditions[0].type: expected string, got number"),
    ({"addresses": {"type": "InternalIP"}}, "status.addresses: expected a list, got object"),
    ({"capacity": {"cpu": ["8"]}}, "status.capacity[cpu]: expected resource.Quantity, got list"),
    ({"daemonEndpoints": {"kubeletEndpoint": {"Port": "10250"}}}, "status.daemonEndpoints.kubeletEndpoint.Port: expected int64"),
    ({"nodeInfo": "x"}, "status.nodeInfo: expected an object"),
    ({"images": [{"names": "busybox"}]}, "status.images[0].names: expected a list"),
])
def test_poisoned_node_status_is_refused_naming_the_field(status: dict[str, Any], where: str) -> None:
    assert where in admission.status_patch_refusal({"status": status}, "node")


@pytest.mark.parametrize("status, where", [
    ({"phase": ["Running"]}, "status.phase: expected string"),
    ({"containerStatuses": [{"name": "c", "restartCount": "3"}]}, "status.containerStatuses[0].restartCount: expected int64"),
    ({"containerStatuses": [{"name": "c", "ready": "true"}]}, "status.containerStatuses[0].ready: expected bool"),
    ({"containerStatuses": [{"state": {"terminated": {"exitCode": "1"}}}]}, "state.terminated.exitCode: expected int64"),
    ({"podIPs": ["10.0.0.1"]}, "status.podIPs[0]: expected an object"),
])
def test_poisoned_pod_status_is_refused_naming_the_field(status: dict[str, Any], where: str) -> None:
    assert where in admission.status_patch_refusal({"metadata": {"uid": "u"}, "status": status}, "pod")


def test_a_status_patch_changes_nothing_but_status() -> None:
    assert "only change status, not spec" in admission.status_patch_refusal({"spec": {"unschedulable": True}}, "node")
    assert "only name metadata.uid" in admission.status_patch_refusal({"metadata": {"labels": {"a": "b"}}}, "pod")
    assert admission.status_patch_refusal({"status": {"conditions": None, "$setElementOrder/conditions": [{"type": "Ready"}]}}, "node") == ""
    deep: Any = {}
    for _ in range(60):
        deep = {"x": deep}
    assert "nested deeper" in admission.status_patch_refusal({"status": {"config": deep}}, "node")
    assert admission.parse_patch("{not json")[1] == "the patch is not JSON"
    assert admission.parse_patch("[1]")[1] == "the patch must be a JSON object"


def test_labels_a_node_may_and_may_not_set() -> None:
    allowed = {"kubernetes.io/hostname": "e", "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
               "topology.kubernetes.io/zone": "a", "node.kubernetes.io/instance-type": "x", "kubelet.kubernetes.io/x": "",
               "sub.node.kubernetes.io/y": "", "node-role.kubernetes.io/edge": "", "node-role.kubernetes.io/agent": "",
               "zone": "a", "example.com/team": "t"}
    assert admission.forbidden_labels(allowed) == []
    refused = {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
               "node-restriction.kubernetes.io/trusted": "", "a.node-restriction.kubernetes.io/b": "",
               "kubernetes.io/role": "x", "foo.k8s.io/bar": ""}
    assert admission.forbidden_labels(refused) == sorted(refused)
    assert "may not set these labels" in admission.labels_refusal({"metadata": {"labels": refused}})
    assert admission.forbidden_labels("x") == ["<labels must be a map of strings>"]


def test_the_body_must_name_the_resource_it_is_sent_on() -> None:
    assert admission.name_mismatch({"metadata": {"name": "edge-b"}}, "edge-a", "kube-node-lease") == \
        "the body names 'edge-b', the resource 'edge-a'"
    assert "namespace" in admission.name_mismatch({"metadata": {"name": "a", "namespace": "x"}}, "a", "kube-node-lease")
    assert admission.name_mismatch({"metadata": {"name": "edge-a"}}, "edge-a", "kube-node-lease") == ""
    assert admission.name_mismatch({"spec": {}}, "edge-a", None) == ""
    assert admission.name_mismatch({"metadata": "x"}, "edge-a", None) == "metadata must be an object"


def test_tokens_only_for_the_nodes_own_pods_bound_and_short_lived() -> None:
    pods = {("default", "web"): {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": {"serviceAccountName": "robot"}}}

    def pod_of(namespace: str, name: str) -> dict[str, Any] | None:
        return pods.get((namespace, name))

    def request(**spec: Any) -> dict[str, Any]:
        return {"spec": {"audiences": ["api"], "expirationSeconds": 3607,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}, **spec}}

    assert admission.token_refusal(request(), "default", "robot", pod_of) == ""
    assert "bound to one of its pods" in admission.token_refusal(request(boundObjectRef=None), "default", "robot", pod_of)
    assert "bound to one of its pods" in admission.token_refusal(
        request(boundObjectRef={"kind": "Secret", "name": "s", "uid": "x"}), "default", "robot", pod_of)
    assert "not a pod of this node" in admission.token_refusal(
        request(boundObjectRef={"kind": "Pod", "name": "web", "uid": "other"}), "default", "robot", pod_of)
    assert "not a pod of this node" in admission.token_refusal(
        request(boundObjectRef={"kind": "Pod", "name": "elsewhere", "uid": "u9"}), "default", "robot", pod_of)
    assert "runs as service account 'robot'" in admission.token_refusal(request(), "default", "default", pod_of)
    assert "expirationSeconds" in admission.token_refusal(request(expirationSeconds=10 * 365 * 86400), "default", "robot", pod_of)
    assert "expirationSeconds" in admission.token_refusal(request(expirationSeconds=None), "default", "robot", pod_of)
