"""DeviceController through the real path: our control plane, a real CloudCore process, and raw node
sessions over real sockets that behave as upstream's edge does (acks in the captured shapes).

kubectl applies the captured DeviceModel and Device (captures.UPSTREAM / "device.jsonl"); the
session sees the membership update, the model and device inserts, acks them as upstream's edge
does (``source meta, group twin``) and the acks are recorded in ObjectSync; a desired-value patch is
an update; reports come back up into DeviceStatus; another node's reports are refused.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cores.beehive import Message
from cores.controlplane.launcher import ControlPlane
from cores.link import contracts
from cores.wire import encode
from tests.captures import UPSTREAM
from tests.integration.edgecloud import Cloud, start_cloud
from tests.integration.hostile import ask, node_credentials, session
from tests.timeouts import scaled

FRAMES = [json.loads(line)["frame"] for line in (UPSTREAM / "device.jsonl").read_text().splitlines()]


def applied(kind: str) -> dict[str, Any]:
    """The object kubectl applied in the capture (its last-applied configuration)."""
    for frame in FRAMES:
        content = frame["content"]
        if isinstance(content, dict) and content.get("kind") == kind:
            return dict(json.loads(content["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]))
    raise AssertionError(kind)


def captured(kind: str, operation: str) -> dict[str, Any]:
    for frame in FRAMES:
        content = frame["content"]
        if isinstance(content, dict) and content.get("kind") == kind and frame["route"]["operation"] == operation:
            return frame
    raise AssertionError(kind)


CAPTURED_META_ACK = next(f for f in FRAMES if f["route"]["source"] == "meta" and f["route"]["group"] == "twin")


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("device-cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=scaled(30),
                            env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)})
    if check and result.returncode:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
    return result.stdout


def manifests(name: str, node: str, model: str) -> str:
    device_model = applied("DeviceModel")
    device_model["metadata"] = {"name": model, "namespace": "default"}
    device = applied("Device")
    device["metadata"] = {"name": name, "namespace": "default", "labels": {"model": model}}
    device["spec"].update(nodeName=node, deviceModelRef={"name": model})
    return yaml.safe_dump_all([device_model, device])


class Edge:
    """A raw session that keeps alive, records every frame and, when asked, acks pushes as upstream's
    edge does: devicecontroller inserts and deletes with ``meta/twin``, the rest with the push's route
    (``auto_ack=False``: device and model pushes are left unacked, the node's own are acked)."""

    def __init__(self, connection: Any, auto_ack: bool = True) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self.auto_ack = auto_ack
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._keepalive())]

    async def _read(self) -> None:
        async for raw in self.connection:
            frame = json.loads(raw)
            self.frames.append(frame)
            route = frame["route"]
            pushed = route.get("group") == "resource" and route.get("operation") in ("insert", "update", "delete")
            if pushed and (self.auto_ack or route.get("source") != "devicecontroller"):
                await self.connection.send(json.dumps(ack_of(frame)))

    async def _keepalive(self) -> None:
        while True:
            await self.connection.send(encode(contracts.keepalive()))
            await asyncio.sleep(2)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()

    def pushes(self, resource: str, operation: str = "") -> list[dict[str, Any]]:
        return [f for f in self.frames if f["route"].get("resource") == resource
                and f["route"].get("operation") != "response" and (not operation or f["route"]["operation"] == operation)]

    async def ask(self, message: Message, timeout: float = 10) -> dict[str, Any]:
        await self.connection.send(encode(message))
        return dict(await self.wait(lambda: next((f for f in self.frames if f["header"].get("parent_msg_id") == message.msg_id), None),
                                    timeout, f"the reply to {message.describe()}"))

    def memberships(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["route"].get("resource") == "membership"]

    async def wait(self, check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: saw {[(f['route'], f['header']) for f in self.frames[-10:]]}")


def ack_of(frame: dict[str, Any]) -> dict[str, Any]:
    route = frame["route"]
    if route["source"] == "devicecontroller" and route["operation"] in ("insert", "delete"):
        source, group = CAPTURED_META_ACK["route"]["source"], CAPTURED_META_ACK["route"]["group"]  # capture observation 8
    else:
        source, group = route["source"], route["group"]
    ack = Message.new(source=source, group=group, operation="response", resource=route["resource"], content="OK",
                      parent_msg_id=frame["header"]["msg_id"])
    return ack.to_wire_dict()


def register(name: str) -> Message:
    return contracts.edge_request("insert", f"null/node/{name}", {"metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "node-role.kubernetes.io/edge": ""}}})


def report(node_device: str, kind: str, content: Any) -> Message:
    resource = f"device/default/{node_device}/twin/edge_updated" if kind == "twin" else f"device/default/{node_device}/state/update"
    return Message.new(source="twin", group="resource", operation="update", resource=resource, content=content)


def membership_detail_get(node: str, event_id: str = "ev-detail") -> Message:
    """What upstream's twin sends on every connection (capture: a JSON string)."""
    return Message.new(source="twin", group="resource", operation="get", resource="membership/detail",
                       content=json.dumps({"event_type": "group_membership_event", "event_id": event_id,
                                           "group_id": node, "operation": "detail", "timestamp": 1}))


def object_sync(plane: ControlPlane, node: str, uid: str) -> dict[str, Any] | None:
    out = kubectl(plane, "get", "objectsyncs.reliablesyncs.kubeedge.io", f"{node}.{uid}", "-n", "default", "-o", "json", check=False)
    return json.loads(out) if out else None


def uid_of(plane: ControlPlane, kind: str, name: str) -> str:
    return str(json.loads(kubectl(plane, "get", kind, name, "-o", "json"))["metadata"]["uid"])


def assert_shape(pushed: dict[str, Any], recorded: dict[str, Any]) -> None:
    assert list(pushed) == list(recorded) == ["header", "route", "content"]
    assert list(pushed["header"]) == list(recorded["header"])
    assert pushed["route"] == {**recorded["route"], "resource": pushed["route"]["resource"]}
    assert list(pushed["content"])[:2] == list(recorded["content"])[:2] == ["kind", "apiVersion"]
    assert set(pushed["content"]) == set(recorded["content"])


def test_a_device_reaches_its_node_in_upstreams_shapes_and_reports_come_back(
        cloud: Cloud, controlplane: ControlPlane, tmp_path: Path) -> None:
    token = cloud.token(controlplane.kubeconfig)
    tls = node_credentials(cloud, token, tmp_path / "a", "dev-a")
    other_tls = node_credentials(cloud, token, tmp_path / "b", "dev-b")

    async def scenario() -> None:
        async with session(cloud, "dev-a", tls) as connection, session(cloud, "dev-b", other_tls) as other_connection:
            await ask(connection, register("dev-a"))
            await ask(other_connection, register("dev-b"))
            edge = Edge(connection)
            try:
                await asyncio.to_thread(kubectl, controlplane, "apply", "-f", "-", stdin=manifests("thermo", "dev-a", "thermo-model"))
                await edge.wait(lambda: edge.pushes("default/device/thermo", "insert"), what="device insert")
                kinds = [(f["route"]["operation"], f["route"]["resource"]) for f in edge.frames
                         if f["route"].get("source") == "devicecontroller"]
                assert kinds[:3] == [("update", "membership"), ("insert", "default/devicemodel/thermo-model"),
                                     ("insert", "default/device/thermo")]
                membership = edge.memberships()[0]
                assert membership["route"] == FRAMES[0]["route"] and list(membership["header"]) == ["msg_id", "timestamp"]
                assert membership["content"]["added_devices"] == [{"id": "default/thermo", "name": "thermo"}]
                assert list(membership["content"]) == list(FRAMES[0]["content"]) and membership["content"]["removed_devices"] is None
                model_insert = edge.pushes("default/devicemodel/thermo-model", "insert")[0]
                device_insert = edge.pushes("default/device/thermo", "insert")[0]
                assert_shape(model_insert, captured("DeviceModel", "insert"))
                assert_shape(device_insert, captured("Device", "insert"))
                assert device_insert["header"]["resourceversion"] == device_insert["content"]["metadata"]["resourceVersion"]
                assert device_insert["content"]["spec"]["properties"][0]["desired"] == {"value": "25"}

                # the meta/twin acks stop the resends and are recorded in ObjectSync
                device_uid = device_insert["content"]["metadata"]["uid"]
                model_uid = model_insert["content"]["metadata"]["uid"]
                for uid, pushed in ((device_uid, device_insert), (model_uid, model_insert)):
                    def recorded(uid: str = uid, pushed: dict[str, Any] = pushed) -> bool:
                        sync = object_sync(controlplane, "dev-a", uid)
                        return bool(sync) and (sync.get("status") or {}).get("objectResourceVersion") == pushed["header"]["resourceversion"]
                    await asyncio.to_thread(_wait_sync, recorded)
                await asyncio.sleep(scaled(6))  # past one resend interval (5 s)
                assert len(edge.pushes("default/device/thermo", "insert")) == 1
                assert len(edge.pushes("default/devicemodel/thermo-model", "insert")) == 1

                # a desired value patched is an update, the new value in it
                await asyncio.to_thread(kubectl, controlplane, "patch", "device", "thermo", "--type=json", "-p",
                                        '[{"op":"replace","path":"/spec/properties/0/desired/value","value":"30"}]')
                update = await edge.wait(lambda: edge.pushes("default/device/thermo", "update"), what="device update")
                assert update[0]["content"]["spec"]["properties"][0]["desired"] == {"value": "30"}
                assert_shape(update[0], captured("Device", "update"))

                # reports come up: reported and observedDesired, state, within 5 s
                twin = {"event_id": "ev-1", "timestamp": 1795652815996, "twin": {"temperature": {
                    "actual": {"value": "21", "metadata": {"timestamp": 1795652815990}},
                    "expected": {"value": "30", "metadata": {"timestamp": 1795652815000}},
                    "metadata": {"type": "int"}, "actual_version": {"cloud": 1, "edge": 1}}}}
                started = time.monotonic()
                reply = await edge.ask(report("thermo", "twin", twin))
                assert reply["route"] == {"source": "devicecontroller", "group": "twin", "operation": "response", "resource": "twin"}
                assert reply["content"] == "OK"
                status = yaml.safe_load(await asyncio.to_thread(kubectl, controlplane, "get", "devicestatus", "thermo", "-o", "yaml"))
                assert time.monotonic() - started < 5
                assert status["status"]["twins"] == [{"propertyName": "temperature",
                                                      "reported": {"value": "21", "metadata": {"timestamp": "1795652815990", "type": "int"}},
                                                      "observedDesired": {"value": "30", "metadata": {"timestamp": "1795652815000", "type": "int"}}}]
                owner = status["metadata"]["ownerReferences"][0]
                assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Device", "thermo", device_uid, True)
                state = json.dumps({"event_id": "ev-2", "timestamp": 1, "device": {"name": "thermo", "state": "online",
                                                                                   "lastOnlineTime": "2026-11-26T00:27:16Z"}})
                assert (await edge.ask(report("thermo", "state", state)))["content"] == "OK"
                status = json.loads(await asyncio.to_thread(kubectl, controlplane, "get", "devicestatus", "thermo", "-o", "json"))
                assert (status["status"]["state"], status["status"]["lastOnlineTime"]) == ("online", "2026-11-26T00:27:16Z")

                # another node reporting this device is refused, logged, and nothing is written
                forged = copy.deepcopy(twin)
                forged["twin"]["temperature"]["actual"]["value"] = "99"
                refused = await ask(other_connection, report("thermo", "twin", forged))
                assert refused["content"]["code"] == 403 and "dev-b" in refused["content"]["reason"]
                assert (await edge.ask(report("thermo", "twin", {"twin": "bad"})))["content"]["code"] == 400
                after = json.loads(await asyncio.to_thread(kubectl, controlplane, "get", "devicestatus", "thermo", "-o", "json"))
                assert after["status"]["twins"][0]["reported"]["value"] == "21"
                assert after["metadata"]["resourceVersion"] == status["metadata"]["resourceVersion"]
                assert "node dev-b may not report device default/thermo" in cloud.log()

                # delete: removed_devices, the model's and the device's deletes, acked as upstream; ObjectSyncs go
                await asyncio.to_thread(kubectl, controlplane, "delete", "device", "thermo")
                await edge.wait(lambda: edge.pushes("default/device/thermo", "delete"), what="device delete")
                removed = edge.memberships()[-1]["content"]
                assert removed["removed_devices"] == [{"id": "default/thermo", "name": "thermo"}] and removed["added_devices"] is None
                assert edge.pushes("default/devicemodel/thermo-model", "delete")
                for uid in (device_uid, model_uid):
                    await asyncio.to_thread(_wait_sync, lambda uid=uid: object_sync(controlplane, "dev-a", uid) is None)
            finally:
                edge.close()
                await asyncio.to_thread(kubectl, controlplane, "delete", "devicemodel", "thermo-model", "--ignore-not-found")

    asyncio.run(scenario())


def _wait_sync(check: Callable[[], Any], timeout: float = 15) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("ObjectSync not as expected in time")


def test_unacked_pushes_are_resent_after_reconnect_and_membership_detail_is_answered(
        cloud: Cloud, controlplane: ControlPlane, tmp_path: Path) -> None:
    token = cloud.token(controlplane.kubeconfig)
    tls = node_credentials(cloud, token, tmp_path / "r", "dev-r")

    async def scenario() -> None:
        async with session(cloud, "dev-r", tls) as connection:
            await ask(connection, register("dev-r"))
            edge = Edge(connection, auto_ack=False)
            try:
                await asyncio.to_thread(kubectl, controlplane, "apply", "-f", "-", stdin=manifests("relay", "dev-r", "relay-model"))
                first = await edge.wait(lambda: edge.pushes("default/devicemodel/relay-model", "insert"), what="model insert")
            finally:
                edge.close()
        # gone without acking: the next session gets the same push again at once, then the device
        async with session(cloud, "dev-r", tls) as connection:
            edge = Edge(connection)
            try:
                await edge.wait(lambda: edge.pushes("default/devicemodel/relay-model", "insert"), what="model resent")
                assert edge.pushes("default/devicemodel/relay-model", "insert")[0]["header"]["msg_id"] == first[0]["header"]["msg_id"]
                await edge.wait(lambda: edge.pushes("default/device/relay", "insert"), what="device after reconnect")
                # what upstream's twin sends on every connection: answered with the node's devices
                detail = await edge.ask(membership_detail_get("dev-r", "ev-9"))
                assert detail["route"] == {"source": "devicecontroller", "group": "twin", "operation": "response",
                                           "resource": "membership/detail"}
                assert detail["content"]["event_id"] == "ev-9"
                assert detail["content"]["devices"] == [{"id": "default/relay", "name": "relay"}]
            finally:
                edge.close()
                await asyncio.to_thread(kubectl, controlplane, "delete", "device", "relay", "--ignore-not-found")
                await asyncio.to_thread(kubectl, controlplane, "delete", "devicemodel", "relay-model", "--ignore-not-found")

    asyncio.run(scenario())


def test_a_device_without_its_model_is_accepted_and_reported(cloud: Cloud, controlplane: ControlPlane) -> None:
    device = applied("Device")
    device["metadata"] = {"name": "orphan", "namespace": "default"}
    device["spec"].update(nodeName="dev-none", deviceModelRef={"name": "no-such-model"})
    kubectl(controlplane, "apply", "-f", "-", stdin=yaml.safe_dump(device))
    try:
        def reported() -> bool:
            obj = json.loads(kubectl(controlplane, "get", "device", "orphan", "-o", "json"))
            conditions = (obj.get("status") or {}).get("conditions") or []
            return any(c["type"] == "DeviceModelFound" and c["status"] == "False" and c["reason"] == "DeviceModelNotFound"
                       for c in conditions)

        _wait_sync(reported)
        events = json.loads(kubectl(controlplane, "get", "events", "-n", "default", "-o", "json"))["items"]
        assert any(e["reason"] == "DeviceModelNotFound" and e["type"] == "Warning" and e["involvedObject"]["name"] == "orphan"
                   and e["involvedObject"]["kind"] == "Device" for e in events)
        invalid = subprocess.run(["kubectl", "patch", "device", "orphan", "--type=merge", "-p", '{"spec":{"nodeName":7}}'],
                                 capture_output=True, text=True, env={**os.environ, "KUBECONFIG": str(controlplane.kubeconfig)})
        assert invalid.returncode and "must be of type string" in invalid.stderr
    finally:
        kubectl(controlplane, "delete", "device", "orphan", "--ignore-not-found")


def test_changes_made_while_cloudcore_was_down_reach_the_node_after_its_restart(
        controlplane: ControlPlane, tmp_path: Path) -> None:
    """ObjectSync carries what the node acked across a CloudCore restart: a desired value patched and a
    device deleted while CloudCore was stopped reach the node when it comes back; nothing acked is resent."""
    from cores.common.supervision import start as start_service

    own = start_cloud(tmp_path / "cloud", controlplane)
    # CloudHub listens before DeviceController has its first lists: wait for those, so a loaded machine
    # does not spend the push deadline below on DeviceController's start
    _wait_sync(lambda: "watching" in own.log() and "device models" in own.log())
    try:
        tls = node_credentials(own, own.token(controlplane.kubeconfig), tmp_path / "n", "dev-s")

        async def before() -> tuple[str, str]:
            async with session(own, "dev-s", tls) as connection:
                await ask(connection, register("dev-s"))
                edge = Edge(connection)
                try:
                    text = manifests("kept", "dev-s", "restart-model") + "---\n" + yaml.safe_dump_all(
                        list(yaml.safe_load_all(manifests("dropped", "dev-s", "restart-model")))[1:])
                    await asyncio.to_thread(kubectl, controlplane, "apply", "-f", "-", stdin=text)
                    for name in ("kept", "dropped"):
                        await edge.wait(lambda name=name: edge.pushes(f"default/device/{name}", "insert"), 20, name)
                    kept = edge.pushes("default/device/kept", "insert")[0]["content"]["metadata"]
                    await asyncio.to_thread(_wait_sync, lambda: (object_sync(controlplane, "dev-s", kept["uid"]) or {})
                                            .get("status", {}).get("objectResourceVersion") == kept["resourceVersion"])
                    dropped = edge.pushes("default/device/dropped", "insert")[0]["content"]["metadata"]["uid"]
                    await asyncio.to_thread(_wait_sync, lambda: (object_sync(controlplane, "dev-s", dropped) or {})
                                            .get("status", {}).get("objectResourceVersion"))
                    return kept["uid"], dropped
                finally:
                    edge.close()

        kept_uid, dropped_uid = asyncio.run(before())
        own.stop()
        kubectl(controlplane, "patch", "device", "kept", "--type=json", "-p",
                '[{"op":"replace","path":"/spec/properties/0/desired/value","value":"40"}]')
        kubectl(controlplane, "delete", "device", "dropped")
        own.spec.log_file.write_text("")
        start_service(own.spec, ready=lambda: "websocket server listening" in own.log())
        _wait_sync(lambda: "watching" in own.log() and "device models" in own.log())

        async def after() -> None:
            async with session(own, "dev-s", tls) as connection:
                edge = Edge(connection)
                try:
                    # the watch's first list after the restart queues it again as an insert, as upstream's does;
                    # CloudHub lets it through because ObjectSync holds an older acked version
                    update = await edge.wait(lambda: edge.pushes("default/device/kept"), 20, "the missed update")
                    assert update[0]["content"]["spec"]["properties"][0]["desired"] == {"value": "40"}
                    deleted = await edge.wait(lambda: edge.pushes("default/device/dropped", "delete"), 20, "the missed delete")
                    assert deleted[0]["content"]["metadata"]["uid"] == dropped_uid
                    # membership updates are not acked (a node away misses them): the twin's membership/detail
                    # get on connecting gets the node's devices, and upstream's edge reconciles with them
                    detail = await edge.ask(membership_detail_get("dev-s"))
                    assert detail["content"]["devices"] == [{"id": "default/kept", "name": "kept"}]
                    await asyncio.to_thread(_wait_sync, lambda: object_sync(controlplane, "dev-s", dropped_uid) is None)
                    await asyncio.sleep(scaled(2))
                    # what was acked before the restart is not sent again: the model, the old version of the device
                    assert not edge.pushes("default/devicemodel/restart-model")
                    assert all(p["content"]["spec"]["properties"][0]["desired"] == {"value": "40"}
                               for p in edge.pushes("default/device/kept"))
                finally:
                    edge.close()

        asyncio.run(after())
    finally:
        own.stop()
        kubectl(controlplane, "delete", "device", "kept", "dropped", "--ignore-not-found")
        kubectl(controlplane, "delete", "devicemodel", "restart-model", "--ignore-not-found")
