"""CloudHub's WebSocket server (port 10000): one session per edge node over mutual TLS.

Admission (before the upgrade): the client certificate must chain to the KubeEdge CA (TLS does
that) and, with ``authorization.enable`` (our default), its CN must be ``system:node:<Node_id>``;
``Connectionuse: msg`` and ``Node_id`` are required; ``nodeLimit`` caps sessions. A new
connection for a node replaces the old one. Upstream traffic gets the ``node/<id>/`` prefix and
goes to EdgeController (DeviceController for the twin); keepalives reset the session's
deadline and nothing else; a malformed or oversized frame is logged with the node's name and
dropped, and a node that keeps sending them is disconnected, without touching other sessions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import ssl
import time
from typing import Any

import websockets
from websockets.asyncio.server import Server, ServerConnection
from websockets.http11 import Request, Response

from cores.beehive import Context, Message
from cores.beehive.message import OP_KEEPALIVE, OP_RESPONSE
from cores.common.resource import add_node_prefix
from cores.wire import CodecError, Limits, decode, encode

log = logging.getLogger("kubeedge.cloudhub")

NODE_CN_PREFIX = "system:node:"
CONTROL_OPERATIONS = frozenset({"ping", "pong", "config"})
# websockets refuses frames past this before we see them; the codec's own limit (smaller) drops
# an oversized message without closing the session.
HARD_FRAME_LIMIT = 16 * 1024 * 1024


@dataclasses.dataclass
class HubSettings:
    host: str
    port: int
    keepalive_timeout: float
    node_limit: int
    authorization: bool
    authorization_debug: bool
    frame_limits: Limits = Limits()
    malformed_threshold: int = 20  # malformed frames per minute before the session is closed


class NodeSession:
    """One connected node: its connection, keepalive deadline and count of malformed frames."""

    sent_total = 0  # messages sent to all edges (process-wide counter for the traffic log line)

    def __init__(self, node_id: str, connection: ServerConnection, keepalive_timeout: float) -> None:
        self.node_id = node_id
        self.connection = connection
        self.keepalive_timeout = keepalive_timeout
        self.deadline = time.monotonic() + keepalive_timeout
        self._malformed: list[float] = []

    def keepalive(self) -> None:
        self.deadline = time.monotonic() + self.keepalive_timeout

    def expired(self, now: float) -> bool:
        return now > self.deadline

    def count_malformed(self, threshold: int) -> bool:
        """Record one malformed frame; True when the node has sent too many in the last minute."""
        now = time.monotonic()
        self._malformed = [t for t in self._malformed if now - t < 60] + [now]
        return len(self._malformed) > threshold

    async def send(self, message: Message) -> None:
        await self.connection.send(encode(message))
        NodeSession.sent_total += 1


class Hub:
    def __init__(self, ctx: Context, settings: HubSettings, on_ack: Any = None, on_session: Any = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.on_ack = on_ack  # async (node, message): an edge ack for a queued push
        self.on_session = on_session  # (node, connected: bool)
        self.sessions: dict[str, NodeSession] = {}
        self.received = 0  # messages from edges
        self._server: Server | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self, tls: ssl.SSLContext) -> None:
        self._server = await websockets.serve(
            self._handle, self.settings.host, self.settings.port, ssl=tls, process_request=self._admit,
            max_size=HARD_FRAME_LIMIT, ping_interval=None, compression=None, server_header=None,
        )
        self._reaper = asyncio.create_task(self._expire_sessions())
        log.info("websocket server listening on %s:%d", self.settings.host, self.settings.port)

    def traffic(self) -> str:
        return f"cloudhub traffic: {NodeSession.sent_total} messages sent to edges, {self.received} received"

    async def stop(self) -> None:
        log.info("%s", self.traffic())
        if self._reaper is not None:
            self._reaper.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # admission ------------------------------------------------------------------------------
    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        headers = request.headers
        node_id = headers.get("Node_id", "").strip()
        if headers.get("Connectionuse", "").strip() != "msg":
            return self._deny(connection, http.HTTPStatus.BAD_REQUEST, node_id, "Connectionuse: msg header required")
        if not node_id:
            return self._deny(connection, http.HTTPStatus.BAD_REQUEST, node_id, "Node_id header required")
        common_name = _peer_common_name(connection)
        if common_name != NODE_CN_PREFIX + node_id:
            reason = f"client certificate CN {common_name!r} may not speak for node {node_id!r}"
            if self.settings.authorization and not self.settings.authorization_debug:
                return self._deny(connection, http.HTTPStatus.FORBIDDEN, node_id, reason)
            log.warning("authorization (debug mode, not enforced): %s", reason)
        if node_id not in self.sessions and len(self.sessions) >= self.settings.node_limit:
            return self._deny(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, node_id,
                              f"node limit reached ({self.settings.node_limit}; cloudHub.nodeLimit)")
        return None

    @staticmethod
    def _deny(connection: ServerConnection, status: http.HTTPStatus, node_id: str, reason: str) -> Response:
        log.warning("refused connection from node %r: %s", node_id, reason)
        return connection.respond(status, reason + "\n")

    # sessions -------------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        node_id = connection.request.headers["Node_id"].strip() if connection.request else ""
        session = NodeSession(node_id, connection, self.settings.keepalive_timeout)
        previous = self.sessions.get(node_id)
        self.sessions[node_id] = session
        if previous is not None:
            log.info("node %s connected again: closing its previous session", node_id)
            await previous.connection.close(4000, "replaced by a new connection")
        log.info("node %s connected from %s", node_id, connection.remote_address[0] if connection.remote_address else "?")
        await self._notify(node_id, "connected")
        try:
            async for frame in connection:
                await self._on_frame(session, frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.sessions.get(node_id) is session:
                del self.sessions[node_id]
                await self._notify(node_id, "disconnected")
            log.info("node %s disconnected", node_id)

    async def _notify(self, node_id: str, event: str) -> None:
        """Tell cloud modules (EdgeController, SyncController) that a node came or went."""
        if self.on_session is not None:
            self.on_session(node_id, event == "connected")
        message = Message.new(source="cloudhub", group="resource", operation=event, resource=f"node/{node_id}")
        for group in ("edgecontroller", "synccontroller"):
            if self.ctx.group_members(group):
                await self.ctx.send_to_group(group, message)

    async def _expire_sessions(self) -> None:
        while True:
            await asyncio.sleep(1)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.expired(now):
                    log.warning("node %s sent no keepalive for %gs: closing its session",
                                session.node_id, self.settings.keepalive_timeout)
                    asyncio.create_task(session.connection.close(4001, "keepalive timeout"))
                    if self.sessions.get(session.node_id) is session:
                        del self.sessions[session.node_id]
                        await self._notify(session.node_id, "disconnected")

    # upstream -------------------------------------------------------------------------------
    async def _on_frame(self, session: NodeSession, frame: str | bytes) -> None:
        self.received += 1
        try:
            message = decode(frame, self.settings.frame_limits)
        except CodecError as error:
            log.warning("node %s sent a bad frame, dropped: %s", session.node_id, error)
            if session.count_malformed(self.settings.malformed_threshold):
                log.error("node %s keeps sending bad frames: closing its session", session.node_id)
                await session.connection.close(1008, "too many malformed frames")
            return
        await self.dispatch_upstream(session, message)

    async def dispatch_upstream(self, session: NodeSession, message: Message) -> None:
        operation = message.route.operation
        if operation == OP_KEEPALIVE:
            session.keepalive()
            return
        if operation in CONTROL_OPERATIONS:
            await session.send(message.response("ack"))
            return
        if not message.route.resource:
            log.debug("node %s sent a message without resource (%s), ignored", session.node_id, message.describe())
            return
        message.route.resource = add_node_prefix(session.node_id, message.route.resource)
        if operation == OP_RESPONSE:
            if not self.ctx.send_response(message):
                await self._deliver_ack(message)
            return
        group = "devicecontroller" if message.route.source == "twin" else "edgecontroller"
        if not self.ctx.group_members(group):
            log.debug("no %s module for %s from node %s", group, message.describe(), session.node_id)
            return
        await self.ctx.send_to_group(group, message)

    async def _deliver_ack(self, message: Message) -> None:
        """An edge ack (or a reply nobody waits for): the reliable queues match it by parent id."""
        if self.on_ack is not None:
            await self.on_ack(message)

    # downstream -----------------------------------------------------------------------------
    async def send_to_node(self, node_id: str, message: Message) -> bool:
        session = self.sessions.get(node_id)
        if session is None:
            return False
        try:
            await session.send(message)
        except websockets.ConnectionClosed:
            return False
        return True


def _peer_common_name(connection: ServerConnection) -> str:
    cert: Any = connection.transport.get_extra_info("peercert") if connection.transport else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""
