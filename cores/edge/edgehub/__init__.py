"""EdgeHub: the edge end of the cloud-edge link (module ``websocket``, group ``hub``, as upstream).

It makes sure the node has a certificate (bootstrapping with the join token when it has none),
dials ``wss://<server>/<projectID>/<node>/events`` with mutual TLS and upstream's headers, sends
a keepalive at once and every ``heartbeat`` seconds, hands what the cloud sends to the right
module group, and sends what modules give it, at most ``messageQPS`` (burst ``messageBurst``).
When the link breaks it reconnects after a capped exponential backoff with jitter, never in a
hot loop. It rotates the certificate at 70-90 % of its lifetime. Every connect and disconnect is
broadcast inside EdgeCore (``node/connection``, ``cloud_connected``/``cloud_disconnected``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import ssl
import time
from pathlib import Path
from typing import Any

from cores.beehive import Context, Message
from cores.common.config import Config
from cores.edge.edgehub import certificate
from cores.wire import CodecError, decode, encode

log = logging.getLogger("kubeedge.edgehub")

CONNECTED, DISCONNECTED = "cloud_connected", "cloud_disconnected"
BROADCAST_GROUPS = ("twin", "meta", "bus", "taskmanager", "edged")
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0


class TokenBucket:
    """Upstream's outgoing rate limit: ``rate`` messages a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = max(rate, 0.001), max(burst, 1)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def delay(self) -> float:
        """Take one token; the seconds to wait before sending (0 when one was available)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def backoff_delays(start: float = BACKOFF_START, cap: float = BACKOFF_MAX) -> Any:
    """1 s, 2 s, 4 s ... up to ``cap``, each with +-25 % jitter so a fleet does not reconnect in step."""
    delay = start
    while True:
        yield delay * random.uniform(0.75, 1.25)
        delay = min(delay * 2, cap)


def route_incoming(message: Message) -> str | None:
    """Which module group gets a message from the cloud (``edgehub/messagehandler``); None drops it."""
    group = message.route.group
    if group in ("resource", "func"):
        return "meta"
    if group == "twin":
        return "twin"
    if group == "user":
        return {"router_eventbus": "bus", "router_servicebus": "servicebus"}.get(message.route.source)
    if group == "taskmanager":
        return "taskmanager"
    return None


class EdgeHub:
    name = "websocket"
    group = "hub"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.hub = config.modules.edgeHub
        self.node_name = str(config.modules.edged.hostnameOverride)
        self.paths = certificate.paths_from(self.hub)
        self.connection: Any = None
        self.connected = asyncio.Event()
        self.bucket = TokenBucket(float(self.hub.messageQPS), int(self.hub.messageBurst))

    # start ----------------------------------------------------------------------------------
    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        await asyncio.to_thread(self.ensure_certificate)
        sender = asyncio.create_task(self._send_loop())
        try:
            await self._connect_loop()
        finally:
            sender.cancel()

    def ensure_certificate(self) -> None:
        if certificate.valid_certificate(self.paths, self.node_name) is not None:
            return
        token = self._token()
        if not token:
            raise certificate.BootstrapError(
                f"no valid certificate for node {self.node_name} at {self.paths.cert} and no token to get one: "
                "join with `keadm join --token <keadm gettoken output>` or set modules.edgeHub.token")
        log.info("bootstrapping the node certificate from %s", self.hub.httpServer)
        certificate.bootstrap(str(self.hub.httpServer), token, self.node_name, self.paths)
        self._blank_token()

    def _token(self) -> str:
        bootstrap_file = Path(self.config.source).parent.parent / "bootstrap-edgecore.conf"
        if bootstrap_file.exists():
            return bootstrap_file.read_text().strip()
        return str(self.hub.token or "")

    def _blank_token(self) -> None:
        """As upstream ``cleanupToken``: once the certificate exists the token leaves the config."""
        path = Path(self.config.source)
        if path.is_file() and self.hub.token:
            import yaml

            document = yaml.safe_load(path.read_text()) or {}
            document.setdefault("modules", {}).setdefault("edgeHub", {})["token"] = ""
            path.write_text(yaml.safe_dump(document, sort_keys=True))

    # connection -----------------------------------------------------------------------------
    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.paths.ca))
        context.load_cert_chain(self.paths.cert, self.paths.key)
        context.check_hostname = False  # the KubeEdge CA pins the cloud; its SANs name its addresses
        return context

    def url(self) -> str:
        return f"wss://{self.hub.websocket.server}/{self.hub.projectID}/{self.node_name}/events"

    async def _connect_loop(self) -> None:
        import websockets

        delays = backoff_delays()
        while True:
            try:
                async with websockets.connect(
                    self.url(), ssl=self._tls(), additional_headers=[
                        ("Connectionuse", "msg"), ("Node_id", self.node_name), ("Project_id", str(self.hub.projectID))],
                    user_agent_header="Go-http-client/1.1", compression=None, ping_interval=None,
                    open_timeout=float(self.hub.websocket.handshakeTimeout), max_size=16 * 1024 * 1024,
                ) as connection:
                    delays = backoff_delays()
                    await self._session(connection)
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError) as error:
                log.warning("connection to %s failed: %s", self.hub.websocket.server, error)
            delay = next(delays)
            log.info("reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    async def _session(self, connection: Any) -> None:
        self.connection = connection
        self.connected.set()
        log.info("connected to %s as node %s", self.hub.websocket.server, self.node_name)
        await self._broadcast(CONNECTED)
        keepalive = asyncio.create_task(self._keepalive())
        rotation = asyncio.create_task(self._rotate_when_due())
        try:
            async for frame in connection:
                await self._receive(frame)
        except Exception as error:  # noqa: BLE001 - any read failure ends this session, the loop reconnects
            log.warning("connection lost: %s", error)
        finally:
            keepalive.cancel()
            rotation.cancel()
            self.connected.clear()
            self.connection = None
            await self._broadcast(DISCONNECTED)
            log.info("disconnected from %s", self.hub.websocket.server)

    async def _keepalive(self) -> None:
        while True:
            message = Message.new(source="websocket", group="resource", operation="keepalive", resource="node", content="ping")
            await self._write(message)
            await asyncio.sleep(float(self.hub.heartbeat))

    async def _rotate_when_due(self) -> None:
        if not self.hub.rotateCertificates:
            return
        deadline = certificate.rotation_deadline(self.paths)
        wait = (deadline - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        await asyncio.sleep(max(wait, 0))
        for delay in backoff_delays(2, 32):
            try:
                await asyncio.to_thread(certificate.renew, str(self.hub.httpServer), self.node_name, self.paths)
                break
            except certificate.BootstrapError as error:
                log.warning("certificate rotation failed, retrying in %.0fs: %s", delay, error)
                await asyncio.sleep(delay)
        log.info("certificate rotated: reconnecting with the new one")
        if self.connection is not None:
            await self.connection.close(1000, "certificate rotated")

    async def _broadcast(self, content: str) -> None:
        message = Message.new(source="edgehub", group="", operation="connect", resource="node/connection", content=content)
        for group in BROADCAST_GROUPS:
            if self.ctx.group_members(group):
                await self.ctx.send_to_group(group, message)

    # traffic --------------------------------------------------------------------------------
    async def _receive(self, frame: str | bytes) -> None:
        try:
            message = decode(frame)
        except CodecError as error:
            log.warning("dropped a bad frame from the cloud: %s", error)
            return
        if message.route.operation in ("ping", "pong", "config"):
            await self._write(message.response("ack"))
            return
        if message.parent_msg_id and self.ctx.send_response(message):
            return
        group = route_incoming(message)
        if group is None or not self.ctx.group_members(group):
            log.debug("no module for %s: dropped", message.describe())
            return
        await self.ctx.send_to_group(group, message)

    async def _send_loop(self) -> None:
        while True:
            message = await self.ctx.receive(self.name)
            await self.connected.wait()
            delay = self.bucket.delay()
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._write(message)
            except Exception as error:  # noqa: BLE001 - the reader notices the broken link and reconnects
                log.warning("could not send %s: %s", message.describe(), error)

    async def _write(self, message: Message) -> None:
        connection = self.connection
        if connection is None:
            raise ConnectionError("not connected to the cloud")
        await connection.send(encode(message))
