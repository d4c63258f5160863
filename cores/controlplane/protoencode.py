"""Objects the server answers, from their JSON shape to Kubernetes' protobuf encoding.

The inverse of :mod:`cores.controlplane.protobuf`, over the same table of field numbers: Go clients
ask for ``application/vnd.kubernetes.protobuf`` first (client-go's default for built-in kinds),
and decode it several times faster than JSON. An answer is ``k8s\\x00`` then a ``runtime.Unknown``
(1 TypeMeta, 2 the object's message, 3 contentEncoding, 4 contentType); a watch event is a
``WatchEvent`` message (1 type, 2 RawExtension holding the object so encoded), written with a
4-byte big-endian length in front, as kube-apiserver's stream serializer frames it.

Only what the table knows is encoded: built-in kinds, their lists, ``Status``. For the rest
(custom resources, tables) :func:`encode` gives None and the server answers JSON, as
kube-apiserver does for custom resources. A value whose JSON type does not fit its field raises
:class:`ProtobufError`, and the server answers JSON too: never a half-written message.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import struct
from typing import Any

from cores.common.kubeproto import (
    _EXTENSIONS, _FIXED32_KINDS, _FIXED64_KINDS, _META, _VARINT_KINDS, MAGIC, ProtobufError, _table)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


# --- wire format -------------------------------------------------------------------------------

def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # negative int32/int64: ten bytes, two's complement, as Go writes them
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _delimited(number: int, data: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(data)) + data


def _integer(value: Any, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ProtobufError(f"{value!r} is not a {kind}")
    return int(value)


def _scalar_field(number: int, kind: str, value: Any) -> bytes:
    if kind == "string":
        if not isinstance(value, str):
            raise ProtobufError(f"{value!r} is not a string")
        return _delimited(number, value.encode("utf-8", "replace"))
    if kind == "bytes":
        if not isinstance(value, str):
            raise ProtobufError(f"{value!r} is not base64 bytes")
        try:
            return _delimited(number, base64.b64decode(value, validate=True))
        except ValueError:
            raise ProtobufError("bytes that are not base64") from None
    if kind == "bool":
        if not isinstance(value, bool):
            raise ProtobufError(f"{value!r} is not a bool")
        return _tag(number, 0) + _varint(int(value))
    if kind in ("sint32", "sint64"):
        raw = _integer(value, kind)
        return _tag(number, 0) + _varint((raw << 1) ^ (raw >> 63))
    if kind in _VARINT_KINDS:
        return _tag(number, 0) + _varint(_integer(value, kind))
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtobufError(f"{value!r} is not a number")
        return _tag(number, 1) + struct.pack("<d", value) if kind == "double" else _tag(number, 5) + struct.pack("<f", value)
    if kind in _FIXED64_KINDS:
        return _tag(number, 1) + struct.pack("<q" if kind == "sfixed64" else "<Q", _integer(value, kind))
    if kind in _FIXED32_KINDS:
        return _tag(number, 5) + struct.pack("<i" if kind == "sfixed32" else "<I", _integer(value, kind))
    raise ProtobufError(f"unknown scalar kind {kind}")


# --- apimachinery's types with their own JSON form -----------------------------------------------

def _timestamp(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ProtobufError(f"{value!r} is not a time")
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProtobufError(f"{value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    nanos = delta.microseconds * 1000
    return (_tag(1, 0) + _varint(seconds) if seconds else b"") + (_tag(2, 0) + _varint(nanos) if nanos else b"")


def parse_go_duration(text: str) -> int:
    """time.ParseDuration, in nanoseconds ("1h2m3.5s", "-1.5ms", "0")."""
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    if rest == "0":
        return 0
    total, at = 0, 0
    for match in _DURATION_PART.finditer(rest):
        if match.start() != at:
            break
        number, unit = match.groups()
        whole, _, fraction = number.partition(".")
        scale = _DURATION_UNITS[unit]
        total += int(whole or 0) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
        at = match.end()
    if not rest or at != len(rest):
        raise ProtobufError(f"{text!r} is not a Go duration")
    return sign * total


def _duration(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ProtobufError(f"{value!r} is not a duration")
    nanos = parse_go_duration(value)
    return _tag(1, 0) + _varint(nanos) if nanos else b""


def _raw_json(value: Any) -> bytes:
    return _delimited(1, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _quantity(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ProtobufError(f"{value!r} is not a quantity")
    return _delimited(1, str(value).encode())


def _int_or_string(value: Any) -> bytes:
    if isinstance(value, str):
        return _tag(1, 0) + _varint(1) + _delimited(3, value.encode())
    return _tag(1, 0) + _varint(0) + _tag(2, 0) + _varint(_integer(value, "int32"))


def _schema_or_array(value: Any) -> bytes:
    if isinstance(value, list):
        return b"".join(_delimited(2, _message(item, _EXTENSIONS + "JSONSchemaProps")) for item in value)
    return _delimited(1, _message(value, _EXTENSIONS + "JSONSchemaProps"))


def _schema_or_bool(value: Any) -> bytes:
    if isinstance(value, bool):
        return _tag(1, 0) + _varint(int(value))
    return _tag(1, 0) + _varint(1) + _delimited(2, _message(value, _EXTENSIONS + "JSONSchemaProps"))


def _schema_or_strings(value: Any) -> bytes:
    if isinstance(value, list):
        return b"".join(_scalar_field(2, "string", item) for item in value)
    return _delimited(1, _message(value, _EXTENSIONS + "JSONSchemaProps"))


_SPECIAL = {
    _META + "Time": _timestamp,
    _META + "MicroTime": _timestamp,
    _META + "Duration": _duration,
    _META + "FieldsV1": _raw_json,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _raw_json,
    _EXTENSIONS + "JSON": _raw_json,
    _EXTENSIONS + "JSONSchemaPropsOrArray": _schema_or_array,
    _EXTENSIONS + "JSONSchemaPropsOrBool": _schema_or_bool,
    _EXTENSIONS + "JSONSchemaPropsOrStringArray": _schema_or_strings,
}


# --- messages ----------------------------------------------------------------------------------

def _is_scalar(kind: str) -> bool:
    return kind in _VARINT_KINDS or kind in _FIXED64_KINDS or kind in _FIXED32_KINDS or kind in ("string", "bytes")


def _value_bytes(kind: str, value: Any) -> bytes:
    """A message-typed value's bytes (the payload of its length-delimited field)."""
    special = _SPECIAL.get(kind)
    if special is not None:
        return special(value)
    return _message(value, kind)


