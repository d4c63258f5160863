"""CloudHub's bootstrap HTTPS server (port 10002): the CA, node certificates, name checks.

As upstream: ``GET /ca.crt`` returns the CA as raw DER; ``GET /edge.crt`` (a GET with a body)
takes a DER CSR and either ``Authorization: Bearer <jwt>`` plus ``NodeName`` (first join) or the
node's current client certificate (renewal), and returns the signed certificate as DER;
``GET /node/<name>`` says whether the name is taken. Every refusal has its own status (4xx for
whatever the client got wrong, never a 500) and a message that says what to do, and is logged
with the node's name and the source address.

Anyone who can reach the port may talk to it, so nothing here trusts the peer:

- names (``NodeName``, ``/node/<name>``) are DNS-1123 subdomains before any use;
- a certificate carries what CloudHub decides (:func:`certs.x509.sign_node_csr`), recorded as
  issued to the node before it leaves (:mod:`cores.cloud.revocation`); a revoked certificate cannot renew;
- connections are guarded (:class:`ConnectionGuard`): at most :data:`CONNECTIONS_PER_SOURCE` per
  source address and :data:`CONNECTIONS_TOTAL` in all, counted from the TCP accept; the TLS
  handshake must end within :data:`HANDSHAKE_SECONDS`, a request's headers must be in within
  :data:`HEADER_SECONDS` of the handshake (or of the previous response), a body within
  :data:`BODY_SECONDS`. So idle or dribbling sockets (slowloris) are closed, and one source
  cannot take the port from the others.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from certs import errors as cert_errors
from certs import token as tokens
from certs import x509 as certs
from cores.cloud.cloudhub.credentials import Credentials
from cores.cloud.revocation import Revocations, serial_key
from cores.common import names

log = logging.getLogger("kubeedge.cloudhub")

MAX_CSR_BYTES = 1024 * 1024          # upstream's limit on the /edge.crt body
HANDSHAKE_SECONDS = 10.0             # TCP accept -> TLS handshake done
HEADER_SECONDS = 10.0                # handshake done (or previous response) -> a request's headers parsed
BODY_SECONDS = 20.0                  # headers parsed -> the whole CSR read
CONNECTIONS_PER_SOURCE = 32          # open connections from one address (edges behind one NAT share it)
CONNECTIONS_TOTAL = 512              # open connections in all (file descriptors are finite)
REFUSAL_LOG_SECONDS = 60.0           # a source refused for too many connections is logged once per this
OCTET = "application/octet-stream"
NodeExists = Callable[[str], Awaitable[bool]]


class BootstrapServer:
    def __init__(self, credentials: Credentials, node_exists: NodeExists, signing_duration: datetime.timedelta,
                 revocations: Revocations) -> None:
        self.credentials = credentials
        self.node_exists = node_exists
        self.signing_duration = signing_duration
        self.revocations = revocations

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_CSR_BYTES, middlewares=[_request_deadlines, _no_crash])
        app.router.add_get("/ca.crt", self.ca)
        app.router.add_get("/edge.crt", self.edge_certificate)
        app.router.add_get("/node/{name:(?s:.*)}", self.node)  # anything below /node/, newlines too: 400 unless a name
        return app

    async def ca(self, request: web.Request) -> web.Response:
        return web.Response(body=self.credentials.ca_der, content_type=OCTET)

    async def node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        refusal = names.validate_node_name(name)
        if refusal or request.query_string:
            # never let an outside name (or a smuggled ?watch=true) reach the API with CloudCore's identity
            return _refuse(request, 400, refusal or "GET /node/<name> takes no query", name)
        if await self.node_exists(name):
            return web.Response(text="Node found")
        return web.Response(status=404, text="Node not found")

    async def edge_certificate(self, request: web.Request) -> web.Response:
        node_name = request.headers.get("NodeName", "").strip()
        if not node_name:
            return _refuse(request, 400, "missing NodeName header: the node's name is required", "")
        invalid = names.validate_node_name(node_name)
        if invalid:
            return _refuse(request, 400, invalid, node_name)
        try:
            body = await asyncio.wait_for(request.read(), BODY_SECONDS)
        except web.HTTPRequestEntityTooLarge:
            return _refuse(request, 413, f"the CSR exceeds {MAX_CSR_BYTES} bytes", node_name)
        except TimeoutError:
            return _refuse(request, 408, f"the CSR did not arrive within {BODY_SECONDS:g}s", node_name)
        if not body:
            return _refuse(request, 400, "empty body: GET /edge.crt takes the node's DER CSR as its body", node_name)
        refusal = await self._authenticate(request, node_name)
        if refusal is not None:
            return refusal
        try:
            cert = certs.sign_node_csr(body, self.credentials.ca_cert, self.credentials.ca_key, node_name,
                                       validity=self.signing_duration)
        except (cert_errors.CertsError, ValueError) as error:
            return _refuse(request, 400, f"cannot sign the certificate request: {error}", node_name)
        self._log_ignored(request, node_name, body)
        try:
            # recorded before it leaves: a certificate nobody knows about could never be revoked
            await self.revocations.record_issued(node_name, cert.serial_number, cert.not_valid_after_utc)
        except Exception as error:  # noqa: BLE001 - any failure to record refuses the certificate (fail closed)
            log.error("cannot record the certificate for node %s: %s", node_name, error)
            return _refuse(request, 503, "cannot record the new certificate in the cluster: try again later", node_name)
        kind = "renewal" if _peer_der(request) and not request.headers.get("Authorization") else "join"
        log.info("signed a certificate for node %s (%s), serial %s", node_name, kind, serial_key(cert.serial_number))
        return web.Response(body=certs.cert_to_der(cert), content_type=OCTET)

    async def _authenticate(self, request: web.Request, node_name: str) -> web.Response | None:
        """None when the request may have a certificate for ``node_name``, else the refusal.

        A valid node certificate presented on the connection renews that node's certificate (and
        only that node's, and only when not revoked); a bearer token joins a new node.
        """
        der = _peer_der(request)
        if der is not None:
            try:
                cert = certs.cert_from_der(der)
                presented = certs.verify_node_certificate(cert, self.credentials.ca_cert)
            except cert_errors.CertsError as error:
                log.warning("a client certificate was presented for node %s but refused: %s", node_name, error)
            else:
                if presented != node_name:
                    return _refuse(request, 403, f"the client certificate belongs to node {presented!r}, not {node_name!r}",
                                   node_name)
                if self.revocations.is_revoked(serial_key(cert.serial_number)):
                    if not request.headers.get("Authorization"):
                        return _refuse(request, 403, f"the certificate {serial_key(cert.serial_number)} of node "
                                       f"{node_name!r} is revoked (the node was deleted): join again with a token "
                                       "(`keadm gettoken` on the cloud)", node_name)
                else:
                    return None
        return await self._check_token(request, node_name)

    async def _check_token(self, request: web.Request, node_name: str) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _refuse(request, 401, "missing bearer token: join with the token printed by `keadm gettoken` on the cloud",
                           node_name)
        try:
            tokens.verify_token(header[7:].strip(), self.credentials.ca_key_der)
        except cert_errors.TokenError as error:
            return _refuse(request, 401, f"token refused: {error}", node_name)
        if await self.node_exists(node_name):
            return _refuse(request, 409, f"node name {node_name!r} is already taken in the cluster: choose another name "
                                         f"(keadm join --edgenode-name) or remove the old node (kubectl delete node {node_name})",
                           node_name)
        return None

    @staticmethod
    def _log_ignored(request: web.Request, node_name: str, csr: bytes) -> None:
        asked = certs.csr_extras(csr)
        usages = request.headers.get("ExtKeyUsages", "").replace(" ", "")
        if usages and usages != f"[{certs.GO_EXT_KEY_USAGE_CLIENT_AUTH}]":
            asked.append(f"ExtKeyUsages {usages[:64]}")
        if asked:
            log.warning("node %s (from %s) asked for %s: not granted, its certificate is CN=system:node:%s, "
                        "O=system:nodes, clientAuth only", node_name, _source(request), ", ".join(asked)[:512], node_name)


def _peer_der(request: web.Request) -> bytes | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return der or None


def _source(request: web.Request) -> str:
    return request.remote or "?"


def _refuse(request: web.Request, status: int, message: str, node_name: str) -> web.Response:
    log.warning("bootstrap request %s %r from %s for node %r refused (%d): %s", request.method, request.path[:128],
                _source(request), node_name[:253], status, message)
    return web.Response(status=status, text=message + "\n")


@web.middleware
async def _no_crash(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """An unexpected error is CloudCore's bug: logged with what was asked, answered 500, the server goes on."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the one place that turns a handler's bug into a 500 and a log line
        log.exception("bootstrap request %s %r from %s failed", request.method, request.path[:128], _source(request))
        return web.Response(status=500, text="internal error: see CloudCore's log\n")


