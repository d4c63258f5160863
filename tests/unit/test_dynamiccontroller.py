"""DynamicController's translation of Applications into API calls, the API a recorder: each verb's
method, path, query and body, the node's impersonation headers on every call, and the refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cores.cloud.dynamiccontroller import MAX_ANSWER_BYTES, DynamicController
from cores.cloud.kube import KubeError
from cores.common.config import Config
from cores.link import application
from cores.link.application import Application


class Recorder:
    def __init__(self, answer: bytes = b'{"kind":"ConfigMap"}') -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer = answer
        self.error: dict[str, Any] | None = None

    async def request_raw(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                          query: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None) -> bytes:
        self.calls.append({"method": method, "path": path, "body": body, "type": content_type, "query": query or [],
                           "headers": headers})
        if self.error is not None:
            raise KubeError(self.error)
        return self.answer


def controller(kube: Recorder) -> DynamicController:
    return DynamicController(Config({}, "test"), kube)  # type: ignore[arg-type]


async def apply(kube: Recorder, app: Application, node: str = "n1") -> Application:
    return Application.from_wire(await controller(kube)._apply(node, app))


@pytest.mark.parametrize(("app", "method", "path", "query"), [
    (Application("/core/v1/configmaps/default/c", "get", "n1", option=b'{"resourceVersion":"5"}'), "GET",
     "/api/v1/namespaces/default/configmaps/c", [("resourceVersion", "5")]),
    (Application("/core/v1/pods/null/null", "list", "n1", option=b'{"fieldSelector":"spec.nodeName=n1","limit":5}'), "GET",
     "/api/v1/pods", [("fieldSelector", "spec.nodeName=n1"), ("limit", "5")]),
    (Application("/apps/v1/deployments/web/null", "list", "n1"), "GET", "/apis/apps/v1/namespaces/web/deployments", []),
    (Application("/core/v1/nodes/null/n1", "delete", "n1", option=b'{"gracePeriodSeconds":0}'), "DELETE", "/api/v1/nodes/n1", []),
    (Application("/version", "get", "n1"), "GET", "/version", []),
    (Application("/openapi/v3/api/v1", "get", "n1"), "GET", "/openapi/v3/api/v1", []),
])
async def test_reads_and_deletes(app: Application, method: str, path: str, query: list[tuple[str, str]]) -> None:
    kube = Recorder()
    answer = await apply(kube, app)
    call = kube.calls[-1]
    assert (call["method"], call["path"], call["query"]) == (method, path, query)
    assert call["headers"] == {"Impersonate-User": "system:node:n1", "Impersonate-Group": "system:nodes"}
    assert answer.status == application.APPROVED and answer.resp_body == kube.answer


async def test_writes() -> None:
    kube = Recorder()
    body = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}}
    await apply(kube, Application("/core/v1/events/default/null", "create", "n1", option=b'{"fieldManager":"kubectl"}',
                                  req_body=json.dumps(body).encode()))
    assert (kube.calls[-1]["method"], kube.calls[-1]["path"], kube.calls[-1]["body"]) == ("POST", "/api/v1/namespaces/default/events", body)
    assert kube.calls[-1]["query"] == [("fieldManager", "kubectl")]
    await apply(kube, Application("/core/v1/pods/default/p", "updatestatus", "n1", req_body=b'{"status":{}}'))
    assert (kube.calls[-1]["method"], kube.calls[-1]["path"]) == ("PUT", "/api/v1/namespaces/default/pods/p/status")
    await apply(kube, Application("/core/v1/serviceaccounts/default/sa", "create", "n1", subresource="token", req_body=b"{}"))
    assert kube.calls[-1]["path"] == "/api/v1/namespaces/default/serviceaccounts/sa/token"
    info = {"Name": "n1", "PatchType": "application/merge-patch+json", "Data": application.to_b64(b'{"metadata":{}}'),
            "Options": {"fieldManager": "m"}, "Subresources": [""]}  # upstream's edge: [""] for none
    await apply(kube, Application("/core/v1/nodes/null/n1", "patch", "n1", option=json.dumps(info).encode()))
    call = kube.calls[-1]
    assert (call["method"], call["path"], call["type"], call["body"]) == ("PATCH", "/api/v1/nodes/n1",
                                                                         "application/merge-patch+json", {"metadata": {}})


async def test_refusals() -> None:
    kube = Recorder()
    other = await apply(kube, Application("/core/v1/nodes/null/n2", "get", "n2"), node="n1")
    assert other.status == application.REJECTED and other.error["code"] == 403 and not kube.calls  # never in another's name
    watch = await apply(kube, Application("/core/v1/pods/null/null", "watch", "n1"))
    assert watch.error["code"] == 405 and "store" in watch.error["message"]
    bad = await apply(kube, Application("/core/v1/../secrets", "get", "n1"))
    assert bad.error["code"] == 400
    kube.error = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no"}
    refused = await apply(kube, Application("/core/v1/configmaps/default/c", "get", "n1"))
    assert (refused.status, refused.error["reason"]) == (application.REJECTED, "Forbidden")
    big = Recorder(answer=b"x" * (MAX_ANSWER_BYTES + 1))
    too_big = await apply(big, Application("/core/v1/services/null/null", "list", "n1"))
    assert too_big.error["code"] == 413 and too_big.resp_body is None
    patch = {"Name": "n1", "PatchType": "text/plain", "Data": application.to_b64(b"{}")}
    assert (await apply(Recorder(), Application("/core/v1/nodes/null/n1", "patch", "n1",
                                                option=json.dumps(patch).encode()))).error["code"] == 415
