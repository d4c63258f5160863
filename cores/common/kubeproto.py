"""Kubernetes' protobuf encoding of request bodies, read into JSON-shaped objects: for the embedded
control plane, and for the edge's MetaServer, which hands JSON on to the cloud.

Kubernetes' Go clients send ``application/vnd.kubernetes.protobuf`` on every verb: kubectl's typed
commands (``create configmap|secret|...``, ``create token``, ``auth whoami``) on create, and
client-go programs such as upstream cloudcore on update (a Secret PUT), delete (``DeleteOptions``,
which every group version carries as meta/v1's), and subresources (status, binding, token): the ``k8s\\x00``
magic, then a ``runtime.Unknown`` (1 TypeMeta {1 apiVersion, 2 kind}, 2 the object's bytes,
3 contentEncoding, 4 contentType). The object's message is found from its apiVersion and kind in
``schemas/protobuf.json.gz``, a table of field numbers generated from upstream's ``generated.proto``
and Go types by ``scripts/gen_proto_schema.py``; it is loaded on the first protobuf body.

The result is what Go's JSON encoding of the decoded object would give, so a body reads the same in
either encoding: JSON names from the Go struct tags, embedded structs inlined, zero values dropped
where the Go field is ``omitempty`` (k8s' gogo encoder writes every non-pointer field, set or not),
``bytes`` as base64, and apimachinery's types with their own JSON form (Time, MicroTime, Duration,
Quantity, IntOrString, RawExtension, FieldsV1, apiextensions' JSON and JSONSchemaPropsOr*).
Answers are always JSON (these clients accept it).
"""

from __future__ import annotations

import base64
import datetime
import functools
import gzip
import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "protobuf.json.gz"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_EXTENSIONS = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1."
_VARINT_KINDS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "enum"}
_FIXED64_KINDS = {"fixed64", "sfixed64", "double"}
_FIXED32_KINDS = {"fixed32", "sfixed32", "float"}
_ABSENT: Any = object()  # a special type's zero value that Go's JSON writes as null: left out

# JSON name, type (scalar kind or message name), repeated, map key/value types, omit when zero, inline
Field = tuple[str, str, bool, tuple[str, str] | None, bool, bool]
Wire = tuple[int, int, int | bytes]  # field number, wire type, value


class ProtobufError(ValueError):
    pass


class _Table:
    def __init__(self, document: dict[str, Any]) -> None:
        self.api_versions: dict[str, str] = document["apiVersions"]
        self.wrappers: set[str] = set(document["wrappers"])
        self.messages: dict[str, dict[int, Field]] = {
            name: {int(number): (f[0], f[1], bool(f[2]), tuple(f[3]) if f[3] else None, bool(f[4]), bool(f[5]))
                   for number, f in fields.items()}
            for name, fields in document["messages"].items()}


@functools.cache
def _table() -> _Table:
    return _Table(json.loads(gzip.decompress(SCHEMA_FILE.read_bytes())))


# --- wire format -------------------------------------------------------------------------------

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


