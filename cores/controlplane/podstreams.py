"""``pods/log``, ``pods/exec``, ``pods/attach`` and ``pods/portforward`` for pods on edge nodes.

As kube-apiserver does for a kubelet, the control plane checks the pod and its container, turns the
options into kubelet's query (``PodExecOptions`` ``stdin`` becomes kubelet's ``input`` ...), and
calls the kubelet API; for an edge node that API is CloudCore's stream server
(``kubeletClient.streamServer``), reached directly, with no DNAT. It presents its kubelet client
certificate (``apiserver-kubelet-client.crt``, no group: the stream server trusts this control
plane's CA) and checks the stream server's
certificate against the KubeEdge CA kept in ``kubeedge/casecret`` (or ``kubeletClient.caFile``
when set, for a stream server with a certificate of its own, as upstream's ``stream.crt``).

Logs are streamed through; an upgrade (SPDY, for exec, attach and port-forward) is passed on byte
for byte once the kubelet side answered 101. A WebSocket upgrade (kubectl 1.30+ tries
``v5.channel.k8s.io`` first) is refused with 400, so kubectl falls back to SPDY; containerd's
streaming server speaks SPDY to every kubectl.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import h11
from aiohttp import web

from cores.common.reset import reset
from cores.controlplane import errors
from cores.link.http import HeadError, parse_head, split_head

log = logging.getLogger("kubeedge.controlplane")

EDGE_LABEL = "node-role.kubernetes.io/edge"
CONNECT_TIMEOUT = 10.0
HEAD_TIMEOUT = 30.0
MAX_ERROR_BODY = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
_UPGRADE_HEADERS = ("connection", "upgrade", "x-stream-protocol-version")
SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward"})


class RawParser:
    """aiohttp's hook for the bytes after an upgrade: they go to a queue, unparsed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true", "t")


def _containers(pod: dict[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c.get("name")) for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or ()]


def _container(pod: dict[str, Any], query: Any) -> str:
    name = str(query.get("container", ""))
    names = _containers(pod)
    pod_name = pod["metadata"]["name"]
    if not name:
        regular = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or ()]
        if len(regular) == 1:
            return regular[0]
        raise errors.bad_request(f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(regular)}]")
    if name not in names:
        raise errors.bad_request(f"container {name} is not valid for pod {pod_name}")
    return name


def kubelet_target(sub: str, pod: dict[str, Any], query: Any) -> str:
    """The kubelet path and query for one pod subresource request (kube-apiserver's translation)."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    if sub == "log":
        container = _container(pod, query)
        params = [(key, str(query[key])) for key in ("follow", "previous", "timestamps", "tailLines", "sinceSeconds",
                                                     "sinceTime", "limitBytes") if key in query]
        return f"/containerLogs/{namespace}/{name}/{container}" + ("?" + urlencode(params) if params else "")
    if sub == "portforward":
        ports = [("port", port) for port in query.getall("ports", [])]
        return f"/portForward/{namespace}/{name}" + ("?" + urlencode(ports) if ports else "")
    container = _container(pod, query)
    streams = {"input": _flag(query, "stdin"), "output": _flag(query, "stdout"), "error": _flag(query, "stderr")}
    if not any(streams.values()):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    params = [(key, "1") for key, on in streams.items() if on]
    if _flag(query, "tty"):
        params.append(("tty", "1"))
    if sub == "exec":
        commands = query.getall("command", [])
        if not commands:
            raise errors.bad_request("you must specify at least 1 command")
        params = [("command", str(c)) for c in commands] + params
    return f"/{sub}/{namespace}/{name}/{container}?" + urlencode(params)


class KubeletAnswer:
    """The answer to one GET through the stream server, read with h11 (sans-I/O HTTP/1.1)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: h11.Connection,
                 node: str) -> None:
        self.reader, self.writer, self.connection, self.node = reader, writer, connection, node
        self.status = 0
        self.headers: list[tuple[str, str]] = []

    async def _next(self) -> Any:
        while True:
            event = self.connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.connection.receive_data(await self.reader.read(65536))  # b"" at EOF: h11 judges the framing

    async def head(self) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                event = await self._next()
                while isinstance(event, h11.InformationalResponse):
                    event = await self._next()
        except TimeoutError:
            raise errors.ApiError(504, "Timeout", f"node {self.node} did not answer within {HEAD_TIMEOUT:g}s") from None
        except (h11.ProtocolError, ConnectionError, ssl.SSLError) as error:
            raise errors.ApiError(502, "InternalError", f"node {self.node} answered with a malformed head: {error}") from None
        if not isinstance(event, h11.Response):
            raise errors.ApiError(503, "ServiceUnavailable", f"node {self.node} closed the stream without an answer")
        self.status = event.status_code
        self.headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers]

    async def body(self) -> AsyncIterator[bytes]:
        """The body's bytes; ends at the message's end, raises h11.ProtocolError if it broke off."""
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return

    async def error_text(self) -> str:
        text = bytearray()
        try:
            async with asyncio.timeout(5):
                async for data in self.body():
                    text += data
                    if len(text) >= MAX_ERROR_BODY:
                        break
        except (TimeoutError, h11.ProtocolError, ConnectionError, ssl.SSLError):
            pass
        return bytes(text[:MAX_ERROR_BODY]).decode("utf-8", "replace").strip()

    def close(self) -> None:
        self.writer.close()


