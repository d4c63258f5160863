"""CloudRequests and MetaManager's request path on a real beehive Context, with a fake clock
(tests/fakeclock.py): one id end to end, typed replies, a clear timeout, late replies dropped, offline answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cores.beehive import Context, Message
from cores.common import layout as layouts
from cores.common.config import Config
from cores.edge.metamanager import MetaManager
from cores.link import contracts, routing
from cores.link.requests import CloudRequests
from cores.link.status import RequestTimeout, StatusError
from tests.fakeclock import in_fake_time


class Cloud:
    """Module ``websocket`` standing in for EdgeHub + the cloud: records what reaches it, answers
    through MetaManager's mailbox as EdgeHub does, after ``delay`` seconds of (fake) time."""

    def __init__(self, ctx: Context, delay: float = 0.0, answer: Any = None) -> None:
        self.ctx, self.delay, self.answer = ctx, delay, answer
        self.seen: list[Message] = []
        ctx.register("websocket", "hub")

    async def run(self) -> None:
        while True:
            message = await self.ctx.receive("websocket")
            self.seen.append(message)
            if not message.parent_msg_id:
                asyncio.get_running_loop().call_later(self.delay, self._reply, message)

    def _reply(self, message: Message) -> None:
        answer = self.answer if self.answer is not None else {"metadata": {"name": "n1", "uid": "u1"}}
        self.ctx.send_nowait("metamanager", contracts.object_reply(message, answer))


def meta_manager(tmp_path: Path) -> MetaManager:
    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    document = layouts.edgecore_document(layout, node_name="n1", cloud_host="127.0.0.1", token="", node_ip="127.0.0.1",
                                         runtime_endpoint="unix:///nonexistent.sock")
    return MetaManager(Config(document, str(layout.edgecore_config)))


async def running(ctx: Context, manager: MetaManager, cloud: Cloud, connected: bool = True) -> list[asyncio.Task[None]]:
    ctx.register("metamanager", "meta")
    tasks = [asyncio.create_task(manager.start(ctx)), asyncio.create_task(cloud.run())]
    if connected:
        await ctx.send("metamanager", routing.connection_event(True))
    await asyncio.sleep(0)
    return tasks


async def stopped(manager: MetaManager, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await manager.stop()


def test_one_id_from_requester_to_cloud_and_back_with_the_reply_kept_and_acked(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctx = Context()
        manager, cloud = meta_manager(tmp_path), Cloud(ctx, delay=1.0)
        tasks = await running(ctx, manager, cloud)
        try:
            obj = await CloudRequests(ctx, source="edged", timeout=5).insert("null/node/n1", {"metadata": {"name": "n1"}})
            assert obj == {"metadata": {"name": "n1", "uid": "u1"}}
            request = cloud.seen[0]
            await asyncio.sleep(0.1)
            ack = cloud.seen[1]
            assert ack.parent_msg_id != request.msg_id and ack.content == "OK"  # insert replies are acked (feedback)
            assert request.route.resource == "null/node/n1" and not manager._pending
            assert await asyncio.to_thread(manager.store.get, "null/node/n1") is not None
        finally:
            await stopped(manager, tasks)

    in_fake_time(scenario)


def test_a_reply_after_the_timeout_is_a_timeout_error_and_is_dropped(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctx = Context()
        manager, cloud = meta_manager(tmp_path), Cloud(ctx, delay=40.0)
        tasks = await running(ctx, manager, cloud)
        loop = asyncio.get_running_loop()
        try:
            started = loop.time()
            with pytest.raises(RequestTimeout) as raised:
                await CloudRequests(ctx, source="edged", timeout=30).patch("null/nodepatch/n1", "{}")
            assert raised.value.code == 504 and round(loop.time() - started) == 30
            await asyncio.sleep(15)  # the late reply arrives: nobody waits, nothing breaks
            assert not ctx.pending_requests()
        finally:
            await stopped(manager, tasks)

    in_fake_time(scenario)


def test_refusals_are_status_errors_with_code_and_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctx = Context()
        refusal = StatusError.make(403, "Forbidden", "not yours")
        manager, cloud = meta_manager(tmp_path), Cloud(ctx, answer={})
        cloud._reply = lambda message: ctx.send_nowait("metamanager", contracts.error_reply(message, refusal))  # type: ignore[method-assign]
        tasks = await running(ctx, manager, cloud)
        try:
            with pytest.raises(StatusError) as raised:
                await CloudRequests(ctx, source="edged").query("default/secret/s")
            assert (raised.value.code, raised.value.reason, raised.value.message) == (403, "Forbidden", "not yours")
        finally:
            await stopped(manager, tasks)

    in_fake_time(scenario)


def test_offline_writes_fail_at_once_and_queries_answer_from_the_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctx = Context()
        manager, cloud = meta_manager(tmp_path), Cloud(ctx)
        tasks = await running(ctx, manager, cloud, connected=False)
        requests = CloudRequests(ctx, source="edged", timeout=10)
        try:
            with pytest.raises(StatusError) as raised:
                await requests.insert("kube-node-lease/lease/n1", {})
            assert raised.value.code == 503
            with pytest.raises(StatusError):
                await requests.query("default/configmap/c")  # nothing stored yet
            await asyncio.to_thread(manager.store.put, "default/configmap/c", "configmap", {"metadata": {"name": "c"}})
            assert await requests.query("default/configmap/c") == {"metadata": {"name": "c"}}
            assert cloud.seen == []
        finally:
            await stopped(manager, tasks)

    in_fake_time(scenario)


def test_a_link_cut_answers_the_requests_in_flight_with_503(tmp_path: Path) -> None:
    async def scenario() -> None:
        ctx = Context()
        manager, cloud = meta_manager(tmp_path), Cloud(ctx, delay=1000.0)
        tasks = await running(ctx, manager, cloud)
        try:
            asking = asyncio.create_task(CloudRequests(ctx, source="edged", timeout=60).update("kube-node-lease/lease/n1", {}))
            await asyncio.sleep(1)
            await ctx.send("metamanager", routing.connection_event(False))
            with pytest.raises(StatusError) as raised:
                await asking
            assert raised.value.code == 503
        finally:
            await stopped(manager, tasks)

    in_fake_time(scenario)


async def test_no_meta_manager_is_a_clear_503() -> None:
    with pytest.raises(StatusError) as raised:
        await CloudRequests(Context(), source="edged").query("default/pod/p")
    assert raised.value.code == 503 and "metamanager" in raised.value.message
