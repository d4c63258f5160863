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
import ssl
from pathlib import Path
from typing import Any

from cores.beehive import Context, Message
from cores.common.config import Config
from cores.common.tasks import TaskSupervisor
from cores.edge.edgehub import certificate
from cores.link import contracts, routing
from cores.link.routing import Action
from cores.link.session import Heartbeat, ReconnectBackoff, TokenBucket
from cores.wire import CodecError, decode, encode

log = logging.getLogger("kubeedge.edgehub")

ROTATION_BACKOFF_START, ROTATION_BACKOFF_MAX = 2.0, 32.0


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
        self.bucket = TokenBucket(float(self.hub.messageQPS), int(self.hub.messageBurst), 0.0)
        self.heartbeat = Heartbeat(float(self.hub.heartbeat))
        self.tasks = TaskSupervisor(self.name)

    # start ----------------------------------------------------------------------------------
    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        await asyncio.to_thread(self.ensure_certificate)
        self.bucket = TokenBucket(float(self.hub.messageQPS), int(self.hub.messageBurst), asyncio.get_running_loop().time())
        self.tasks.keep(self._send_loop, "send")
        connecting = asyncio.create_task(self._connect_loop(), name="edgehub-connect")
        failed = asyncio.create_task(self.tasks.failed(), name="edgehub-supervision")
        try:
            done, _ = await asyncio.wait([connecting, failed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failure stops EdgeCore loudly
        finally:
            connecting.cancel()
            failed.cancel()
            await self.tasks.close()

    def ensure_certificate(self) -> None:
        if certificate.valid_certificate(self.paths, self.node_name) is not None:
            return
        token = self._token()
        if not token:
            raise certificate.BootstrapError(
                f"no valid certificate for node {self.node_name} at {self.paths.cert} and no token to get one: "
                "join with `keadm join --token <keadm gettoken output>` or set modules.edgeHub.token")
        log.info("bootstrapping the node certificate from %s", self.hub.httpServer)
        certificate.bootstrap(str(self.hub.httpServer), token, self.node_name, self.paths, self._pinned_name())
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
        # The KubeEdge CA pins the cloud, and the certificate must name the address dialled (or the
        # pinned tlsServerName): another certificate from the same CA, say a node's, never passes.
        return certificate.client_context(cafile=str(self.paths.ca), client=self.paths, server_name=self._pinned_name())

    def _pinned_name(self) -> str:
        """``modules.edgeHub.tlsServerName``: the name CloudCore's certificate must carry ("" = the host dialled)."""
        return str(self.hub.get("tlsServerName") or "")

    def _server_hostname(self) -> dict[str, Any]:
        pinned = self._pinned_name()
        return {"server_hostname": pinned} if pinned else {}

    def url(self) -> str:
        return f"wss://{self.hub.websocket.server}/{self.hub.projectID}/{self.node_name}/events"

    async def _connect_loop(self) -> None:
        import websockets

        backoff = ReconnectBackoff()
        while True:
            try:
                async with websockets.connect(
                    self.url(), ssl=self._tls(), **self._server_hostname(), additional_headers=[
                        ("Connectionuse", "msg"), ("Node_id", self.node_name), ("Project_id", str(self.hub.projectID))],
                    user_agent_header="Go-http-client/1.1", compression=None, ping_interval=None,
                    open_timeout=float(self.hub.websocket.handshakeTimeout), max_size=16 * 1024 * 1024,
                ) as connection:
                    backoff.reset()
                    await self._session(connection)
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError) as error:
                log.warning("connection to %s failed: %s", self.hub.websocket.server, error)
            delay = backoff.next_delay()
            log.info("reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    async def _session(self, connection: Any) -> None:
        self.connection = connection
        self.connected.set()
        log.info("connected to %s as node %s", self.hub.websocket.server, self.node_name)
        await self._broadcast(True)
        self.heartbeat.reset()
        # this session's own tasks: kept (an error is logged), cancelled when the session ends
        keepalive = self.tasks.spawn(self._keepalive(), "keepalive")
        rotation = self.tasks.spawn(self._rotate_when_due(), "certificate-rotation")
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
            await self._broadcast(False)
            log.info("disconnected from %s", self.hub.websocket.server)

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self.heartbeat.due(now):
                await self._write(contracts.keepalive())
                self.heartbeat.sent(now)
            await asyncio.sleep(max(self.heartbeat.next_at - loop.time(), 0.0))

    async def _rotate_when_due(self) -> None:
        if not self.hub.rotateCertificates:
            return
        deadline = certificate.rotation_deadline(self.paths)
        wait = (deadline - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        await asyncio.sleep(max(wait, 0))
        backoff = ReconnectBackoff(ROTATION_BACKOFF_START, ROTATION_BACKOFF_MAX)
        while True:
            delay = backoff.next_delay()
            try:
                await asyncio.to_thread(certificate.renew, str(self.hub.httpServer), self.node_name, self.paths,
                                        self._pinned_name())
                break
            except certificate.BootstrapError as error:
                log.warning("certificate rotation failed, retrying in %.0fs: %s", delay, error)
                await asyncio.sleep(delay)
        log.info("certificate rotated: reconnecting with the new one")
        if self.connection is not None:
            await self.connection.close(1000, "certificate rotated")

    async def _broadcast(self, connected: bool) -> None:
        message = routing.connection_event(connected)
        for group in routing.CONNECTION_EVENT_GROUPS:
            if self.ctx.group_members(group):
                await self.ctx.send_to_group(group, message)

    # traffic --------------------------------------------------------------------------------
    async def _receive(self, frame: str | bytes) -> None:
        try:
            message = decode(frame)
        except CodecError as error:
            log.warning("dropped a bad frame from the cloud: %s", error)
            return
        decision = routing.from_cloud(message)
        if decision.action is Action.ANSWER:
            await self._write(decision.message)
        elif decision.action is Action.DELIVER and self.ctx.group_members(decision.group):
            await self.ctx.send_to_group(decision.group, decision.message)
        else:
            log.debug("no module for %s: dropped", message.describe())

    async def _send_loop(self) -> None:
        while True:
            message = await self.ctx.receive(self.name)
            await self.connected.wait()
            delay = self.bucket.take(asyncio.get_running_loop().time())
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
