"""The values of a custom resource checked against its CRD version's structural schema, as kube-apiserver does.

apiextensions-apiserver validates every create, update and patch of a custom resource against the
served version's ``openAPIV3Schema`` and answers 422 Invalid with one cause per problem:
``type`` (``Invalid value: "string": spec.x in body must be of type integer: "string"``),
``enum`` (``Unsupported value: "INTX": supported values: "INT", ...``) and ``required``
(``Required value``). This module covers those keywords along ``properties``,
``additionalProperties`` and ``items`` (what the KubeEdge CRDs use); unknown fields are pruned
or refused before this runs (:func:`cores.controlplane.openapi.unknown_fields_custom`), and
``x-kubernetes-preserve-unknown-fields`` / ``x-kubernetes-int-or-string`` are honoured.
``null`` is accepted everywhere (kube-apiserver refuses it for a field that is not ``nullable``;
accepting it keeps every object that was valid before this check valid). Pure and recursive along
the value, which is depth-bounded on entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cores.controlplane import validation
from cores.controlplane.validation import Cause

Schema = Mapping[str, Any]


def json_type(value: Any) -> str:
    """The JSON type name kube-openapi reports for a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_matches(expected: str, value: Any) -> bool:
    actual = json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def value_causes(schema: Schema | None, obj: Mapping[str, Any]) -> list[Cause]:
    """Every problem of ``obj`` (a whole custom resource) against ``schema``; apiVersion, kind and
    metadata are checked elsewhere (ObjectMeta)."""
    if not schema:
        return []
    causes: list[Cause] = []
    properties = schema.get("properties") or {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata") or key not in properties:
            continue
        _check(properties[key], value, key, causes)
    for key in schema.get("required") or ():
        if key not in obj:
            causes.append(validation.required(key))
    return causes


def _check(schema: Schema, value: Any, path: str, causes: list[Cause]) -> None:
    if value is None:
        return
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            causes.append(validation.type_invalid(path, json_type(value),
                                                 f'{path} in body must be of type integer-or-string: "{json_type(value)}"'))
        return
    if isinstance(expected, str) and expected and not _type_matches(expected, value):
        causes.append(validation.type_invalid(path, json_type(value), f'{path} in body must be of type {expected}: "{json_type(value)}"'))
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and value not in enum:
        causes.append(validation.not_supported(path, value, [str(item) for item in enum]))
    if isinstance(value, dict):
        _check_object(schema, value, path, causes)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{index}]", causes)


def _check_object(schema: Schema, value: dict[str, Any], path: str, causes: list[Cause]) -> None:
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            _check(properties[key], item, f"{path}.{key}", causes)
        elif isinstance(extra, Mapping):
            _check(extra, item, f"{path}.{key}", causes)
    for key in schema.get("required") or ():
        if key not in value:
            causes.append(validation.required(f"{path}.{key}"))
