"""The gnostic protobuf form of ``/openapi/v2``, decoded back with ``google.protobuf``.

The test builds its own descriptors for the part of gnostic's ``openapiv2/OpenAPIv2.proto`` that
kubectl reads (field numbers typed from that file, oneofs as plain fields, which is the same wire
format), so the encoder's numbering is checked against an independent copy.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from cores.controlplane import openapi, openapi_v2proto, views
from cores.controlplane.registry import Registry

S, B, D, I64 = "string", "bool", "double", "int64"
# message -> (field name, number, type or message name, repeated)
MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "Document": [("swagger", 1, S, False), ("info", 2, "Info", False), ("schemes", 5, S, True),
                 ("paths", 8, "Paths", False), ("definitions", 9, "Definitions", False),
                 ("security", 12, "SecurityRequirement", True),
                 ("security_definitions", 13, "SecurityDefinitions", False)],
    "Info": [("title", 1, S, False), ("version", 2, S, False)],
    "Paths": [("vendor_extension", 1, "NamedAny", True), ("path", 2, "NamedPathItem", True)],
    "NamedPathItem": [("name", 1, S, False), ("value", 2, "PathItem", False)],
    "PathItem": [("get", 2, "Operation", False), ("put", 3, "Operation", False), ("post", 4, "Operation", False),
                 ("delete", 5, "Operation", False), ("patch", 8, "Operation", False),
                 ("parameters", 9, "ParametersItem", True)],
    "Operation": [("tags", 1, S, True), ("operation_id", 5, S, False), ("produces", 6, S, True),
                  ("consumes", 7, S, True), ("parameters", 8, "ParametersItem", True),
                  ("responses", 9, "Responses", False), ("schemes", 10, S, True),
                  ("vendor_extension", 13, "NamedAny", True)],
    "ParametersItem": [("parameter", 1, "Parameter", False), ("json_reference", 2, "JsonReference", False)],
    "JsonReference": [("_ref", 1, S, False)],
    "Parameter": [("body_parameter", 1, "BodyParameter", False),
                  ("non_body_parameter", 2, "NonBodyParameter", False)],
    "BodyParameter": [("name", 2, S, False), ("in", 3, S, False), ("required", 4, B, False),
                      ("schema", 5, "Schema", False)],
    "NonBodyParameter": [("query_parameter_sub_schema", 3, "QueryParameterSubSchema", False),
                         ("path_parameter_sub_schema", 4, "PathParameterSubSchema", False)],
    "QueryParameterSubSchema": [("required", 1, B, False), ("in", 2, S, False), ("description", 3, S, False),
                                ("name", 4, S, False), ("type", 6, S, False), ("unique_items", 20, B, False)],
    "PathParameterSubSchema": [("required", 1, B, False), ("in", 2, S, False), ("description", 3, S, False),
                               ("name", 4, S, False), ("type", 5, S, False), ("unique_items", 19, B, False)],
    "Responses": [("response_code", 1, "NamedResponseValue", True)],
    "NamedResponseValue": [("name", 1, S, False), ("value", 2, "ResponseValue", False)],
    "ResponseValue": [("response", 1, "Response", False)],
    "Response": [("description", 1, S, False), ("schema", 2, "SchemaItem", False)],
    "SchemaItem": [("schema", 1, "Schema", False)],
    "Definitions": [("additional_properties", 1, "NamedSchema", True)],
    "NamedSchema": [("name", 1, S, False), ("value", 2, "Schema", False)],
    "Schema": [("_ref", 1, S, False), ("format", 2, S, False), ("description", 4, S, False),
               ("default", 5, "Any", False), ("maximum", 7, D, False), ("minimum", 9, D, False),
               ("max_length", 11, I64, False), ("min_items", 15, I64, False), ("unique_items", 16, B, False),
               ("required", 19, S, True), ("enum", 20, "Any", True),
               ("additional_properties", 21, "AdditionalPropertiesItem", False), ("type", 22, "TypeItem", False),
               ("items", 23, "ItemsItem", False), ("all_of", 24, "Schema", True),
               ("properties", 25, "Properties", False), ("vendor_extension", 31, "NamedAny", True)],
    "AdditionalPropertiesItem": [("schema", 1, "Schema", False), ("boolean", 2, B, False)],
    "TypeItem": [("value", 1, S, True)],
    "ItemsItem": [("schema", 1, "Schema", True)],
    "Properties": [("additional_properties", 1, "NamedSchema", True)],
    "NamedAny": [("name", 1, S, False), ("value", 2, "Any", False)],
    "Any": [("yaml", 2, S, False)],
    "SecurityRequirement": [("additional_properties", 1, "NamedStringArray", True)],
    "NamedStringArray": [("name", 1, S, False), ("value", 2, "StringArray", False)],
    "StringArray": [("value", 1, S, True)],
    "SecurityDefinitions": [("additional_properties", 1, "NamedSecurityDefinitionsItem", True)],
    "NamedSecurityDefinitionsItem": [("name", 1, S, False), ("value", 2, "SecurityDefinitionsItem", False)],
    "SecurityDefinitionsItem": [("api_key_security", 2, "ApiKeySecurity", False)],
    "ApiKeySecurity": [("type", 1, S, False), ("name", 2, S, False), ("in", 3, S, False)],
}
SCALARS = {S: descriptor_pb2.FieldDescriptorProto.TYPE_STRING, B: descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
           D: descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE, I64: descriptor_pb2.FieldDescriptorProto.TYPE_INT64}


@pytest.fixture(scope="module")
def document_class() -> Any:
    file = descriptor_pb2.FileDescriptorProto(name="test_openapiv2.proto", package="openapi.v2", syntax="proto3")
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            field = message.field.add(name=field_name, number=number, json_name=field_name)
            field.label = (descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
                           else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            if kind in SCALARS:
                field.type = SCALARS[kind]
            else:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                field.type_name = f".openapi.v2.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("openapi.v2.Document"))


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    return views.openapi_v2(Registry(), [])


def decode(document_class: Any, document: dict[str, Any]) -> Any:
    parsed = document_class()
    parsed.ParseFromString(openapi_v2proto.encode_document(document))
    return parsed


def extensions(message: Any) -> dict[str, Any]:
    """Vendor extensions as kubectl reads them: each value's YAML, unmarshalled."""
    return {named.name: yaml.safe_load(named.value.yaml) for named in message.vendor_extension}


