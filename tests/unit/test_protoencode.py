"""Protobuf answers: every built-in object upstream's peers exchanged, encoded and read back.

The decoder (:mod:`cores.controlplane.protobuf`) was written against kubectl's real protobuf
bodies; the encoder is checked against it over the real objects in the captures (pods, nodes,
leases, ConfigMaps, Secrets, as kube-apiserver served them), so the two cannot share a mistake
about field numbers without both disagreeing with kubectl.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from cores.common import kubeproto as protobuf
from cores.controlplane import protoencode
from tests.captures import capture_records


def go_json(value: Any) -> Any:
    """What Go's JSON writes after a protobuf round trip: empty values and nulls left out."""
    if isinstance(value, dict):
        cleaned = {key: go_json(item) for key, item in value.items()}
        return {key: item for key, item in cleaned.items() if item not in (None, "", 0, False, [], {})}
    if isinstance(value, list):
        return [go_json(item) for item in value]
    return value


def captured_objects() -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for _, record in capture_records():
        content = record.get("frame", {}).get("content")
        for candidate in (content, content.get("Object") if isinstance(content, dict) else None):
            if isinstance(candidate, dict) and "metadata" in candidate and "spec" in candidate | {"spec": 1}:
                kind = candidate.get("kind") or _kind_of(record)
                if kind and protoencode.message_name(candidate.get("apiVersion") or _api_version(kind), kind):
                    obj = {"apiVersion": candidate.get("apiVersion") or _api_version(kind), "kind": kind, **candidate}
                    seen.setdefault(kind + str(len(seen) % 7), obj)
    return list(seen.values())


def _kind_of(record: dict[str, Any]) -> str:
    resource = record.get("frame", {}).get("route", {}).get("resource", "")
    kind = resource.split("/")[1] if resource.count("/") == 2 else ""
    return {"pod": "Pod", "node": "Node", "lease": "Lease", "configmap": "ConfigMap", "secret": "Secret",
            "nodepatch": "Node", "podpatch": "Pod"}.get(kind, "")


def _api_version(kind: str) -> str:
    return "coordination.k8s.io/v1" if kind == "Lease" else "v1"


OBJECTS = captured_objects()


def test_the_captures_give_objects_of_several_kinds() -> None:
    kinds = {obj["kind"] for obj in OBJECTS}
    assert {"Pod", "Node", "Lease", "ConfigMap"} <= kinds, kinds


@pytest.mark.parametrize("obj", OBJECTS, ids=[f"{o['kind']}-{i}" for i, o in enumerate(OBJECTS)])
def test_captured_objects_read_back_as_they_were(obj: dict[str, Any]) -> None:
    encoded = protoencode.encode(obj)
    assert encoded is not None and encoded.startswith(protobuf.MAGIC)
    assert go_json(protobuf.decode(encoded)) == go_json(obj)


def test_scalars_of_every_sign_and_kind() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "generation": 9_007_199_254_740_993, "deletionGracePeriodSeconds": -1,
        "labels": {"a": "b"}, "creationTimestamp": "1969-12-31T23:59:59Z"},
        "spec": {"activeDeadlineSeconds": 2**40, "containers": [{"name": "c", "image": "i", "ports": [
            {"containerPort": 80, "protocol": "TCP"}], "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
            "livenessProbe": {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 3},
            "readinessProbe": {"tcpSocket": {"port": 8080}}}],
            "hostNetwork": True}}
    decoded = protobuf.decode(protoencode.encode(pod) or b"")
    assert decoded["metadata"]["generation"] == 9_007_199_254_740_993
    assert decoded["metadata"]["deletionGracePeriodSeconds"] == -1
    assert decoded["metadata"]["creationTimestamp"] == "1969-12-31T23:59:59Z"
    container = decoded["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["port"] == "http"  # IntOrString, string form
    assert container["readinessProbe"]["tcpSocket"]["port"] == 8080  # and the number form
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}
    assert decoded["spec"]["hostNetwork"] is True and decoded["spec"]["activeDeadlineSeconds"] == 2**40


def test_secret_bytes_status_and_lists() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "AAEC/w=="}, "type": "Opaque"}
    assert protobuf.decode(protoencode.encode(secret) or b"")["data"] == {"k": "AAEC/w=="}
    status = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "reason": "NotFound",
              "code": 404, "message": 'pods "x" not found', "details": {"name": "x", "kind": "pods"}}
    assert go_json(protobuf.decode(protoencode.encode(status) or b"")) == go_json(status)
    listed = {"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "7", "continue": "c"},
              "items": [{"metadata": {"name": "a"}, "data": {"x": "1"}}, {"metadata": {"name": "b"}}]}
    decoded = protobuf.decode(protoencode.encode(listed) or b"")
    assert decoded["metadata"] == {"resourceVersion": "7", "continue": "c"}
    assert [item["metadata"]["name"] for item in decoded["items"]] == ["a", "b"]


def test_kinds_without_a_message_are_left_to_json() -> None:
    assert protoencode.encode({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device", "metadata": {}}) is None
    assert protoencode.encode({"apiVersion": "meta.k8s.io/v1", "kind": "Table"}) is None
    assert protoencode.encode(["not", "an", "object"]) is None


def test_a_value_of_the_wrong_type_raises_rather_than_half_encodes() -> None:
    with pytest.raises(protobuf.ProtobufError):
        protoencode.encode({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}})
    with pytest.raises(protobuf.ProtobufError):
        protoencode.encode({"apiVersion": "v1", "kind": "Node", "status": {"conditions": "Ready"}})


@pytest.mark.parametrize("text, nanos", [("0", 0), ("0s", 0), ("1h2m3.5s", 3_723_500_000_000), ("-1.5ms", -1_500_000),
                                         ("300ms", 300_000_000), ("2µs", 2_000), ("1h", 3_600_000_000_000)])
def test_go_durations(text: str, nanos: int) -> None:
    assert protoencode.parse_go_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "1", "1x", "h", "1h 2m"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(protobuf.ProtobufError):
        protoencode.parse_go_duration(text)


def test_watch_frame_is_a_length_then_a_watch_event_holding_the_object() -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "n", "leaseDurationSeconds": 40, "renewTime": "2026-12-03T10:00:00.123456Z"}}
    encoded = protoencode.encode(lease) or b""
    frame = protoencode.watch_frame("MODIFIED", encoded)
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    fields = dict(protobuf.fields(frame[4:]))
    assert fields[1] == b"MODIFIED"
    raw = dict(protobuf.fields(fields[2]))[1]  # RawExtension.raw
    assert isinstance(raw, bytes) and go_json(protobuf.decode(raw)) == go_json(lease)
    assert protobuf.decode(raw)["spec"]["renewTime"] == "2026-12-03T10:00:00.123456Z"


def test_custom_resource_definitions_encode_with_their_schemas() -> None:
    crd = json.loads(json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "ws.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "ws", "kind": "W"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"spec": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "items": {"type": "array", "items": {"type": "integer"}}}}}}]}}))
    assert go_json(protobuf.decode(protoencode.encode(crd) or b"")) == go_json(crd)