def _wire_fields(data: bytes) -> list[Wire]:
    """(number, wire type, value): varints and fixed widths as unsigned ints, length-delimited as bytes."""
    result: list[Wire] = []
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ProtobufError("truncated field")
            value, at = data[at:at + length], at + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if at + width > len(data):
                raise ProtobufError("truncated fixed-width field")
            value, at = int.from_bytes(data[at:at + width], "little"), at + width
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if number == 0:
            raise ProtobufError("field number 0")
        result.append((number, wire, value))
    return result


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints and fixed widths as unsigned ints, length-delimited as bytes."""
    return [(number, value) for number, _, value in _wire_fields(data)]


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _json_number(value: float) -> float | int:
    # Go's JSON writes a whole float64 without a fraction (1, not 1.0)
    return int(value) if math.isfinite(value) and value == int(value) and abs(value) < 1e21 else value


def _scalar(kind: str, wire: int, value: int | bytes) -> Any:
    expected = 0 if kind in _VARINT_KINDS else 1 if kind in _FIXED64_KINDS else 5 if kind in _FIXED32_KINDS else 2
    if wire != expected:
        raise ProtobufError(f"wire type {wire} for a {kind} field")
    if isinstance(value, bytes):
        if kind == "bytes":
            return base64.b64encode(value).decode()
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise ProtobufError("a string field is not UTF-8") from None
    if kind in ("int32", "enum"):
        return _signed(value, 32)  # negatives come as ten-byte (64-bit) varints
    if kind == "int64" or kind == "sfixed64":
        return _signed(value, 64)
    if kind == "sfixed32":
        return _signed(value, 32)
    if kind in ("sint32", "sint64"):
        return (value >> 1) ^ -(value & 1)
    if kind == "uint32":
        return value & 0xFFFFFFFF
    if kind == "bool":
        return value != 0
    if kind == "double":
        return _json_number(struct.unpack("<d", value.to_bytes(8, "little"))[0])
    if kind == "float":
        return _json_number(struct.unpack("<f", value.to_bytes(4, "little"))[0])
    return value  # uint64, fixed32, fixed64


def _packed(kind: str, data: bytes) -> list[Any]:
    """A packed repeated scalar: the values back to back, without tags."""
    values: list[Any] = []
    at = 0
    while at < len(data):
        if kind in _VARINT_KINDS:
            raw, at = _varint(data, at)
            values.append(_scalar(kind, 0, raw))
        else:
            width, wire = (8, 1) if kind in _FIXED64_KINDS else (4, 5)
            if at + width > len(data):
                raise ProtobufError("truncated packed field")
            values.append(_scalar(kind, wire, int.from_bytes(data[at:at + width], "little")))
            at += width
    return values


# --- apimachinery's types with their own JSON form -----------------------------------------------

def _numbers(data: bytes) -> dict[int, int]:
    return {number: value for number, _, value in _wire_fields(data) if isinstance(value, int)}


def _timestamp(data: bytes, micro: bool) -> Any:
    if not data:
        return _ABSENT  # the zero time: null in JSON
    parts = _numbers(data)
    seconds, nanos = _signed(parts.get(1, 0), 64), _signed(parts.get(2, 0), 32)
    try:
        moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    except OverflowError:
        raise ProtobufError(f"time out of range: {seconds}s") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos // 1000:06d}Z" if micro else f"{text}Z"


def _go_duration(nanoseconds: int) -> str:
    """time.Duration.String(): "1h2m3.5s", "1.5ms", "0s"."""
    if nanoseconds == 0:
        return "0s"
    sign, rest = ("-" if nanoseconds < 0 else ""), abs(nanoseconds)
    if rest < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if rest >= size:
                return sign + _decimal(rest, size) + unit
    hours, rest = divmod(rest, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    return f"{sign}{minutes}m{text}" if minutes else sign + text


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    return f"{whole}.{str(fraction).rjust(len(str(unit)) - 1, '0').rstrip('0')}"


def _duration(data: bytes) -> Any:
    return _go_duration(_signed(_numbers(data).get(1, 0), 64))


def _bytes_field(data: bytes, number: int) -> bytes:
    found = b""
    for field, _, value in _wire_fields(data):
        if field == number and isinstance(value, bytes):
            found = value
    return found


def _quantity(data: bytes) -> Any:
    text = _bytes_field(data, 1)
    try:
        return text.decode() or "0"
    except UnicodeDecodeError:
        raise ProtobufError("a quantity is not UTF-8") from None


def _int_or_string(data: bytes) -> Any:
    kind, number, text = 0, 0, b""
    for field, _, value in _wire_fields(data):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 2 and isinstance(value, int):
            number = _signed(value, 32)
        elif field == 3 and isinstance(value, bytes):
            text = value
    return _scalar("string", 2, text) if kind == 1 else number


def _raw_json(data: bytes) -> Any:
    raw = _bytes_field(data, 1)
    if not raw:
        return _ABSENT
    if raw.startswith(MAGIC):  # an embedded object in protobuf itself
        return decode(raw)
    try:
        return json.loads(raw)
    except ValueError:
        raise ProtobufError("an embedded raw object is not JSON") from None


def _schema_or_array(data: bytes) -> Any:
    """JSONSchemaPropsOrArray's MarshalJSON: the array if any, else the schema, else null."""
    body = _message(data, _EXTENSIONS + "JSONSchemaPropsOrArray")
    return body.get("jSONSchemas") or body.get("schema", _ABSENT)


def _schema_or_strings(data: bytes) -> Any:
    body = _message(data, _EXTENSIONS + "JSONSchemaPropsOrStringArray")
    return body.get("property") or body.get("schema", _ABSENT)


def _schema_or_bool(data: bytes) -> Any:
    body = _message(data, _EXTENSIONS + "JSONSchemaPropsOrBool")
    return body["schema"] if "schema" in body else bool(body.get("allows"))