@web.middleware
async def _request_deadlines(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The connection's header deadline stops while a request is handled and restarts after it."""
    guarded = request.transport.get_protocol() if request.transport else None
    if not isinstance(guarded, _Guarded):
        return await handler(request)
    guarded.request_started()
    try:
        return await handler(request)
    finally:
        guarded.request_finished()


def tls_context(ca_file: str, cert_file: str, key_file: str, *, require_client: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(ca_file)
    context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
    return context


# connections --------------------------------------------------------------------------------
class ConnectionGuard:
    """Accepts TCP connections, caps them per source and in all, then starts TLS and aiohttp.

    The caps are checked at the TCP accept, before any TLS work, so sockets that never send a
    ClientHello count too. TLS is started on the accepted transport (``loop.start_tls``) with a
    handshake deadline; aiohttp's request handler then speaks HTTP over it, wrapped in a
    :class:`_Guarded` protocol that enforces the header deadline.
    """

    def __init__(self, http: Callable[[], asyncio.Protocol], context: ssl.SSLContext) -> None:
        self.http = http  # aiohttp's protocol factory (web.Server)
        self.context = context
        self.by_source: collections.Counter[str] = collections.Counter()
        self.total = 0
        self.pending: set[asyncio.Task[None]] = set()
        self.open: set[asyncio.Transport] = set()
        self._refusal_logged: dict[str, float] = {}

    def __call__(self) -> asyncio.Protocol:
        return _Accepted(self)

    def admit(self, source: str) -> bool:
        if self.by_source[source] >= CONNECTIONS_PER_SOURCE or self.total >= CONNECTIONS_TOTAL:
            now = asyncio.get_running_loop().time()
            if now - self._refusal_logged.get(source, -REFUSAL_LOG_SECONDS) >= REFUSAL_LOG_SECONDS:
                self._refusal_logged[source] = now
                log.warning("bootstrap port: refusing connections from %s: %d open from there (cap %d), %d in all (cap %d)",
                            source, self.by_source[source], CONNECTIONS_PER_SOURCE, self.total, CONNECTIONS_TOTAL)
            return False
        self.by_source[source] += 1
        self.total += 1
        return True

    def release(self, source: str) -> None:
        self.by_source[source] -= 1
        if self.by_source[source] <= 0:
            del self.by_source[source]
        self.total -= 1

    async def upgrade(self, accepted: _Accepted, transport: asyncio.Transport) -> None:
        if accepted.transport is None:  # lost before its turn came
            return
        accepted.transport = None  # from here the guarded protocol owns the connection's place
        loop = asyncio.get_running_loop()
        guarded = _Guarded(self, accepted.source, transport, self.http())
        try:
            tls = await loop.start_tls(transport, guarded, self.context, server_side=True,
                                       ssl_handshake_timeout=HANDSHAKE_SECONDS)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as error:
            log.debug("bootstrap port: TLS with %s failed: %s", accepted.source, error)
            guarded.lost()
            return
        if tls is None or guarded.closed:
            guarded.lost()
            return
        guarded.start(tls)

    async def close(self) -> None:
        for task in list(self.pending):
            task.cancel()
        for transport in list(self.open):
            transport.abort()
        await asyncio.gather(*self.pending, return_exceptions=True)


class _Accepted(asyncio.Protocol):
    """A TCP connection before TLS: counted against its source, or refused at once."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.source = "?"
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.source = str(peer[0]) if peer else "?"
        if not self.guard.admit(self.source):
            transport.abort()
            return
        self.transport = transport
        self.guard.open.add(transport)
        transport.pause_reading()  # nothing is read before start_tls takes the transport over
        task = asyncio.get_running_loop().create_task(self.guard.upgrade(self, transport))
        self.guard.pending.add(task)
        task.add_done_callback(self.guard.pending.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        # Only before start_tls took the transport over (it becomes SSLProtocol's then).
        if self.transport is not None:
            self.guard.open.discard(self.transport)
            self.guard.release(self.source)
            self.transport = None


class _Guarded(asyncio.Protocol):
    """aiohttp's request handler over TLS, with the header deadline and the guard's bookkeeping.

    Data that TLS delivers before :meth:`start` (the request can arrive with the handshake's last
    flight) is held until aiohttp's handler is connected.
    """

    def __init__(self, guard: ConnectionGuard, source: str, raw: asyncio.Transport, http: asyncio.Protocol) -> None:
        self.guard, self.source, self.raw, self.http = guard, source, raw, http
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] = []
        self.early_eof = False
        self.closed = False
        self._released = False
        self._deadline: asyncio.TimerHandle | None = None

    def start(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.http.connection_made(transport)
        self._arm()
        for data in self.early:
            self.http.data_received(data)
        self.early.clear()
        if self.early_eof:
            self.http.eof_received()

    # the header deadline ---------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(HEADER_SECONDS, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        log.info("bootstrap port: closing the connection from %s: no complete request within %gs", self.source, HEADER_SECONDS)
        if self.transport is not None:
            self.transport.abort()

    def request_started(self) -> None:
        self._disarm()

    def request_finished(self) -> None:
        if not self.closed:
            self._arm()

    # protocol --------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            self.early.append(data)
        else:
            self.http.data_received(data)

    def eof_received(self) -> bool | None:
        if self.transport is None:
            self.early_eof = True
            return None
        return self.http.eof_received()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.http.pause_writing()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.http.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        started = self.transport is not None
        self.lost()
        if started:
            self.http.connection_lost(exc)

    def lost(self) -> None:
        """The connection is gone (or never got through TLS): stop the deadline, give back its place."""
        self.closed = True
        self._disarm()
        if not self._released:
            self._released = True
            self.guard.open.discard(self.raw)
            self.guard.release(self.source)


class _OneLineForBadHTTP(logging.Filter):
    """aiohttp logs every unparsable request as an ERROR with a traceback: a client can fill the log
    that way. Such a request is the client's fault (answered 400): one WARNING line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            first = str(error.message).strip().splitlines()[0] if error.message else type(error).__name__
            record.msg, record.args = "bootstrap port: %s, refused (%d): %s", (record.getMessage(), error.code, first[:200])
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


_HTTP_LOG = logging.getLogger("kubeedge.cloudhub.http")
_HTTP_LOG.addFilter(_OneLineForBadHTTP())


class Listener:
    """The bootstrap port: the TCP server, its guard and aiohttp's runner, stopped together."""

    def __init__(self, server: asyncio.AbstractServer, guard: ConnectionGuard, runner: web.AppRunner) -> None:
        self.server, self.guard, self.runner = server, guard, runner

    async def cleanup(self) -> None:
        self.server.close()
        await self.guard.close()
        await self.runner.cleanup()


async def serve(app: web.Application, host: str, port: int, context: ssl.SSLContext) -> Listener:
    # aiohttp's own keep-alive limit backs up the header deadline; access_log off: refusals log themselves
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=HEADER_SECONDS,
                           max_line_size=8190, max_field_size=8190, logger=_HTTP_LOG)
    await runner.setup()
    http: Any = runner.server
    guard = ConnectionGuard(http, context)
    server = await asyncio.get_running_loop().create_server(guard, host, port, reuse_address=True)
    return Listener(server, guard, runner)
