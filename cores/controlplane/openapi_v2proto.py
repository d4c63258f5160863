"""``/openapi/v2`` in protobuf: a Swagger 2.0 JSON document as gnostic's ``openapi.v2.Document``.

kubectl (1.20 for validation, ``explain`` and apply's patch metadata; 1.32 for apply's patch type)
fetches ``/openapi/v2`` only with ``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf``
and decodes it with the message set of gnostic's ``openapiv2/OpenAPIv2.proto`` (google/gnostic-models).
The field numbers below are that file's. Only what kube-openapi's proto reader and kubectl look at
is encoded faithfully: ``info``, ``paths`` (operations, parameters, responses, vendor extensions
such as ``x-kubernetes-group-version-kind``), ``definitions`` (``Schema`` with ``$ref``, type,
properties, items, additionalProperties, required, enum, format, description and vendor
extensions) and the security entries. Values gnostic keeps as ``Any`` (vendor extensions, enum,
default, example) carry their YAML text; JSON is written there, which YAML readers accept, and
kubectl unmarshals it with ``yaml.Unmarshal`` (e.g. the GVK list of a definition).

The encoding is proto3's: default values (empty strings, false, 0) are left out, repeated strings
are one field each, messages are length-delimited. :func:`encode_cached` keeps the bytes of the
last few documents, keyed by the caller (the served resource types and CRD specs), as the document
is large and kubectl asks for it on every ``apply``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# What kube-apiserver answers kubectl's request for ``openapi.PROTOBUF_V2`` with: '@' is no token
# character, and Go's mime.ParseMediaType (client-go checks every response's Content-Type) refuses
# the requested form ("mime: unexpected content after media subtype").
CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_CACHE_SIZE = 4

# ----------------------------------------------------------------------------------------------
# wire format
# ----------------------------------------------------------------------------------------------
_VARINT, _FIXED64, _LENGTH = 0, 1, 2


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives take ten bytes, two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _message(number: int, payload: bytes) -> bytes:
    """A length-delimited field; written even when empty (a set, empty sub-message)."""
    return _key(number, _LENGTH) + _varint(len(payload)) + payload


def _string(number: int, value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    return _message(number, value.encode())


def _strings(number: int, values: Any) -> bytes:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        return b""
    return b"".join(_message(number, v.encode()) for v in values if isinstance(v, str))


def _bool(number: int, value: Any) -> bytes:
    return _key(number, _VARINT) + b"\x01" if value is True else b""


def _int64(number: int, value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) == 0:
        return b""
    return _key(number, _VARINT) + _varint(int(value))


def _double(number: int, value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value == 0:
        return b""
    return _key(number, _FIXED64) + struct.pack("<d", float(value))


# ----------------------------------------------------------------------------------------------
# gnostic's Any, NamedAny and vendor extensions
# ----------------------------------------------------------------------------------------------

def _yaml(value: Any) -> str:
    # JSON is YAML (flow style); gnostic writes block YAML, readers cannot tell the difference
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def _any(number: int, value: Any) -> bytes:
    return _message(number, _string(2, _yaml(value)))  # Any.yaml = 2


def _anys(number: int, values: Any) -> bytes:
    return b"".join(_any(number, v) for v in values) if isinstance(values, list) else b""


def _extensions(number: int, obj: Mapping[str, Any]) -> bytes:
    """Every ``x-...`` key of ``obj`` as a NamedAny (name = 1, value = 2)."""
    return b"".join(_message(number, _string(1, k) + _any(2, v)) for k, v in obj.items() if k.startswith("x-"))


# ----------------------------------------------------------------------------------------------
# Schema and its helpers
# ----------------------------------------------------------------------------------------------
# Schema's scalar fields: JSON key -> (field number, writer)
_SCHEMA_SCALARS: tuple[tuple[str, int, Callable[[int, Any], bytes]], ...] = (
    ("$ref", 1, _string), ("format", 2, _string), ("title", 3, _string), ("description", 4, _string),
    ("default", 5, _any), ("multipleOf", 6, _double), ("maximum", 7, _double),
    ("exclusiveMaximum", 8, _bool), ("minimum", 9, _double), ("exclusiveMinimum", 10, _bool),
    ("maxLength", 11, _int64), ("minLength", 12, _int64), ("pattern", 13, _string),
    ("maxItems", 14, _int64), ("minItems", 15, _int64), ("uniqueItems", 16, _bool),
    ("maxProperties", 17, _int64), ("minProperties", 18, _int64), ("required", 19, _strings),
    ("enum", 20, _anys), ("discriminator", 26, _string), ("readOnly", 27, _bool), ("example", 30, _any),
)


def encode_schema(schema: Mapping[str, Any]) -> bytes:
    """One ``openapi.v2.Schema`` message (without its own key)."""
    out = [writer(number, schema[key]) for key, number, writer in _SCHEMA_SCALARS if key in schema]
    additional = schema.get("additionalProperties")
    if isinstance(additional, bool):  # AdditionalPropertiesItem.boolean = 2, a oneof: written even when false
        out.append(_message(21, _key(2, _VARINT) + (b"\x01" if additional else b"\x00")))
    elif isinstance(additional, Mapping):  # AdditionalPropertiesItem.schema = 1
        out.append(_message(21, _message(1, encode_schema(additional))))
    if "type" in schema:  # TypeItem.value = 1 (repeated)
        out.append(_message(22, _strings(1, schema["type"])))
    items = schema.get("items")
    if isinstance(items, Mapping):  # ItemsItem.schema = 1 (repeated)
        items = [items]
    if isinstance(items, list):
        out.append(_message(23, b"".join(_message(1, encode_schema(i)) for i in items if isinstance(i, Mapping))))
    for part in schema.get("allOf") or []:
        if isinstance(part, Mapping):
            out.append(_message(24, encode_schema(part)))
    properties = schema.get("properties")
    if isinstance(properties, Mapping):  # Properties.additional_properties = 1: NamedSchema{name, value}
        out.append(_message(25, _named_schemas(properties)))
    out.append(_extensions(31, schema))
    return b"".join(out)


def _named_schemas(schemas: Mapping[str, Any]) -> bytes:
    return b"".join(_message(1, _string(1, name) + _message(2, encode_schema(s)))
                    for name, s in schemas.items() if isinstance(s, Mapping))


# ----------------------------------------------------------------------------------------------
# paths
# ----------------------------------------------------------------------------------------------
# the non-body parameter kinds: "in" -> (NonBodyParameter field, that message's field numbers)
_PRIMITIVE_FIELDS = ("type", "format", "items", "collectionFormat", "default", "maximum", "exclusiveMaximum",
                     "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
                     "minItems", "uniqueItems", "enum", "multipleOf")
_WRITERS: dict[str, Callable[[int, Any], bytes]] = {
    "required": _bool, "in": _string, "description": _string, "name": _string, "allowEmptyValue": _bool,
    "type": _string, "format": _string, "collectionFormat": _string, "default": _any, "maximum": _double,
    "exclusiveMaximum": _bool, "minimum": _double, "exclusiveMinimum": _bool, "maxLength": _int64,
    "minLength": _int64, "pattern": _string, "maxItems": _int64, "minItems": _int64, "uniqueItems": _bool,
    "enum": _anys, "multipleOf": _double,
}


def _numbering(*names: str) -> dict[str, int]:
    return {name: number for number, name in enumerate(names, start=1)}


# HeaderParameterSubSchema and PathParameterSubSchema share one numbering, Query and FormData another
_HEADER_OR_PATH = _numbering("required", "in", "description", "name", *_PRIMITIVE_FIELDS)
_QUERY_OR_FORM = _numbering("required", "in", "description", "name", "allowEmptyValue", *_PRIMITIVE_FIELDS)
_NON_BODY = {"header": (1, _HEADER_OR_PATH), "formData": (2, _QUERY_OR_FORM),
             "query": (3, _QUERY_OR_FORM), "path": (4, _HEADER_OR_PATH)}
_PRIMITIVES_ITEMS = _numbering(*_PRIMITIVE_FIELDS)


def _primitives_items(items: Mapping[str, Any]) -> bytes:
    return _fields(items, _PRIMITIVES_ITEMS, len(_PRIMITIVES_ITEMS) + 1)


def _fields(obj: Mapping[str, Any], numbers: Mapping[str, int], extension_number: int) -> bytes:
    out = []
    for key, number in numbers.items():
        if key not in obj:
            continue
        if key == "items":
            if isinstance(obj[key], Mapping):
                out.append(_message(number, _primitives_items(obj[key])))
        else:
            out.append(_WRITERS[key](number, obj[key]))
    out.append(_extensions(extension_number, obj))
    return b"".join(out)


def _parameter(parameter: Mapping[str, Any]) -> bytes:
    """A ParametersItem: a JsonReference (2) or a Parameter (1) that is a body (1) or non-body (2) one."""
    if isinstance(parameter.get("$ref"), str):
        return _message(2, _string(1, parameter["$ref"]) + _string(2, parameter.get("description")))
    if parameter.get("in") == "body":
        body = (_string(1, parameter.get("description")) + _string(2, parameter.get("name"))
                + _string(3, "body") + _bool(4, parameter.get("required"))
                + (_message(5, encode_schema(parameter["schema"]))
                   if isinstance(parameter.get("schema"), Mapping) else b"")
                + _extensions(6, parameter))
        return _message(1, _message(1, body))
    kind, numbers = _NON_BODY.get(str(parameter.get("in")), _NON_BODY["query"])
    return _message(1, _message(2, _message(kind, _fields(parameter, numbers, len(numbers) + 1))))


def _parameters(number: int, parameters: Any) -> bytes:
    return b"".join(_message(number, _parameter(p)) for p in parameters or [] if isinstance(p, Mapping))


def _response(response: Mapping[str, Any]) -> bytes:
    """A ResponseValue: a JsonReference (2) or a Response (1) whose schema is a SchemaItem.schema (1)."""
    if isinstance(response.get("$ref"), str):
        return _message(2, _string(1, response["$ref"]))
    body = _string(1, response.get("description"))
    if isinstance(response.get("schema"), Mapping):
        body += _message(2, _message(1, encode_schema(response["schema"])))
    return _message(1, body + _extensions(5, response))


def _operation(operation: Mapping[str, Any]) -> bytes:
    responses = operation.get("responses") or {}
    encoded_responses = b"".join(_message(1, _string(1, str(code)) + _message(2, _response(r)))
                                 for code, r in responses.items() if not str(code).startswith("x-")
                                 and isinstance(r, Mapping))
    return b"".join((
        _strings(1, operation.get("tags")), _string(2, operation.get("summary")),
        _string(3, operation.get("description")), _string(5, operation.get("operationId")),
        _strings(6, operation.get("produces")), _strings(7, operation.get("consumes")),
        _parameters(8, operation.get("parameters")),
        _message(9, encoded_responses + _extensions(2, responses)),
        _strings(10, operation.get("schemes")), _bool(11, operation.get("deprecated")),
        _security(12, operation.get("security")), _extensions(13, operation),
    ))


_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(item: Mapping[str, Any]) -> bytes:
    out = [_string(1, item.get("$ref"))]
    out.extend(_message(number, _operation(item[method]))
               for method, number in _METHODS.items() if isinstance(item.get(method), Mapping))
    out.append(_parameters(9, item.get("parameters")))
    out.append(_extensions(10, item))
    return b"".join(out)


def _paths(paths: Mapping[str, Any]) -> bytes:
    """Paths: vendor_extension = 1, path = 2 (NamedPathItem{name, value})."""
    return _extensions(1, paths) + b"".join(
        _message(2, _string(1, path) + _message(2, _path_item(item)))
        for path, item in paths.items() if not path.startswith("x-") and isinstance(item, Mapping))


# ----------------------------------------------------------------------------------------------
# security, info, the document
# ----------------------------------------------------------------------------------------------

def _security(number: int, requirements: Any) -> bytes:
    """Repeated SecurityRequirement{NamedStringArray{name, StringArray{value}}}."""
    return b"".join(
        _message(number, b"".join(_message(1, _string(1, name) + _message(2, _strings(1, scopes)))
                                  for name, scopes in requirement.items()))
        for requirement in requirements or [] if isinstance(requirement, Mapping))


def _security_definitions(definitions: Mapping[str, Any]) -> bytes:
    """SecurityDefinitions: API keys (ApiKeySecurity, item field 2) and basic auth (field 1)."""
    out = []
    for name, scheme in definitions.items():
        if not isinstance(scheme, Mapping):
            continue
        if scheme.get("type") == "apiKey":
            value = _message(2, _string(1, "apiKey") + _string(2, scheme.get("name")) + _string(3, scheme.get("in"))
                             + _string(4, scheme.get("description")) + _extensions(5, scheme))
        elif scheme.get("type") == "basic":
            value = _message(1, _string(1, "basic") + _string(2, scheme.get("description")) + _extensions(3, scheme))
        else:
            continue  # OAuth2 flows are not served here
        out.append(_message(1, _string(1, name) + _message(2, value)))
    return b"".join(out)


def _info(info: Mapping[str, Any]) -> bytes:
    return (_string(1, info.get("title")) + _string(2, info.get("version")) + _string(3, info.get("description"))
            + _string(4, info.get("termsOfService")) + _extensions(7, info))


def encode_document(document: Mapping[str, Any]) -> bytes:
    """The whole ``openapi.v2.Document`` for a Swagger 2.0 JSON document."""
    out = [_string(1, document.get("swagger", "2.0"))]
    if isinstance(document.get("info"), Mapping):
        out.append(_message(2, _info(document["info"])))
    out.append(_string(3, document.get("host")))
    out.append(_string(4, document.get("basePath")))
    out.append(_strings(5, document.get("schemes")))
    out.append(_strings(6, document.get("consumes")))
    out.append(_strings(7, document.get("produces")))
    if isinstance(document.get("paths"), Mapping):
        out.append(_message(8, _paths(document["paths"])))
    if isinstance(document.get("definitions"), Mapping):  # Definitions.additional_properties = 1
        out.append(_message(9, _named_schemas(document["definitions"])))
    out.append(_security(12, document.get("security")))
    if isinstance(document.get("securityDefinitions"), Mapping):
        out.append(_message(13, _security_definitions(document["securityDefinitions"])))
    out.append(_extensions(16, document))
    return b"".join(out)


# ----------------------------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------------------------
_cache: OrderedDict[str, bytes] = OrderedDict()


def encode_cached(key: str, build: Callable[[], Mapping[str, Any]]) -> bytes:
    """The encoded document for ``key``, building and encoding it only when ``key`` is new.

    Called on the server's event loop only (about 50 ms for the built-in document, once).
    """
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    encoded = _cache[key] = encode_document(build())
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return encoded


def cache_key(parts: Iterable[Any]) -> str:
    """A key for :func:`encode_cached` from JSON-able parts (resource types, CRD specs)."""
    return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=repr).encode()).hexdigest()
