"""Upstream's recorded edge frames (join.jsonl) replayed against our CloudHub over real mTLS.

Our replies must match the recorded cloud replies in shape: operation, source, group, resource,
parent linkage, the content's keys and whether a resourceversion header is present.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from cores.controlplane.launcher import ControlPlane
from cores.edge.edgehub import certificate
from cores.wire import decode
from tests.integration.edgecloud import Cloud, start_cloud
from tests.captures import UPSTREAM
from tests.timeouts import scaled

NODE = "peer-edge-cap"


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("replay-cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


def recorded_exchanges() -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each edge->cloud frame of join.jsonl with the cloud reply that named it as parent (or None)."""
    frames = [json.loads(line) for line in (UPSTREAM / "join.jsonl").read_text().splitlines()]
    replies = {f["frame"]["header"].get("parent_msg_id"): f["frame"] for f in frames if f["dir"] == "cloud->edge"}
    return [(f["frame"], replies.get(f["frame"]["header"]["msg_id"])) for f in frames if f["dir"] == "edge->cloud"]


def shape(frame: dict[str, Any]) -> dict[str, Any]:
    content = frame["content"]
    route = frame["route"]
    return {
        "source": route.get("source"), "group": route.get("group"), "operation": route.get("operation"),
        "resource": route.get("resource"),
        "content": sorted(content) if isinstance(content, dict) else type(content).__name__,
    }


def test_join_replayed_against_our_cloudhub(controlplane: ControlPlane, cloud: Cloud, tmp_path: Path) -> None:
    paths = certificate.CertificatePaths(tmp_path / "ca.crt", tmp_path / "node.crt", tmp_path / "node.key")
    certificate.bootstrap(f"https://127.0.0.1:{cloud.https_port}", cloud.token(controlplane.kubeconfig), NODE, paths)
    import ssl

    context = ssl.create_default_context(cafile=str(paths.ca))
    context.check_hostname = False
    context.load_cert_chain(paths.cert, paths.key)
    exchanges = recorded_exchanges()
    assert sum(1 for _, reply in exchanges if reply) >= 10

    async def replay() -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
        compared = []
        async with websockets.connect(
            f"wss://127.0.0.1:{cloud.websocket_port}/e632aba927ea4ac2b575ec1603d56f10/{NODE}/events", ssl=context,
            additional_headers=[("Connectionuse", "msg"), ("Node_id", NODE), ("Project_id", "e632aba927ea4ac2b575ec1603d56f10")],
            ping_interval=None,
        ) as connection:
            for sent, recorded in exchanges:
                await connection.send(json.dumps(sent, separators=(",", ":")) + "\n")
                if recorded is None:
                    continue
                while True:
                    ours = json.loads(await asyncio.wait_for(connection.recv(), scaled(10)))
                    decode(json.dumps(ours))  # a valid message by our own codec, too
                    if ours["header"].get("parent_msg_id") == sent["header"]["msg_id"]:
                        break
                compared.append((sent, recorded, ours))
        return compared

    for sent, recorded, ours in asyncio.run(replay()):
        what = f'{sent["route"]["operation"]} {sent["route"]["resource"]}'
        assert shape(ours) == shape(recorded), what
        assert ("resourceversion" in ours["header"]) == ("resourceversion" in recorded["header"]), what
