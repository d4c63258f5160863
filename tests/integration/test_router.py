"""Router and ServiceBus end to end, upstream's four rule flows (E2E_CREATE_RULE_1..4) and their bad input.

Real parts: our control plane, a CloudCore with the Router on, an EdgeCore (Edged off) with
EventBus on Debian's mosquitto (mqttMode 2) and ServiceBus, a plain HTTP server at the edge on
127.0.0.1 and an HTTP endpoint on the cloud side, curl-like requests with http.client.

- rest→eventbus: a POST to the ingress reaches an MQTT subscriber;
- eventbus→rest: an MQTT publish at the edge reaches the cloud endpoint, with ``NodeName``;
- rest→servicebus: a request reaches the edge server and its body, headers and status come back;
  ``Host`` and forwarding headers are not passed on; 100 requests from 4 clients come back right
  and in order; a slow edge server gets 504 naming the hop and blocks nobody else;
- servicebus→rest: a POST to ServiceBus's local server reaches the cloud endpoint and its answer
  comes back;
- refusals: unknown node 404, offline node 503, no rule 404, '..' and absolute URLs 400, a body
  over the bound 413, a rule naming a missing endpoint or lacking a key reported in its status.
"""

from __future__ import annotations

import http.client
import http.server
import json
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from cores.controlplane.launcher import ControlPlane
from cores.runtime.mosquitto import Mosquitto, binary
from tests.integration.conftest import free_port
from tests.integration.edgecloud import Cloud, Core, start_cloud, start_edge
from tests.integration.test_devicecontroller import kubectl
from tests.timeouts import scaled

MAX_BODY = 256 * 1024
EDGE_TIMEOUT = 3           # ServiceBus's calls to local servers
REST_TIMEOUT = 8           # the Router's wait for an edge


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.seen: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class EdgeApp(http.server.BaseHTTPRequestHandler):
    """The edge server: upstream e2e's /url reply, a status, a slow answer, a large one."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        assert isinstance(self.server, Recorder)
        self.server.seen.put({"path": self.path, "method": self.command, "headers": dict(self.headers), "body": body})
        status, reply = 200, b""
        if self.path.startswith("/url"):
            reply = (b"Reply from server: " + body + b" Header of the message: [user]: " + (self.headers.get("user") or "").encode()
                     + b", [passwd]: " + (self.headers.get("passwd") or "").encode())
        elif self.path.startswith("/teapot"):
            status, reply = 418, b"short and stout"
        elif self.path.startswith("/slow"):
            time.sleep(EDGE_TIMEOUT + 3)
            reply = b"late"
        elif self.path.startswith("/big"):
            reply = b"x" * (MAX_BODY + 10)
        else:
            reply = body
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("X-Seen-Host", self.headers.get("Host") or "")
        self.send_header("X-Seen-Forwarded", self.headers.get("X-Forwarded-Host") or "")
        self.end_headers()
        try:
            self.wfile.write(reply)
        except BrokenPipeError:
            pass  # /slow: ServiceBus gave up on it, as it should

    do_GET = do_POST = do_PUT = do_DELETE = _answer


class CloudApp(EdgeApp):
    """The cloud endpoint: records what comes and answers "Hello World", as upstream e2e's /echo."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        assert isinstance(self.server, Recorder)
        self.server.seen.put({"path": self.path, "method": self.command, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b"Hello World")

    do_GET = do_POST = do_PUT = do_DELETE = _answer


class Setup:
    def __init__(self, plane: ControlPlane, cloud: Cloud, edge: Core, node: str, router_port: int, servicebus_port: int,
                 broker: Mosquitto, edge_app: Recorder, cloud_app: Recorder) -> None:
        self.plane, self.cloud, self.edge, self.node = plane, cloud, edge, node
        self.router_port, self.servicebus_port, self.broker = router_port, servicebus_port, broker
        self.edge_app, self.cloud_app = edge_app, cloud_app

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                port: int | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.router_port, timeout=scaled(30))
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def apply(self, *objects: dict[str, Any]) -> None:
        kubectl(self.plane, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))

    def rule_status(self, name: str) -> dict[str, Any]:
        out = kubectl(self.plane, "get", "rule", name, "-o", "json", check=False)
        return (json.loads(out).get("status") or {}) if out else {}

    def db_rows(self, table: str, column: str) -> list[str]:
        try:
            with sqlite3.connect(self.edge.layout.data_dir / "edgecore.db") as db:
                return [str(row[0]) for row in db.execute(f"SELECT {column} FROM {table}")]
        except sqlite3.OperationalError:
            return []


