"""Our Router with upstream's edgecore (its ServiceBus and EventBus on mosquitto): the four rule flows.

Upstream edgecore joins our CloudCore (Router on) and runs its own ServiceBus and EventBus, so the
message shapes of both ways are upstream's: ``HTTPRequest``/``HTTPResponse`` by ``parent_msg_id``,
``start`` of a target URL, the app's request as a Go ``[]byte`` on the link, ``subscribe`` and
``publish``. Skipped, naming ``KEADM_UPSTREAM_BIN``, when the binaries are not unpacked (CI has them).
"""

from __future__ import annotations

import http.client
import json
import queue
import sqlite3
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from cores.common import supervision
from cores.controlplane.launcher import ControlPlane, stop
from tests.integration.edgecloud import start_edge
from cores.runtime import Containerd, upstream
from cores.runtime.mosquitto import Mosquitto, binary
from tests.integration.conftest import free_port
from tests.integration.edgecloud import start_cloud
from tests.integration.test_devicecontroller import kubectl
from tests.integration.test_router import CloudApp, EdgeApp, Recorder, endpoint, rule, wait_for
from tests.integration.test_upstream_peers import CLOUDCORE, EDGECORE, plane, run_cloudcore  # noqa: F401 - shared fixture
from tests.timeouts import scaled

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(EDGECORE is None, reason=f"upstream binaries not found: set {upstream.BIN_ENV} "
                                                          "to a directory of unpacked upstream binaries (scripts/test.sh does)")]


def request(method: str, port: int, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of one call on 127.0.0.1, (0, b"") while nothing listens there yet."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(30))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()


def test_upstream_edgecore_serves_our_router(containerd: Containerd, tmp_path: Path) -> None:  # noqa: F811
    assert EDGECORE is not None
    try:
        binary()
    except RuntimeError as error:
        pytest.skip(str(error))
    from cores.runtime import PAUSE_IMAGE
    from tests.integration.conftest import start_controlplane

    plane = start_controlplane(tmp_path / "plane")
    router_port, servicebus_port = free_port(), free_port()
    cloud = start_cloud(tmp_path / "cloud", plane, modules={"router": {"enable": True, "address": "127.0.0.1",
                                                                        "port": router_port, "restTimeout": 10}})
    broker = Mosquitto(tmp_path / "mosquitto").start()
    edge_app, cloud_app = Recorder(EdgeApp), Recorder(CloudApp)
    node = f"upr-{uuid.uuid4().hex[:6]}"
    base = tmp_path / "upstream-edge"
    spec = upstream.edgecore_spec(EDGECORE, base, node=node, token=cloud.token(plane.kubeconfig),
                                  websocket_port=cloud.websocket_port, https_port=cloud.https_port,
                                  runtime_endpoint=containerd.endpoint, pause_image=PAUSE_IMAGE, mqtt_server=broker.url,
                                  servicebus_port=servicebus_port)

    def rows(table: str, column: str) -> list[str]:
        try:
            with sqlite3.connect(base / "data" / "edgecore.db") as db:
                return [str(r[0]) for r in db.execute(f"SELECT {column} FROM {table}")]
        except sqlite3.Error:
            return []

    host, mqtt_port = broker.url.removeprefix("tcp://").split(":")
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"upr-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda _c, _u, m: received.put((m.topic, m.payload))
    try:
        supervision.start(spec)
        wait_for(lambda: node in kubectl(plane, "get", "nodes", "-o", "name", check=False), 90, "upstream node never registered")
        echo = f"http://127.0.0.1:{cloud_app.port}/echo"
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            endpoint("rest", "rest"), endpoint("bus", "eventbus"), endpoint("sb", "servicebus", service_port=str(edge_app.port)),
            rule("rest-sb", "rest", {"path": "/ddd"}, "sb", {"path": "/url"}),
            rule("rest-bus", "rest", {"path": "/ccc"}, "bus", {"topic": "topic-test"}),
            rule("bus-rest", "bus", {"topic": "test", "node_name": node}, "rest", {"resource": echo}),
            rule("sb-rest", "sb", {"target_url": echo, "node_name": node}, "rest", {"resource": echo})]}))

        # rest -> servicebus: upstream's ServiceBus calls the edge server, its answer comes back
        status, body = wait_for(lambda: (r := request("POST", router_port, f"/{node}/default/ddd", b"Hello World!",
                                                      {"user": "I am user", "passwd": "I am passwd"}))[0] == 200 and r,
                                30, "rest->servicebus through upstream's ServiceBus never answered")
        assert body == b"Reply from server: Hello World! Header of the message: [user]: I am user, [passwd]: I am passwd"

        # rest -> eventbus: upstream's EventBus publishes what the Router sent
        client.connect(host, int(mqtt_port))
        client.subscribe("topic-test", 1)
        client.loop_start()
        time.sleep(0.5)
        assert request("POST", router_port, f"/{node}/default/ccc", b"to the bus") == (200, b"message delivered")
        assert received.get(timeout=scaled(10)) == ("topic-test", b"to the bus")

        # eventbus -> rest: upstream's EventBus subscribed default/test and uploads what is published there
        wait_for(lambda: "default/test" in rows("sub_topics", "topic"), 20, "upstream's EventBus never subscribed")
        while not cloud_app.seen.empty():
            cloud_app.seen.get()
        client.publish("default/test", b"from upstream's bus", qos=1).wait_for_publish(scaled(5))
        seen = cloud_app.seen.get(timeout=scaled(10))
        assert seen["body"] == b"from upstream's bus" and seen["headers"].get("NodeName") == node

        # servicebus -> rest: upstream's local server takes the app's request, our Router answers it
        wait_for(lambda: echo in rows("target_urls", "url"), 20, "upstream's ServiceBus never started the target URL")
        payload = json.dumps({"method": "POST", "targetURL": echo, "payload": "ping"}).encode()
        status, body = wait_for(lambda: (r := request("POST", servicebus_port, "/", payload))[0] == 200 and r, 20,
                                "upstream's ServiceBus server never answered")
        assert json.loads(body)["body"] == "Hello World", body
        seen = cloud_app.seen.get(timeout=scaled(10))
        assert seen["body"] == b"ping"  # the app's payload, not upstream's base64 of the whole request
    finally:
        client.loop_stop()
        client.disconnect()
        supervision.stop(spec, grace=scaled(10))
        upstream.unmount_under(base)
        for app in (edge_app, cloud_app):
            app.shutdown()
            app.server_close()
        broker.stop()
        cloud.stop()
        stop(plane)


