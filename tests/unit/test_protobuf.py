"""Kubernetes protobuf bodies, built here byte by byte, read into the objects Go's JSON would give."""

from __future__ import annotations

import base64
import struct

import pytest

from cores.common import kubeproto as protobuf


# --- a tiny encoder --------------------------------------------------------------------------------

def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negatives as ten-byte two's complement, as Go writes int32/int64
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def num(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def msg(number: int, *parts: bytes | str) -> bytes:
    payload = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def entry(number: int, key: str, value: bytes | str) -> bytes:
    """A map entry: 1 key, 2 value (a string or an encoded message)."""
    return msg(number, msg(1, key), msg(2, value))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return protobuf.MAGIC + msg(1, msg(1, api_version), msg(2, kind)) + msg(2, raw) + msg(3, "") + msg(4, "")


def metadata(name: str, namespace: str = "default", *extra: bytes) -> bytes:
    # gogo writes every non-pointer string, set or not: generateName and the rest come as ""
    return msg(1, msg(1, name), msg(2, ""), msg(3, namespace), msg(4, ""), msg(5, ""), num(7, 0), msg(8), *extra)


# --- kinds -----------------------------------------------------------------------------------------

def test_configmap() -> None:
    raw = metadata("cm", "default", entry(11, "app", "web")) + entry(2, "x", "y") + entry(2, "empty", "") \
        + entry(3, "bin", b"\x00\xff") + num(4, 0)
    assert protobuf.decode(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "labels": {"app": "web"}},
        "data": {"x": "y", "empty": ""}, "binaryData": {"bin": "AP8="},
        "immutable": False,  # a *bool: set, so written even when false
    }


def test_secret_with_binary_data() -> None:
    blob = bytes(range(256))
    raw = metadata("s") + entry(2, "blob", blob) + msg(3, "Opaque")
    secret = protobuf.decode(envelope("v1", "Secret", raw))
    assert secret["type"] == "Opaque" and "stringData" not in secret
    assert base64.b64decode(secret["data"]["blob"]) == blob


def test_deployment_with_int_or_string_quantity_and_inlined_probe() -> None:
    container = (msg(1, "web") + msg(2, "nginx")
                 + msg(6, num(3, 80), msg(1, ""), msg(4, "TCP"))  # ports: containerPort, name "", protocol
                 + msg(8, entry(1, "cpu", msg(1, "500m")), entry(1, "memory", msg(1, "64Mi")))  # resources.limits
                 + msg(10, msg(1, msg(1, msg(1, "true"))), num(2, 0), num(3, 5)))  # livenessProbe: exec, delays
    strategy = msg(1, "RollingUpdate") + msg(2, msg(1, num(1, 0), num(2, 1)), msg(2, num(1, 1), msg(3, "25%")))
    spec = (num(1, 2) + msg(2, entry(1, "app", "web"))
            + msg(3, msg(1, entry(11, "app", "web")), msg(2, msg(2, container)))
            + msg(4, strategy) + num(5, 0))
    status = num(1, 0) + num(2, 0)  # gogo writes zero counters: omitempty in Go's JSON
    body = protobuf.decode(envelope("apps/v1", "Deployment", metadata("d") + msg(2, spec) + msg(3, status)))
    assert body["spec"] == {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
            "name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
            "livenessProbe": {"exec": {"command": ["true"]}, "timeoutSeconds": 5}}]}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
    }
    assert "status" not in body  # nothing but zeros: dropped like the empty struct it is


def test_negative_ints_and_repeated_ints_packed_or_not() -> None:
    packed = varint(1000) + varint(-7) + varint(2000)
    security = msg(4, packed) + num(4, 3000) + num(2, -1)  # supplementalGroups packed then unpacked, runAsUser -1
    spec = num(5, -5) + msg(14, security) + msg(2, msg(1, "c"), msg(2, "i"))  # activeDeadlineSeconds (int64)
    pod = protobuf.decode(envelope("v1", "Pod", metadata("p", "default", num(10, -3)) + msg(2, spec)))
    assert pod["metadata"]["deletionGracePeriodSeconds"] == -3
    assert pod["spec"]["activeDeadlineSeconds"] == -5
    assert pod["spec"]["securityContext"] == {"supplementalGroups": [1000, -7, 2000, 3000], "runAsUser": -1}
    assert pod["spec"]["containers"] == [{"name": "c", "image": "i"}]


