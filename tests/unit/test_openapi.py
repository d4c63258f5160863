"""OpenAPI documents and strict field validation."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from cores.controlplane import openapi
from cores.controlplane.registry import Registry

WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "description": "the spec", "properties": {
            "size": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "port": {"x-kubernetes-int-or-string": True},
            "empty": {"type": "object"},
            "embedded": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "properties": {"spec": {"type": "object", "properties": {}}}},
        }},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
CRD = {"metadata": {"name": "widgets.example.com"},
       "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "singular": "widget"},
                "versions": [{"name": "v1", "served": True, "storage": True,
                              "schema": {"openAPIV3Schema": WIDGET_SCHEMA}}]}}


@pytest.fixture()
def registry() -> Registry:
    registry = Registry()
    registry.apply_crd(CRD)
    return registry


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


# definitions ----------------------------------------------------------------------------------

def test_definitions_names_and_gvk() -> None:
    assert openapi.schema_name("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert openapi.schema_name("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert openapi.schema_name("coordination.k8s.io", "v1", "Lease") == "io.k8s.api.coordination.v1.Lease"
    assert openapi.schema_name("apiextensions.k8s.io", "v1", "CustomResourceDefinition") == \
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
    assert openapi.schema_name("", "v1", "Event") == "io.k8s.api.core.v1.Event"
    assert openapi.schema_name("", "v1", "Status") == "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
    container = openapi.definitions()["io.k8s.api.core.v1.Container"]
    assert container["required"] == ["name"]
    assert "imagePullPolicy" in container["properties"] and container["properties"]["image"]["description"]
    assert openapi.custom_schema_name("example.com", "v1", "Widget") == "com.example.v1.Widget"


def test_no_kubernetes_import_at_run_time() -> None:
    code = ("import sys; from cores.controlplane import openapi; from cores.common import tables; openapi.definitions(); "
            "openapi.unknown_fields('io.k8s.api.core.v1.Pod', {}); assert 'kubernetes' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(openapi.Path(__file__).parents[2]))


# v3 -------------------------------------------------------------------------------------------

def test_v3_root(registry: Registry) -> None:
    root = openapi.openapi_v3_root(registry.groups(), {"api/v1": "ABC"})
    assert root["paths"]["api/v1"] == {"serverRelativeURL": "/openapi/v3/api/v1?hash=ABC"}
    assert root["paths"]["apis/example.com/v1"] == {"serverRelativeURL": "/openapi/v3/apis/example.com/v1"}
    assert "apis/coordination.k8s.io/v1" in root["paths"]


def _patch_of(document: dict[str, Any], kind: str) -> dict[str, Any]:
    for operations in document["paths"].values():
        patch = operations.get("patch")
        if patch and patch["x-kubernetes-group-version-kind"]["kind"] == kind:
            return patch
    raise AssertionError(f"no PATCH for {kind}")


def test_v3_core_document(registry: Registry) -> None:
    document = openapi.openapi_v3_document("", "v1", registry.in_group_version("", "v1"))
    assert document is not None
    json.dumps(document)
    paths = document["paths"]
    assert "/api/v1/namespaces/{namespace}/pods/{name}" in paths
    assert "/api/v1/pods" in paths and "/api/v1/nodes/{name}/status" in paths
    patch = _patch_of(document, "Pod")
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    post = paths["/api/v1/namespaces/{namespace}/pods"]["post"]
    assert post["x-kubernetes-action"] == "post" and "fieldValidation" in [p["name"] for p in post["parameters"]]
    schemas = document["components"]["schemas"]
    pod_schema = schemas["io.k8s.api.core.v1.Pod"]
    assert pod_schema["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    assert pod_schema["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    for name in ("io.k8s.api.core.v1.Container", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                 "io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.api.core.v1.Binding"):
        assert name in schemas
    refs = {r for r in openapi._refs(document)}
    assert refs <= set(schemas)
    assert openapi.openapi_v3_document("nope", "v1", registry.in_group_version("", "v1")) is None


def test_v3_custom_resource_document(registry: Registry) -> None:
    document = openapi.openapi_v3_document("example.com", "v1", registry.in_group_version("example.com", "v1"),
                                           {"Widget": openapi.crd_version_schema(CRD, "v1")})
    assert document is not None
    schema = document["components"]["schemas"]["com.example.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": "example.com", "version": "v1", "kind": "Widget"}]
    assert schema["properties"]["spec"]["description"] == "the spec"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in document["components"]["schemas"]
    assert "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}" in document["paths"]
    assert "fieldValidation" in [p["name"] for p in _patch_of(document, "Widget")["parameters"]]
    loose = openapi.openapi_v3_document("example.com", "v1", registry.in_group_version("example.com", "v1"))
    assert loose is not None
    assert loose["components"]["schemas"]["com.example.v1.Widget"]["x-kubernetes-preserve-unknown-fields"] is True


def test_document_hash_changes_with_content() -> None:
    assert openapi.document_hash({"a": 1}) != openapi.document_hash({"a": 2})
    assert len(openapi.document_hash({})) == 128


def test_v2(registry: Registry) -> None:
    document = openapi.openapi_v2(list(registry.all()),
                                  {("example.com", "v1", "Widget"): openapi.crd_version_schema(CRD, "v1")})
    json.dumps(document)
    assert document["swagger"] == "2.0"
    definitions = document["definitions"]
    assert definitions["io.k8s.api.core.v1.Pod"]["properties"]["spec"] == {
        "$ref": "#/definitions/io.k8s.api.core.v1.PodSpec",
        "description": definitions["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["description"]}
    assert "com.example.v1.Widget" in definitions
    patch = document["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Pod"
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert patch["parameters"][-1]["in"] == "body"


# strict field validation ----------------------------------------------------------------------

POD = "io.k8s.api.core.v1.Pod"


def test_known_pod_has_no_unknown_fields() -> None:
    obj = pod(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}], nodeSelector={"a": "b"})
    obj["spec"]["containers"][0].update(
        imagePullPolicy="Always", resources={"limits": {"cpu": 1, "memory": "1Gi"}},
        ports=[{"containerPort": 80}], livenessProbe={"httpGet": {"port": "http", "path": "/"}},
        env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    obj["metadata"].update(creationTimestamp="2026-01-01T00:00:00Z",
                           managedFields=[{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}])
    assert openapi.unknown_fields(POD, obj) == []


def test_unknown_pod_fields_in_document_order() -> None:
    obj = pod()
    obj["metadata"]["labelz"] = {}
    obj["spec"]["containers"].append({"name": "d", "image": "x", "imagePullPolicyy": "Always",
                                      "env": [{"name": "A", "valu": "1"}]})
    obj["spec"]["containers"][0]["resources"] = {"limit": {"cpu": "1"}}
    obj["spec"]["bogus"] = 1
    obj["extra"] = True
    assert openapi.unknown_fields(POD, obj) == [
        "metadata.labelz", "spec.containers[0].resources.limit", "spec.containers[1].imagePullPolicyy",
        "spec.containers[1].env[0].valu", "spec.bogus", "extra"]
    assert openapi.unknown_fields("no.such.Kind", obj) == []


def test_maps_and_other_kinds() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"},
                  "dta": {}}
    assert openapi.unknown_fields("io.k8s.api.core.v1.ConfigMap", config_map) == ["dta"]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                           "template": {"metadata": {"labels": {"a": "b"}},
                                        "spec": {"containers": [{"name": "c", "image": "x", "imag": "y"}]}}}}
    assert openapi.unknown_fields("io.k8s.api.apps.v1.Deployment", deployment) == [
        "spec.template.spec.containers[0].imag"]
    crd_body = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", **CRD}
    assert openapi.unknown_fields(openapi.schema_name("apiextensions.k8s.io", "v1", "CustomResourceDefinition") or "",
                                  crd_body) == []


def test_custom_resource_unknown_fields() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "nam": "x"},
           "spec": {"size": 1, "sise": 2, "items": [{"name": "a", "nme": "b"}],
                    "free": {"anything": {"goes": 1}, "known": {"a": "x", "b": "y"}},
                    "labels": {"x": "y"}, "port": "http", "empty": {"dropped": 1},
                    "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}, "other": 1}},
           "status": {"whatever": True}, "top": 1}
    assert openapi.unknown_fields_custom(WIDGET_SCHEMA, obj) == [
        "metadata.nam", "spec.sise", "spec.items[0].nme", "spec.free.known.b", "spec.empty.dropped",
        "spec.embedded.other", "top"]
    assert openapi.unknown_fields_custom(None, obj) == []
    assert openapi.unknown_fields_custom({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, obj) == \
        ["metadata.nam"]


def test_messages() -> None:
    fields = ["spec.containers[0].imagePullPolicyy", "spec.bogus"]
    assert openapi.strict_error_message("Pod", "v1", fields) == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].imagePullPolicyy", unknown field "spec.bogus"')
    status = openapi.strict_error_status("Pod", "v1", fields[:1])
    assert status["code"] == 400 and status["reason"] == "BadRequest" and status["status"] == "Failure"
    assert openapi.warning_headers(fields[:1]) == ['299 - "unknown field \\"spec.containers[0].imagePullPolicyy\\""']
    assert openapi.field_validation("") == "Warn"
    assert openapi.field_validation("Strict") == "Strict"
    with pytest.raises(ValueError):
        openapi.field_validation("strict")
