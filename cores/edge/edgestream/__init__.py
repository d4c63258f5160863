"""EdgeStream: the edge end of the stream tunnel (kubectl logs, exec, attach, port-forward, stats).

It dials ``wss://<edgeStream.server>/v1/kubeedge/connect`` with the node certificate and upstream's
``SessionHostNameOverride``/``SessionInternalIP`` headers (plus ``SessionFeatures``, ours), and
keeps the tunnel up, reconnecting with back-off after a cut. Each connect frame from the cloud
becomes one request to Edged's kubelet server port (TLS, the node certificate as client), whatever
host the frame's URL names: the edge never dials anywhere else. Bytes then flow as DATA frames
until either end removes the stream. See :mod:`cores.link.stream` for the frames.

Limits: a connect frame that breaks the protocol ends that one stream; at most ``MAX_STREAMS``
streams at once; DATA for a stream whose local peer stops reading is bounded (the stream is cut
past ``MAX_BUFFERED``); edge->cloud DATA obeys the cloud's window when it sends one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

from cores.beehive import Context
from cores.common.config import Config, host_address
from cores.edge.edgehub import certificate
from cores.link import stream as tunnel
from cores.link.http import HeadError, split_head
from cores.link.session import ReconnectBackoff

log = logging.getLogger("kubeedge.edgestream")

MAX_STREAMS = 256
MAX_BUFFERED = 4 * 1024 * 1024   # cloud->edge bytes waiting for a local peer that does not read
LOCAL_CONNECT_TIMEOUT = 10.0
_SKIP_HEADERS = {"host", "content-length", "transfer-encoding"}


class LocalStream:
    def __init__(self, request: tunnel.ConnectRequest) -> None:
        self.request = request
        self.credit = tunnel.SendCredit(request.window)
        self.credit_changed = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.pending = bytearray()  # DATA that came before the local connection was up


class EdgeStream:
    name = "edgestream"
    group = "edgestream"

    def __init__(self, config: Config) -> None:
        settings = config.modules.edgeStream
        edged = config.modules.edged
        kubelet = edged.tailoredKubeletConfig
        self.server = str(settings.server)
        self.node_name = str(edged.hostnameOverride)
        self.node_ip = str(edged.get("nodeIP") or host_address())
        self.paths = certificate.CertificatePaths(Path(settings.tlsTunnelCAFile), Path(settings.tlsTunnelCertFile),
                                                  Path(settings.tlsTunnelPrivateKeyFile))
        self.handshake_timeout = float(settings.handshakeTimeout or 30)
        address = str(kubelet.get("address") or "127.0.0.1")
        self.kubelet_host = "127.0.0.1" if address in ("0.0.0.0", "") else address
        self.kubelet_port = int(kubelet.get("port") or 10250)
        self.pinned_name = str(config.modules.edgeHub.get("tlsServerName") or "")
        self.streams: dict[int, LocalStream] = {}
        self.connection: Any = None

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        runner = asyncio.create_task(self._connect_loop(), name="edgestream-tunnel")
        try:
            while True:
                await ctx.receive(self.name)  # nothing is addressed to us; keep the mailbox empty
        finally:
            runner.cancel()

    # -- the tunnel ----------------------------------------------------------------------------
    async def _connect_loop(self) -> None:
        import websockets

        while not self.paths.exist():
            await asyncio.sleep(1)  # EdgeHub writes the node certificate at bootstrap
        backoff = ReconnectBackoff()
        url = f"wss://{self.server}{tunnel.TUNNEL_PATH}"
        while True:
            try:
                context = certificate.client_context(cafile=str(self.paths.ca), client=self.paths, server_name=self.pinned_name)
                extra: dict[str, Any] = {"server_hostname": self.pinned_name} if self.pinned_name else {}
                async with websockets.connect(
                    url, ssl=context, **extra, additional_headers=[
                        (tunnel.HEADER_NODE, self.node_name), (tunnel.HEADER_INTERNAL_IP, self.node_ip),
                        (tunnel.HEADER_FEATURES, ",".join(tunnel.FEATURES))],
                    user_agent_header="Go-http-client/1.1", compression=None, ping_interval=5, ping_timeout=20,
                    open_timeout=self.handshake_timeout, max_size=tunnel.MAX_FRAME_DATA + 64,
                ) as connection:
                    backoff.reset()
                    log.info("stream tunnel to %s is up", self.server)
                    await self._session(connection)
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError, ssl.SSLError) as error:
                log.warning("stream tunnel to %s failed: %s", self.server, error)
            delay = backoff.next_delay()
            await asyncio.sleep(delay)

    async def _session(self, connection: Any) -> None:
        import websockets

        self.connection = connection
        try:
            while True:
                payload = await connection.recv(decode=False)  # text frames that are not UTF-8
                try:
                    frame = tunnel.decode_frame(payload)
                except tunnel.StreamProtocolError as error:
                    log.warning("stream tunnel: dropped a malformed frame: %s", error)
                    continue
                self._on_frame(frame)
        except websockets.ConnectionClosed as closed:
            log.warning("stream tunnel to %s closed: %s", self.server, closed)
        finally:
            self.connection = None
            for local in list(self.streams.values()):
                if local.task is not None:
                    local.task.cancel()
            self.streams.clear()

    def _on_frame(self, frame: tunnel.Frame) -> None:
        if frame.type == tunnel.FrameType.CLOSE_CONNECT:
            log.warning("the cloud closed the stream tunnel: %s", frame.data.decode("utf-8", "replace")[:200])
            if self.connection is not None:
                asyncio.ensure_future(self.connection.close())
            return
        if frame.type in tunnel.CONNECT_TYPES:
            self._open(frame)
            return
        local = self.streams.get(frame.connect_id)
        if local is None:
            return
        if frame.type == tunnel.FrameType.DATA:
            if local.writer is None:
                local.pending += frame.data
                overflow = len(local.pending) > MAX_BUFFERED
            else:
                local.writer.write(frame.data)
                overflow = local.writer.transport.get_write_buffer_size() > MAX_BUFFERED
            if overflow:
                log.warning("stream %d: the local peer does not read; cut", frame.connect_id)
                self._end(local)
        elif frame.type == tunnel.FrameType.REMOVE_CONNECT:
            self._end(local, notify=False)
        elif frame.type == tunnel.FrameType.WINDOW:
            try:
                local.credit.granted(tunnel.window_grant(frame))
            except tunnel.StreamProtocolError:
                return
            local.credit_changed.set()

    def _open(self, frame: tunnel.Frame) -> None:
        try:
            request = tunnel.parse_connect(frame)
        except tunnel.StreamProtocolError as error:
            log.warning("stream %d refused: %s", frame.connect_id, error)
            self._send(frame.connect_id, tunnel.FrameType.REMOVE_CONNECT)
            return
        if frame.connect_id in self.streams or len(self.streams) >= MAX_STREAMS:
            log.warning("stream %d refused: %s", frame.connect_id,
                        "its id is in use" if frame.connect_id in self.streams else f"{MAX_STREAMS} streams are open")
            self._send(frame.connect_id, tunnel.FrameType.REMOVE_CONNECT)
            return
        local = LocalStream(request)
        self.streams[frame.connect_id] = local
        local.task = asyncio.create_task(self._serve(local), name=f"edgestream-{frame.connect_id}")

    def _end(self, local: LocalStream, notify: bool = True) -> None:
        if self.streams.get(local.request.connect_id) is local:
            del self.streams[local.request.connect_id]
            if notify:
                self._send(local.request.connect_id, tunnel.FrameType.REMOVE_CONNECT)
        if local.task is not None and local.task is not asyncio.current_task():
            local.task.cancel()

    def _send(self, connect_id: int, frame_type: int, data: bytes = b"") -> None:
        if self.connection is not None:
            asyncio.ensure_future(self._write(tunnel.encode_frame(connect_id, frame_type, data)))

    async def _write(self, payload: bytes) -> None:
        import websockets

        connection = self.connection
        if connection is None:
            return
        try:
            await connection.send(payload, text=True)  # upstream's cloud reads text frames only
        except websockets.ConnectionClosed:
            pass

    # -- one stream ----------------------------------------------------------------------------
    def _local_tls(self) -> ssl.SSLContext:
        # Edged serves the node's own certificate: it is pinned below instead of chained (it is a
        # client certificate, which a verifying client would refuse as a server's).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(self.paths.cert, self.paths.key)
        return context

    async def _serve(self, local: LocalStream) -> None:
        request = local.request
        writer: asyncio.StreamWriter | None = None
        try:
            reader, connected = await asyncio.wait_for(
                asyncio.open_connection(self.kubelet_host, self.kubelet_port, ssl=self._local_tls()), LOCAL_CONNECT_TIMEOUT)
            writer = connected
            own = ssl.PEM_cert_to_DER_cert(Path(self.paths.cert).read_text())
            peer = connected.get_extra_info("ssl_object").getpeercert(binary_form=True)
            if peer != own:
                raise ConnectionError("the kubelet port does not serve this node's certificate")
            lines = [f"{request.method} {request.target} HTTP/1.1", f"Host: {self.kubelet_host}:{self.kubelet_port}"]
            lines += [f"{name}: {value}" for name, values in request.headers.items()
                      if name.lower() not in _SKIP_HEADERS for value in values]
            connected.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + bytes(local.pending))
            local.pending.clear()
            local.writer = connected
            body_only = request.type in tunnel.BODY_TYPES and not request.raw_response
            buffered = b""
            if body_only:  # upstream's cloud wants the body alone: it answered 200 itself
                while (split := split_head(buffered)) is None:
                    data = await reader.read(tunnel.CHUNK_BYTES)
                    if not data:
                        return
                    buffered += data
                buffered = split[1]
            if buffered:
                await self._data(local, buffered)
            while True:
                allowed = local.credit.may_send()
                if allowed <= 0:
                    local.credit_changed.clear()
                    await local.credit_changed.wait()
                    continue
                data = await reader.read(allowed)
                if not data:
                    return
                await self._data(local, data)
        except (OSError, ConnectionError, asyncio.TimeoutError, ssl.SSLError, HeadError) as error:
            log.warning("stream %d (%s): %s", request.connect_id, request.path, error)
        finally:
            if writer is not None:
                writer.close()
            self._end(local)

    async def _data(self, local: LocalStream, data: bytes) -> None:
        for start in range(0, len(data), tunnel.CHUNK_BYTES):
            chunk = data[start:start + tunnel.CHUNK_BYTES]
            local.credit.sent(len(chunk))
            await self._write(tunnel.encode_frame(local.request.connect_id, tunnel.FrameType.DATA, chunk))
