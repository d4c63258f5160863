"""CloudHub's WebSocket server (port 10000): one session per edge node over mutual TLS.

A thin adapter between websockets and the link core: admission and frames here, decisions in
:mod:`cores.link.routing` and timing in :mod:`cores.link.session`.

Admission (before the upgrade): the client certificate must chain to the KubeEdge CA (TLS does
that) and, with ``authorization.enable`` (our default), its CN must be ``system:node:<Node_id>``;
``Connectionuse: msg`` and ``Node_id`` are required; ``nodeLimit`` caps sessions. A new
connection for a node replaces the old one. What a node sends is routed by the link's table:
keepalives reset the session's deadline, control frames are answered, replies and acks go to
their waiter or to CloudHub's mailbox (the ack queues), everything else to its module group with
the ``node/<id>/`` prefix. A malformed or oversized frame is logged with the node's name and
dropped, and a node that keeps sending them is disconnected, without touching other sessions.

Upstream, each session reads at most ``nodeMessageQPS`` frames a second (bursts of
``nodeMessageBurst``, twice EdgeHub's own default limit): a node that floods the cloud only slows
its own reader, TCP pushes back on it alone, and the queries it would have queued ahead of every
other node's in the cloud modules are never read.

Downstream, nothing waits on a node: :meth:`Hub.send_to_node` queues the frame in the session's
:class:`~cores.link.session.Outbox` and returns, and the session's own writer sends it. A node
that stops reading is cut, its session closed for the next one to resend what it never acked,
when its backlog passes ``sendBufferBytes`` or one write takes longer than ``writeTimeout``
(upstream's key, 30 s); the mailbox and every other session go on meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import ssl
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.server import Server, ServerConnection
from websockets.http11 import Request, Response

from cores.beehive import Context, Message
from cores.common.tasks import TaskSupervisor
from cores.link import routing
from cores.link.routing import Action
from cores.link.session import KeepaliveDeadline, MalformedWindow, Outbox, TokenBucket
from cores.wire import CodecError, Limits, decode, encode

log = logging.getLogger("kubeedge.cloudhub")

NODE_CN_PREFIX = "system:node:"
# websockets refuses frames past this before we see them; the codec's own limit (smaller) drops
# an oversized message without closing the session.
HARD_FRAME_LIMIT = 16 * 1024 * 1024
REAP_SECONDS = 1.0
CLOSE_SECONDS = 10.0  # a closing handshake not done by then is cut (websockets' own close_timeout)
WRITE_TIMEOUT_SECONDS = 30.0  # upstream's cloudHub.writeTimeout default
# What may wait for one node's writer: twice the codec's largest frame, so one big object never
# cuts a healthy session. Only a node that stops reading reaches it, and it is then cut, so the
# bound is what one such node can make the cloud hold, not what every node holds.
SEND_BUFFER_BYTES = 16 * 1024 * 1024
# websockets pauses its writer above this many bytes in the transport's buffer (its own default
# is 32 KiB); the Outbox holds the rest, so memory per node is about write_limit + sendBufferBytes.
WRITE_LIMIT_BYTES = 64 * 1024
# What one node may send a second (and in a burst): twice EdgeHub's messageQPS/messageBurst defaults.
NODE_MESSAGE_QPS, NODE_MESSAGE_BURST = 60.0, 120
THROTTLE_LOG_SECONDS = 60.0  # a throttled node is logged at most this often


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
    owner: str = "cloudhub"        # the module that gets acks and session events in its mailbox
    # Whether a client certificate was revoked, by its serial number as ssl's getpeercert() gives
    # it (upper-case hex); checked at every admission, whatever ``authorization`` says.
    is_revoked: Callable[[str], bool] = lambda serial: False
    write_timeout: float = WRITE_TIMEOUT_SECONDS  # one frame's write; a node slower than this is cut
    send_buffer_bytes: int = SEND_BUFFER_BYTES    # frames waiting for one node; past it the node is cut
    node_message_qps: float = NODE_MESSAGE_QPS    # frames read from one node a second; 0: no limit
    node_message_burst: int = NODE_MESSAGE_BURST


class NodeSession:
    """One connected node: its connection, keepalive deadline, window of malformed frames, and the
    outbox its writer (:meth:`write_loop`) empties."""

    sent_total = 0  # messages sent to all edges (process-wide counter for the traffic log line)

    def __init__(self, node_id: str, connection: ServerConnection, settings: HubSettings, now: float) -> None:
        self.node_id = node_id
        self.connection = connection
        self.keepalive = KeepaliveDeadline(settings.keepalive_timeout, now)
        self.malformed = MalformedWindow(settings.malformed_threshold)
        self.outbox: Outbox[str] = Outbox(settings.send_buffer_bytes)
        self.write_timeout = settings.write_timeout
        self.cut_reason = ""  # why the hub cut this session, "" while it is healthy
        self._queued = asyncio.Event()
        self.inbound = TokenBucket(settings.node_message_qps, settings.node_message_burst, now) \
            if settings.node_message_qps > 0 else None
        self.throttled_at = -THROTTLE_LOG_SECONDS

    async def throttle(self, now: float) -> None:
        """Wait, if this node sent more than its share: only its own reader waits."""
        if self.inbound is None:
            return
        delay = self.inbound.take(now)
        if delay > 0:
            if now - self.throttled_at >= THROTTLE_LOG_SECONDS:
                self.throttled_at = now
                log.warning("node %s sends more than %g messages a second (nodeMessageQPS): reading it slower",
                            self.node_id, self.inbound.rate)
            await asyncio.sleep(delay)

    def send(self, message: Message) -> bool:
        """Queue ``message`` for the writer; False when the session is cut or its backlog is full."""
        if self.cut_reason:
            return False
        if not self.outbox.put(encode(message)):
            self.cut(f"{self.outbox.size} bytes already wait to be sent (sendBufferBytes {self.outbox.max_size})")
            return False
        self._queued.set()
        return True

    async def write_loop(self) -> None:
        """Write queued frames in order, each within ``write_timeout``; a node slower than that is cut."""
        while not self.cut_reason:
            frame = self.outbox.take()
            if frame is None:
                self._queued.clear()
                await self._queued.wait()
                continue
            try:
                await asyncio.wait_for(self.connection.send(frame), self.write_timeout)
            except TimeoutError:
                self.cut(f"a write did not finish within {self.write_timeout:g}s (writeTimeout)")
                return
            except websockets.ConnectionClosed:
                return
            NodeSession.sent_total += 1

    def cut(self, reason: str) -> None:
        """End a session whose node does not read: abort the TCP connection, no closing handshake
        (it would wait behind the backlog). Its handler then ends the session as for any other loss."""
        if self.cut_reason:
            return
        self.cut_reason = reason
        self._queued.set()  # the writer sees the cut and stops
        log.warning("node %s does not read what is sent to it: %s; cutting its connection", self.node_id, reason)
        if self.connection.transport is not None:
            self.connection.transport.abort()


class Hub:
    def __init__(self, ctx: Context, settings: HubSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.sessions: dict[str, NodeSession] = {}
        self.received = 0  # messages from edges
        self.tasks = TaskSupervisor("cloudhub-sessions")
        self._server: Server | None = None

    async def start(self, tls: ssl.SSLContext) -> None:
        self._server = await websockets.serve(
            self._handle, self.settings.host, self.settings.port, ssl=tls, process_request=self._admit,
            max_size=HARD_FRAME_LIMIT, ping_interval=None, compression=None, server_header=None,
            write_limit=WRITE_LIMIT_BYTES,
        )
        self.tasks.keep(self._expire_sessions, "keepalive-reaper")
        log.info("websocket server listening on %s:%d", self.settings.host, self.settings.port)

    def traffic(self) -> str:
        return f"cloudhub traffic: {NodeSession.sent_total} messages sent to edges, {self.received} received"

    async def stop(self) -> None:
        log.info("%s", self.traffic())
        await self.tasks.close()
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
        serial = _peer_serial(connection)
        try:
            revoked = self.settings.is_revoked(serial)
        except Exception as error:  # noqa: BLE001 - fail closed: a revocation check that broke admits nobody
            log.error("revocation check of certificate %s failed: %s", serial, error)
            return self._deny(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, node_id, "cannot check certificate revocation")
        if revoked:
            return self._deny(connection, http.HTTPStatus.FORBIDDEN, node_id, f"client certificate {serial} is revoked")
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
        now = asyncio.get_running_loop().time()
        session = NodeSession(node_id, connection, self.settings, now)
        previous = self.sessions.get(node_id)
        self.sessions[node_id] = session
        if previous is not None:
            log.info("node %s connected again: closing its previous session", node_id)
            self._close(previous, 4000, "replaced by a new connection")  # in the background: it may not read
        writer = self.tasks.spawn(session.write_loop(), f"write-{node_id}")
        log.info("node %s connected from %s", node_id, connection.remote_address[0] if connection.remote_address else "?")
        await self._notify(node_id, True)
        try:
            async for frame in connection:
                await session.throttle(asyncio.get_running_loop().time())
                if session.cut_reason:
                    # frames the connection had already read stay queued after the cut; a flooding
                    # node's would take seconds at its throttled rate, and they are not worth reading
                    break
                await self._on_frame(session, frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            writer.cancel()
            await self._end(session)
            log.info("node %s disconnected", node_id)

    async def _end(self, session: NodeSession) -> None:
        if self.sessions.get(session.node_id) is session:
            del self.sessions[session.node_id]
            await self._notify(session.node_id, False)

    async def _notify(self, node_id: str, connected: bool) -> None:
        """Tell CloudHub's queues and the cloud modules (EdgeController, SyncController) that a node came or went."""
        message = routing.session_event(node_id, connected)
        if self.settings.owner in self.ctx.modules():
            await self.ctx.send(self.settings.owner, message)
        for group in routing.SESSION_EVENT_GROUPS:
            if self.ctx.group_members(group):
                await self.ctx.send_to_group(group, message)

    async def _expire_sessions(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REAP_SECONDS)
            now = loop.time()
            for session in list(self.sessions.values()):
                if session.keepalive.expired(now):
                    log.warning("node %s sent no keepalive for %gs: closing its session",
                                session.node_id, self.settings.keepalive_timeout)
                    self._close(session, 4001, "keepalive timeout")
                    await self._end(session)

    # upstream -------------------------------------------------------------------------------
    async def _on_frame(self, session: NodeSession, frame: str | bytes) -> None:
        self.received += 1
        loop = asyncio.get_running_loop()
        try:
            message = decode(frame, self.settings.frame_limits)
        except CodecError as error:
            log.warning("node %s sent a bad frame, dropped: %s", session.node_id, error)
            if session.malformed.record(loop.time()):
                log.error("node %s keeps sending bad frames: closing its session", session.node_id)
                await session.connection.close(1008, "too many malformed frames")
            return
        await self.dispatch(session, message, loop.time())

    async def dispatch(self, session: NodeSession, message: Message, now: float) -> None:
        decision = routing.from_edge(session.node_id, message)
        if decision.action is Action.KEEPALIVE:
            session.keepalive.seen(now)
        elif decision.action is Action.ANSWER:
            session.send(decision.message)
        elif decision.action is Action.RESPONSE:
            # a reply a cloud module waits for, else an edge ack for CloudHub's queues
            if not self.ctx.send_response(decision.message) and self.settings.owner in self.ctx.modules():
                await self.ctx.send(self.settings.owner, routing.ack_event(decision.message))
        elif decision.action is Action.DELIVER and self.ctx.group_members(decision.group):
            await self.ctx.send_to_group(decision.group, decision.message)
        else:
            log.debug("node %s: %s dropped (%s)", session.node_id, message.describe(), decision.reason or "no module")

    # closing --------------------------------------------------------------------------------
    def close_node(self, node_id: str, code: int, reason: str) -> None:
        """Close ``node_id``'s session, if it has one, without waiting for it (e.g. its certificate was revoked)."""
        session = self.sessions.get(node_id)
        if session is not None:
            log.warning("closing the session of node %s (%d %s)", node_id, code, reason)
            self._close(session, code, reason)

    def _close(self, session: NodeSession, code: int, reason: str) -> None:
        """Start the closing handshake in the background; a peer that does not finish it in time is cut."""
        self.tasks.spawn(self._close_within(session, code, reason), f"close-{session.node_id}")

    async def _close_within(self, session: NodeSession, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(session.connection.close(code, reason), CLOSE_SECONDS)
        except TimeoutError:
            log.warning("node %s did not finish closing within %gs: connection cut", session.node_id, CLOSE_SECONDS)
            session.connection.transport.abort()

    # downstream -----------------------------------------------------------------------------
    async def send_to_node(self, node_id: str, message: Message) -> bool:
        """Queue ``message`` for ``node_id``'s session without waiting for the node; False when it has
        none (or it was just cut for not reading). Delivery is the reliable queue's business."""
        session = self.sessions.get(node_id)
        return session is not None and session.send(message)


def _peer_certificate(connection: ServerConnection) -> dict[str, Any]:
    cert: Any = connection.transport.get_extra_info("peercert") if connection.transport else None
    return cert if isinstance(cert, dict) else {}


def _peer_serial(connection: ServerConnection) -> str:
    return str(_peer_certificate(connection).get("serialNumber", ""))


def _peer_common_name(connection: ServerConnection) -> str:
    for rdn in _peer_certificate(connection).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""