_SPECIAL: dict[str, Callable[[bytes], Any]] = {
    _META + "Time": lambda data: _timestamp(data, micro=False),
    _META + "MicroTime": lambda data: _timestamp(data, micro=True),
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

def _value(kind: str, wire: int, value: int | bytes) -> Any:
    """One value of a field whose type is ``kind``: a scalar, or a (special) message."""
    if kind in _VARINT_KINDS or kind in _FIXED64_KINDS or kind in _FIXED32_KINDS or kind in ("string", "bytes"):
        return _scalar(kind, wire, value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"wire type {wire} for a {kind.rsplit('.', 1)[-1]} field")
    special = _SPECIAL.get(kind)
    if special is not None:
        return special(value)
    return _message(value, kind)


def _zero(kind: str) -> Any:
    if kind in _VARINT_KINDS or kind in _FIXED64_KINDS or kind in _FIXED32_KINDS:
        return False if kind == "bool" else 0
    return _value(kind, 2, b"")


def _map_entry(key_kind: str, value_kind: str, entry: int | bytes) -> tuple[str, Any]:
    """A map entry (1 key, 2 value); JSON keys are strings."""
    if not isinstance(entry, bytes):
        raise ProtobufError("a map entry is not length-delimited")
    key, value = _ABSENT, _ABSENT
    for number, wire, item in _wire_fields(entry):
        if number == 1:
            key = _scalar(key_kind, wire, item)
        elif number == 2:
            value = _value(value_kind, wire, item)
    if key is _ABSENT:
        key = _zero(key_kind)
    if value is _ABSENT:
        value = _zero(value_kind)
    return str(key), value


def _is_zero(value: Any) -> bool:
    return value is False or value == 0 or value == "" or value == {} or value == []


def _message(data: bytes, name: str) -> Any:
    schema = _table().messages.get(name)
    if schema is None:
        raise ProtobufError(f"no protobuf schema for {name}")
    body: dict[str, Any] = {}
    inlined: list[dict[str, Any]] = []
    for number, wire, value in _wire_fields(data):
        field = schema.get(number)
        if field is None:
            continue  # a field newer than the table: ignored, as protobuf readers do
        json_name, kind, repeated, pair, omit_zero, inline = field
        if pair is not None:
            key, item = _map_entry(pair[0], pair[1], value)
            if item is not _ABSENT:
                body.setdefault(json_name, {})[key] = item
        elif repeated:
            items = body.setdefault(json_name, [])
            if wire == 2 and (kind in _VARINT_KINDS or kind in _FIXED64_KINDS or kind in _FIXED32_KINDS):
                items.extend(_packed(kind, value if isinstance(value, bytes) else b""))
            else:
                item = _value(kind, wire, value)
                if item is not _ABSENT:
                    items.append(item)
        else:
            item = _value(kind, wire, value)
            if inline and isinstance(item, dict):
                inlined.append(item)
            elif item is _ABSENT or (omit_zero and _is_zero(item)):
                body.pop(json_name, None)
            else:
                body[json_name] = item
    for item in inlined:
        body.update(item)
    if name in _table().wrappers:
        return body.get("items", [])
    return body


def decode(data: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a protobuf request body; ProtobufError for what cannot be read
    (its message says "not supported" for kinds the table does not know)."""
    if not data.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf message (no k8s magic)")
    type_meta, raw, encoding = b"", b"", ""
    for number, wire, value in _wire_fields(data[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            type_meta = value
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number == 3:
            encoding = _scalar("string", wire, value)
    if encoding:
        raise ProtobufError(f"protobuf content encoding {encoding!r} is not supported; send JSON")
    names = {1: "", 2: ""}  # TypeMeta: 1 apiVersion, 2 kind
    for number, wire, value in _wire_fields(type_meta):
        if number in names:
            names[number] = _scalar("string", wire, value)
    api_version, kind = names[1], names[2]
    package = _table().api_versions.get(api_version)
    name = f"{package}.{kind}"
    if package is not None and name not in _table().messages and _META + kind in _table().messages:
        name = _META + kind  # DeleteOptions and its kin are registered in every group version
    if not kind or package is None or name not in _table().messages:
        what = f"{kind or 'this object'} ({api_version or 'no apiVersion'})"
        raise ProtobufError(f"protobuf is not supported for {what}; send JSON")
    body = _message(raw, name)
    # Go's JSON always writes an object's metadata (a struct, whatever its omitempty)
    return {"apiVersion": api_version, "kind": kind, "metadata": {}, **body}