def test_int32_negative_from_ten_byte_varint() -> None:
    spec = num(1, 1) + msg(2) + num(5, -1)  # replicas 1, minReadySeconds -1 (int32 written as 64-bit)
    deployment = protobuf.decode(envelope("apps/v1", "Deployment", metadata("d") + msg(2, spec)))
    assert deployment["spec"]["minReadySeconds"] == -1


def test_times_and_micro_times() -> None:
    created = msg(8, num(1, 1_700_000_000), num(2, 0))
    spec = msg(1, "holder") + num(2, 15) + msg(3, num(1, 1_700_000_001), num(2, 123_456_789)) + msg(4)
    lease = protobuf.decode(envelope("coordination.k8s.io/v1", "Lease", msg(1, msg(1, "l"), created) + msg(2, spec)))
    assert lease["metadata"] == {"name": "l", "creationTimestamp": "2023-11-14T22:13:20Z"}
    assert lease["spec"] == {"holderIdentity": "holder", "leaseDurationSeconds": 15,
                             "acquireTime": "2023-11-14T22:13:21.123456Z"}  # renewTime: zero, so null: left out


def test_go_durations() -> None:
    assert [protobuf._go_duration(n) for n in (0, 1_500_000, 2_000, 90 * 10**9, 3_723_500_000_000, -10**9)] \
        == ["0s", "1.5ms", "2µs", "1m30s", "1h2m3.5s", "-1s"]


def test_custom_resource_definition_schema() -> None:
    props = (msg(5, "object") + double(9, 10.0) + double(11, 0.5) + num(38, 1)
             + msg(8, msg(1, '{"a": 1}'))  # default: JSON
             + msg(29, msg(1, "tags"), msg(2, msg(5, "array"), msg(24, msg(1, msg(5, "string")))))
             + msg(30, num(1, 0)))  # additionalProperties: false
    version = msg(1, "v1") + num(2, 1) + num(3, 1) + msg(4, msg(1, props))
    spec = msg(1, "example.com") + msg(3, msg(1, "widgets"), msg(4, "Widget")) + msg(4, "Namespaced") + msg(7, version)
    crd = protobuf.decode(envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                   msg(1, msg(1, "widgets.example.com")) + msg(2, spec)))
    assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == {
        "type": "object", "maximum": 10, "minimum": 0.5, "x-kubernetes-preserve-unknown-fields": True,
        "default": {"a": 1}, "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False,
    }


def test_token_review_extra_values_are_lists() -> None:
    user = msg(1, "alice") + msg(4, msg(1, "scopes"), msg(2, msg(1, "read"), msg(1, "write")))
    review = protobuf.decode(envelope("authentication.k8s.io/v1", "TokenReview",
                                      msg(2, msg(1, "tok")) + msg(3, num(1, 1), msg(2, user))))
    assert review["spec"] == {"token": "tok"}
    assert review["status"] == {"authenticated": True,
                                "user": {"username": "alice", "extra": {"scopes": ["read", "write"]}}}


def test_unknown_fields_are_ignored() -> None:
    raw = metadata("cm") + msg(99, "from a newer release") + num(98, 7) + double(97, 1.0)
    assert protobuf.decode(envelope("v1", "ConfigMap", raw))["metadata"] == {"name": "cm", "namespace": "default"}


@pytest.mark.parametrize(("api_version", "kind"), [("networking.k8s.io/v1", "Ingress"), ("v1", "NoSuchKind"), ("", "")])
def test_unknown_kind_is_refused(api_version: str, kind: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match="not supported"):
        protobuf.decode(envelope(api_version, kind, b""))


def test_truncated_and_malformed_bodies_are_refused() -> None:
    body = envelope("v1", "ConfigMap", metadata("cm") + entry(2, "x", "y"))
    for cut in (1, 5, 20):
        with pytest.raises(protobuf.ProtobufError):
            protobuf.decode(body[:-cut])
    with pytest.raises(protobuf.ProtobufError, match="magic"):
        protobuf.decode(b'{"kind": "ConfigMap"}')
    with pytest.raises(protobuf.ProtobufError, match="not length-delimited"):
        protobuf.decode(envelope("v1", "ConfigMap", num(2, 5)))  # a map sent as a varint
    with pytest.raises(protobuf.ProtobufError, match="wire type 0 for a string"):
        protobuf.decode(envelope("v1", "Secret", num(3, 5)))  # its type sent as a varint
    with pytest.raises(protobuf.ProtobufError, match="truncated"):
        protobuf.decode(envelope("v1", "ConfigMap", msg(1, b"\x0a\x05ab")))  # a name shorter than its length
