"""MetaServer's way through the cloud, on a real socket and store, the cloud a recorder of the
Applications it gets: writes as upstream's Applications, their answers and refusals as
kube-apiserver's, a list asked in the cloud first and kept, and the edge offline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.edge.metamanager.store import MetaStore
from cores.link import application
from cores.link.application import Application
from cores.link.status import RequestTimeout, not_connected
from tests.unit.test_metaserver import Running


class Cloud:
    """What the DynamicController would answer: ``answers`` by verb, recording every Application."""

    def __init__(self) -> None:
        self.seen: list[Application] = []
        self.answers: dict[str, Any] = {}
        self.offline = False
        self.silent = False

    async def __call__(self, app: Application, timeout: float) -> Application:
        wired = Application.from_wire(json.loads(json.dumps(app.wire())))  # through JSON, as on the link
        self.seen.append(wired)
        if self.offline:
            raise not_connected()
        if self.silent:
            raise RequestTimeout("the cloud's DynamicController", timeout)
        await asyncio.sleep(0)
        answer = self.answers.get(wired.verb)
        if isinstance(answer, dict) and answer.get("kind") == "Status":
            wired.status, wired.error = application.REJECTED, answer
        else:
            wired.status, wired.resp_body = application.APPROVED, application.to_bytes(answer)
        return wired


@pytest.fixture
def cloud() -> Cloud:
    return Cloud()


@pytest.fixture
def server(tmp_path: Path, cloud: Cloud) -> Iterator[Running]:
    running = Running(MetaStore(tmp_path / "edge.db"), apply_in_cloud=cloud, node="n1")
    try:
        yield running
    finally:
        running.stop()


def configmap(name: str, rv: str = "7") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default",
                                                                 "resourceVersion": rv}, "data": {"v": "1"}}


def test_a_create_is_an_application_and_its_answer_a_201(server: Running, cloud: Cloud) -> None:
    cloud.answers["create"] = configmap("made")
    status, body = server.request("POST", "/api/v1/namespaces/default/configmaps?fieldManager=kubectl",
                                  body=json.dumps(configmap("made")).encode(), headers={"Content-Type": "application/json"})
    assert status == 201 and body["metadata"]["name"] == "made"
    app = cloud.seen[-1]
    assert (app.key, app.verb, app.nodename) == ("/core/v1/configmaps/default/null", "create", "n1")
    assert app.body_json()["metadata"]["name"] == "made" and app.option_json() == {"fieldManager": "kubectl"}
    assert app.identifier() == Application(app.key, app.verb, "n1", app.option, app.req_body).identifier()


def test_a_patch_carries_upstreams_patch_info(server: Running, cloud: Cloud) -> None:
    cloud.answers["patch"] = {"kind": "Node", "metadata": {"name": "n1", "labels": {"a": "b"}}}
    status, body = server.request("PATCH", "/api/v1/nodes/n1", body=b'{"metadata":{"labels":{"a":"b"}}}',
                                  headers={"Content-Type": "application/merge-patch+json"})
    assert status == 200 and body["metadata"]["labels"] == {"a": "b"}
    app = cloud.seen[-1]
    info = app.option_json()
    assert (app.key, app.verb) == ("/core/v1/nodes/null/n1", "patch")
    assert (info["Name"], info["PatchType"]) == ("n1", "application/merge-patch+json")
    assert application.decode_bytes(info["Data"], "Data") == b'{"metadata":{"labels":{"a":"b"}}}'
    status, body = server.request("PATCH", "/api/v1/namespaces/default/pods/p/status", body=b'{"status":{}}',
                                  headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert status == 200 and cloud.seen[-1].option_json()["Subresources"] == ["status"]
    status, body = server.request("PATCH", "/api/v1/nodes/n1", body=b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415
    status, body = server.request("PATCH", "/api/v1/nodes/n1", body=b"[1]", headers={"Content-Type": "application/merge-patch+json"})
    assert status == 400


def test_delete_update_status_and_refusals(server: Running, cloud: Cloud) -> None:
    cloud.answers["delete"] = {"kind": "Pod", "metadata": {"name": "p"}}
    status, body = server.request("DELETE", "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0")
    assert status == 200 and cloud.seen[-1].option_json() == {"gracePeriodSeconds": 0}
    cloud.answers["updatestatus"] = {"kind": "Pod", "metadata": {"name": "p"}}
    status, _ = server.request("PUT", "/api/v1/namespaces/default/pods/p/status", body=b'{"metadata":{"name":"p"}}')
    assert status == 200 and (cloud.seen[-1].verb, cloud.seen[-1].subresource) == ("updatestatus", "")
    forbidden = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
                 "message": 'configmaps is forbidden: User "system:node:n1" cannot create resource "configmaps"'}
    cloud.answers["create"] = forbidden
    status, body = server.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps(configmap("x")).encode())
    assert status == 403 and body["reason"] == "Forbidden" and "system:node:n1" in body["message"]
    assert server.request("DELETE", "/api/v1/namespaces/default/pods")[0] == 405     # no collection deletes
    assert server.request("POST", "/api/v1/namespaces/default/configmaps", body=b"[]")[0] == 400
    deep = b"[" * 200 + b"]" * 200
    assert server.request("POST", "/api/v1/namespaces/default/configmaps", body=deep)[0] == 400
    assert server.request("POST", "/api/v1/namespaces/Bad_NS/configmaps", body=b"{}")[0] == 404
    assert server.request("POST", "/api/v1/namespaces/default/configmaps/a%2F..%2Fb", body=b"{}")[0] == 404


def test_an_update_of_what_the_store_served_carries_the_clouds_version(server: Running, cloud: Cloud) -> None:
    server.put("default/configmap/kept", "configmap", configmap("kept", rv="12345"))
    _, served = server.request("GET", "/api/v1/namespaces/default/configmaps/kept")
    local = served["metadata"]["resourceVersion"]
    assert local != "12345"
    cloud.answers["update"] = configmap("kept", rv="12346")
    served["data"] = {"v": "2"}
    status, _ = server.request("PUT", "/api/v1/namespaces/default/configmaps/kept", body=json.dumps(served).encode())
    assert status == 200 and cloud.seen[-1].body_json()["metadata"]["resourceVersion"] == "12345"


def test_discovery_passes_through_and_is_kept_for_offline(server: Running, cloud: Cloud) -> None:
    cloud.answers["get"] = {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [{"name": "deployments"}]}
    status, body = server.request("GET", "/apis/apps/v1")
    assert status == 200 and body["resources"][0]["name"] == "deployments" and cloud.seen[-1].key == "/apis/apps/v1"
    cloud.offline = True
    status, body = server.request("GET", "/apis/apps/v1")
    assert status == 200 and body["resources"][0]["name"] == "deployments"  # the copy kept
    status, body = server.request("GET", "/api/v1")  # never fetched: the built-in list of what the edge stores
    assert status == 200 and any(r["name"] == "pods" for r in body["resources"])
    assert server.request("GET", "/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})[0] == 406


def test_offline_writes_are_503_with_the_reason(server: Running, cloud: Cloud) -> None:
    cloud.offline = True
    status, body = server.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps(configmap("x")).encode())
    assert status == 503 and "offline" in body["message"]
    status, body = server.request("GET", "/apis/apps/v1/namespaces/default/deployments")
    assert status == 404 and "not stored at the edge" in body["message"]


def test_a_list_asks_the_cloud_first_and_keeps_what_it_returns(server: Running, cloud: Cloud) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default", "resourceVersion": "40"},
               "spec": {"ports": [{"port": 80}]}}
    server.put("default/service/gone", "service", {**service, "metadata": {**service["metadata"], "name": "gone"}})
    cloud.answers["list"] = {"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "41"}, "items": [service]}
    status, body = server.request("GET", "/api/v1/namespaces/default/services")
    assert status == 200 and [item["metadata"]["name"] for item in body["items"]] == ["web"]  # the cloud's set
    assert cloud.seen[-1].key == "/core/v1/services/default/null" and cloud.seen[-1].verb == "list"
    assert server.store.get("default/service/web") is not None  # kept: offline it is still there
    assert server.store.get("default/service/gone") is None  # the whole list left it out: gone here too
    cloud.offline = True
    status, body = server.request("GET", "/api/v1/namespaces/default/services")
    assert [item["metadata"]["name"] for item in body["items"]] == ["web"]
    cloud.offline, cloud.silent = False, True
    asked = len(cloud.seen)
    server.request("GET", "/api/v1/namespaces/default/services")
    server.request("GET", "/api/v1/namespaces/default/services")
    assert len(cloud.seen) == asked + 1  # a cloud that never answers is not asked again for a while
    status, body = server.request("GET", "/api/v1/namespaces/default/configmaps")
    assert status == 200 and len(cloud.seen) == asked + 1  # configmaps are never listed in the cloud


def test_a_get_of_a_service_asks_the_cloud_first(server: Running, cloud: Cloud) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "default", "resourceVersion": "9"}}
    cloud.answers["get"] = service
    status, body = server.request("GET", "/api/v1/namespaces/default/services/api")
    assert status == 200 and body["metadata"]["name"] == "api" and cloud.seen[-1].key == "/core/v1/services/default/api"
    cloud.answers["get"] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound",
                            "code": 404, "message": 'services "api" not found'}
    status, body = server.request("GET", "/api/v1/namespaces/default/services/api")
    assert status == 404 and server.store.get("default/service/api") is None  # gone in the cloud: gone here