def _field(number: int, kind: str, value: Any) -> bytes:
    if _is_scalar(kind):
        return _scalar_field(number, kind, value)
    return _delimited(number, _value_bytes(kind, value))


def _message(obj: Any, name: str) -> bytes:
    table = _table()
    schema = table.messages.get(name)
    if schema is None:
        raise ProtobufError(f"no protobuf schema for {name}")
    if name in table.wrappers:  # a named list type: the JSON is the bare list
        obj = {"items": obj}
    if not isinstance(obj, dict):
        raise ProtobufError(f"{type(obj).__name__} where a {name.rsplit('.', 1)[-1]} object belongs")
    out = bytearray()
    for number in sorted(schema):
        json_name, kind, repeated, pair, _omit_zero, inline = schema[number]
        if inline:
            out += _delimited(number, _message(obj, kind))
            continue
        value = obj.get(json_name)
        if value is None:
            continue
        if pair is not None:
            if not isinstance(value, dict):
                raise ProtobufError(f"{json_name} is not a map")
            for key, item in value.items():
                if item is None:
                    continue
                key_value: Any = key if pair[0] == "string" else int(key)
                out += _delimited(number, _field(1, pair[0], key_value) + _field(2, pair[1], item))
        elif repeated:
            if not isinstance(value, list):
                raise ProtobufError(f"{json_name} is not a list")
            for item in value:
                if item is not None:
                    out += _field(number, kind, item)
        else:
            out += _field(number, kind, value)
    return bytes(out)


def message_name(api_version: str, kind: str) -> str | None:
    """The table's message for an apiVersion and kind (meta/v1's kinds in every group version)."""
    table = _table()
    package = table.api_versions.get(api_version)
    if package is None or not kind:
        return None
    for name in (f"{package}.{kind}", _META + kind):
        if name in table.messages:
            return name
    return None


def encode(obj: Any) -> bytes | None:
    """``obj`` as a protobuf answer, or None when the table has no message for its kind."""
    if not isinstance(obj, dict):
        return None
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    name = message_name(api_version, kind)
    if name is None:
        return None
    type_meta = _scalar_field(1, "string", api_version) + _scalar_field(2, "string", kind)
    return MAGIC + _delimited(1, type_meta) + _delimited(2, _message(obj, name)) + _delimited(3, b"") + _delimited(4, b"")


def watch_frame(event_type: str, encoded_object: bytes) -> bytes:
    """One protobuf watch frame: a length, then ``WatchEvent{type, object: RawExtension{raw}}``."""
    event = _scalar_field(1, "string", event_type) + _delimited(2, _delimited(1, encoded_object))
    return struct.pack(">I", len(event)) + event
