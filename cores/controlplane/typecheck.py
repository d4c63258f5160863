"""The types of every field of a built-in object, checked against its OpenAPI schema as Go's decoder would.

kube-apiserver decodes each write into Go structs, so a value of the wrong JSON type anywhere in the
object (``conditions`` as a string, a label value as a number, a port as ``1.5``) never reaches
storage: the request fails with 400 and ``json: cannot unmarshal string into Go struct field
NodeStatus.status.conditions of type []v1.NodeCondition``. This module is that decoder's type check
over plain JSON: :func:`first_problem` walks an object beside its schema (``schemas/definitions.json.gz``)
and reports the first mismatch in document order, with Go's wording: the struct that holds the field,
the field's JSON path (list indices left out, as Go leaves them out), and the Go type.

As in Go: ``null`` is accepted anywhere (it decodes to the zero value), fields the schema does not
declare are ignored here (strict field validation is :func:`cores.controlplane.openapi.unknown_fields`),
and a schema that declares no structure (``RawExtension``, ``JSONSchemaProps.default``) accepts any
value. Quantities, times and int-or-strings are checked as their ``UnmarshalJSON`` methods check them.

Pure and recursive along the schema, never deeper than the value (bodies are depth-bounded on entry).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any

from cores.controlplane import openapi
from cores.controlplane.defaults import parse_quantity

Schema = Mapping[str, Any]

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"
_RFC3339 = re.compile(r"\d{4}-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})")
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One value Go's decoder would refuse."""

    struct: str  # the Go struct holding the field, e.g. "NodeStatus"
    path: str  # the field's JSON path from the object's root, e.g. "status.conditions"
    go_type: str  # e.g. "[]v1.NodeCondition"
    found: str  # the JSON kind found: "string", "number 1.5", "array", "object", "bool"
    detail: str = ""  # what a custom UnmarshalJSON said (quantities, times)

    def __str__(self) -> str:
        where = f"Go struct field {self.struct}.{self.path}" if self.path else "Go value"
        head = f"json: cannot unmarshal {self.found} into {where} of type {self.go_type}"
        return f"{head}: {self.detail}" if self.detail else head