def endpoint(name: str, kind: str, **properties: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"ruleEndpointType": kind}
    if properties:
        spec["properties"] = properties
    return {"apiVersion": "rules.kubeedge.io/v1", "kind": "RuleEndpoint", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


def rule(name: str, source: str, source_resource: dict[str, str], target: str, target_resource: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "rules.kubeedge.io/v1", "kind": "Rule", "metadata": {"name": name, "namespace": "default"},
            "spec": {"source": source, "sourceResource": source_resource, "target": target, "targetResource": target_resource}}


def wait_for(check: Any, timeout: float, what: Any) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(what() if callable(what) else what)


@pytest.fixture(scope="module")
def setup(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    try:
        binary()
    except RuntimeError as error:
        pytest.skip(str(error))
    base = tmp_path_factory.mktemp("router")
    router_port, servicebus_port = free_port(), free_port()
    node = f"router-edge-{uuid.uuid4().hex[:5]}"
    edge_app, cloud_app = Recorder(EdgeApp), Recorder(CloudApp)
    with Mosquitto(base / "mosquitto") as broker:
        cloud = start_cloud(base / "cloud", controlplane, modules={"router": {
            "enable": True, "address": "127.0.0.1", "port": router_port, "restTimeout": REST_TIMEOUT, "maxBodyBytes": MAX_BODY}})
        edge = None
        try:
            edge = start_edge(base / "edge", cloud, node, cloud.token(controlplane.kubeconfig), edged=False, modules={
                "eventBus": {"mqttMode": 2, "mqttServerExternal": broker.url},
                "serviceBus": {"enable": True, "port": servicebus_port, "timeout": EDGE_TIMEOUT, "maxBodyBytes": MAX_BODY}})
            yield Setup(controlplane, cloud, edge, node, router_port, servicebus_port, broker, edge_app, cloud_app)
        finally:
            if edge is not None:
                edge.stop()
            cloud.stop()
            for app in (edge_app, cloud_app):
                app.shutdown()
                app.server_close()


def test_rest_to_eventbus_reaches_an_mqtt_subscriber(setup: Setup) -> None:
    setup.apply(endpoint("rest-a", "rest"), endpoint("bus-a", "eventbus"),
                rule("rest-bus", "rest-a", {"path": "/ccc"}, "bus-a", {"topic": "topic-test"}))
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    host, port = setup.broker.url.removeprefix("tcp://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda _c, _u, m: received.put((m.topic, m.payload))
    client.connect(host, int(port))
    client.subscribe("topic-test/#", 1)  # the topic and those under it
    client.loop_start()
    try:
        wait_for(lambda: setup.request("POST", f"/{setup.node}/default/ccc", b"warm-up")[0] == 200, 10,
                 "the ingress never took the rule")

        def next_real() -> tuple[str, bytes]:
            while True:
                item = received.get(timeout=scaled(5))
                if item[1] != b"warm-up":
                    return item

        started = time.monotonic()
        status, _, body = setup.request("POST", f"/{setup.node}/default/ccc", b"Hello World!")
        assert (status, body) == (200, b"message delivered")
        topic, payload = next_real()
        latency = time.monotonic() - started
        assert (topic, payload) == ("topic-test", b"Hello World!")
        # what follows the rule path goes after the topic, as upstream joins it
        assert setup.request("POST", f"/{setup.node}/default/ccc/room1", b"hi")[0] == 200
        assert next_real() == ("topic-test/room1", b"hi")
        print(f"rest->eventbus latency {latency * 1000:.1f} ms")
        assert latency < scaled(2), f"rest->eventbus took {latency:.2f} s"
        wait_for(lambda: (setup.rule_status("rest-bus").get("successMessages") or 0) >= 2, 5,
                 lambda: f"rule status not counted: {setup.rule_status('rest-bus')}")
        table = kubectl(setup.plane, "get", "rule", "rest-bus").splitlines()
        assert table[0].split()[:5] == ["NAME", "SOURCE", "TARGET", "SUCCESS", "FAIL"], table
        assert table[1].split()[:3] == ["rest-bus", "rest-a", "bus-a"], table
    finally:
        client.loop_stop()
        client.disconnect()


def test_eventbus_to_rest_reaches_a_cloud_endpoint(setup: Setup) -> None:
    url = f"http://127.0.0.1:{setup.cloud_app.port}/echo"
    setup.apply(endpoint("rest-b", "rest"), endpoint("bus-b", "eventbus"),
                rule("bus-rest", "bus-b", {"topic": "test", "node_name": setup.node}, "rest-b", {"resource": url}))
    wait_for(lambda: "default/test" in setup.db_rows("sub_topics", "topic"), 10, "the edge never subscribed default/test")
    host, port = setup.broker.url.removeprefix("tcp://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect(host, int(port))
    client.loop_start()
    try:
        time.sleep(0.5)  # the edge's subscription is live once it is in sub_topics and the broker acked it
        started = time.monotonic()
        client.publish("default/test", b"Hello World!", qos=1).wait_for_publish(scaled(5))
        seen = setup.cloud_app.seen.get(timeout=scaled(5))
        latency = time.monotonic() - started
        assert seen["body"] == b"Hello World!" and seen["method"] == "POST" and seen["path"] == "/echo"
        assert seen["headers"].get("NodeName") == setup.node
        print(f"eventbus->rest latency {latency * 1000:.1f} ms")
        assert latency < scaled(2), f"eventbus->rest took {latency:.2f} s"
    finally:
        client.loop_stop()
        client.disconnect()


def test_rest_to_servicebus_returns_the_edge_servers_answer(setup: Setup) -> None:
    setup.apply(endpoint("rest-c", "rest"), endpoint("sb-c", "servicebus", service_port=str(setup.edge_app.port)),
                rule("rest-sb", "rest-c", {"path": "/ddd"}, "sb-c", {"path": "/url"}))
    wait_for(lambda: setup.request("GET", f"/{setup.node}/default/ddd")[0] == 200, 10, "the ingress never took the rule")
    started = time.monotonic()
    status, headers, body = setup.request("POST", f"/{setup.node}/default/ddd", b"Hello World!",
                                          {"user": "I am user", "passwd": "I am passwd", "X-Forwarded-Host": "evil.example"})
    latency = time.monotonic() - started
    assert status == 200
    assert body == b"Reply from server: Hello World! Header of the message: [user]: I am user, [passwd]: I am passwd"
    # the edge call stays on loopback: neither Host nor forwarding headers came from the client
    assert headers.get("X-Seen-Host") == f"127.0.0.1:{setup.edge_app.port}"
    assert headers.get("X-Seen-Forwarded") == ""
    print(f"rest->servicebus latency {latency * 1000:.1f} ms")
    assert latency < scaled(2), f"rest->servicebus took {latency:.2f} s"
    # the edge server's status comes back as it is; the remainder of the path goes after the target path
    setup.apply(rule("rest-sb-tea", "rest-c", {"path": "/tea"}, "sb-c", {"path": "/teapot"}))
    wait_for(lambda: setup.request("GET", f"/{setup.node}/default/tea/pot?milk=1")[0] == 418, 10, "status not passed")
    seen = [setup.edge_app.seen.get_nowait() for _ in range(setup.edge_app.seen.qsize())]
    assert any(item["path"] == "/teapot/pot?milk=1" for item in seen)


def test_servicebus_burst_of_100_in_order_and_a_slow_server_blocks_nobody(setup: Setup) -> None:
    setup.apply(endpoint("rest-d", "rest"), endpoint("sb-d", "servicebus", service_port=str(setup.edge_app.port)),
                rule("rest-sb-echo", "rest-d", {"path": "/echo"}, "sb-d", {"path": "/echo"}),
                rule("rest-sb-slow", "rest-d", {"path": "/slow"}, "sb-d", {"path": "/slow"}))
    wait_for(lambda: setup.request("POST", f"/{setup.node}/default/echo", b"x")[0] == 200, 10, "rule not taken")
    failures: list[str] = []

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", setup.router_port, timeout=scaled(30))
        try:
            for number in range(25):
                body = f"client-{index}-request-{number}".encode()
                connection.request("POST", f"/{setup.node}/default/echo", body=body)
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200 or answer != body:
                    failures.append(f"{index}/{number}: {response.status} {answer[:80]!r}")
        finally:
            connection.close()

    slow: list[tuple[int, bytes, float]] = []

    def slow_call() -> None:
        started = time.monotonic()
        status, _, body = setup.request("GET", f"/{setup.node}/default/slow")
        slow.append((status, body, time.monotonic() - started))

    slow_thread = threading.Thread(target=slow_call)
    slow_thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    clients = [threading.Thread(target=client, args=(index,)) for index in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(scaled(60))
    burst = time.monotonic() - started
    slow_thread.join(scaled(30))
    assert not failures, failures[:5]
    print(f"100 requests through rest->servicebus in {burst:.2f} s")
    assert burst < scaled(EDGE_TIMEOUT + 2), "the slow edge server held up the other requests"
    status, body, took = slow[0]
    assert status == 504 and b"servicebus" in body and b"did not answer" in body, (status, body)
    assert took < REST_TIMEOUT


def test_servicebus_to_rest_reaches_the_cloud_and_answers(setup: Setup) -> None:
    url = f"http://127.0.0.1:{setup.cloud_app.port}/echo"
    setup.apply(endpoint("rest-e", "rest"), endpoint("sb-e", "servicebus"),
                rule("sb-rest", "sb-e", {"target_url": url, "node_name": setup.node}, "rest-e", {"resource": url}))
    wait_for(lambda: url in setup.db_rows("target_urls", "url"), 10, "the edge never started the target URL")

    def call(target: str) -> tuple[int, dict[str, Any]]:
        payload = json.dumps({"method": "POST", "targetURL": target, "payload": "ping"}).encode()
        status, _, body = wait_for(lambda: _try(setup, payload), 10, "ServiceBus's local server never answered")
        return status, json.loads(body)

    while not setup.cloud_app.seen.empty():
        setup.cloud_app.seen.get()
    started = time.monotonic()
    status, answer = call(url)
    latency = time.monotonic() - started
    assert status == 200 and answer["code"] == 200 and answer["body"] == "Hello World", answer
    seen = setup.cloud_app.seen.get(timeout=scaled(5))
    assert seen["body"] == b"ping" and seen["headers"].get("NodeName") == setup.node
    print(f"servicebus->rest latency {latency * 1000:.1f} ms")
    assert latency < scaled(2), f"servicebus->rest took {latency:.2f} s"
    status, answer = call("http://127.0.0.1:1/not-started")
    assert status == 400 and "is not allowed" in answer["msg"]


def _try(setup: Setup, payload: bytes) -> tuple[int, dict[str, str], bytes] | None:
    try:
        return setup.request("POST", "/", payload, {"Content-Type": "application/json"}, port=setup.servicebus_port)
    except OSError:
        return None


def test_refusals(setup: Setup) -> None:
    setup.apply(endpoint("rest-f", "rest"), endpoint("sb-f", "servicebus", service_port=str(setup.edge_app.port)),
                rule("rest-sb-f", "rest-f", {"path": "/fff"}, "sb-f", {"path": "/echo"}))
    wait_for(lambda: setup.request("POST", f"/{setup.node}/default/fff", b"x")[0] == 200, 10, "rule not taken")
    assert setup.request("POST", "/no-such-node/default/fff", b"x")[0] == 404
    kubectl(setup.plane, "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                                  "metadata": {"name": "router-offline"}}), check=False)
    status, _, body = setup.request("POST", "/router-offline/default/fff", b"x")
    assert status == 503 and b"not connected" in body
    assert setup.request("POST", f"/{setup.node}/default/nothing-here", b"x")[0] == 404
    assert setup.request("GET", f"/{setup.node}/default/fff/../../etc/passwd")[0] == 400
    assert setup.request("GET", f"/{setup.node}/default/fff/%2e%2e/x")[0] == 400
    assert setup.request("GET", f"http://evil.example/{setup.node}/default/fff")[0] == 400
    assert setup.request("POST", f"/{setup.node}/default/fff", b"y" * (MAX_BODY + 1))[0] == 413
    setup.apply(rule("rest-sb-big", "rest-f", {"path": "/big"}, "sb-f", {"path": "/big"}))
    status, _, body = wait_for(lambda: (r := setup.request("GET", f"/{setup.node}/default/big"))[0] != 404 and r, 10, "no rule")
    assert status == 413 and b"over" in body
    setup.apply(rule("broken-missing", "rest-f", {"path": "/m"}, "no-such-endpoint", {"resource": "http://127.0.0.1:1/"}),
                rule("broken-key", "rest-f", {"route": "/k"}, "sb-f", {"path": "/echo"}))
    wait_for(lambda: any("does not exist" in e for e in setup.rule_status("broken-missing").get("errors") or []), 10,
             lambda: f"missing endpoint not reported: {setup.rule_status('broken-missing')}")
    wait_for(lambda: any("lacks path" in e for e in setup.rule_status("broken-key").get("errors") or []), 10,
             lambda: f"wrong key not reported: {setup.rule_status('broken-key')}")
    # nothing sensitive in the logs: header values and bodies never appear
    assert "I am passwd" not in setup.cloud.log() and "I am passwd" not in setup.edge.log()