class PodStreams:
    def __init__(self, api: Any, registry: Any, stream_server: str, client_cert: str, client_key: str,
                 ca_file: str = "") -> None:
        self.api = api
        self.registry = registry
        self.stream_server = stream_server
        self.client_cert, self.client_key = client_cert, client_key
        self.ca_file = ca_file  # kubeletClient.caFile (kube-apiserver's --kubelet-certificate-authority)

    async def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the configured address is pinned; the chain is checked
        context.load_cert_chain(self.client_cert, self.client_key)
        if self.ca_file:  # a stream server whose certificate another CA signed (upstream's: stream.crt)
            try:
                context.load_verify_locations(self.ca_file)
            except (OSError, ssl.SSLError) as error:
                raise errors.ApiError(503, "ServiceUnavailable", f"kubeletClient.caFile {self.ca_file}: {error}") from None
            return context
        secrets = self.registry.get("", "v1", "secrets")
        try:
            secret = json.loads(await self.api.get(secrets, "kubeedge", "casecret"))
            der = base64.b64decode((secret.get("data") or {}).get("cadata", ""))
            context.load_verify_locations(cadata=ssl.DER_cert_to_PEM_cert(der))
        except (errors.ApiError, ValueError, ssl.SSLError) as error:
            raise errors.ApiError(503, "ServiceUnavailable", f"no KubeEdge CA to check CloudCore's stream server: {error}") from None
        return context

    async def serve(self, request: web.Request, namespace: str, name: str, sub: str) -> web.StreamResponse:
        pods = self.registry.get("", "v1", "pods")
        pod = json.loads(await self.api.get(pods, namespace, name))
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        nodes = self.registry.get("", "v1", "nodes")
        try:
            node = json.loads(await self.api.get(nodes, None, node_name))
        except errors.ApiError:
            raise errors.ApiError(503, "ServiceUnavailable", f"node {node_name} of pod {name} is not registered") from None
        if EDGE_LABEL not in ((node.get("metadata") or {}).get("labels") or {}):
            raise errors.bad_request(f"node {node_name} is not an edge node: this control plane reaches kubelets only "
                                     f"through CloudCore's stream server")
        if not self.stream_server:
            raise errors.ApiError(503, "ServiceUnavailable", "kubeletClient.streamServer is not configured")
        upgrade = request.headers.get("Upgrade", "").lower()
        if sub != "log" and upgrade == "websocket":
            raise errors.bad_request("WebSocket streams are not served here; use SPDY (kubectl falls back to it)")
        if sub != "log" and not upgrade:
            raise errors.bad_request("Upgrade request required")
        target = kubelet_target(sub, pod, request.query)
        if sub == "log":
            return await self._logs(request, await self._get(target, node_name))
        reader, writer = await self._open(request.method, target, request, node_name)
        try:
            status, headers, rest = await self._response_head(reader, node_name)
            if sub == "portforward" and status == 404:
                # upstream KubeEdge's stream server has no port-forward route (and its tunnel no type for it)
                raise errors.bad_request(f"port-forward to pods on node {node_name} is not served by the stream server "
                                         f"{self.stream_server}: upstream KubeEdge's CloudStream has no port-forward")
            return await self._upgrade(request, status, headers, rest, reader, writer)
        finally:
            writer.close()

    async def kubelet_get(self, node: str, target: str, limit: int = 16 * 1024 * 1024) -> bytes:
        """A plain GET of an edge node's kubelet API (stats) through the stream server: its body."""
        if not self.stream_server:
            raise errors.ApiError(503, "ServiceUnavailable", "kubeletClient.streamServer is not configured")
        answer = await self._get(target, node)
        try:
            body = bytearray()
            async with asyncio.timeout(HEAD_TIMEOUT):
                async for data in answer.body():
                    body += data
                    if len(body) > limit:
                        raise errors.ApiError(502, "InternalError", f"node {node} answered {target} with over {limit} bytes")
            return bytes(body)
        except TimeoutError:
            raise errors.ApiError(504, "Timeout", f"node {node} did not finish {target} in {HEAD_TIMEOUT:g}s") from None
        except (ConnectionError, ssl.SSLError, h11.ProtocolError) as error:
            raise errors.ApiError(502, "InternalError", f"node {node} broke off {target}: {error}") from None
        finally:
            answer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, _, port = self.stream_server.rpartition(":")
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=await self._context()),
                                          CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError) as error:
            raise errors.ApiError(503, "ServiceUnavailable", f"CloudCore's stream server {self.stream_server} is "
                                  f"unreachable: {error}") from None

    async def _get(self, target: str, node: str) -> KubeletAnswer:
        """A GET whose answer is read by its HTTP framing (h11): chunked, sized or to the close.

        The framing tells a body that ended from one that broke off; our stream server sends the
        edge's close-delimited answer, upstream's (Go's net/http) a chunked one on a kept-alive
        connection, which reading to EOF would wait on forever.
        """
        reader, writer = await self._connect()
        connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        writer.write(connection.send(h11.Request(method="GET", target=target, headers=[
            ("Host", f"{node}:10350"), ("User-Agent", "kubeedge-controlplane"), ("Connection", "close")])))
        writer.write(connection.send(h11.EndOfMessage()))
        answer = KubeletAnswer(reader, writer, connection, node)
        try:
            await answer.head()
        except BaseException:
            answer.close()
            raise
        return answer

    async def _open(self, method: str, target: str, request: web.Request | None, node: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._connect()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {node}:10350", "User-Agent: kubeedge-controlplane"]
        if method != "GET" and request is not None:
            for name, value in request.headers.items():
                if name.lower() in _UPGRADE_HEADERS:
                    lines.append(f"{name}: {value}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return reader, writer

    async def _response_head(self, reader: asyncio.StreamReader, node: str) -> tuple[int, list[tuple[str, str]], bytes]:
        buffered = b""
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                while (split := split_head(buffered)) is None:
                    data = await reader.read(65536)
                    if not data:
                        raise errors.ApiError(503, "ServiceUnavailable", f"node {node} closed the stream without an answer")
                    buffered += data
            _version, status, headers = parse_head(split[0])
            return int(status), headers, split[1]
        except TimeoutError:
            raise errors.ApiError(504, "Timeout", f"node {node} did not answer within {HEAD_TIMEOUT:g}s") from None
        except (HeadError, ValueError) as error:
            raise errors.ApiError(502, "InternalError", f"node {node} answered with a malformed head: {error}") from None

    @staticmethod
    async def _error_body(rest: bytes, reader: asyncio.StreamReader) -> str:
        body = rest
        try:
            async with asyncio.timeout(5):
                while len(body) < MAX_ERROR_BODY and (data := await reader.read(65536)):
                    body += data
        except TimeoutError:
            pass
        return body[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()

    async def _logs(self, request: web.Request, answer: KubeletAnswer) -> web.StreamResponse:
        try:
            if answer.status != 200:
                raise _kubelet_error(answer.status, await answer.error_text())
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            body = answer.body()
            while True:
                try:
                    data = await anext(body)
                except StopAsyncIteration:
                    break
                except (ConnectionError, ssl.SSLError, h11.ProtocolError) as error:
                    # The stream server resets a stream whose tunnel broke (or a chunked answer
                    # stops short). End kubectl's response unfinished (no last chunk), so it
                    # reports an error and not the log's end.
                    log.warning("logs of pod %s: the stream from its node broke: %s", request.path, error)
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                try:
                    await response.write(data)  # a slow reader slows this stream only
                except ConnectionError:
                    return response  # kubectl went away (logs -f ended): closing our side ends the stream at the edge
            await response.write_eof()
            return response
        finally:
            answer.close()

    async def _upgrade(self, request: web.Request, status: int, headers: list[tuple[str, str]], rest: bytes,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> web.StreamResponse:
        if status != 101:
            raise _kubelet_error(status, await self._error_body(rest, reader))
        response = web.StreamResponse(status=101, reason="Switching Protocols")
        for name, value in headers:
            if name.lower() in _UPGRADE_HEADERS:
                response.headers.add(name, value)
        await response.prepare(request)
        protocol, transport = request.protocol, request.transport
        assert transport is not None
        parser = RawParser()
        protocol.set_parser(parser)  # type: ignore[union-attr,arg-type]
        if rest:
            transport.write(rest)

        async def up() -> None:
            while data := await parser.queue.get():
                writer.write(data)
                await writer.drain()

        async def down() -> None:
            while data := await reader.read(65536):
                transport.write(data)
                while transport.get_write_buffer_size() > 1 << 20 and not transport.is_closing():
                    await asyncio.sleep(0.01)  # the client reads slowly: so does this stream, alone

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            broken = tasks[1].done() and not tasks[1].cancelled() and tasks[1].exception() is not None
            if broken:
                # the stream server reset the stream (its tunnel broke): reset kubectl's connection too
                log.warning("%s: the stream from its node broke: %s", request.path, tasks[1].exception())
                reset(transport)
            protocol.force_close()  # type: ignore[union-attr]
        return response


def _kubelet_error(status: int, message: str) -> errors.ApiError:
    reasons = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 503: "ServiceUnavailable"}
    return errors.ApiError(status if 400 <= status < 600 else 502, reasons.get(status, "InternalError"),
                           message or f"the node answered {status}")
