"""CVE-2022-31077 (a malicious response crashing the peer), aimed at our edge: EdgeHub, MetaManager
and Edged take whatever a hostile or broken cloud sends, drop what is malformed, and go on.

Each test sends the real module junk through its real entry point, then shows the module still
works by sending it something good.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cores.beehive import Context, Message
from cores.common import layout as layouts
from cores.common.config import Config
from cores.edge.cri import CriClient
from cores.edge.edged.pods import PodManager
from cores.edge.edgehub import EdgeHub
from cores.link import contracts, routing
from cores.link.requests import CloudRequests
from cores.link.status import StatusError
from tests.fakeclock import in_fake_time
from tests.unit.link.test_requests import Cloud, meta_manager, running, stopped

JUNK_CONTENT: list[Any] = [
    None, 5, "text", [], ["{bad"], [7], {"Err": 5}, {"Err": {"ErrStatus": []}}, {"Err": {"ErrStatus": {"code": "x"}}},
    {"Object": "not an object", "Err": None}, {"ErrStatus": "boom"}, {"metadata": [1, 2]}, {"a": {"b": {"c": [None]}}},
]


def edge_config(tmp_path: Path) -> Config:
    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    document = layouts.edgecore_document(layout, node_name="n1", cloud_host="127.0.0.1", token="", node_ip="127.0.0.1",
                                         runtime_endpoint="unix:///nonexistent.sock")
    return Config(document, str(layout.edgecore_config))


@pytest.mark.parametrize("content", JUNK_CONTENT)
def test_cve_2022_31077_meta_manager_survives_malicious_replies(tmp_path: Path, content: Any) -> None:
    async def scenario() -> None:
        ctx = Context()
        manager, cloud = meta_manager(tmp_path), Cloud(ctx, delay=0.1)
        replies = iter([content])
        cloud._reply = lambda message: ctx.send_nowait(  # type: ignore[method-assign]
            "metamanager", message.response(next(replies, {"Object": {"metadata": {"name": "ok"}}, "Err": None})))
        tasks = await running(ctx, manager, cloud)
        requests = CloudRequests(ctx, source="edged", timeout=5)
        try:
            try:
                await requests.query("default/configmap/c")
            except StatusError as error:
                assert error.code  # a refusal with a code, never a crash
            assert await requests.insert("null/node/n1", {}) == {"metadata": {"name": "ok"}}  # still serving
            assert not any(task.done() for task in tasks)
        finally:
            await stopped(manager, tasks)

    in_fake_time(scenario)


@pytest.mark.parametrize("content", JUNK_CONTENT)
def test_cve_2022_31077_meta_manager_survives_malicious_pushes(tmp_path: Path, content: Any) -> None:
    async def scenario() -> None:
        ctx = Context()
        manager, cloud = meta_manager(tmp_path), Cloud(ctx)
        tasks = await running(ctx, manager, cloud)
        try:
            for resource in ("default/pod/p", "default/configmap/c", "no/such/kind/x", "", "null/node/n1"):
                await ctx.send("metamanager", contracts.push("insert", resource, content))
            good = contracts.push("insert", "default/configmap/ok", {"metadata": {"name": "ok", "uid": "u"}})
            await ctx.send("metamanager", good)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if any(m.parent_msg_id == good.msg_id for m in cloud.seen):
                    break
            assert any(m.parent_msg_id == good.msg_id for m in cloud.seen), "the good push was never acked"
            assert not any(task.done() for task in tasks)
        finally:
            await stopped(manager, tasks)

    in_fake_time(scenario)


async def test_cve_2022_31077_edged_survives_malicious_pods(tmp_path: Path) -> None:
    ctx = Context()
    cri = CriClient("unix:///nonexistent.sock", timeout=1)
    manager = PodManager(CloudRequests(ctx, source="edged"), cri, node_name="n1", node_ip="127.0.0.1",
                         root_directory=str(tmp_path / "root"), logs_root=str(tmp_path / "logs"))
    try:
        junk_pods: list[Any] = [*JUNK_CONTENT, {"metadata": "x", "spec": "y"}, {"metadata": {"uid": "../../x", "name": "p"},
                                                                              "spec": {"containers": [{"name": "c"}]}},
                                {"metadata": {"uid": "u1", "name": "p", "namespace": "default"}, "spec": {"nodeName": ["n1"]}},
                                {"metadata": {"uid": "u2", "name": "p", "namespace": "default", "annotations": "x"},
                                 "spec": {"containers": "c"}}]
        for pod in junk_pods:
            for operation in ("insert", "update", "delete"):
                manager.handle(Message.new(source="metamanager", group="meta", operation=operation, resource="default/pod/p",
                                           content=pod))
        assert "../../x" not in manager.workers
        assert not (tmp_path / "x").exists()
    finally:
        await manager.stop()
        await cri.close()


async def test_cve_2022_31077_edge_hub_drops_malformed_frames_and_goes_on(tmp_path: Path) -> None:
    hub = EdgeHub(edge_config(tmp_path))
    ctx = Context()
    ctx.register("metamanager", "meta")
    hub.ctx = ctx
    frames: list[str | bytes] = ["{not json", b"\xff\xfe", "[]", '{"header":5}', '{"route":{"group":7}}',
                                 '{"header":{},"route":{"group":"nope"},"content":null}', "x" * 100]
    for frame in frames:
        await hub._receive(frame)
    good = contracts.push("update", "default/configmap/c", {"metadata": {"name": "c"}})
    from cores.wire import encode

    await hub._receive(encode(good))
    delivered = await asyncio.wait_for(ctx.receive("metamanager"), 1)
    assert delivered.msg_id == good.msg_id and routing.from_cloud(good).group == "meta"
