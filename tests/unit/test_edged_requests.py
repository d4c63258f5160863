"""Edged's requests to the cloud, through CloudRequests: what each refusal means to the caller.

A stand-in MetaManager (module ``metamanager`` on a real beehive Context) answers each request
with a reply built by :mod:`cores.link.contracts`, in the shape the cloud or MetaManager uses.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cores.beehive import Context, Message
from cores.common import layout as layouts
from cores.common.config import Config
from cores.edge.edged import Edged, RegistrationError, static
from cores.edge.edged.events import EventRecorder
from cores.edge.edged.pods import PodManager
from cores.edge.hollow import HollowEdged
from cores.link import contracts
from cores.link.requests import CloudRequests
from cores.link.status import StatusError

Answer = Callable[[Message], Message]


def refusal(code: int, reason: str) -> Callable[[Message], Message]:
    return lambda request: contracts.error_reply(request, StatusError.make(code, reason, f"{reason.lower()} here"))


def created(request: Message) -> Message:
    body = dict(request.content) if isinstance(request.content, dict) else {}
    return contracts.object_reply(request, {**body, "metadata": {**(body.get("metadata") or {}), "uid": "u-1"}})


class StandInMeta:
    """Answers by (operation, resource type) and records what was asked."""

    def __init__(self, ctx: Context, answers: dict[tuple[str, str], Answer]) -> None:
        self.ctx = ctx
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    async def run(self) -> None:
        while True:
            message = await self.ctx.receive("metamanager")
            kind = message.route.resource.split("/")[1]
            self.asked.append((message.route.operation, kind))
            answer = self.answers.get((message.route.operation, kind))
            if answer is not None:
                self.ctx.send_response(answer(message))


@pytest.fixture
async def ctx() -> AsyncIterator[Context]:
    context = Context()
    context.register("metamanager", "meta")
    yield context


async def serving(ctx: Context, answers: dict[tuple[str, str], Answer]) -> tuple[StandInMeta, asyncio.Task[None]]:
    meta = StandInMeta(ctx, answers)
    return meta, asyncio.create_task(meta.run())


def config(tmp_path: Path) -> Config:
    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    document = layouts.edgecore_document(layout, node_name="edge-1", cloud_host="127.0.0.1", token="", node_ip="127.0.0.1")
    return Config(document, str(layout.edgecore_config))


def edged_with(tmp_path: Path, ctx: Context) -> Edged:
    edged = Edged(config(tmp_path))
    edged.requests = CloudRequests(ctx, source="edged", timeout=1.0)
    edged.node_uid = "node-uid"
    return edged


async def test_a_lease_the_cloud_does_not_have_is_created(tmp_path: Path, ctx: Context) -> None:
    meta, task = await serving(ctx, {("query", "lease"): refusal(404, "NotFound"), ("insert", "lease"): created})
    edged = edged_with(tmp_path, ctx)
    await edged._renew_lease()
    task.cancel()
    assert meta.asked == [("query", "lease"), ("insert", "lease")]
    assert edged.lease is not None and edged.lease["metadata"]["uid"] == "u-1"


async def test_a_lease_query_refused_otherwise_creates_nothing(tmp_path: Path, ctx: Context) -> None:
    meta, task = await serving(ctx, {("query", "lease"): refusal(503, "ServiceUnavailable")})
    edged = edged_with(tmp_path, ctx)
    with pytest.raises(RegistrationError, match="lease query failed: serviceunavailable here"):
        await edged._renew_lease()
    task.cancel()
    assert meta.asked == [("query", "lease")]


async def test_a_refused_lease_update_is_queried_again_next_time(tmp_path: Path, ctx: Context) -> None:
    meta, task = await serving(ctx, {("update", "lease"): refusal(409, "Conflict")})
    edged = edged_with(tmp_path, ctx)
    edged.lease = {"metadata": {"name": "edge-1", "resourceVersion": "3"}, "spec": {}}
    with pytest.raises(RegistrationError, match="lease renewal failed"):
        await edged._renew_lease()
    task.cancel()
    assert edged.lease is None


async def test_registration_takes_the_node_uid_or_says_why_not(tmp_path: Path, ctx: Context) -> None:
    meta, task = await serving(ctx, {("insert", "node"): refusal(403, "Forbidden")})
    edged = edged_with(tmp_path, ctx)
    edged.node_uid = ""
    with pytest.raises(RegistrationError, match="node registration failed: forbidden here"):
        await edged._register()
    meta.answers[("insert", "node")] = created
    await edged._register()
    task.cancel()
    assert edged.node_uid == "u-1"


async def test_no_answer_is_a_timeout(tmp_path: Path, ctx: Context) -> None:
    meta, task = await serving(ctx, {})
    edged = edged_with(tmp_path, ctx)
    edged.requests.timeout = 0.05
    with pytest.raises(RegistrationError, match="no reply from the cloud"):
        await edged._patch_status({"conditions": []})
    task.cancel()
    assert edged.tracker.last_reported == ""


# -- PodManager: mirror pods and queries ---------------------------------------------------------
@pytest.fixture
async def manager(ctx: Context) -> AsyncIterator[PodManager]:
    pods = PodManager(CloudRequests(ctx, source="edged", timeout=1.0), None, node_name="edge-1",  # type: ignore[arg-type]
                      node_ip="127.0.0.1", root_directory="/nonexistent", logs_root="/nonexistent")
    yield pods
    await pods.stop()


def static_worker() -> Any:
    """What mirror creation reads of a static pod's worker."""
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {"containers": [{"name": "main", "image": "localhost/busybox:local"}]}}
    pod = static.static_pod(manifest, "/m/web.yaml", "edge-1")
    return types.SimpleNamespace(pod=pod, namespace="default", name="web-edge-1", key="default/web-edge-1",
                                 uid=pod["metadata"]["uid"], static=True, mirror_changed=lambda: None)