def test_our_servicebus_through_upstream_cloudcores_router(plane: ControlPlane, tmp_path: Path) -> None:  # noqa: F811
    """Our EdgeCore's ServiceBus through upstream cloudcore's Router, both ways."""
    import base64

    assert CLOUDCORE is not None
    router_port, servicebus_port = free_port(), free_port()
    cloud = upstream.cloudcore_spec(CLOUDCORE, tmp_path / "cloudcore", plane.kubeconfig, router_port=router_port)
    edge_app, cloud_app = Recorder(EdgeApp), Recorder(CloudApp)
    node = f"upc-{uuid.uuid4().hex[:6]}"
    url = f"tcp://127.0.0.1:{free_port()}"
    edge = None

    try:
        run_cloudcore(cloud)
        token = kubectl(plane, "get", "secret", "tokensecret", "-n", "kubeedge", "-o", "jsonpath={.data.tokendata}")
        edge = start_edge(tmp_path / "edge", cloud, node, base64.b64decode(token).decode(), hollow=True,  # type: ignore[arg-type]
                          modules={"eventBus": {"mqttMode": 0, "mqttServerInternal": url},
                                   "serviceBus": {"enable": True, "port": servicebus_port}})
        wait_for(lambda: node in kubectl(plane, "get", "nodes", "-o", "name", check=False), 60, "node never registered")
        echo = f"http://127.0.0.1:{cloud_app.port}/echo"
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            endpoint("rest", "rest"), endpoint("sb", "servicebus", service_port=str(edge_app.port)),
            rule("rest-sb", "rest", {"path": "/ddd"}, "sb", {"path": "/url"}),
            rule("sb-rest", "sb", {"target_url": echo, "node_name": node}, "rest", {"resource": echo})]}))
        status, body = wait_for(lambda: (r := request("POST", router_port, f"/{node}/default/ddd", b"Hello World!"))[0] == 200 and r,
                                30, lambda: f"upstream's Router never answered through our ServiceBus: "
                                f"{request('POST', router_port, f'/{node}/default/ddd', b'x')} {cloud.log()[-3000:]}")
        assert body.startswith(b"Reply from server: Hello World!")
        payload = json.dumps({"method": "POST", "targetURL": echo, "payload": "ping"}).encode()
        status, body = wait_for(lambda: (r := request("POST", servicebus_port, "/", payload))[0] == 200 and r, 20,
                                "our ServiceBus server never answered through upstream's Router")
        assert json.loads(body)["body"] == "Hello World", body
    finally:
        if edge is not None:
            edge.stop()
        supervision.stop(cloud.spec, grace=scaled(10))
        for app in (edge_app, cloud_app):
            app.shutdown()
            app.server_close()
