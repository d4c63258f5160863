"""Just enough of Kubernetes' protobuf encoding to read the request bodies kubectl sends as protobuf.

kubectl's typed clients (``kubectl create token``, ``kubectl auth whoami``) post
``application/vnd.kubernetes.protobuf``: the ``k8s\\x00`` magic, then a ``runtime.Unknown``
(field 1 TypeMeta {1 apiVersion, 2 kind}, field 2 the object's own bytes). This reads the wire
format and turns the few kinds the server accepts that way into the JSON-shaped dicts the rest of
the server handles; answers are always JSON (those clients accept it).
"""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints as ints, length-delimited as bytes; fixed widths skipped."""
    result: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, at = _varint(data, at)
            result.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ProtobufError("truncated field")
            result.append((number, data[at:at + length]))
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return result


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _strings(data: bytes, names: dict[int, str]) -> dict[str, Any]:
    return {names[n]: _text(v) for n, v in fields(data) if n in names}


def _object_meta(data: bytes) -> dict[str, Any]:
    return {k: v for k, v in _strings(data, {1: "name", 2: "generateName", 3: "namespace"}).items() if v}


def _token_request(raw: bytes) -> dict[str, Any]:
    body: dict[str, Any] = {"spec": {}}
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            body["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            spec = body["spec"]
            for field, item in fields(value):
                if field == 1:
                    spec.setdefault("audiences", []).append(_text(item))
                elif field == 4 and isinstance(item, int):
                    spec["expirationSeconds"] = item
                elif field == 3 and isinstance(item, bytes):
                    spec["boundObjectRef"] = _strings(item, {1: "kind", 2: "apiVersion", 3: "name", 4: "uid"})
    return body


def _token_review(raw: bytes) -> dict[str, Any]:
    body: dict[str, Any] = {"spec": {}}
    for number, value in fields(raw):
        if number == 2 and isinstance(value, bytes):
            for field, item in fields(value):
                if field == 1:
                    body["spec"]["token"] = _text(item)
                elif field == 2:
                    body["spec"].setdefault("audiences", []).append(_text(item))
    return body


_DECODERS = {
    "TokenRequest": _token_request,
    "TokenReview": _token_review,
    "SelfSubjectReview": lambda raw: {},
}


def decode(data: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a protobuf request body; ProtobufError for kinds not handled here."""
    if not data.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf message (no k8s magic)")
    type_meta: dict[str, Any] = {}
    raw = b""
    for number, value in fields(data[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            type_meta = _strings(value, {1: "apiVersion", 2: "kind"})
        elif number == 2 and isinstance(value, bytes):
            raw = value
    decoder = _DECODERS.get(type_meta.get("kind", ""))
    if decoder is None:
        raise ProtobufError(f"protobuf is not supported for {type_meta.get('kind') or 'this object'}; send JSON")
    return {**type_meta, **decoder(raw)}
