"""DeviceController's pure logic: what a device add, update, move and delete sends, in order, and how
reports from an edge are checked and merged. Shapes compared with upstream's capture (device.jsonl)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cores.beehive import Message
from cores.cloud.devicecontroller import upstream
from cores.cloud.devicecontroller.flow import DeviceFlow
from cores.cloud.devicecontroller.upstream import Refusal
from cores.link import contracts, routing
from tests.captures import UPSTREAM

FRAMES = [json.loads(line)["frame"] for line in (UPSTREAM / "device.jsonl").read_text().splitlines()]


def captured(kind: str, operation: str = "insert") -> dict[str, Any]:
    for frame in FRAMES:
        content = frame["content"]
        if isinstance(content, dict) and content.get("kind") == kind and frame["route"]["operation"] == operation:
            return copy.deepcopy(frame)
    raise AssertionError(f"no {operation} of {kind} captured")


CAPTURED_MODEL = captured("DeviceModel")["content"]
CAPTURED_DEVICE = captured("Device")["content"]


def device(name: str = "cap-thermo", node: str = "edge-a", model: str = "cap-thermo-model", uid: str = "", rv: int = 10,
           desired: str = "25") -> dict[str, Any]:
    body = copy.deepcopy(CAPTURED_DEVICE)
    body.pop("kind")
    body.pop("apiVersion")
    body.pop("status")
    body["metadata"].update(name=name, uid=uid or f"uid-{name}", resourceVersion=str(rv))
    body["spec"].update(nodeName=node, deviceModelRef={"name": model})
    body["spec"]["properties"][0]["desired"]["value"] = desired
    return body


def model(name: str = "cap-thermo-model", uid: str = "", rv: int = 5) -> dict[str, Any]:
    body = copy.deepcopy(CAPTURED_MODEL)
    body.pop("kind")
    body.pop("apiVersion")
    body["metadata"].update(name=name, uid=uid or f"uid-{name}", resourceVersion=str(rv))
    return body


def wire(messages: list[Message]) -> list[tuple[str, str, str, str, str]]:
    """(node, source/group, operation, wire resource, resourceversion) of each message, as CloudHub sends it."""
    found = []
    for message in messages:
        node, down = routing.to_edge(message)
        found.append((node, f"{down.route.source}/{down.route.group}", down.route.operation, down.route.resource,
                      down.header.resource_version))
    return found


def flow_with_model() -> DeviceFlow:
    flow = DeviceFlow()
    assert flow.on_model("ADDED", model()) == []  # no device uses it yet
    return flow


def test_a_device_bound_to_a_node_sends_membership_model_and_device_in_the_captured_shapes() -> None:
    flow = flow_with_model()
    messages = flow.on_device("ADDED", device())
    assert wire(messages) == [
        ("edge-a", "devicecontroller/twin", "update", "membership", ""),
        ("edge-a", "devicecontroller/resource", "insert", "default/devicemodel/cap-thermo-model", "5"),
        ("edge-a", "devicecontroller/resource", "insert", "default/device/cap-thermo", "10"),
    ]
    member, model_push, device_push = (routing.to_edge(m)[1].to_wire_dict() for m in messages)
    recorded = FRAMES[0]
    assert list(member["content"]) == list(recorded["content"])  # event_id, timestamp, added_devices, removed_devices
    assert member["content"]["added_devices"] == [{"id": "default/cap-thermo", "name": "cap-thermo"}]
    assert member["content"]["removed_devices"] is None and "resourceversion" not in member["header"]
    for pushed, kind in ((model_push, "DeviceModel"), (device_push, "Device")):
        recorded = captured(kind)
        assert list(pushed) == list(recorded) and list(pushed["header"]) == list(recorded["header"])
        assert list(pushed["content"])[:2] == ["kind", "apiVersion"] == list(recorded["content"])[:2]
        assert set(pushed["content"]) == set(recorded["content"])
        assert pushed["content"]["apiVersion"] == "devices.kubeedge.io/v1beta1"
    assert device_push["content"]["spec"]["properties"][0]["desired"] == {"value": "25"}
    for message in messages[1:]:
        assert contracts.needs_ack(routing.to_edge(message)[1]) and contracts.object_uid(message)
    assert not contracts.needs_ack(routing.to_edge(messages[0])[1])


def test_the_second_device_of_a_model_on_a_node_sends_no_model() -> None:
    flow = flow_with_model()
    flow.on_device("ADDED", device())
    assert [w[2:4] for w in wire(flow.on_device("ADDED", device("second")))] == [
        ("update", "membership"), ("insert", "default/device/second")]
    # on another node the model goes again
    assert [w[0:4:2] for w in wire(flow.on_device("ADDED", device("third", node="edge-b")))] == [
        ("edge-b", "update"), ("edge-b", "insert"), ("edge-b", "insert")]


def test_a_spec_change_sends_updates_and_a_status_change_nothing() -> None:
    flow = flow_with_model()
    flow.on_device("ADDED", device())
    messages = flow.on_device("MODIFIED", device(rv=11, desired="30"))
    assert [w[2:5] for w in wire(messages)] == [
        ("update", "default/devicemodel/cap-thermo-model", "5"), ("update", "default/device/cap-thermo", "11")]
    assert messages[1].content["spec"]["properties"][0]["desired"] == {"value": "30"}
    status_only = device(rv=12, desired="30")
    status_only["status"] = {"conditions": [{"type": "DeviceModelFound", "status": "True"}]}
    assert flow.on_device("MODIFIED", status_only) == []


def test_a_node_change_removes_from_the_old_node_then_adds_to_the_new() -> None:
    flow = flow_with_model()
    flow.on_device("ADDED", device())
    messages = flow.on_device("MODIFIED", device(node="edge-b", rv=11))
    assert [w[:4] for w in wire(messages)] == [
        ("edge-a", "devicecontroller/twin", "update", "membership"),
        ("edge-a", "devicecontroller/resource", "delete", "default/devicemodel/cap-thermo-model"),
        ("edge-a", "devicecontroller/resource", "delete", "default/device/cap-thermo"),
        ("edge-b", "devicecontroller/twin", "update", "membership"),
        ("edge-b", "devicecontroller/resource", "insert", "default/devicemodel/cap-thermo-model"),
        ("edge-b", "devicecontroller/resource", "insert", "default/device/cap-thermo"),
    ]
    assert messages[0].content["removed_devices"] == [{"id": "default/cap-thermo", "name": "cap-thermo"}]
    assert messages[0].content["added_devices"] is None
    # unbinding removes it; binding again adds it
    assert [w[2] for w in wire(flow.on_device("MODIFIED", device(node="", rv=12)))] == ["update", "delete", "delete"]
    assert [w[2] for w in wire(flow.on_device("MODIFIED", device(node="edge-a", rv=13)))] == ["update", "insert", "insert"]


def test_a_delete_sends_removed_devices_and_the_model_only_with_its_last_device() -> None:
    flow = flow_with_model()
    flow.on_device("ADDED", device())
    flow.on_device("ADDED", device("second"))
    first = flow.on_device("DELETED", device(rv=20))
    assert [w[2:5] for w in wire(first)] == [("update", "membership", ""), ("delete", "default/device/cap-thermo", "20")]
    last = flow.on_device("DELETED", device("second", rv=21))
    assert [w[2:4] for w in wire(last)] == [
        ("update", "membership"), ("delete", "default/devicemodel/cap-thermo-model"), ("delete", "default/device/second")]
    assert last[0].content == {**last[0].content, "added_devices": None,
                               "removed_devices": [{"id": "default/second", "name": "second"}]}
    assert flow.sent_models == {} and flow.devices == {}


def test_a_model_that_comes_after_its_device_is_sent_then() -> None:
    flow = DeviceFlow()
    assert [w[2:4] for w in wire(flow.on_device("ADDED", device()))] == [("update", "membership"), ("insert", "default/device/cap-thermo")]
    assert flow.model_missing(device())
    assert [w[:4:2] for w in wire(flow.on_model("ADDED", model()))] == [("edge-a", "insert")]
    assert not flow.model_missing(device())
    assert [w[2:5] for w in wire(flow.on_model("MODIFIED", model(rv=6)))] == [("update", "default/devicemodel/cap-thermo-model", "6")]
    assert [w[2] for w in wire(flow.on_model("DELETED", model(rv=7)))] == ["delete"]


def test_devices_without_node_send_nothing_and_the_restriction_follows_the_node() -> None:
    flow = flow_with_model()
    assert flow.on_device("ADDED", device(node="")) == []
    assert not flow.owns("edge-a", "default", "cap-thermo")
    flow.on_device("MODIFIED", device(rv=11))
    assert flow.owns("edge-a", "default", "cap-thermo") and not flow.owns("edge-b", "default", "cap-thermo")


def sync(node: str, kind: str, name: str, uid: str, acked: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": f"{node}.{uid}", "namespace": "default"},
                            "spec": {"objectAPIVersion": "devices.kubeedge.io/v1beta1", "objectKind": kind, "objectName": name}}
    if acked is not None:
        body["status"] = {"objectResourceVersion": acked}
    return body


def test_resync_sends_what_the_node_lacks_by_its_objectsyncs() -> None:
    flow = flow_with_model()
    flow.on_device("ADDED", device(rv=10))
    syncs = [sync("edge-a", "Device", "cap-thermo", "uid-cap-thermo", "10"),
             sync("edge-a", "DeviceModel", "cap-thermo-model", "uid-cap-thermo-model", "5"),
             sync("edge-a", "Pod", "p", "uid-p", "1")]
    assert flow.resync("edge-a", syncs) == []  # all acked
    syncs[0]["status"]["objectResourceVersion"] = "9"
    assert [w[2:5] for w in wire(flow.resync("edge-a", syncs))] == [("update", "default/device/cap-thermo", "10")]
    syncs[0].pop("status")
    assert [w[2] for w in wire(flow.resync("edge-a", syncs))] == ["insert"]
    # gone while CloudCore was away: membership removal and stub deletes, as SyncController's
    gone = [sync("edge-a", "Device", "old", "uid-old", "3"), sync("edge-a", "DeviceModel", "old-model", "uid-om", "2")]
    messages = flow.resync("edge-a", gone)
    assert [w[2:4] for w in wire(messages)] == [("update", "membership"), ("delete", "default/device/old"),
                                                 ("delete", "default/devicemodel/old-model")]
    assert messages[1].content == {"metadata": {"name": "old", "namespace": "default", "uid": "uid-old"}}
    # moved to another node: deleted on the old one
    flow.on_device("MODIFIED", device(node="edge-b", rv=11))
    assert [w[2:4] for w in wire(flow.resync("edge-a", syncs[:1]))] == [("update", "membership"), ("delete", "default/device/cap-thermo")]


def test_membership_detail_lists_the_nodes_devices() -> None:
    flow = flow_with_model()
    flow.on_device("ADDED", device())
    flow.on_device("ADDED", device("elsewhere", node="edge-b"))
    detail = flow.membership_detail("edge-a", "event-1")
    assert detail["event_id"] == "event-1" and detail["devices"] == [{"id": "default/cap-thermo", "name": "cap-thermo"}]
    assert flow.membership_detail("edge-c", "")["devices"] == []


# -- reports from the edge -----------------------------------------------------------------------
TWIN_REPORT = {"event_id": "e1", "timestamp": 1795652815996, "twin": {
    "temperature": {"actual": {"value": "21", "metadata": {"timestamp": 1795652815990}},
                    "expected": {"value": "25", "metadata": {"timestamp": 1795652815000}},
                    "metadata": {"type": "int"}, "actual_version": {"cloud": 1, "edge": 2}},
    "undeclared": {"actual": {"value": "1"}}}}


@pytest.mark.parametrize("content", [TWIN_REPORT, json.dumps(TWIN_REPORT)])
def test_a_twin_report_becomes_reported_and_observed_desired(content: Any) -> None:
    reports = upstream.parse_twin_update(content)
    twins = upstream.merged_twins([{"propertyName": "gone", "reported": {"value": "x"}}], device(), reports)
    assert twins == [{"propertyName": "temperature",
                      "reported": {"value": "21", "metadata": {"timestamp": "1795652815990", "type": "int"}},
                      "observedDesired": {"value": "25", "metadata": {"timestamp": "1795652815000", "type": "int"}}}]
    later = upstream.parse_twin_update({"twin": {"temperature": {"actual": {"value": "22"}}}})
    assert upstream.merged_twins(twins, device(), later)[0]["reported"] == {"value": "22"}
    assert upstream.merged_twins(twins, device(), later)[0]["observedDesired"]["value"] == "25"


def test_a_state_report_as_upstream_sends_it() -> None:
    content = json.dumps({"event_id": "e", "timestamp": 1, "device": {"name": "cap-thermo", "state": "online",
                                                                      "lastOnlineTime": "2026-11-26T00:27:16Z"}})
    assert upstream.parse_state_update(content) == {"state": "online", "lastOnlineTime": "2026-11-26T00:27:16Z"}


@pytest.mark.parametrize("content,reason", [
    ("not json", "not JSON"), ([1], "not a JSON object"), ({"twin": "x"}, "twin is not an object"),
    ({"twin": {f"p{i}": {} for i in range(upstream.MAX_TWINS + 1)}}, "more than"),
    ({"twin": {"t": {"actual": {"value": 21}}}}, "value must be a string"),
    ({"twin": {"t": {"actual": {"value": "x" * 513}}}}, "at most 512"),
    ({"twin": {"t": {"actual": {"value": "1", "metadata": {"timestamp": "now"}}}}}, "timestamp"),
    ({"twin": {"": {}}}, "property name"), ("x" * (upstream.MAX_CONTENT_BYTES + 1), "larger than"),
])
def test_malformed_twin_reports_are_refused_with_400(content: Any, reason: str) -> None:
    with pytest.raises(Refusal) as refused:
        upstream.parse_twin_update(content)
    assert refused.value.code == 400 and reason in refused.value.reason


def test_replies_in_upstreams_shape() -> None:
    report = Message.new(source="twin", group="resource", operation="update",
                         resource="node/edge-a/device/default/cap-thermo/twin/edge_updated", content=TWIN_REPORT)
    node, ok = routing.to_edge(upstream.ok_reply(report, "edge-a"))
    assert node == "edge-a"
    assert ok.to_wire_dict()["route"] == {"source": "devicecontroller", "group": "twin", "operation": "response", "resource": "twin"}
    assert ok.parent_msg_id == report.msg_id and ok.content == "OK"
    _, refused = routing.to_edge(upstream.error_reply(report, "edge-a", Refusal(403, "not yours")))
    assert refused.content["code"] == 403 and refused.content["reason"] == "not yours" and refused.content["event_id"] == "e1"
    _, detail = routing.to_edge(upstream.detail_reply(report, "edge-a", {"event_id": "e", "timestamp": 1, "devices": []}))
    assert detail.route.resource == "membership/detail" and detail.route.group == "twin" and detail.parent_msg_id == report.msg_id
    with pytest.raises(Refusal):
        upstream.check_device_names("default", "Bad_Name")
