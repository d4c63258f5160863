"""MetaServer's requireAuthorization, the cloud a function: a token checked by a TokenReview and
remembered, each request by a SubjectAccessReview, the caches used while the cloud is away, and
the 401/403 bodies on a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.edge.metamanager.metaauth import Attributes, Identity, MetaAuth
from cores.edge.metamanager.store import MetaStore
from cores.link import application
from cores.link.application import Application
from cores.link.status import not_connected
from tests.unit.test_metaserver import Running

GOOD = "header.eyJleHAiOiA0MTAyNDQ0ODAwfQ.sig"  # exp far ahead


class Cloud:
    def __init__(self) -> None:
        self.offline = False
        self.allowed: set[tuple[str, str, str]] = set()  # (user, verb, resource)
        self.reviews: list[str] = []

    async def __call__(self, app: Application, timeout: float) -> Application:
        if self.offline:
            raise not_connected()
        body = app.body_json()
        if body is None:  # a discovery read: not this cloud's business here
            app.status = application.REJECTED
            return app
        self.reviews.append(body["kind"])
        if body["kind"] == "TokenReview":
            ok = body["spec"]["token"] == GOOD
            status: dict[str, Any] = {"authenticated": ok}
            if ok:
                status["user"] = {"username": "system:serviceaccount:default:app", "groups": ["system:serviceaccounts"]}
        else:
            spec = body["spec"]
            attrs = spec.get("resourceAttributes") or {}
            status = {"allowed": (spec["user"], attrs.get("verb"), attrs.get("resource")) in self.allowed}
        app.status, app.resp_body = application.APPROVED, application.to_bytes({**body, "status": status})
        return app


@pytest.fixture
def cloud() -> Cloud:
    return Cloud()


async def test_tokens_and_decisions_are_remembered_for_when_the_cloud_is_away(cloud: Cloud) -> None:
    now = [1000.0]
    auth = MetaAuth(cloud, "n1", clock=lambda: now[0])
    identity, why = await auth.authenticate(GOOD)
    assert identity == Identity("system:serviceaccount:default:app", ("system:serviceaccounts",)) and why == ""
    assert (await auth.authenticate("bad"))[0] is None
    listing = Attributes("list", "/api/v1/namespaces/default/configmaps", "", "v1", "configmaps", namespace="default")
    assert (await auth.authorize(identity, listing))[0] is False
    cloud.allowed.add((identity.name, "list", "configmaps"))
    assert (await auth.authorize(identity, listing))[0] is False  # a refusal is kept a few seconds
    now[0] += 6
    assert (await auth.authorize(identity, listing))[0] is True
    asked = len(cloud.reviews)
    await auth.authenticate(GOOD)
    await auth.authorize(identity, listing)
    assert len(cloud.reviews) == asked  # both fresh: the cloud is not asked
    cloud.offline = True
    now[0] += 3600
    assert (await auth.authenticate(GOOD))[0] == identity      # until the token's exp
    assert (await auth.authorize(identity, listing))[0] is True  # the last answer
    unknown = Attributes("delete", "/api/v1/namespaces/default/pods/x", "", "v1", "pods", namespace="default", name="x")
    allowed, reason = await auth.authorize(identity, unknown)
    assert not allowed and "cannot be authorized now" in reason
    assert (await auth.authenticate("never-seen"))[0] is None
    assert (await auth.authorize(identity, Attributes("get", "/version")))[0] is True  # discovery


@pytest.fixture
def server(tmp_path: Path, cloud: Cloud) -> Iterator[Running]:
    running = Running(MetaStore(tmp_path / "edge.db"), apply_in_cloud=cloud, node="n1")
    running.server.auth = MetaAuth(cloud, "n1")
    try:
        yield running
    finally:
        running.stop()


def test_metaserver_answers_401_and_403_as_kube_apiserver(server: Running, cloud: Cloud) -> None:
    server.put("default/configmap/c", "configmap", {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "c", "namespace": "default"}})
    status, body = server.request("GET", "/api/v1/namespaces/default/configmaps")
    assert (status, body["reason"]) == (401, "Unauthorized")
    status, body = server.request("GET", "/api/v1/namespaces/default/configmaps", headers={"Authorization": "Bearer bad"})
    assert status == 401
    bearer = {"Authorization": f"Bearer {GOOD}"}
    status, body = server.request("GET", "/api/v1/namespaces/default/configmaps", headers=bearer)
    assert status == 403 and body["message"] == ('configmaps is forbidden: User "system:serviceaccount:default:app" cannot '
                                                 'list resource "configmaps" in API group "" in the namespace "default"')
    cloud.allowed.add(("system:serviceaccount:default:app", "list", "configmaps"))
    server.server.auth._decisions.clear()
    status, body = server.request("GET", "/api/v1/namespaces/default/configmaps", headers=bearer)
    assert status == 200 and [item["metadata"]["name"] for item in body["items"]] == ["c"]
    assert server.request("GET", "/api", headers=bearer)[0] == 200
    assert json.dumps(body).find(GOOD) == -1