def json_kind(value: Any) -> str:
    """How Go's UnmarshalTypeError names a JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number_text(value: Any) -> str:
    return f"number {value!r}" if isinstance(value, (int, float)) and not isinstance(value, bool) else json_kind(value)


def _ref_name(schema: Schema) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
        return _ref_name(all_of[0])
    return ""


def _resolved(schema: Schema) -> tuple[str, Schema]:
    """(definition name or "", the schema with the structure)."""
    name = _ref_name(schema)
    return (name, openapi.definitions().get(name, {})) if name else ("", schema)


def _short(name: str) -> str:
    """``io.k8s.api.core.v1.NodeCondition`` -> ``v1.NodeCondition`` (Go's package.Type)."""
    package, _, kind = name.rpartition(".")
    return f"{package.rpartition('.')[2]}.{kind}" if package else kind


def go_type(schema: Schema) -> str:
    """The Go type a schema stands for, as reflect prints it in decode errors."""
    name, target = _resolved(schema)
    if name:
        return _short(name)
    kind = target.get("type")
    if kind == "array":
        items = target.get("items")
        return "[]" + (go_type(items) if isinstance(items, Mapping) else "interface {}")
    if kind == "object" and isinstance(target.get("additionalProperties"), Mapping):
        return "map[string]" + go_type(target["additionalProperties"])
    return {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}.get(str(kind), "interface {}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time_problem(value: str) -> str:
    match = _RFC3339.fullmatch(value)
    if match:
        month, day, hour, minute, second = (int(part) for part in match.groups()[:5])
        if 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60:
            return ""
    return f'parsing time "{value}" as "{RFC3339_LAYOUT}": not an RFC 3339 time'


class _Walk:
    def __init__(self) -> None:
        self.definitions = openapi.definitions()

    def value(self, value: Any, schema: Schema, path: str, struct: str) -> Problem | None:
        if value is None:
            return None
        name, target = _resolved(schema)
        if name in (QUANTITY, TIME, MICRO_TIME, INT_OR_STRING):
            return self._special(name, value, path, struct)
        kind = target.get("type")
        if kind == "array":
            return self._array(value, schema, target, path, struct)
        if kind == "object" or "properties" in target:
            return self._object(value, schema, target, name, path, struct)
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "integer":
            ok = _is_int(value) and INT64[0] <= value <= INT64[1]
        elif kind == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind == "boolean":
            ok = isinstance(value, bool)
        else:
            ok = True  # no type: anything
        if ok:
            return None
        found = _number_text(value) if kind == "integer" else json_kind(value)
        return Problem(struct, path, go_type(schema), found)

    def _special(self, name: str, value: Any, path: str, struct: str) -> Problem | None:
        go = _short(name)
        if name == INT_OR_STRING:
            if isinstance(value, str) or (_is_int(value) and INT32[0] <= value <= INT32[1]):
                return None
            return Problem(struct, path, go, _number_text(value))
        if name == QUANTITY:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool) and parse_quantity(value) is not None:
                return None
            return Problem(struct, path, go, json_kind(value), QUANTITY_FORMAT)
        if not isinstance(value, str):
            return Problem(struct, path, go, json_kind(value))
        detail = _time_problem(value)
        return Problem(struct, path, go, "string", detail) if detail else None

    def _array(self, value: Any, schema: Schema, target: Schema, path: str, struct: str) -> Problem | None:
        if not isinstance(value, list):
            return Problem(struct, path, go_type(schema), json_kind(value))
        items = target.get("items")
        if not isinstance(items, Mapping):
            return None
        for item in value:
            found = self.value(item, items, path, struct)
            if found is not None:
                return found
        return None

    def _object(self, value: Any, schema: Schema, target: Schema, name: str, path: str, struct: str) -> Problem | None:
        properties = target.get("properties")
        additional = target.get("additionalProperties")
        if not isinstance(properties, Mapping) and not isinstance(additional, Mapping):
            return None  # an opaque value (RawExtension, JSON): anything decodes
        if not isinstance(value, dict):
            return Problem(struct, path, go_type(schema), json_kind(value))
        if isinstance(properties, Mapping):
            holder = name.rpartition(".")[2] or struct
            for key, item in value.items():
                field = properties.get(key)
                if isinstance(field, Mapping):
                    found = self.value(item, field, f"{path}.{key}" if path else key, holder)
                    if found is not None:
                        return found
            return None
        assert isinstance(additional, Mapping)
        for item in value.values():  # a map's values keep the field's place in messages, as in Go
            found = self.value(item, additional, path, struct)
            if found is not None:
                return found
        return None


def _zero(schema: Schema) -> Any:
    """The JSON of a Go zero value of the schema's type (what a null map value or list item becomes)."""
    name, target = _resolved(schema)
    if name in (TIME, MICRO_TIME):
        return None  # a zero metav1.Time encodes as null
    if name == QUANTITY:
        return "0"
    if name == INT_OR_STRING:
        return 0
    kind = target.get("type")
    if kind == "array":
        return []
    if kind == "object" or "properties" in target:
        return {} if isinstance(target.get("properties"), Mapping) or isinstance(target.get("additionalProperties"), Mapping) else None
    return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(str(kind))


def _fill(value: Any, schema: Schema) -> None:
    name, target = _resolved(schema)
    if name in (QUANTITY, TIME, MICRO_TIME, INT_OR_STRING):
        return
    if isinstance(value, list) and isinstance(target.get("items"), Mapping):
        items = target["items"]
        for index, item in enumerate(value):
            if item is None:
                value[index] = _zero(items)
            else:
                _fill(item, items)
    elif isinstance(value, dict):
        properties, additional = target.get("properties"), target.get("additionalProperties")
        if isinstance(properties, Mapping):
            for key, item in value.items():
                if item is not None and isinstance(properties.get(key), Mapping):
                    _fill(item, properties[key])
        elif isinstance(additional, Mapping):
            for key, item in value.items():
                if item is None:
                    value[key] = _zero(additional)
                else:
                    _fill(item, additional)


def fill_null_items(definition: str, obj: Any) -> None:
    """Replace, in place, null map values and list items by their type's zero value, as Go's decoder does.

    ``{"labels": {"a": null}}`` decodes to ``{"a": ""}`` and ``"containers": [null]`` to one empty
    Container, so validation and storage never meet those nulls. Null struct fields stay (they decode
    to zero values that the checks already treat as absent). Call after :func:`first_problem` passed.
    """
    schema = openapi.definitions().get(definition)
    if schema is not None and isinstance(obj, dict):
        _fill(obj, {"$ref": definition})


@functools.cache
def _walker() -> _Walk:
    return _Walk()


def first_problem(definition: str, obj: Any) -> Problem | None:
    """The first value of ``obj`` that the definition (e.g. ``io.k8s.api.core.v1.Node``) cannot decode.

    A top-level value that is not a JSON object is reported too. An unknown definition checks nothing.
    """
    schema = _walker().definitions.get(definition)
    if schema is None:
        return None
    kind = definition.rpartition(".")[2]
    if not isinstance(obj, dict):
        return Problem(kind, "", _short(definition), json_kind(obj))
    return _walker().value(obj, {"$ref": definition}, "", kind)


def decode_error_message(kind: str, version: str, problem: Problem) -> str:
    """kube-apiserver's 400 message for an undecodable body (``transformDecodeError``)."""
    return f'{kind} in version "{version}" cannot be handled as a {kind}: {problem}'
