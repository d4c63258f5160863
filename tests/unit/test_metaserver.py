"""MetaServer on a real socket and a real SQLite store, without a cloud: reads, watch resume,
410 after compaction, and the refusals (kube-apiserver's Status bodies)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.edge.metamanager.metaserver import MetaServer
from cores.edge.metamanager.store import MetaStore


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running:
    """A MetaServer on its own loop thread, as MetaManager runs it."""

    def __init__(self, store: MetaStore, apply_in_cloud: Any = None, node: str = "") -> None:
        self.store = store
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.executor = concurrent.futures.ThreadPoolExecutor(1)

        async def db(call: Any, *args: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(call, *args))

        self.server = MetaServer(f"127.0.0.1:{self.port}", db, store, node_name=node, apply_in_cloud=apply_in_cloud)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def put(self, key: str, kind: str, value: Any) -> None:
        change = self.store.put(key, kind, value)
        self.loop.call_soon_threadsafe(self.server.publish, change)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, raw: bool = False) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if raw:
            return response.status, data
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data

    def watch_lines(self, path: str) -> list[dict[str, Any]]:
        status, data = self.request("GET", path, raw=True)
        assert status == 200, data
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.executor.shutdown()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    running = Running(MetaStore(tmp_path / "edge.db", event_log_limit=3))
    try:
        yield running
    finally:
        running.stop()
        running.store.close()


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {}, "resourceVersion": "777"}, "data": data}


def test_list_get_selectors_and_local_resource_versions(server: Running) -> None:
    server.put("default/configmap/a", "configmap", configmap("a", {"app": "x"}, v="1"))
    server.put("default/configmap/b", "configmap", configmap("b", {"app": "y"}))
    server.put("other/configmap/c", "configmap", configmap("c", {"app": "x"}))
    status, listed = server.request("GET", "/api/v1/namespaces/default/configmaps")
    assert status == 200 and listed["kind"] == "ConfigMapList" and listed["metadata"]["resourceVersion"] == "3"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a", "b"]
    assert listed["items"][0]["kind"] == "ConfigMap" and listed["items"][0]["metadata"]["resourceVersion"] == "1"
    status, everywhere = server.request("GET", "/api/v1/configmaps?labelSelector=app%3Dx")
    assert [item["metadata"]["name"] for item in everywhere["items"]] == ["a", "c"]
    status, one = server.request("GET", "/api/v1/namespaces/default/configmaps/a")
    assert status == 200 and one["data"] == {"v": "1"}
    status, table = server.request("GET", "/api/v1/namespaces/default/configmaps", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert table["kind"] == "Table" and [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    status, missing = server.request("GET", "/api/v1/namespaces/default/configmaps/zz")
    assert status == 404 and missing["reason"] == "NotFound" and missing["message"] == 'configmaps "zz" not found'


def test_a_watch_resumes_from_a_revision_and_a_compacted_one_is_410(server: Running) -> None:
    server.put("default/configmap/a", "configmap", configmap("a", v="1"))
    status, listed = server.request("GET", "/api/v1/namespaces/default/configmaps")
    start = listed["metadata"]["resourceVersion"]
    server.put("default/configmap/a", "configmap", configmap("a", v="2"))
    server.put("default/pod/p", "pod", {"metadata": {"name": "p", "namespace": "default"}})
    events = server.watch_lines(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["data"]) for e in events] == [("MODIFIED", {"v": "2"})]
    for n in range(6):
        server.put(f"default/configmap/n{n}", "configmap", configmap(f"n{n}"))
    server.store.compact()
    events = server.watch_lines(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start}&timeoutSeconds=1")
    assert len(events) == 1 and events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"
    initial = server.watch_lines("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dn5")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in initial] == [("ADDED", "n5")]


def test_live_changes_reach_a_watch(server: Running) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&timeoutSeconds=5")
        response = connection.getresponse()
        assert response.status == 200
        server.put("default/configmap/live", "configmap", configmap("live", v="1"))
        event = json.loads(response.readline())
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "live")
        server.put("default/configmap/live", "configmap", configmap("live", v="2"))
        event = json.loads(response.readline())
        assert (event["type"], event["object"]["data"]) == ("MODIFIED", {"v": "2"})
    finally:
        connection.close()


def test_refusals_are_kube_apiserver_statuses(server: Running) -> None:
    status, body = server.request("POST", "/api/v1/namespaces/default/configmaps", body=b"{}")
    assert status == 503 and body["kind"] == "Status" and "no link to the cloud" in body["message"]
    status, body = server.request("GET", "/api/v1/namespaces/default/configmaps", body=b"x" * (4 * 1024 * 1024))
    assert status == 413
    status, body = server.request("GET", "/api/v1/namespaces/default/widgets")
    assert status == 404
    status, body = server.request("GET", "/api/v1/configmaps?labelSelector=a%20in%20(")
    assert status == 400 and body["reason"] == "BadRequest"
    status, body = server.request("GET", "/api/v1/pods?fieldSelector=spec.nope%3Dx")
    assert status == 400 and "field label not supported" in body["message"]
    status, body = server.request("GET", "/api/v1/configmaps?watch=true&resourceVersion=abc")
    assert status == 400
    status, body = server.request("GET", "/api")
    assert status == 200 and body["versions"] == ["v1"]
    status, body = server.request("GET", "/api/v1")
    assert {r["name"] for r in body["resources"]} >= {"pods", "configmaps", "secrets", "nodes"}


def test_a_watch_with_a_selector_sees_objects_come_into_and_leave_it(server: Running) -> None:
    server.put("default/configmap/s", "configmap", configmap("s", {"app": "other"}))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Dx&timeoutSeconds=5")
        response = connection.getresponse()
        server.put("default/configmap/s", "configmap", configmap("s", {"app": "x"}))
        assert json.loads(response.readline())["type"] == "ADDED"
        server.put("default/configmap/s", "configmap", configmap("s", {"app": "x"}, v="2"))
        assert json.loads(response.readline())["type"] == "MODIFIED"
        server.put("default/configmap/s", "configmap", configmap("s", {"app": "gone"}))
        event = json.loads(response.readline())
        assert (event["type"], event["object"]["metadata"]["labels"]) == ("DELETED", {"app": "gone"})
    finally:
        connection.close()


def test_a_client_that_leaves_a_watch_frees_it_at_once_and_bad_timeouts_are_400(server: Running) -> None:
    for bad in ("nan", "-1", "1.5", "inf"):
        status, body = server.request("GET", f"/api/v1/configmaps?watch=true&timeoutSeconds={bad}")
        assert status == 400 and "timeoutSeconds" in body["message"], (bad, body)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/api/v1/configmaps?watch=true&resourceVersion=0")
    assert connection.getresponse().status == 200
    deadline = time.monotonic() + 5
    while not server.server.watchers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.server.watchers) == 1
    connection.close()  # no change comes: only the close can tell the server
    while server.server.watchers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.server.watchers, "a watch whose client left still holds its slot"


def test_a_resumed_watch_with_a_selector_sees_an_object_leave_it(server: Running) -> None:
    server.put("default/configmap/r", "configmap", configmap("r", {"app": "x"}))
    _, listed = server.request("GET", "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx")
    server.put("default/configmap/r", "configmap", configmap("r", {"app": "gone"}))
    events = server.watch_lines("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Dx&timeoutSeconds=1"
                                f"&resourceVersion={listed['metadata']['resourceVersion']}")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "r")]


def test_head_answers_without_a_body_and_keeps_the_connection(server: Running) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("HEAD", "/api/v1/namespaces/default/configmaps")
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b""
        connection.request("GET", "/version")
        assert json.loads(connection.getresponse().read())["major"] == "1"
    finally:
        connection.close()
