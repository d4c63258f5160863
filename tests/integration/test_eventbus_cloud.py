"""EventBus's cloud operations against our real EdgeCore (embedded broker, mqttMode 0): a test
WebSocket server stands in for the cloud's router (``router_eventbus``, group ``user``) over
mutual TLS and sends ``subscribe`` and ``publish``; a plain MQTT client sees the publish, and what
it publishes on the subscribed topic comes up to the cloud as ``upload``. The subscription is kept
in ``sub_topics``; an invalid topic is refused.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import websockets

from cores.beehive import Message
from cores.common import layout as layouts
from cores.common.supervision import ServiceSpec, start, stop
from cores.controlplane.launcher import keadm_argv
from cores.wire import encode
from tests.integration.conftest import free_port
from tests.integration.test_replay_edge import NODE, make_pki
from tests.timeouts import scaled


def router(operation: str, topic: str, content: Any = None) -> Message:
    return Message.new(source="router_eventbus", group="user", operation=operation, resource=topic, content=content)


def test_cloud_subscribes_and_publishes_through_eventbus(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    port, mqtt_port = free_port(), free_port()
    uploads: queue.Queue[dict[str, Any]] = queue.Queue()
    to_edge: asyncio.Queue[Message] | None = None
    loop_ready = threading.Event()
    done = threading.Event()
    loop: asyncio.AbstractEventLoop | None = None

    async def cloud(connection: Any) -> None:
        assert to_edge is not None

        async def reader() -> None:
            async for raw in connection:
                frame = json.loads(raw)
                if frame["route"].get("operation") == "upload":
                    uploads.put(frame)

        reading = asyncio.create_task(reader())
        try:
            while not done.is_set():
                try:
                    message = await asyncio.wait_for(to_edge.get(), 0.2)
                except TimeoutError:
                    continue
                await connection.send(encode(message))
        finally:
            reading.cancel()

    async def serve() -> None:
        nonlocal to_edge, loop
        to_edge, loop = asyncio.Queue(), asyncio.get_running_loop()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"]))
        context.load_cert_chain(pki["server"], pki["server_key"])
        context.verify_mode = ssl.CERT_REQUIRED
        async with websockets.serve(cloud, "127.0.0.1", port, ssl=context, ping_interval=None):
            loop_ready.set()
            await asyncio.to_thread(done.wait, scaled(120))

    server = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    server.start()
    assert loop_ready.wait(10)

    def send(message: Message) -> None:
        assert loop is not None and to_edge is not None
        loop.call_soon_threadsafe(to_edge.put_nowait, message)

    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    document = layouts.edgecore_document(layout, node_name=NODE, cloud_host="127.0.0.1", token="", websocket_port=port,
                                         https_port=free_port(), node_ip="127.0.0.1")
    document["modules"]["edgeHub"].update(tlsCaFile=str(pki["ca"]), tlsCertFile=str(pki["node"]), tlsPrivateKeyFile=str(pki["node_key"]))
    document["modules"]["edged"]["enable"] = False
    document["modules"]["eventBus"].update(mqttMode=0, mqttServerInternal=f"tcp://127.0.0.1:{mqtt_port}")
    config = layouts.write(layout.edgecore_config, document)
    spec = ServiceSpec(component="edgecore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
                       argv=(*keadm_argv(), "run", "edge", "--config", str(config)), readiness_timeout=scaled(30))
    start(spec, ready=lambda: spec.log_file.exists() and "connected to 127.0.0.1" in spec.log_file.read_text()
          and "embedded MQTT broker listening" in spec.log_file.read_text())
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="app")
    client.on_message = lambda _c, _u, m: received.put((m.topic, bytes(m.payload)))
    try:
        client.connect("127.0.0.1", mqtt_port)
        client.loop_start()
        client.subscribe("app/out", 1)
        send(router("subscribe", "app/events"))
        send(router("subscribe", "bad/#/topic"))  # a filter with # inside: refused
        database = layout.data_dir / "edgecore.db"

        def subscribed() -> list[str]:
            try:
                with sqlite3.connect(database) as db:
                    return [str(r[0]) for r in db.execute("SELECT topic FROM sub_topics")]
            except sqlite3.Error:
                return []

        deadline = time.monotonic() + scaled(10)
        while subscribed() != ["app/events"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert subscribed() == ["app/events"]

        send(router("publish", "app/out", "hello from the cloud"))
        assert received.get(timeout=scaled(10)) == ("app/out", b"hello from the cloud")

        client.publish("app/events", b'{"reading": 7}', qos=1).wait_for_publish(scaled(5))
        upload = uploads.get(timeout=scaled(10))
        assert upload["route"] == {"source": "bus", "group": "user", "operation": "upload", "resource": "app/events"}
        assert upload["content"] == '{"reading": 7}'

        send(router("unsubscribe", "app/events"))
        deadline = time.monotonic() + scaled(10)
        while subscribed() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert subscribed() == []
        assert "refused subscribe of topic 'bad/#/topic'" in spec.log_file.read_text()
    finally:
        client.loop_stop()
        stop(spec)
        done.set()
        server.join(scaled(10))
