"""Edged's kubelet endpoints: what kube-apiserver and CloudStream call on a node.

Two listeners, as kubelet's:

- the server port (kubelet's 10250 role; ``tailoredKubeletConfig.address``:``port``, default
  127.0.0.1:10250), TLS with a client certificate from the KubeEdge CA required, and only the
  node's own certificate accepted (EdgeStream presents it when the cloud's stream client asks):
  ``/containerLogs``, ``/exec``, ``/attach``, ``/portForward``, and what the read-only port serves;
- the read-only port (10350 role, ``readOnlyPort``, on ``address``): ``/healthz``, ``/pods``,
  ``/stats/summary`` and ``/metrics/resource`` only.

Exec, attach and port-forward are proxied as kubelet does it: CRI gives a URL on containerd's
streaming server, and the client's upgraded connection is passed to it byte for byte (SPDY or
WebSocket up to v4, whatever containerd negotiates); nothing here parses SPDY. Every answer that
is not an upgrade closes its connection, so a body ends where the connection does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from cores.edge.cri import labels as cri_labels
from cores.edge.cri.streaming import PIPE_CHUNK, StreamProxyError, close_quietly, proxy_upgrade
from cores.edge.edged import logs, stats
from cores.link.stream import KubeletTarget, parse_kubelet_path

log = logging.getLogger("kubeedge.edged")

HEAD_TIMEOUT = 10.0
MAX_HEAD_BYTES = 16 * 1024
READ_ONLY_PATHS = ("/healthz", "/pods", "/stats/summary", "/metrics/resource")
NODE_CN_PREFIX = "system:node:"


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}


def response_head(status: int, content_type: str = "text/plain; charset=utf-8", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\nContent-Type: {content_type}\r\n"
            f"{extra}Connection: close\r\n\r\n").encode()


class KubeletServer:
    """The handlers; ``pods`` is Edged's PodManager (``workers`` by uid), ``cri`` its CRI client."""

    def __init__(self, pods: Any, cri: Any, node_name: str, node_ip: str) -> None:
        self.pods = pods
        self.cri = cri
        self.node_name = node_name
        self.node_ip = node_ip
        self.servers: list[asyncio.Server] = []
        self.sessions: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None, *, read_only: bool) -> None:
        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.sessions.add(task)
            try:
                await self._connection(reader, writer, read_only)
            finally:
                self.sessions.discard(task)

        server = await asyncio.start_server(connected, host, port, ssl=tls, ssl_handshake_timeout=HEAD_TIMEOUT if tls else None)
        self.servers.append(server)
        log.info("kubelet %s listening on %s:%d", "read-only port" if read_only else "server (TLS)", host, port)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.sessions):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()

    # -- one connection ------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_only: bool) -> None:
        try:
            try:
                request, rest = await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT)
            except TimeoutError:
                raise HttpError(408, f"request headers not received within {HEAD_TIMEOUT:g}s") from None
            if not read_only:
                self._check_client(writer)
            await self._route(request, rest, reader, writer, read_only)
        except HttpError as error:
            writer.write(response_head(error.status) + (str(error) + "\n").encode())
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - a handler bug answers 500 and is logged; the server goes on
            log.exception("kubelet server: request failed")
            writer.write(response_head(500) + b"internal error\n")
        finally:
            await close_quietly(writer)

    def _check_client(self, writer: asyncio.StreamWriter) -> None:
        cert = writer.get_extra_info("peercert") or {}
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
        if names != [NODE_CN_PREFIX + self.node_name]:
            log.warning("kubelet server: refused client %r (only %s%s may call)", names, NODE_CN_PREFIX, self.node_name)
            raise HttpError(403, f"client {names[0] if names else '(no name)'!r} may not use this node's kubelet endpoints")

    async def _route(self, request: h11.Request, rest: bytes, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, read_only: bool) -> None:
        method = request.method.decode()
        split = urlsplit(request.target.decode("latin-1"))
        path, query = split.path, split.query
        if read_only and path not in READ_ONLY_PATHS:
            raise HttpError(403, f"{path} is not served on the read-only port")
        if path == "/healthz":
            writer.write(response_head(200) + b"ok")
            return
        if path == "/pods":
            items = [worker.pod for worker in self.pods.workers.values() if not worker.removed]
            body = json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
            writer.write(response_head(200, "application/json") + body.encode())
            return
        if path == "/stats/summary":
            summary = await stats.summary(self.cri, self.node_name, self.pods)
            writer.write(response_head(200, "application/json") + json.dumps(summary).encode())
            return
        if path == "/metrics/resource":
            text = stats.resource_metrics(await stats.summary(self.cri, self.node_name, self.pods))
            writer.write(response_head(200, "text/plain; version=0.0.4") + text.encode())
            return
        target = parse_kubelet_path(path)
        if target is None:
            raise HttpError(404, f"{path}: not found")
        if target.kind == "containerLogs":
            if method != "GET":
                raise HttpError(405, "logs are read with GET")
            await self._logs(target, query, writer)
            return
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers]
        url = await self._stream_url(target, query)
        try:
            await proxy_upgrade(method, url, headers, rest, reader, writer)
        except StreamProxyError as error:
            raise HttpError(error.status, error.message) from None

    # -- logs ----------------------------------------------------------------------------------
    def _worker(self, target: KubeletTarget) -> Any:
        for worker in self.pods.workers.values():
            if worker.namespace == target.namespace and worker.name == target.pod and not worker.removed:
                if target.uid and worker.uid != target.uid:
                    continue
                return worker
        raise HttpError(404, f"pod {target.namespace}/{target.pod} is not running on node {self.node_name}")

    def _spec_container(self, worker: Any, name: str) -> None:
        spec = worker.pod.get("spec") or {}
        names = [c.get("name") for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or ()]
        if name not in names:
            raise HttpError(400, f"container {name} is not valid for pod {worker.name}")

    async def _containers(self, worker: Any, name: str) -> list[Any]:
        labels = {**self.pods.pod_labels(worker.uid), cri_labels.CONTAINER_NAME: name}
        found = await self.cri.list_containers(labels=labels)
        return sorted(found, key=lambda c: c.created_at, reverse=True)

    async def _logs(self, target: KubeletTarget, query: str, writer: asyncio.StreamWriter) -> None:
        try:
            options = logs.parse_options(query)
        except logs.LogOptionsError as error:
            raise HttpError(400, str(error)) from None
        worker = self._worker(target)
        self._spec_container(worker, target.container)
        containers = await self._containers(worker, target.container)
        if options.previous:
            if len(containers) < 2:
                raise HttpError(400, f'previous terminated container "{target.container}" in pod "{target.pod}" not found')
            container = containers[1]
        elif containers:
            container = containers[0]
        else:
            reason = (worker.waiting.get(target.container) or ("ContainerCreating", ""))[0]
            raise HttpError(400, f'container "{target.container}" in pod "{target.pod}" is waiting to start: {reason}')
        status = (await self.cri.container_status(container.id)).status
        if not status.log_path:
            raise HttpError(400, f'container "{target.container}" in pod "{target.pod}" has no log file')

        async def still_running() -> bool:
            try:
                return int((await self.cri.container_status(container.id)).status.state) == 1  # CONTAINER_RUNNING
            except Exception:  # noqa: BLE001 - a container that is gone is not running
                return False

        try:
            chunks = logs.stream_log(status.log_path, options, still_running)
            writer.write(response_head(200))
            async for chunk in chunks:
                writer.write(chunk)
                await writer.drain()  # a slow reader slows this stream only
        except FileNotFoundError:
            raise HttpError(404, f'the log of container "{target.container}" in pod "{target.pod}" is gone') from None

    # -- exec, attach, port-forward ------------------------------------------------------------
    async def _stream_url(self, target: KubeletTarget, query: str) -> str:
        worker = self._worker(target)
        values = parse_qs(query, keep_blank_values=True)
        if target.kind == "portForward":
            if not worker.sandbox_id:
                raise HttpError(400, f"pod {target.pod} has no sandbox yet")
            ports = [int(p) for p in values.get("port", []) if p.isdigit()]
            return str(await self.cri.port_forward_url(worker.sandbox_id, ports))
        self._spec_container(worker, target.container)
        containers = await self._containers(worker, target.container)
        if not containers or int(containers[0].state) != 1:
            raise HttpError(400, f'container "{target.container}" in pod "{target.pod}" is not running')

        def flag(*names: str) -> bool:
            return any((values.get(n) or ["0"])[-1].lower() in ("1", "true") for n in names)

        streams = {"stdin": flag("input", "stdin"), "stdout": flag("output", "stdout"), "stderr": flag("error", "stderr"),
                   "tty": flag("tty")}
        if target.kind == "exec":
            command = values.get("command") or []
            if not command:
                raise HttpError(400, "you must specify at least one command for the container")
            return str(await self.cri.exec_url(containers[0].id, command, **streams))
        return str(await self.cri.attach_url(containers[0].id, **streams))


async def _read_head(reader: asyncio.StreamReader) -> tuple[h11.Request, bytes]:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            raise HttpError(error.error_status_hint, str(error)) from None
        if isinstance(event, h11.Request):
            return event, conn.trailing_data[0]
        if event is h11.NEED_DATA:
            data = await reader.read(PIPE_CHUNK)
            if not data:
                raise ConnectionError("closed before a request")
            conn.receive_data(data)
            continue
        raise HttpError(400, "expected a request")


Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
