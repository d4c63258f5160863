"""beehive: message shape, responses, mailboxes, groups, sync requests, module lifecycle."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from cores.beehive import Context, MailboxFull, Message, ModuleFailed, ModuleRunner, SyncTimeout, UnknownModule
from cores.beehive.message import now_ms
from cores.wire import encode


def test_new_message_header() -> None:
    before = now_ms()
    message = Message.new(source="edged", group="meta", operation="query", resource="default/configmap/x")
    assert uuid.UUID(message.msg_id).version == 4
    assert before <= message.header.timestamp <= now_ms()
    wire = json.loads(encode(message))
    assert list(wire) == ["header", "route", "content"]
    assert list(wire["header"]) == ["msg_id", "timestamp"]  # parent and resourceversion only when set
    assert wire["route"] == {"source": "edged", "group": "meta", "operation": "query", "resource": "default/configmap/x"}


def test_response_copies_route_and_links_parent() -> None:
    # An edge ack as recorded: same source/group/resource as the push, operation response, content "OK".
    push = Message.new(source="edgecontroller", group="resource", operation="insert", resource="default/pod/p", resource_version="12")
    ack = push.response("OK")
    assert ack.parent_msg_id == push.msg_id and ack.msg_id != push.msg_id
    assert (ack.route.source, ack.route.group, ack.route.operation, ack.route.resource) == (
        "edgecontroller", "resource", "response", "default/pod/p")
    wire = json.loads(encode(ack))
    assert list(wire["header"]) == ["msg_id", "parent_msg_id", "timestamp"]
    assert wire["content"] == "OK"


def _message(n: int = 0) -> Message:
    return Message.new(source="test", group="g", operation="insert", resource=f"default/pod/p{n}")


async def test_send_receive_and_groups() -> None:
    ctx = Context()
    ctx.register("metamanager", "meta")
    ctx.register("twin", "twin")
    ctx.register("edged", "meta")
    await ctx.send("metamanager", _message(1))
    assert (await ctx.receive("metamanager")).route.resource == "default/pod/p1"
    await ctx.send_to_group("meta", _message(2))
    assert (await ctx.receive("metamanager")).route.resource == "default/pod/p2"
    assert (await ctx.receive("edged")).route.resource == "default/pod/p2"
    assert ctx.group_members("meta") == ["metamanager", "edged"]
    with pytest.raises(UnknownModule, match="nope"):
        await ctx.send("nope", _message())


async def test_full_mailbox_applies_back_pressure_then_fails() -> None:
    ctx = Context(mailbox_size=2, send_timeout=0.1)
    ctx.register("slow")
    await ctx.send("slow", _message(1))
    ctx.send_nowait("slow", _message(2))
    with pytest.raises(MailboxFull, match="'slow' is full"):
        ctx.send_nowait("slow", _message(3))
    with pytest.raises(MailboxFull):
        await ctx.send("slow", _message(3))

    # room made while the sender waits: the send goes through, nothing dropped
    async def drain_later() -> None:
        await asyncio.sleep(0.02)
        await ctx.receive("slow")

    ctx.send_timeout = 1.0
    drainer = asyncio.create_task(drain_later())
    await ctx.send("slow", _message(4))
    await drainer
    assert [(await ctx.receive("slow")).route.resource for _ in range(2)] == ["default/pod/p2", "default/pod/p4"]


async def test_send_sync_gets_response_by_parent_id() -> None:
    ctx = Context()
    ctx.register("responder")

    async def respond() -> None:
        request = await ctx.receive("responder")
        assert request.header.sync is True
        ctx.send_response(Message.new(source="x", group="g", operation="noise", resource="r"))  # unrelated: ignored
        assert ctx.send_response(request.response({"ok": True}))

    task = asyncio.create_task(respond())
    reply = await ctx.send_sync("responder", _message(), timeout=1)
    await task
    assert reply.content == {"ok": True}
    assert not list(ctx.pending_requests())


async def test_send_sync_times_out_with_clear_error() -> None:
    ctx = Context()
    ctx.register("silent")
    request = _message(9)
    with pytest.raises(SyncTimeout) as caught:
        await ctx.send_sync("silent", request, timeout=0.05)
    assert "no response from 'silent' within 0.05s" in str(caught.value)
    assert "default/pod/p9" in str(caught.value)
    # a late response finds nobody waiting and is reported as such
    assert ctx.send_response(request.response("late")) is False


class Recorder:
    def __init__(self, name: str, events: list[str], fail: bool = False) -> None:
        self.name, self.group, self.events, self.fail = name, name, events, fail

    async def start(self, ctx: Context) -> None:
        self.events.append(f"start {self.name}")
        if self.fail:
            raise RuntimeError("cannot bind port")
        await ctx.receive(self.name)

    async def stop(self) -> None:
        self.events.append(f"stop {self.name}")


async def test_runner_stops_in_reverse_order() -> None:
    events: list[str] = []
    stop = asyncio.Event()
    runner = ModuleRunner(Context(), [Recorder("a", events), Recorder("b", events), Recorder("c", events)])
    task = asyncio.create_task(runner.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await task
    assert events == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_runner_reports_failing_module_by_name() -> None:
    events: list[str] = []
    ctx = Context()
    runner = ModuleRunner(ctx, [Recorder("a", events), Recorder("b", events, fail=True), Recorder("c", events)])
    with pytest.raises(ModuleFailed, match="module b failed: cannot bind port"):
        await runner.run(asyncio.Event())
    assert events == ["start a", "start b", "stop a"]  # c never started, a stopped cleanly
    assert ctx.modules() == []
