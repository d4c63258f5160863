"""Devices end to end over MQTT: our control plane, a real CloudCore, a real EdgeCore (no
containerd: Edged off) with EventBus and DeviceTwin, and a plain paho client as the app or legacy
mapper, on the embedded broker (mqttMode 0) and on Debian's mosquitto (mqttMode 2).

kubectl applies the captured DeviceModel and Device (captures.UPSTREAM / "device.jsonl"; the
model's ``temperature`` is INT, desired 25). The device reaches the edge's ``device`` table; the
client gets the delta, reports 21 (in DeviceStatus within 5 s) and 21.5 (a type error on the
result topic, nothing changed); a desired-value patch reaches it as a delta; ``twin/get`` and
``membership/get`` answer; a link cut of 60 s loses no report and no desired value; an EdgeCore
restarted with the cloud away answers ``twin/get`` from SQLite.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from cores.common.supervision import start as start_service
from cores.common.supervision import status
from cores.controlplane.launcher import ControlPlane
from cores.runtime.mosquitto import Mosquitto, binary
from tests.integration.conftest import free_port
from tests.integration.edgecloud import Cloud, Core, start_cloud, start_edge
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_devicecontroller import kubectl, manifests
from tests.timeouts import scaled

MODEL_TYPE_ERROR = "is not int or integer"


class App:
    """An MQTT-only app: subscribes to a device's result, delta and document topics and records them."""

    def __init__(self, url: str, device_id: str, node: str) -> None:
        host, port = url.removeprefix("tcp://").split(":")
        self.device_id = device_id
        self.node = node
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"app-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, json.loads(m.payload)))
        connected = queue.Queue[bool]()
        self.client.on_connect = lambda *_: connected.put(True)
        self.client.connect(host, int(port))
        self.client.loop_start()
        connected.get(timeout=scaled(10))
        base = f"$hw/events/device/{device_id}"
        topics = [f"{base}/twin/update/result", f"{base}/twin/update/delta", f"{base}/twin/get/result",
                  f"$hw/events/node/{node}/membership/get/result"]
        done = queue.Queue[bool]()
        self.client.on_subscribe = lambda *_: done.put(True)
        self.client.subscribe([(t, 1) for t in topics])
        done.get(timeout=scaled(10))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def publish(self, suffix: str, payload: dict[str, Any]) -> None:
        self.client.publish(f"$hw/events/device/{self.device_id}{suffix}", json.dumps(payload), qos=1).wait_for_publish(scaled(5))

    def wait(self, suffix: str, match: Any = lambda p: True, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + scaled(timeout)
        for topic, payload in self.seen:
            if topic.endswith(suffix) and match(payload):
                return payload
        while time.monotonic() < deadline:
            try:
                topic, payload = self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            self.seen.append((topic, payload))
            if topic.endswith(suffix) and match(payload):
                return payload
        raise AssertionError(f"no {suffix} message matching within {timeout}s; saw {self.seen[-10:]}")

    def report(self, value: str) -> dict[str, Any]:
        event_id = str(uuid.uuid4())
        self.publish("/twin/update", {"event_id": event_id, "timestamp": int(time.time() * 1000),
                                      "twin": {"temperature": {"actual": {"value": value}, "metadata": {"type": "int"}}}})
        return self.wait("/twin/update/result", lambda p: p.get("event_id") == event_id)

    def get(self) -> dict[str, Any]:
        event_id = str(uuid.uuid4())
        self.publish("/twin/get", {"event_id": event_id, "timestamp": int(time.time() * 1000)})
        return self.wait("/twin/get/result", lambda p: p.get("event_id") == event_id)


def reported(plane: ControlPlane, name: str) -> str | None:
    out = kubectl(plane, "get", "devicestatus", name, "-o", "json", check=False)
    if not out:
        return None
    twins = (json.loads(out).get("status") or {}).get("twins") or []
    values = [t.get("reported", {}).get("value") for t in twins if t.get("propertyName") == "temperature"]
    return values[0] if values else None


def observed_desired(plane: ControlPlane, name: str) -> str | None:
    out = kubectl(plane, "get", "devicestatus", name, "-o", "json", check=False)
    twins = ((json.loads(out).get("status") or {}).get("twins") or []) if out else []
    values = [(t.get("observedDesired") or {}).get("value") for t in twins if t.get("propertyName") == "temperature"]
    return values[0] if values else None


def wait_for(check: Any, timeout: float, what: Any) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(what() if callable(what) else what)


def device_rows(edge: Core) -> list[str]:
    with sqlite3.connect(edge.layout.data_dir / "edgecore.db") as db:
        return [row[0] for row in db.execute("SELECT id FROM device")]


def expected_in_twin(edge: Core, device_id: str) -> str | None:
    """The twin's expected temperature in the edge's ``device_twin`` table (None before the Device push)."""
    with sqlite3.connect(edge.layout.data_dir / "edgecore.db") as db:
        row = db.execute("SELECT expected FROM device_twin WHERE deviceid = ? AND name = 'temperature'", (device_id,)).fetchone()
    return None if row is None else str(row[0])


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("mqtt-cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


@pytest.fixture(params=[0, 2], ids=["mode0-embedded", "mode2-mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, dict[str, object], str]]:
    if request.param == 0:
        url = f"tcp://127.0.0.1:{free_port()}"
        yield 0, {"mqttMode": 0, "mqttServerInternal": url}, url
        return
    try:
        binary()
    except RuntimeError as error:
        pytest.skip(str(error))
    with Mosquitto(tmp_path / "mosquitto") as server:
        yield 2, {"mqttMode": 2, "mqttServerExternal": server.url}, server.url


def start_device_edge(base: Path, cloud: Cloud, plane: ControlPlane, node: str, eventbus: dict[str, object],
                      websocket_port: int | None = None, hollow: bool = False) -> Core:
    """Edged off (no containerd needed), or the hollow Edged that registers the node and keeps it Ready."""
    return start_edge(base, cloud, node, cloud.token(plane.kubeconfig), edged=hollow, hollow=hollow, websocket_port=websocket_port,
                      modules={"eventBus": eventbus})


def test_device_reports_and_desired_values_over_mqtt(controlplane: ControlPlane, cloud: Cloud, broker: tuple[int, dict[str, object], str],
                                                    tmp_path: Path) -> None:
    mode, eventbus, url = broker
    node, name, model = f"mqtt-{mode}-{uuid.uuid4().hex[:5]}", f"thermo-{mode}", f"thermo-model-{mode}"
    edge = start_device_edge(tmp_path / "edge", cloud, controlplane, node, eventbus)
    app = None
    try:
        kubectl(controlplane, "apply", "-f", "-", stdin=manifests(name, node, model))
        wait_for(lambda: f"default/{name}" in device_rows(edge), 5, lambda: f"device not in the edge's table: {edge.log()[-3000:]}")
        wait_for(lambda: expected_in_twin(edge, f"default/{name}") == "25", 5, "the desired value is not in the twin")
        app = App(url, f"default/{name}", node)
        twin = app.get()["twin"]
        assert twin["temperature"]["expected"]["value"] == "25" and twin["temperature"]["metadata"]["type"] == "int"

        result = app.report("21")
        assert "code" not in result and result["twin"]["temperature"]["actual"]["value"] == "21"
        wait_for(lambda: reported(controlplane, name) == "21", 5, lambda: f"DeviceStatus: {kubectl(controlplane, 'get', 'devicestatus', name, '-o', 'yaml', check=False)}")
        assert observed_desired(controlplane, name) == "25"

        refused = app.report("21.5")
        assert refused["code"] == 400 and MODEL_TYPE_ERROR in refused["reason"]
        assert app.get()["twin"]["temperature"]["actual"]["value"] == "21"
        time.sleep(1)
        assert reported(controlplane, name) == "21"

        bad = str(uuid.uuid4())
        app.client.publish(f"$hw/events/device/default/{name}/twin/update", b"{not json", qos=1).wait_for_publish(scaled(5))
        app.publish("/twin/update", {"event_id": bad, "twin": {"bad key!": {"actual": {"value": "1"}}}})
        assert app.wait("/twin/update/result", lambda p: p.get("event_id") == bad)["code"] == 400
        app.client.publish(f"$hw/events/device/default/{name}/twin/update", b"x" * (70 * 1024), qos=1).wait_for_publish(scaled(5))
        unknown = str(uuid.uuid4())
        app.client.publish("$hw/events/device/default/nobody/twin/get", json.dumps({"event_id": unknown}), qos=1)
        app.client.subscribe("$hw/events/device/default/nobody/twin/get/result", 1)
        time.sleep(0.3)
        app.client.publish("$hw/events/device/default/nobody/twin/get", json.dumps({"event_id": unknown}), qos=1)
        assert app.wait("/twin/get/result", lambda p: p.get("event_id") == unknown)["code"] == 404

        kubectl(controlplane, "patch", "device", name, "--type", "json", "-p",
                json.dumps([{"op": "replace", "path": "/spec/properties/0/desired/value", "value": "30"}]))
        delta = app.wait("/twin/update/delta", lambda p: p.get("delta", {}).get("temperature") == "30")
        assert delta["twin"]["temperature"]["expected"]["value"] == "30"
        wait_for(lambda: observed_desired(controlplane, name) == "30", 5, "observedDesired did not follow the patch")

        membership = str(uuid.uuid4())
        app.client.publish(f"$hw/events/node/{node}/membership/get", json.dumps({"event_id": membership}), qos=1)
        devices = app.wait("/membership/get/result", lambda p: p.get("event_id") == membership)["devices"]
        assert [d["id"] for d in devices] == [f"default/{name}"]
    finally:
        if app is not None:
            app.close()
        kubectl(controlplane, "delete", "device", name, "--ignore-not-found", check=False)
        kubectl(controlplane, "delete", "devicemodel", model, "--ignore-not-found", check=False)
        edge.stop()


@pytest.mark.slow
def test_link_cut_and_edge_restart_lose_nothing(controlplane: ControlPlane, cloud: Cloud, tmp_path: Path) -> None:
    """Reports made during a 60 s cut reach DeviceStatus (newest last), a desired value set during
    it reaches the app; EdgeCore restarted with the cloud away answers twin/get from SQLite."""
    url = f"tcp://127.0.0.1:{free_port()}"
    node, name, model = f"mqtt-cut-{uuid.uuid4().hex[:5]}", "thermo-cut", "thermo-model-cut"
    proxy = TcpProxy(cloud.websocket_port)
    proxy.start()
    edge = start_device_edge(tmp_path / "edge", cloud, controlplane, node, {"mqttMode": 0, "mqttServerInternal": url},
                             websocket_port=proxy.port)
    app = None
    try:
        kubectl(controlplane, "apply", "-f", "-", stdin=manifests(name, node, model))
        wait_for(lambda: expected_in_twin(edge, f"default/{name}") == "25", 5, "device not in the edge's twin")
        app = App(url, f"default/{name}", node)
        app.report("20")
        wait_for(lambda: reported(controlplane, name) == "20", 5, "first report missing")

        proxy.reset_all()  # the link breaks; the edge keeps working locally
        for value in ("22", "23", "24"):
            assert "code" not in app.report(value)
        kubectl(controlplane, "patch", "device", name, "--type", "json", "-p",
                json.dumps([{"op": "replace", "path": "/spec/properties/0/desired/value", "value": "35"}]))
        time.sleep(scaled(60))
        assert reported(controlplane, name) == "20"
        proxy.restore()
        wait_for(lambda: reported(controlplane, name) == "24", 60, lambda: f"reports lost: {reported(controlplane, name)}")
        app.wait("/twin/update/delta", lambda p: p.get("delta", {}).get("temperature") == "35", timeout=60)

        proxy.reset_all()
        app.close()
        app = None
        edge.stop()
        edge.spec.log_file.write_text("")
        start_service(edge.spec, ready=lambda: "device twin ready" in edge.log() and "embedded MQTT broker listening" in edge.log())
        app = App(url, f"default/{name}", node)
        twin = app.get()["twin"]["temperature"]
        assert twin["actual"]["value"] == "24" and twin["expected"]["value"] == "35"
    finally:
        if app is not None:
            app.close()
        proxy.restore()
        kubectl(controlplane, "delete", "device", name, "--ignore-not-found", check=False)
        kubectl(controlplane, "delete", "devicemodel", model, "--ignore-not-found", check=False)
        edge.stop()
        proxy.stop()


def node_ready(plane: ControlPlane, node: str) -> bool:
    out = kubectl(plane, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
    return out.strip() == "True"


def test_broker_down_and_back_keeps_edgecore_up(controlplane: ControlPlane, cloud: Cloud, tmp_path: Path) -> None:
    """mosquitto stopped under a running EdgeCore: it logs the broker by address, stays up and
    Ready, and serves MQTT again once the broker is back on the same port."""
    try:
        binary()
    except RuntimeError as error:
        pytest.skip(str(error))
    server = Mosquitto(tmp_path / "mosquitto").start()
    node, name, model = f"mqtt-down-{uuid.uuid4().hex[:5]}", "thermo-down", "thermo-model-down"
    edge = start_device_edge(tmp_path / "edge", cloud, controlplane, node, {"mqttMode": 2, "mqttServerExternal": server.url},
                             hollow=True)
    app = None
    try:
        kubectl(controlplane, "apply", "-f", "-", stdin=manifests(name, node, model))
        wait_for(lambda: expected_in_twin(edge, f"default/{name}") == "25", 5, "device not in the edge's twin")
        app = App(server.url, f"default/{name}", node)
        assert "code" not in app.report("20")
        app.close()
        app = None
        server.stop()
        wait_for(lambda: f"MQTT broker {server.url}" in edge.log(), 10, lambda: edge.log()[-2000:])
        time.sleep(scaled(5))
        assert status(edge.spec).running
        wait_for(lambda: node_ready(controlplane, node), 10, "the node is not Ready with the broker away")
        server.start()
        wait_for(lambda: edge.log().count(f"connected to MQTT broker {server.url}") >= 2, 40, lambda: edge.log()[-2000:])
        app = App(server.url, f"default/{name}", node)
        assert app.get()["twin"]["temperature"]["actual"]["value"] == "20"
        assert "code" not in app.report("26")
        wait_for(lambda: reported(controlplane, name) == "26", 5, "report after the broker came back")
    finally:
        if app is not None:
            app.close()
        server.stop()
        kubectl(controlplane, "delete", "device", name, "--ignore-not-found", check=False)
        kubectl(controlplane, "delete", "devicemodel", model, "--ignore-not-found", check=False)
        edge.stop()