def by_name(entries: Any) -> dict[str, Any]:
    return {entry.name: entry.value for entry in entries}


# the wire format --------------------------------------------------------------------------------

def test_varints_and_keys() -> None:
    assert openapi_v2proto._varint(0) == b"\x00"
    assert openapi_v2proto._varint(300) == b"\xac\x02"
    assert openapi_v2proto._varint(-1) == b"\xff" * 9 + b"\x01"
    assert openapi_v2proto._string(1, "ab") == b"\x0a\x02ab"
    assert openapi_v2proto._string(1, "") == b""  # proto3 leaves defaults out
    assert openapi_v2proto._bool(4, False) == b"" and openapi_v2proto._bool(4, True) == b"\x20\x01"


# the served document ----------------------------------------------------------------------------

def test_definitions_round_trip(document_class: Any, served: dict[str, Any]) -> None:
    parsed = decode(document_class, served)
    assert parsed.swagger == "2.0"
    assert (parsed.info.title, parsed.info.version) == ("Kubernetes", openapi.SERVER_VERSION)
    definitions = by_name(parsed.definitions.additional_properties)
    assert list(definitions) == list(served["definitions"])

    pod = definitions["io.k8s.api.core.v1.Pod"]
    assert list(pod.type.value) == ["object"]
    assert pod.description == served["definitions"]["io.k8s.api.core.v1.Pod"]["description"]
    properties = by_name(pod.properties.additional_properties)
    assert list(properties) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert properties["spec"]._ref == "#/definitions/io.k8s.api.core.v1.PodSpec"
    assert properties["spec"].description.startswith("PodSpec is a description")
    assert list(properties["kind"].type.value) == ["string"]
    assert extensions(pod) == {"x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]}

    container = definitions["io.k8s.api.core.v1.Container"]
    assert list(container.required) == ["name"]
    args = by_name(container.properties.additional_properties)["args"]
    assert list(args.type.value) == ["array"] and [list(s.type.value) for s in args.items.schema] == [["string"]]


def test_every_served_kind_has_its_gvk(document_class: Any, served: dict[str, Any]) -> None:
    """kubectl maps a manifest to its schema through this extension of the definitions."""
    definitions = by_name(decode(document_class, served).definitions.additional_properties)
    found = {(g["group"], g["version"], g["kind"])
             for schema in definitions.values()
             for g in extensions(schema).get("x-kubernetes-group-version-kind", [])}
    for resource in Registry().all():
        assert (resource.group, resource.version, resource.kind) in found


def test_patch_strategies_for_kubectl_120(document_class: Any, served: dict[str, Any]) -> None:
    definitions = by_name(decode(document_class, served).definitions.additional_properties)
    containers = by_name(definitions["io.k8s.api.core.v1.PodSpec"].properties.additional_properties)["containers"]
    assert containers.items.schema[0]._ref == "#/definitions/io.k8s.api.core.v1.Container"
    assert extensions(containers) == {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"}
    volumes = by_name(definitions["io.k8s.api.core.v1.PodSpec"].properties.additional_properties)["volumes"]
    assert extensions(volumes)["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    finalizers = by_name(definitions[openapi.OBJECT_META].properties.additional_properties)["finalizers"]
    assert extensions(finalizers) == {"x-kubernetes-patch-strategy": "merge"}
    # the shared definitions are left alone (v3 and validation read them)
    shared = openapi.definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert "x-kubernetes-patch-strategy" not in shared


def test_paths_round_trip(document_class: Any, served: dict[str, Any]) -> None:
    parsed = decode(document_class, served)
    paths = by_name(parsed.paths.path)
    assert list(paths) == list(served["paths"])
    item = paths["/api/v1/namespaces/{namespace}/pods/{name}"]
    non_body = [p.parameter.non_body_parameter for p in item.parameters]
    path_parameters = {p.path_parameter_sub_schema.name for p in non_body if p.HasField("path_parameter_sub_schema")}
    assert path_parameters == {"name", "namespace"}
    pretty = [p.query_parameter_sub_schema for p in non_body if p.query_parameter_sub_schema.name == "pretty"]
    assert len(pretty) == 1 and pretty[0].type == "string" and pretty[0].unique_items
    assert getattr(pretty[0], "in") == "query"

    assert item.get.operation_id == "readCoreV1NamespacedPod"
    assert extensions(item.get) == {"x-kubernetes-action": "get",
                                    "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"}}
    assert list(item.patch.consumes) == list(openapi.PATCH_TYPES)
    body = [p.parameter.body_parameter for p in item.put.parameters if p.parameter.HasField("body_parameter")]
    assert len(body) == 1 and body[0].required and body[0].schema._ref == "#/definitions/io.k8s.api.core.v1.Pod"
    query = {p.parameter.non_body_parameter.query_parameter_sub_schema.name for p in item.put.parameters
             if p.parameter.HasField("non_body_parameter")}
    assert "fieldValidation" in query
    responses = by_name(item.get.responses.response_code)
    assert responses["200"].response.description == "OK"
    assert responses["200"].response.schema.schema._ref == "#/definitions/io.k8s.api.core.v1.Pod"
    assert not responses["401"].response.HasField("schema")


def test_security_round_trip(document_class: Any, served: dict[str, Any]) -> None:
    parsed = decode(document_class, served)
    requirements = [(e.name, list(e.value.value)) for r in parsed.security for e in r.additional_properties]
    assert requirements == [("BearerToken", [])]
    definitions = by_name(parsed.security_definitions.additional_properties)
    key = definitions["BearerToken"].api_key_security
    assert (key.type, key.name, getattr(key, "in")) == ("apiKey", "authorization", "header")


# schema details ---------------------------------------------------------------------------------

def test_schema_scalars_and_any_values(document_class: Any) -> None:
    schema = {
        "type": "object", "required": ["size"], "description": "ünïcode ✓",
        "properties": {
            "size": {"type": "integer", "format": "int32", "minimum": -5, "maximum": 10.5, "default": 3},
            "mode": {"type": "string", "enum": ["a", "b: c", "null"], "maxLength": 8},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "additionalProperties": True},
            "closed": {"type": "object", "additionalProperties": False},
            "list": {"type": "array", "items": {"$ref": "#/definitions/X"}, "minItems": 1, "uniqueItems": True},
            "either": {"allOf": [{"$ref": "#/definitions/X"}]},
        },
        "x-kubernetes-preserve-unknown-fields": True,
    }
    parsed = decode(document_class, {"swagger": "2.0", "definitions": {"T": schema, "X": {"type": "string"}}})
    t = by_name(parsed.definitions.additional_properties)["T"]
    assert list(t.required) == ["size"] and t.description == "ünïcode ✓"
    assert extensions(t) == {"x-kubernetes-preserve-unknown-fields": True}
    props = by_name(t.properties.additional_properties)
    size = props["size"]
    assert (size.format, size.minimum, size.maximum, yaml.safe_load(size.default.yaml)) == ("int32", -5.0, 10.5, 3)
    assert [yaml.safe_load(e.yaml) for e in props["mode"].enum] == ["a", "b: c", "null"]
    assert props["mode"].max_length == 8
    assert list(props["labels"].additional_properties.schema.type.value) == ["string"]
    assert props["free"].additional_properties.boolean is True
    closed = props["closed"]
    assert closed.HasField("additional_properties") and closed.additional_properties.boolean is False
    assert props["list"].items.schema[0]._ref == "#/definitions/X"
    assert props["list"].min_items == 1 and props["list"].unique_items
    assert [s._ref for s in props["either"].all_of] == ["#/definitions/X"]


def crd_with(name: str, plural: str, kind: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True}
    if schema is not None:
        version["schema"] = {"openAPIV3Schema": schema}
    return {"metadata": {"name": name}, "spec": {"group": "test.io", "names": {"plural": plural, "kind": kind},
                                                 "scope": "Namespaced", "versions": [version]}}


def test_custom_resources_are_published_as_kube_apiserver_does_in_v2(document_class: Any) -> None:
    spec = {"type": "object", "required": ["size", "maybe"], "properties": {
        "size": {"type": "integer"},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"a": {"type": "string"}}},
        "maybe": {"type": "object", "nullable": True, "properties": {"a": {"type": "string"}}},
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "blob": {"type": "array", "x-kubernetes-preserve-unknown-fields": True, "items": {"type": "string"}},
    }}
    crd = crd_with("widgets.test.io", "widgets", "Widget", {"type": "object", "properties": {"spec": spec}})
    registry = Registry()
    registry.apply_crd(crd)
    definitions = by_name(decode(document_class, views.openapi_v2(registry, [crd])).definitions.additional_properties)
    widget = definitions["io.test.v1.Widget"]
    gvk = [{"group": "test.io", "version": "v1", "kind": "Widget"}]
    assert extensions(widget)["x-kubernetes-group-version-kind"] == gvk
    published = by_name(widget.properties.additional_properties)["spec"]
    assert list(published.required) == ["size"]  # a nullable property is not required in v2
    fields = by_name(published.properties.additional_properties)
    assert not fields["free"].HasField("properties") and list(fields["free"].type.value) == ["object"]
    assert not fields["maybe"].HasField("type") and not fields["maybe"].HasField("properties")
    assert not fields["port"].all_of and not fields["port"].HasField("type")
    assert not fields["blob"].HasField("type") and not fields["blob"].HasField("items")
    assert "io.test.v1.WidgetList" in definitions


# the cache --------------------------------------------------------------------------------------

def test_encode_cached_builds_once_per_key(served: dict[str, Any]) -> None:
    calls = []

    def build() -> dict[str, Any]:
        calls.append(1)
        return served

    key = openapi_v2proto.cache_key(["test", time.monotonic_ns()])
    first = openapi_v2proto.encode_cached(key, build)
    assert openapi_v2proto.encode_cached(key, build) is first and len(calls) == 1
    assert openapi_v2proto.encode_cached(key + "-other", build) == first and len(calls) == 2


def test_views_key_on_crd_specs_not_status() -> None:
    registry = Registry()
    crd = crd_with("gizmos.test.io", "gizmos", "Gizmo")
    registry.apply_crd(crd)
    first = views.openapi_v2_protobuf(registry, [crd])
    assert views.openapi_v2_protobuf(registry, [{**crd, "status": {"conditions": []}}]) is first
    assert views.openapi_v2_protobuf(Registry(), []) != first
