"""ServiceBus: cloud services call HTTP servers at the edge, and edge apps call the cloud (upstream §5.6).

From the cloud's Router (source ``router_servicebus``, group ``user``):

- ``start`` / ``stop``, resource a target URL: the URLs edge apps may send to the cloud, kept in
  upstream's ``target_urls`` table; the local server runs while there is one;
- any other operation is an HTTP method: resource ``<port>:<path>``, content upstream's
  ``HTTPRequest {header, body (base64), method, url}``. The call goes to ``127.0.0.1:<port><path>``,
  never anywhere else (the host is not taken from the request, and ``Host`` and hop-by-hop headers
  are replaced); the answer goes back as ``HTTPResponse {header, status_code, body}``, operation
  ``upload``, ``parent_msg_id`` the request's id, as upstream's.

The local server (``server:port``, default 127.0.0.1:9060) takes ``{"method", "targetURL",
"payload"}`` from an edge app and uploads it (resource the target URL) when the URL was started;
the Router's answer comes back as ``{"code", "msg", "body"}``, with the code as HTTP status too.

Limits: bodies up to ``maxBodyBytes`` each way (413 past it), each call to a local server within
``timeout`` seconds (504 naming the hop), at most ``maxInFlight`` calls at once (503 past it). A
slow local server holds only its own call: every call is its own task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import sqlite3
import ssl
from pathlib import Path
from typing import Any

from cores.beehive import Context, Message
from cores.beehive.context import BeehiveError, SyncTimeout
from cores.common.config import Config
from cores.common.tasks import TaskSupervisor
from cores.edge.servicebus import http
from cores.link import routing
from cores.link.http import HOP_HEADERS, METHODS

log = logging.getLogger("kubeedge.servicebus")

ROUTER_SOURCE = "router_servicebus"
HUB_MODULE = "websocket"
DEFAULT_MAX_BODY = 4 * 1024 * 1024   # base64 on the link makes it 5.6 MiB, under the 8 MiB frame limit
DEFAULT_MAX_IN_FLIGHT = 64
MAX_TARGET_URLS = 1024
MAX_URL = 2048
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")            # an HTTP method or header name
_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")       # origin-form: no spaces, no '#', no controls


class ServiceBus:
    name = "servicebus"
    group = "servicebus"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.modules.serviceBus
        self.database = Path(config.database.dataSource)
        self.timeout = float(self.settings.timeout or 60)
        self.max_body = int(self.settings.get("maxBodyBytes") or DEFAULT_MAX_BODY)
        self.max_in_flight = int(self.settings.get("maxInFlight") or DEFAULT_MAX_IN_FLIGHT)
        self.target_urls: set[str] = set()
        self.server: asyncio.Server | None = None
        self.cloud_connected = False
        self.in_flight = 0
        self.tasks = TaskSupervisor(self.name)

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.target_urls = set(await asyncio.to_thread(self._load_urls))
        if self.target_urls:
            await self._start_server()
        log.info("servicebus ready: %d target URL(s), local calls within %gs, bodies up to %d bytes",
                 len(self.target_urls), self.timeout, self.max_body)
        while True:
            self._from_module(await ctx.receive(self.name))

    async def stop(self) -> None:
        await self._stop_server()
        await self.tasks.close()

    # messages ---------------------------------------------------------------------------------
    def _from_module(self, message: Message) -> None:
        if routing.is_connection_event(message):
            self.cloud_connected = routing.connected_in(message)
            return
        if message.parent_msg_id:
            self.ctx.send_response(message)  # the Router's answer to an upload a local caller waits for
            return
        if message.route.source != ROUTER_SOURCE:
            return
        operation, resource = message.route.operation, message.route.resource
        if operation in ("start", "stop"):
            self.tasks.spawn(self._change_url(operation, resource), f"url-{operation}")
        elif self.in_flight >= self.max_in_flight:
            self._answer(message, _error(503, f"servicebus busy: {self.max_in_flight} calls in flight"))
        else:
            self.in_flight += 1
            self.tasks.spawn(self._call(message), "call")

    async def _change_url(self, operation: str, url: str) -> None:
        if not _valid_url(url):
            log.warning("refused %s of a target URL that is not an http(s) URL (%d chars)", operation, len(url))
            return
        if operation == "start":
            if url not in self.target_urls and len(self.target_urls) >= MAX_TARGET_URLS:
                log.warning("refused a target URL: already %d", MAX_TARGET_URLS)
                return
            await asyncio.to_thread(self._save_url, url, True)
            self.target_urls.add(url)
            await self._start_server()
        else:
            await asyncio.to_thread(self._save_url, url, False)
            self.target_urls.discard(url)
            if not self.target_urls:
                await self._stop_server()

    # cloud -> local server --------------------------------------------------------------------
    async def _call(self, message: Message) -> None:
        try:
            self._answer(message, await self._http_response(message))
        finally:
            self.in_flight -= 1

    async def _http_response(self, message: Message) -> dict[str, Any]:
        try:
            port, path = parse_target(message.route.resource)
            method, headers, body = parse_request(message.content, message.route.operation, self.max_body)
        except ValueError as error:
            return _error(400, str(error))
        except OverflowError as error:
            return _error(413, str(error))
        try:
            answer = await http.call(port, method, path, headers, body, timeout=self.timeout, max_body=self.max_body)
        except http.BodyTooLarge as error:
            return _error(413, f"servicebus: the answer of 127.0.0.1:{port}: {error}")
        except http.CallFailed as error:
            return _error(504 if error.timed_out else 502, f"servicebus: {error}")
        log.debug("servicebus: %s 127.0.0.1:%d answered %d (%d bytes)", method, port, answer.status, len(answer.body))
        return {"header": _header_map(answer.headers), "status_code": answer.status,
                "body": base64.b64encode(answer.body).decode()}

    def _answer(self, request: Message, response: dict[str, Any]) -> None:
        reply = Message.new(source=self.name, group="user", operation="upload", resource="", content=response,
                            parent_msg_id=request.msg_id)
        try:
            self.ctx.send_nowait(HUB_MODULE, reply)
        except BeehiveError as error:
            log.warning("servicebus: answer not sent: %s", error)

    # local server -> cloud ----------------------------------------------------------------------
    async def _start_server(self) -> None:
        if self.server is not None:
            return
        host, port = str(self.settings.server or "127.0.0.1"), int(self.settings.port or 9060)
        try:
            tls = _tls_context(str(self.settings.get("tlsCertFile") or ""), str(self.settings.get("tlsPrivateKeyFile") or ""))
            self.server = await http.serve(host, port, self._local_request, max_body=self.max_body, timeout=self.timeout,
                                           tls=tls)
        except (ValueError, OSError, ssl.SSLError) as error:
            log.error("servicebus server not started on %s:%d: %s", host, port, error)  # the next start tries again
            return
        log.info("servicebus server listening on %s://%s:%d", "https" if tls else "http", host, port)

    async def _stop_server(self) -> None:
        if self.server is None:
            return
        server, self.server = self.server, None
        server.close()
        await server.wait_closed()
        log.info("servicebus server stopped: no target URL left")

    async def _local_request(self, request: http.Request) -> http.Answer:
        try:
            document = json.loads(request.body)
        except ValueError:
            return _local(400, "invalid params")
        target = document.get("targetURL") if isinstance(document, dict) else None
        if not isinstance(target, str) or target not in self.target_urls:
            return _local(400, f"url {str(target)[:MAX_URL]} is not allowed and please make a rule for this url in the cloud")
        if not self.cloud_connected:
            return _local(503, "the cloud is not connected")
        upload = Message.new(source=self.name, group="user", operation="upload", resource=target, content=request.body)
        try:
            reply = await self.ctx.send_sync(HUB_MODULE, upload, self.timeout)
        except SyncTimeout:
            return _local(504, f"edge -> cloud: no answer from the cloud within {self.timeout:g}s")
        except BeehiveError as error:
            return _local(503, str(error))
        code, text = answer_of(reply)
        return _local(code, "receive response from cloud successfully" if code == 200 else text,
                      text if code == 200 else "")

    # target_urls ------------------------------------------------------------------------------
    def _connect_db(self) -> sqlite3.Connection:
        self.database.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.database, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS `target_urls` (`url` text,PRIMARY KEY (`url`))")
        return db

    def _load_urls(self) -> list[str]:
        db = self._connect_db()
        try:
            return [str(row[0]) for row in db.execute("SELECT url FROM target_urls")]
        finally:
            db.close()

    def _save_url(self, url: str, present: bool) -> None:
        db = self._connect_db()
        try:
            if present:
                db.execute("INSERT OR REPLACE INTO target_urls (url) VALUES (?)", (url,))
            else:
                db.execute("DELETE FROM target_urls WHERE url = ?", (url,))
        finally:
            db.close()


# ---------------------------------------------------------------------------------- pure parts
def parse_target(resource: str) -> tuple[int, str]:
    """``<port>:<path>`` -> (port, path), refusing anything that could leave loopback or smuggle."""
    port_text, sep, path = resource.partition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"the format of resource {resource[:200]!r} is incorrect: expected <port>:<path>")
    if not path:
        path = "/"
    if len(path) > MAX_URL or not _PATH.fullmatch(path) or path.startswith("//"):
        raise ValueError("the path is not an origin-form path (absolute URLs, spaces and fragments are refused)")
    if any(segment in ("..", ".") for segment in path.split("?", 1)[0].split("/")) or "%2e" in path.lower():
        raise ValueError("the path climbs out of its root ('..' or '.' segments)")
    return int(port_text), path


def parse_request(content: Any, operation: str, max_body: int) -> tuple[str, http.Headers, bytes]:
    """upstream's ``HTTPRequest`` -> (method, headers to send, body)."""
    if isinstance(content, (str, bytes)):
        try:
            content = json.loads(content)
        except ValueError:
            raise ValueError("error to parse http request") from None
    if not isinstance(content, dict):
        raise ValueError("error to parse http request")
    method = str(content.get("method") or operation or "").upper()
    if method not in METHODS:
        raise ValueError(f"method {method[:20]!r} is not one of {', '.join(sorted(METHODS))}")
    raw_body = content.get("body") or ""
    if not isinstance(raw_body, str) or len(raw_body) > (max_body * 4) // 3 + 4:
        raise OverflowError(f"request body over {max_body} bytes") if isinstance(raw_body, str) else ValueError("body is not base64")
    try:
        body = base64.b64decode(raw_body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("body is not base64") from None
    if len(body) > max_body:
        raise OverflowError(f"request body over {max_body} bytes")
    headers: http.Headers = []
    raw_headers = content.get("header") or {}
    if not isinstance(raw_headers, dict):
        raise ValueError("header is not a map of lists")
    for name, values in raw_headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError("a header name is not an HTTP token")
        if name.lower() in HOP_HEADERS:
            continue
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
                raise ValueError(f"header {name[:40]} has a value with a line break")
            headers.append((name, value))
    if len(headers) > http.MAX_HEADERS:
        raise ValueError(f"more than {http.MAX_HEADERS} headers")
    return method, headers, body


def answer_of(reply: Message) -> tuple[int, str]:
    """The Router's answer to an upload: upstream's is the target's body as a string; ours says
    an error as ``{"code", "msg"}`` with operation ``response_error``."""
    content = reply.content
    if reply.route.operation == "response_error" and isinstance(content, dict):
        try:
            return int(content.get("code") or 502), str(content.get("msg") or "")
        except (TypeError, ValueError):
            return 502, "the cloud answered with an error"
    if isinstance(content, bytes):
        return 200, content.decode("utf-8", "replace")
    if isinstance(content, str):
        return 200, content
    return 200, json.dumps(content)


def _header_map(headers: http.Headers) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() in ("connection", "transfer-encoding", "keep-alive"):
            continue
        result.setdefault(name.title(), []).append(value)
    return result


def _error(code: int, reason: str) -> dict[str, Any]:
    # upstream's buildErrorResponse: the reason as the body, a Server header naming us
    return {"header": {"Server": ["kubeedge-edgecore"]}, "status_code": code,
            "body": base64.b64encode(reason.encode()).decode()}


def _local(code: int, msg: str, body: str = "") -> http.Answer:
    return http.Answer(code, [("Content-Type", "application/json")],
                       json.dumps({"code": code, "msg": msg, "body": body}).encode())


def _valid_url(url: str) -> bool:
    return (0 < len(url) <= MAX_URL and url.startswith(("http://", "https://"))
            and not any(c.isspace() or ord(c) < 32 for c in url))


def _tls_context(cert_file: str, key_file: str) -> ssl.SSLContext | None:
    """HTTPS when both files are set (upstream: a server certificate, not the node's client one)."""
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        raise ValueError("modules.serviceBus: tlsCertFile and tlsPrivateKeyFile go together")
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    certificate = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        raise ValueError(f"modules.serviceBus: {cert_file} has no serverAuth usage (the node's client certificate "
                         "cannot serve HTTPS)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
