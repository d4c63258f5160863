"""Pure parts of the control plane's controllers and service accounts: no server, no loop."""

from __future__ import annotations

import collections

from cores.common import kubeproto as protobuf
from cores.controlplane.controllers.deployment import semantic, surge_and_unavailable, template_hash
from cores.controlplane.controllers.scheduler import failure_message, filter_reason, matches_affinity

READY = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def node(name: str, labels: dict[str, str] | None = None, **extra: object) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels or {}}, **READY, **extra}


def pod(**spec: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def test_filters_in_kube_scheduler_order() -> None:
    assert filter_reason(pod(), node("a"), 0) is None
    assert filter_reason(pod(), node("a", spec={"unschedulable": True}), 0) == "node(s) were unschedulable"
    unknown = {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert filter_reason(pod(), unknown, 0) == "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
    tainted = node("c", spec={"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]})
    assert filter_reason(pod(), tainted, 0) == "node(s) had untolerated taint {k: v}"
    assert filter_reason(pod(tolerations=[{"operator": "Exists"}]), tainted, 0) is None
    assert filter_reason(pod(nodeSelector={"zone": "x"}), node("d"), 0) == "node(s) didn't match Pod's node affinity/selector"
    full = node("e", status={"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"pods": "1"}})
    assert filter_reason(pod(), full, 1) == "Too many pods"


def test_required_node_affinity_operators() -> None:
    def term(*expressions: dict[str, object], fields: list[dict[str, object]] | None = None) -> dict[str, object]:
        return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": list(expressions), "matchFields": fields or []}]}}}}

    target = node("n1", {"rank": "7", "zone": "a"})
    assert matches_affinity(pod(**term({"key": "zone", "operator": "In", "values": ["a", "b"]})), target)
    assert not matches_affinity(pod(**term({"key": "zone", "operator": "NotIn", "values": ["a"]})), target)
    assert matches_affinity(pod(**term({"key": "gpu", "operator": "DoesNotExist"})), target)
    assert matches_affinity(pod(**term({"key": "rank", "operator": "Gt", "values": ["5"]})), target)
    assert not matches_affinity(pod(**term({"key": "rank", "operator": "Lt", "values": ["5"]})), target)
    assert matches_affinity(pod(**term(fields=[{"key": "metadata.name", "operator": "In", "values": ["n1"]}])), target)
    assert not matches_affinity(pod(**term()), target)  # an empty term matches nothing


def test_failure_message_is_kube_schedulers() -> None:
    reasons = collections.Counter({"node(s) didn't match Pod's node affinity/selector": 1,
                                   "node(s) had untolerated taint {node.kubernetes.io/unreachable: }": 1})
    assert failure_message(2, reasons) == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")


def test_rolling_update_bounds_and_template_hash() -> None:
    def deployment(replicas: int, surge: object, unavailable: object) -> dict[str, object]:
        return {"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate",
                                                            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}

    assert surge_and_unavailable(deployment(3, "25%", "25%")) == (1, 0)
    assert surge_and_unavailable(deployment(10, "25%", "25%")) == (3, 2)
    assert surge_and_unavailable(deployment(3, 0, 0)) == (0, 1)
    assert surge_and_unavailable(deployment(2, 1, 5)) == (1, 2)
    assert surge_and_unavailable({"spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}) == (0, 0)
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    digest = template_hash(template)
    assert digest and set(digest) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert template_hash({**template, "metadata": {"labels": {"app": "x"}, "creationTimestamp": None}}) == digest
    assert semantic({"a": {}, "b": [], "c": None, "d": {"e": {}}}) == {}


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_token_request_as_kubectl_sends_it() -> None:
    # the shape of `kubectl create token default --duration=20m --audience=a` (seen with -v=9)
    spec = _field(1, b"a") + bytes([4 << 3]) + bytes.fromhex("b009")  # audiences, expirationSeconds 1200
    request = _field(1, b"") + _field(2, spec) + _field(3, b"")
    type_meta = _field(1, b"authentication.k8s.io/v1") + _field(2, b"TokenRequest")
    body = b"k8s\x00" + _field(1, type_meta) + _field(2, request) + _field(3, b"") + _field(4, b"")
    assert protobuf.decode(body) == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                     "metadata": {}, "spec": {"audiences": ["a"], "expirationSeconds": 1200}}
    try:
        protobuf.decode(b"k8s\x00" + _field(1, _field(1, b"networking.k8s.io/v1") + _field(2, b"Ingress")))
    except protobuf.ProtobufError as error:
        assert "not supported for Ingress" in str(error)
    else:
        raise AssertionError("a kind the server does not serve must be refused in protobuf")
