"""Attacking the cloud as a stolen edge would: a legitimate node certificate, raw WebSocket
sessions that send whatever the attacker likes, and a bystander node whose round-trip time shows
whether the attack disturbed anyone else.

Shared by the hostile-edge tests (issue: one node can never hurt another or the cluster)::

    context = node_credentials(cloud, token, tmp_path / "evil", "edge-evil")
    async with session(cloud, "edge-evil", context) as evil, session(cloud, "edge-calm", calm_ctx) as calm:
        await evil.send(encode(attack))
        reply = await ask(evil, message)                  # the reply to one request, by parent id
        assert await bystander_latency(calm, "edge-calm") < 2.0
"""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path
from typing import Any

import websockets

from cores.beehive import Message
from cores.edge.edgehub import certificate
from cores.link import contracts
from cores.wire import encode
from tests.integration.edgecloud import Cloud
from tests.timeouts import scaled

PROJECT_ID = "e632aba927ea4ac2b575ec1603d56f10"


def node_credentials(cloud: Cloud, token: str, base: Path, node_name: str) -> ssl.SSLContext:
    """Join as ``node_name`` through the real bootstrap (token, CSR) and return a TLS context with its certificate."""
    base.mkdir(parents=True, exist_ok=True)
    paths = certificate.CertificatePaths(base / "rootCA.crt", base / "server.crt", base / "server.key")
    certificate.bootstrap(f"https://127.0.0.1:{cloud.https_port}", token, node_name, paths)
    return context_for(paths)


def context_for(paths: certificate.CertificatePaths) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(paths.ca))
    context.check_hostname = False
    context.load_cert_chain(str(paths.cert), str(paths.key))
    return context


def session(cloud: Cloud, node_id: str, context: ssl.SSLContext, **options: Any) -> Any:
    """A raw session to CloudHub as ``node_id`` (the headers EdgeHub sends), as an async context manager."""
    return websockets.connect(
        f"wss://127.0.0.1:{cloud.websocket_port}/{PROJECT_ID}/{node_id}/events", ssl=context,
        additional_headers=[("Connectionuse", "msg"), ("Node_id", node_id), ("Project_id", PROJECT_ID)],
        ping_interval=None, open_timeout=scaled(10), max_size=16 * 1024 * 1024, **options,
    )


async def ask(connection: Any, message: Message, timeout: float = 10.0) -> dict[str, Any]:
    """Send ``message`` and return the decoded frame that replies to it (other frames are skipped)."""
    import asyncio

    await connection.send(encode(message))
    deadline = time.monotonic() + scaled(timeout)
    while True:
        frame = json.loads(await asyncio.wait_for(connection.recv(), max(deadline - time.monotonic(), 0.01)))
        if frame["header"].get("parent_msg_id") == message.msg_id:
            return dict(frame)


async def bystander_latency(connection: Any, node_name: str) -> float:
    """Seconds for one lease query of the bystander's own lease to be answered."""
    query = contracts.edge_request("query", f"kube-node-lease/lease/{node_name}")
    started = time.monotonic()
    await ask(connection, query)
    return time.monotonic() - started
