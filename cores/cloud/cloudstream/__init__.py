"""CloudStream: kubectl logs, exec, attach, port-forward and stats for pods on edge nodes.

Two listeners (upstream ``cloud/pkg/cloudstream``):

- the tunnel server (``cloudStream.tunnelPort``, 10004): each edge's EdgeStream keeps one
  WebSocket here. TLS with a node certificate from the KubeEdge CA, whose CN must name the node in
  ``SessionHostNameOverride`` (a node opens a tunnel only for itself). When a tunnel comes up the
  node's ``status.daemonEndpoints.kubeletEndpoint.port`` is set to the tunnel port, as upstream
  does, for a kube-apiserver that reaches nodes through a DNAT to the stream server. With the
  iptables manager on, that port is claimed in the record all CloudCores share
  (:mod:`cores.cloud.tunnelport`, 10351 for the first); else it is ``commonConfig.tunnelPort``.
  A certificate on the cluster's revocation list (:mod:`cores.cloud.revocation`, the list CloudHub
  keeps: a deleted node's certificates) is refused, and a tunnel whose certificate is revoked
  while it is up is closed within ``POLL_SECONDS``.
- the stream server (``cloudStream.streamPort``, 10003): kubelet's API for the API server. TLS, and
  a client certificate from ``tlsStreamCAFile`` is required (the control plane's CA: the embedded
  control plane presents its own; a real kube-apiserver its ``--kubelet-client-certificate``).
  A request for a pod goes to the tunnel of the pod's node; stats go by the Host the API server
  dialled (a node's name or internal IP). Without ``tlsStreamCertFile`` it serves the tunnel's
  certificate, which the KubeEdge CA signed, so nothing has to be made by hand.

Flow: one connect frame a request, then DATA both ways (:mod:`cores.link.stream`). Towards our own
EdgeStream the edge's whole HTTP answer comes back (so its status reaches kubectl) under a
window; towards upstream's, the body alone, under a 200 this server sends first, as upstream.
A stream whose client stops reading holds at most its window (or ``MAX_BUFFERED`` for a peer
without one) and is then cut; no stream, and no slow client, delays another.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from pathlib import Path
from typing import Any

from cores.beehive import Context
from cores.cloud.kube import Kube, KubeError
from cores.cloud import tunnelport
from cores.cloud.revocation import Revocations
from cores.common.config import Config
from cores.common.names import is_dns1123_subdomain
from cores.common.reset import reset
from cores.common.tasks import TaskSupervisor
from cores.link import stream as tunnel
from cores.link.http import HeadError, header, parse_head, split_head

log = logging.getLogger("kubeedge.cloudstream")

NODE_CN_PREFIX = "system:node:"
HEAD_TIMEOUT = 10.0
MAX_BUFFERED = 8 * 1024 * 1024
NEGOTIATE_ATTEMPTS = 15  # 2 s apart: CloudCore may start before its API server answers
_SKIP_HEADERS = {"host", "content-length", "transfer-encoding"}


class ClientStream:
    """One API-server request relayed over a tunnel."""

    def __init__(self, connect_id: int, writer: asyncio.StreamWriter, window: int) -> None:
        self.connect_id = connect_id
        self.writer = writer
        self.window = tunnel.ReceiveWindow(window)
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.done = asyncio.Event()
        self.cut = False  # ended by a fault (tunnel down, stream overrun), not by the edge's end


class TunnelSession:
    def __init__(self, node: str, internal_ip: str, connection: Any, features: set[str], serial: str) -> None:
        self.node = node
        self.serial = serial  # of the node certificate that opened it, as ssl gives it
        self.internal_ip = internal_ip
        self.connection = connection
        self.features = features
        self.streams: dict[int, ClientStream] = {}
        self.closed = False

    @property
    def raw_response(self) -> bool:
        return "raw-response" in self.features

    @property
    def window(self) -> int:
        return tunnel.DEFAULT_WINDOW if "window" in self.features else 0

    async def send(self, payload: bytes) -> None:
        import websockets

        try:
            await self.connection.send(payload, text=True)
        except websockets.ConnectionClosed:
            self.close_streams()

    def close_streams(self) -> None:
        self.closed = True
        for client in list(self.streams.values()):
            client.cut = True
            client.queue.put_nowait(None)
        self.streams.clear()


class CloudStream:
    name = "cloudStream"
    group = "cloudStream"

    def __init__(self, config: Config, kube: Kube) -> None:
        self.config = config
        self.settings = config.modules.cloudStream
        self.kube = kube
        self.kubelet_port = int(config.commonConfig.tunnelPort or 10350)
        manager = config.modules.get("iptablesManager") or {}
        self.negotiate_port = bool(manager.get("enable"))
        advertised = list(config.modules.cloudHub.get("advertiseAddress") or [])
        self.advertise_ip = str(advertised[0]) if advertised else ""
        self.address = str(config.modules.cloudHub.websocket.address or "0.0.0.0")
        self.sessions: dict[str, TunnelSession] = {}
        self.ids = itertools.count(1)
        self.tasks = TaskSupervisor(self.name)
        self.revocations = Revocations(kube)
        self._servers: list[Any] = []

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        s = self.settings
        tunnel_files = [Path(s.tlsTunnelCAFile), Path(s.tlsTunnelCertFile), Path(s.tlsTunnelPrivateKeyFile)]
        while not all(path.exists() for path in tunnel_files):
            await asyncio.sleep(0.5)  # CloudHub writes the CA and its certificate at start
        await self._load_revocations()
        if self.negotiate_port:
            await self._negotiate_tunnel_port()
        self.tasks.keep(lambda: self.revocations.keep_current(prune=False, refreshed=self._close_revoked),
                        "revocations")
        await self._start_tunnel_server(*tunnel_files)
        await self._start_stream_server(tunnel_files[1], tunnel_files[2])
        try:
            while True:
                await ctx.receive(self.name)
        finally:
            await self.stop()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        await self.tasks.close()

    async def _negotiate_tunnel_port(self) -> None:
        """Claim this CloudCore's tunnel port before any node's endpoint is set to it; with the API
        away, try for a while, then keep ``commonConfig.tunnelPort`` (and say so)."""
        base = self.kubelet_port
        for attempt in range(NEGOTIATE_ATTEMPTS):
            try:
                self.kubelet_port = await tunnelport.negotiate(self.kube, self.advertise_ip, base)
                log.info("tunnel port %d (the kubelet endpoint port of edge nodes, DNATed to the stream server)",
                         self.kubelet_port)
                return
            except tunnelport.RecordError as error:
                log.error("tunnel port not negotiated, %d kept: %s", base, error)
                return
            except (KubeError, OSError) as error:
                if attempt == NEGOTIATE_ATTEMPTS - 1:
                    log.error("tunnel port not negotiated, %d kept: %s", base, error)
                    return
                await asyncio.sleep(2)

    # -- revocation ------------------------------------------------------------------------------
    async def _load_revocations(self) -> None:
        """No tunnel is admitted before the revocation list is read (fail closed)."""
        while True:
            try:
                await self.revocations.load()
                return
            except (KubeError, OSError) as error:
                log.warning("stream tunnel server waits for the revocation list: %s", error)
                await asyncio.sleep(2)

    def _close_revoked(self) -> None:
        for session in list(self.sessions.values()):
            if not session.closed and self.revocations.is_revoked(session.serial):
                log.warning("closing the stream tunnel of node %s: its certificate %s is revoked",
                            session.node, session.serial)
                session.close_streams()
                self.tasks.spawn(session.connection.close(1008, "certificate revoked"), f"revoked-{session.node}")

    # -- the tunnel server ---------------------------------------------------------------------
    async def _start_tunnel_server(self, ca: Path, cert: Path, key: Path) -> None:
        import websockets

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
        port = int(self.settings.tunnelPort)
        server = await websockets.serve(self._tunnel, self.address, port, ssl=context, process_request=self._admit,
                                        max_size=tunnel.MAX_FRAME_DATA + 64, compression=None, server_header=None,
                                        ping_interval=20, ping_timeout=20)
        self._servers.append(server)
        log.info("stream tunnel server listening on %s:%d", self.address, port)

    def _admit(self, connection: Any, request: Any) -> Any:
        import http

        node = request.headers.get(tunnel.HEADER_NODE, "").strip()
        if request.path.split("?")[0].rstrip("/") != tunnel.TUNNEL_PATH:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        if not is_dns1123_subdomain(node):
            log.warning("refused stream tunnel: %s %r is not a node name", tunnel.HEADER_NODE, node[:80])
            return connection.respond(http.HTTPStatus.BAD_REQUEST, f"{tunnel.HEADER_NODE} must be a node name\n")
        cert = connection.transport.get_extra_info("peercert") or {}
        names = [value for rdn in cert.get("subject", ()) for k, value in rdn if k == "commonName"]
        if names != [NODE_CN_PREFIX + node]:
            log.warning("refused stream tunnel for node %s: certificate %r speaks for another", node, names)
            return connection.respond(http.HTTPStatus.FORBIDDEN, f"this certificate may not open a tunnel for node {node}\n")
        serial = str(cert.get("serialNumber", ""))
        if self.revocations.is_revoked(serial):
            log.warning("refused stream tunnel for node %s: its certificate %s is revoked", node, serial)
            return connection.respond(http.HTTPStatus.FORBIDDEN, f"certificate {serial} is revoked\n")
        return None

    async def _tunnel(self, connection: Any) -> None:
        import websockets

        headers = connection.request.headers
        node = headers[tunnel.HEADER_NODE].strip()
        internal_ip = headers.get(tunnel.HEADER_INTERNAL_IP, "").strip() or connection.remote_address[0]
        features = {item.strip() for item in headers.get(tunnel.HEADER_FEATURES, "").split(",") if item.strip()}
        serial = str((connection.transport.get_extra_info("peercert") or {}).get("serialNumber", ""))
        session = TunnelSession(node, internal_ip, connection, features, serial)
        previous = self.sessions.get(node)
        self.sessions[node] = session
        if previous is not None:
            previous.close_streams()
            self.tasks.spawn(previous.connection.close(), f"close-{node}")
        log.info("stream tunnel of node %s (%s) is up%s", node, internal_ip, " (upstream EdgeStream)" if not features else "")
        self.tasks.spawn(self._set_kubelet_port(node), f"kubelet-port-{node}")
        try:
            while True:
                payload = await connection.recv(decode=False)
                try:
                    frame = tunnel.decode_frame(payload)
                except tunnel.StreamProtocolError as error:
                    log.warning("node %s: dropped a malformed tunnel frame: %s", node, error)
                    continue
                self._from_edge(session, frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            session.close_streams()
            if self.sessions.get(node) is session:
                del self.sessions[node]
            log.info("stream tunnel of node %s is down", node)

    def _from_edge(self, session: TunnelSession, frame: tunnel.Frame) -> None:
        client = session.streams.get(frame.connect_id)
        if client is None:
            return
        if frame.type == tunnel.FrameType.DATA:
            client.window.received(len(frame.data))
            limit = client.window.window or MAX_BUFFERED
            if client.window.buffered > limit:
                log.warning("node %s: stream %d overran its window or its client stopped reading; cut",
                            session.node, frame.connect_id)
                client.cut = True
                self._finish(session, client, notify=True)
                return
            client.queue.put_nowait(frame.data)
        elif frame.type == tunnel.FrameType.REMOVE_CONNECT:
            self._finish(session, client, notify=False)

    def _finish(self, session: TunnelSession, client: ClientStream, notify: bool) -> None:
        if session.streams.pop(client.connect_id, None) is None:
            return
        client.queue.put_nowait(None)
        if notify:
            self.tasks.spawn(session.send(tunnel.encode_frame(client.connect_id, tunnel.FrameType.REMOVE_CONNECT)),
                             f"remove-{client.connect_id}")

    async def _set_kubelet_port(self, node: str) -> None:
        patch = {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}}}}
        for _ in range(10):
            try:
                await self.kube.patch_node_status(node, patch)
                return
            except KubeError as error:
                log.debug("node %s: kubelet endpoint port not set yet: %s", node, error)
            except Exception as error:  # noqa: BLE001 - the API may be away; try again
                log.debug("node %s: kubelet endpoint port not set yet: %s", node, error)
            await asyncio.sleep(2)

    # -- the stream server ---------------------------------------------------------------------
    async def _start_stream_server(self, tunnel_cert: Path, tunnel_key: Path) -> None:
        s = self.settings
        ca = Path(s.tlsStreamCAFile)
        if not ca.exists():
            log.error("stream server not started: no client CA at tlsStreamCAFile %s (the CA of the API server's "
                      "kubelet client certificate)", ca)
            return
        cert, key = Path(s.tlsStreamCertFile), Path(s.tlsStreamPrivateKeyFile)
        if not (cert.exists() and key.exists()):
            cert, key = tunnel_cert, tunnel_key
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
        port = int(s.streamPort)
        server = await asyncio.start_server(self._client, self.address, port, ssl=context,
                                            ssl_handshake_timeout=HEAD_TIMEOUT)
        self._servers.append(server)
        log.info("stream server listening on %s:%d (clients of %s)", self.address, port, ca)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._relay(reader, writer)
        except _Refusal as refusal:
            log.warning("stream server: %s", refusal.message)
            writer.write(f"HTTP/1.1 {refusal.status} {refusal.reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         f"Connection: close\r\n\r\n{refusal.message}\n".encode())
        except _Cut as cut:
            # Reset, not a clean close: a log read to EOF would look like the log's end, and the
            # caller (kube-apiserver, our control plane, kubectl) must see that it broke.
            log.info("stream server: %s", cut)
            reset(writer.transport)
            return
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - a bug answers this one request; the server goes on
            log.exception("stream server: request failed")
        finally:
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2)
            except (ConnectionError, OSError, TimeoutError, ssl.SSLError):
                pass

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffered = b""
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                while (split := split_head(buffered)) is None:
                    data = await reader.read(65536)
                    if not data:
                        return
                    buffered += data
            method, target, headers = parse_head(split[0])
        except TimeoutError:
            raise _Refusal(408, "Request Timeout", "request headers not received in time") from None
        except HeadError as error:
            raise _Refusal(400, "Bad Request", str(error)) from None
        rest = split[1]
        path, _, query = target.partition("?")
        frame_type, node = await self._route(path, headers)
        session = self.sessions.get(node)
        if session is None or session.closed:
            raise _Refusal(503, "Service Unavailable", f"node {node} has no stream tunnel: it is offline, or its "
                           "edgeStream is off")
        if frame_type == tunnel.FrameType.PORTFORWARD_CONNECT and "port-forward" not in session.features:
            raise _Refusal(400, "Bad Request", f"node {node} runs an EdgeStream without port-forward (upstream "
                           "KubeEdge has none)")
        connect_id = next(self.ids)
        client = ClientStream(connect_id, writer, session.window)
        request = tunnel.ConnectRequest(
            connect_id, frame_type, method, path, query,
            {name: tuple(v for k, v in headers if k == name) for name, _ in headers if name.lower() not in _SKIP_HEADERS},
            raw_response=session.raw_response, window=session.window)
        session.streams[connect_id] = client
        if frame_type in tunnel.BODY_TYPES and not session.raw_response:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
        await session.send(request.frame())
        if rest:
            await session.send(tunnel.encode_frame(connect_id, tunnel.FrameType.DATA, rest))
        upload = asyncio.create_task(self._upload(session, client, reader))
        try:
            await self._download(session, client)
        finally:
            upload.cancel()
            self._finish(session, client, notify=True)
        if client.cut:
            raise _Cut(f"node {node}: stream {connect_id} ({path}) was cut: "
                       f"{'the tunnel went down' if session.closed else 'its client stopped reading'}")

    async def _upload(self, session: TunnelSession, client: ClientStream, reader: asyncio.StreamReader) -> None:
        """Client -> edge (stdin, SPDY frames): read at the pace the tunnel takes it."""
        try:
            while data := await reader.read(tunnel.CHUNK_BYTES):
                if client.connect_id not in session.streams:
                    return
                await session.send(tunnel.encode_frame(client.connect_id, tunnel.FrameType.DATA, data))
        except (ConnectionError, OSError):
            pass
        self._finish(session, client, notify=True)

    async def _download(self, session: TunnelSession, client: ClientStream) -> None:
        """Edge -> client, granting the edge credit back as the client takes the bytes."""
        while (data := await client.queue.get()) is not None:
            client.writer.write(data)
            await client.writer.drain()
            grant = client.window.delivered(len(data))
            if grant and client.connect_id in session.streams:
                await session.send(tunnel.window_frame(client.connect_id, grant))

    async def _route(self, path: str, headers: list[tuple[str, str]]) -> tuple[tunnel.FrameType, str]:
        target = tunnel.parse_kubelet_path(path)
        if target is not None:
            for name in (target.namespace, target.pod):
                if not is_dns1123_subdomain(name):
                    raise _Refusal(400, "Bad Request", f"{name[:80]!r} is not a valid name")
            try:
                pod = await self.kube.request("GET", f"/api/v1/namespaces/{target.namespace}/pods/{target.pod}")
            except KubeError as error:
                raise _Refusal(error.code or 502, "Error", f"pod {target.namespace}/{target.pod}: {error.reason}") from None
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            if not node:
                raise _Refusal(400, "Bad Request", f"pod {target.pod} does not have a host assigned")
            return tunnel.CONNECT_TYPE_OF_KIND[target.kind], node
        if path.startswith(("/stats", "/metrics")):
            host = header(headers, "Host").rsplit(":", 1)[0].strip("[]")
            for session in self.sessions.values():
                if host in (session.node, session.internal_ip):
                    return tunnel.FrameType.METRIC_CONNECT, session.node
            raise _Refusal(503, "Service Unavailable", f"no edge node {host!r} has a stream tunnel")
        raise _Refusal(404, "Not Found", f"{path[:120]}: not found")


class _Cut(Exception):
    """A relayed stream that ended by a fault: its client connection is reset."""


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
