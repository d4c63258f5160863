"""The Device API's CRDs (templates/crds/device*.yaml) and the embedded control plane's check of custom values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cores.cloud import crds
from cores.controlplane import crdvalues
from tests.captures import UPSTREAM


def v1beta1(file_name: str) -> dict[str, Any]:
    crd = crds.load(file_name)
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    assert versions["v1beta1"]["storage"] and versions["v1beta1"]["served"]
    return versions["v1beta1"]


def schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for step in path.split("."):
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return schema


DEVICE_FIELDS = [
    "spec.deviceModelRef.name", "spec.nodeName", "spec.properties.[].name", "spec.properties.[].desired.value",
    "spec.properties.[].desired.metadata", "spec.properties.[].visitors.protocolName", "spec.properties.[].visitors.configData",
    "spec.properties.[].reportCycle", "spec.properties.[].collectCycle", "spec.properties.[].reportToCloud",
    "spec.properties.[].pushMethod.http.hostName", "spec.properties.[].pushMethod.http.port",
    "spec.properties.[].pushMethod.http.requestPath", "spec.properties.[].pushMethod.http.timeout",
    "spec.properties.[].pushMethod.mqtt.address", "spec.properties.[].pushMethod.mqtt.topic",
    "spec.properties.[].pushMethod.mqtt.qos", "spec.properties.[].pushMethod.mqtt.retained",
    "spec.properties.[].pushMethod.otel.endpointURL", "spec.properties.[].pushMethod.dbMethod.influxdb2",
    "spec.properties.[].pushMethod.dbMethod.redis", "spec.properties.[].pushMethod.dbMethod.TDEngine",
    "spec.properties.[].pushMethod.dbMethod.mysql", "spec.properties.[].pushMethod.anomalyDetection",
    "spec.protocol.protocolName", "spec.protocol.configData", "spec.methods.[].name", "spec.methods.[].description",
    "spec.methods.[].propertyNames", "spec.stateReport.reportToCloud", "spec.stateReport.reportCycle",
    "status.reportToCloud", "status.reportCycle",
]
MODEL_FIELDS = [
    "spec.properties.[].name", "spec.properties.[].description", "spec.properties.[].type", "spec.properties.[].accessMode",
    "spec.properties.[].minimum", "spec.properties.[].maximum", "spec.properties.[].unit",
    "spec.properties.[].visitors.protocolName", "spec.properties.[].visitors.configData", "spec.protocol",
    "spec.protocolConfigData",
]
STATUS_FIELDS = [
    "status.twins.[].propertyName", "status.twins.[].reported.value", "status.twins.[].reported.metadata",
    "status.twins.[].observedDesired.value", "status.twins.[].observedDesired.metadata", "status.state",
    "status.lastOnlineTime", "status.extensions",
]
FREE_FORM = [
    ("devices.yaml", "spec.properties.[].visitors.configData"), ("devices.yaml", "spec.protocol.configData"),
    ("devices.yaml", "spec.properties.[].pushMethod.anomalyDetection"), ("devicemodels.yaml", "spec.protocolConfigData"),
    ("devicemodels.yaml", "spec.properties.[].visitors.configData"), ("devicestatuses.yaml", "status.extensions"),
]


@pytest.mark.parametrize("file_name,fields", [("devices.yaml", DEVICE_FIELDS), ("devicemodels.yaml", MODEL_FIELDS),
                                              ("devicestatuses.yaml", STATUS_FIELDS)])
def test_every_field_of_the_v1beta1_api_is_in_the_schema(file_name: str, fields: list[str]) -> None:
    schema = v1beta1(file_name)["schema"]["openAPIV3Schema"]
    for path in fields:
        assert schema_at(schema, path)


@pytest.mark.parametrize("file_name,path", FREE_FORM)
def test_customised_values_are_free_form_objects(file_name: str, path: str) -> None:
    node = schema_at(v1beta1(file_name)["schema"]["openAPIV3Schema"], path)
    assert node == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_names_scope_and_subresources() -> None:
    # DeviceStatus has none, as upstream: upstream's cloudcore patches its status on the object
    # (tests/integration/test_upstream_devices.py shows a subresource would drop its reports).
    for file_name, kind, status in (("devices.yaml", "Device", True), ("devicemodels.yaml", "DeviceModel", False),
                                    ("devicestatuses.yaml", "DeviceStatus", False)):
        crd = crds.load(file_name)
        assert crd["spec"]["group"] == "devices.kubeedge.io" and crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["kind"] == kind
        assert ("status" in (v1beta1(file_name).get("subresources") or {})) is status
        assert "additionalPrinterColumns" not in v1beta1(file_name)  # upstream declares none


def captured_objects() -> list[dict[str, Any]]:
    found = []
    for line in (UPSTREAM / "device.jsonl").read_text().splitlines():
        frame = json.loads(line)["frame"]
        if isinstance(frame["content"], dict) and frame["content"].get("kind") in ("Device", "DeviceModel"):
            found.append(frame["content"])
    return found


def test_the_captured_objects_are_valid() -> None:
    objects = captured_objects()
    assert {o["kind"] for o in objects} == {"Device", "DeviceModel"}
    for obj in objects:
        file_name = {"Device": "devices.yaml", "DeviceModel": "devicemodels.yaml"}[obj["kind"]]
        assert crdvalues.value_causes(v1beta1(file_name)["schema"]["openAPIV3Schema"], obj) == []


def test_bad_values_give_kube_apiservers_causes() -> None:
    schema = v1beta1("devicemodels.yaml")["schema"]["openAPIV3Schema"]
    model = {"spec": {"properties": [{"name": "t", "type": "INTX"}]}}
    [cause] = crdvalues.value_causes(schema, model)
    assert (cause.field, cause.reason) == ("spec.properties[0].type", "FieldValueNotSupported")
    assert cause.message.startswith('Unsupported value: "INTX": supported values: "INT", "FLOAT"')
    device_schema = v1beta1("devices.yaml")["schema"]["openAPIV3Schema"]
    device = {"spec": {"properties": [{"name": "t", "reportCycle": "abc", "desired": {"metadata": {"a": 1}}}]}}
    causes = {c.field: c for c in crdvalues.value_causes(device_schema, device)}
    assert causes["spec.properties[0].reportCycle"].message == (
        'Invalid value: "string": spec.properties[0].reportCycle in body must be of type integer: "string"')
    assert causes["spec.properties[0].desired.value"].message == "Required value"
    assert causes["spec.properties[0].desired.metadata.a"].reason == "FieldValueTypeInvalid"
    free = {"spec": {"protocol": {"configData": {"anything": [1, {"deep": None}]}}, "deviceModelRef": {"name": "missing"}}}
    assert crdvalues.value_causes(device_schema, free) == []