@pytest.mark.parametrize(("reason", "retried_later"), [("AlreadyExists", False), ("Forbidden", True)])
async def test_mirror_creation_refused(ctx: Context, manager: PodManager, reason: str, retried_later: bool) -> None:
    meta, task = await serving(ctx, {("insert", "pod"): refusal(409 if reason == "AlreadyExists" else 403, reason)})
    worker = static_worker()
    await manager._create_mirror(worker, "node-uid")
    task.cancel()
    assert (worker.uid in manager.mirror_retry) is retried_later
    assert "default/web-edge-1" not in manager.mirrors


async def test_mirror_created(ctx: Context, manager: PodManager) -> None:
    meta, task = await serving(ctx, {("insert", "pod"): created})
    await manager._create_mirror(static_worker(), "node-uid")
    task.cancel()
    assert manager.mirrors["default/web-edge-1"]["metadata"]["uid"] == "u-1"


@pytest.mark.parametrize(("answer", "done"), [
    (lambda request: contracts.bare_reply(request, "OK"), True),
    (refusal(404, "NotFound"), True),
    (refusal(409, "Conflict"), True),
    (refusal(403, "Forbidden"), True),
    (refusal(503, "ServiceUnavailable"), False),
])
async def test_mirror_delete_done_when_gone_replaced_or_not_ours(ctx: Context, manager: PodManager, answer: Answer,
                                                                  done: bool) -> None:
    mirror = {"metadata": {"name": "web-edge-1", "namespace": "default", "uid": "m-1"}}
    manager.mirrors["default/web-edge-1"] = mirror
    meta, task = await serving(ctx, {("delete", "pod"): answer})
    await manager._delete_mirror("default/web-edge-1", mirror)
    task.cancel()
    assert ("default/web-edge-1" not in manager.mirrors) is done


@pytest.mark.parametrize(("answer", "found"), [
    (lambda request: contracts.bare_reply(request, {"metadata": {"name": "cfg"}, "data": {"a": "1"}}), True),
    (lambda request: request.response(['{"metadata": {"name": "cfg"}, "data": {"a": "1"}}']), True),  # upstream local answer
    (lambda request: contracts.bare_reply(request, {"data": {}}), False),  # no metadata: not an object
    (refusal(404, "NotFound"), False),
    (lambda request: request.response("[not json"), False),
])
async def test_object_queries_give_the_object_or_nothing(ctx: Context, manager: PodManager, answer: Answer, found: bool) -> None:
    meta, task = await serving(ctx, {("query", "configmap"): answer})
    objects = await manager.fetch_objects("default", [("configmap", "cfg")])
    task.cancel()
    assert (objects[("configmap", "cfg")] is not None) is found


async def test_object_query_timeout_gives_nothing(ctx: Context, manager: PodManager) -> None:
    meta, task = await serving(ctx, {})
    manager.requests.timeout = 0.05
    assert await manager.fetch_objects("default", [("secret", "s")]) == {("secret", "s"): None}
    task.cancel()


# -- events ---------------------------------------------------------------------------------------
async def test_events_are_told_and_never_fail_the_caller(ctx: Context) -> None:
    recorder = EventRecorder(CloudRequests(ctx, source="edged"), "edge-1", enabled=True)
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {"containers": [{"name": "c"}]}}
    recorder.pod(pod, "Normal", "Pulling", "Pulling image", "c")
    sent = await ctx.receive("metamanager")
    assert (sent.route.source, sent.route.group, sent.route.operation) == ("edged", "meta", "insert")
    assert sent.route.resource.startswith("ns/event/p.") and not sent.header.sync
    assert sent.content["involvedObject"]["fieldPath"] == "spec.containers{c}"
    ctx.unregister("metamanager")
    recorder.pod(pod, "Normal", "Pulled", "Pulled image", "c")  # nobody to take it: dropped quietly


# -- the hollow Edged ---------------------------------------------------------------------------
async def test_hollow_takes_the_existing_lease_when_creation_is_refused(tmp_path: Path, ctx: Context) -> None:
    existing = {"metadata": {"name": "edge-1", "namespace": "kube-node-lease", "uid": "l-1"}, "spec": {}}
    meta, task = await serving(ctx, {("insert", "lease"): refusal(409, "AlreadyExists"),
                                     ("query", "lease"): lambda request: contracts.object_reply(request, existing),
                                     ("update", "lease"): refusal(409, "Conflict")})
    hollow = HollowEdged(config(tmp_path))
    hollow.requests = CloudRequests(ctx, source="edged", timeout=1.0)
    await hollow._renew()
    assert hollow.lease == existing
    await hollow._renew()  # the update refused: start over next time
    task.cancel()
    assert hollow.lease is None
    assert existing["spec"] == {}, "the renewal must not change the lease it was given"
    assert meta.asked == [("insert", "lease"), ("query", "lease"), ("update", "lease")]
