"""The control plane's listening socket: a connection cap per source, TLS, and deadlines on request headers.

aiohttp's ``TCPSite`` has neither a cap per client address nor a deadline for request headers (its
keep-alive timer is the only bound on a client that trickles a request byte by byte). This site
puts three things between the accepted socket and aiohttp's :class:`~aiohttp.web.RequestHandler`:

* :class:`SourceGate` counts open TCP connections per source IP address; past
  ``max_connections_per_source`` a new one is aborted at accept, before any TLS work is spent on it.
  The count is released when the TCP connection closes, whatever happened on it.
* TLS is asyncio's own ``SSLProtocol`` (what ``loop.create_server(ssl=...)`` builds), created here so
  that the counting protocol sits under it; its handshake must end within the header deadline.
* :class:`DeadlineRequestHandler` aborts a connection whose request headers are not complete
  ``header_timeout`` seconds after the accept (the first request) or after the first byte of a later
  request (kube-apiserver's ``ReadHeaderTimeout``). Between requests aiohttp's keep-alive timer
  closes an idle connection after ``idle_timeout``. The body has its own deadline in the server.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from asyncio import sslproto
from typing import Any

from aiohttp import web

from cores.controlplane.limits import LINGERING_SECONDS, MAX_FIELD_BYTES, MAX_HEADERS, MAX_LINE_BYTES, ServerLimits

log = logging.getLogger("kubeedge.controlplane")

# The handler reads two private members of aiohttp's RequestHandler (its request counter and the
# future it waits on between requests): fail at import, not silently, if aiohttp renames them.
assert {"_request_count", "_waiter"} <= set(web.RequestHandler.__slots__), "aiohttp's RequestHandler changed"

SHUTDOWN_TIMEOUT_SECONDS = 5.0  # a TLS close_notify the peer never answers
REFUSAL_LOG_INTERVAL = 10.0


class SourceGate:
    """Open connections per source address, with a cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: collections.Counter[str] = collections.Counter()
        self.refused = 0
        self._logged_at = -REFUSAL_LOG_INTERVAL

    def admit(self, source: str, now: float) -> bool:
        if self.open[source] >= self.cap:
            self.refused += 1
            if now - self._logged_at >= REFUSAL_LOG_INTERVAL:  # a flood must not flood the log too
                self._logged_at = now
                log.warning("refusing connections from %s: it holds %d, the cap per source (%d refused so far)",
                            source, self.open[source], self.refused)
            return False
        self.open[source] += 1
        return True

    def release(self, source: str) -> None:
        self.open[source] -= 1
        if self.open[source] <= 0:
            del self.open[source]


class DeadlineRequestHandler(web.RequestHandler):
    """aiohttp's handler, closing a connection whose request headers take longer than ``header_timeout``."""

    __slots__ = ("_header_timeout", "_header_timer", "_armed_at_count", "_first_deadline")

    def __init__(self, manager: web.Server, *, header_timeout: float, first_deadline: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_at_count = 0
        self._first_deadline = first_deadline

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self._first_deadline)

    def data_received(self, data: bytes) -> None:
        waiting = self._waiter is not None and not self._waiter.done()  # between requests, nothing queued
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._disarm()  # a whole request head arrived
        elif waiting and self._header_timer is None:
            self._arm(asyncio.get_running_loop().time() + self._header_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, deadline: float) -> None:
        self._disarm()
        self._armed_at_count = self._request_count
        self._header_timer = asyncio.get_running_loop().call_at(deadline, self._deadline_passed)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _deadline_passed(self) -> None:
        self._header_timer = None
        transport = self.transport
        if self._request_count != self._armed_at_count or transport is None:
            return
        peer = transport.get_extra_info("peername")
        log.info("closing the connection from %s: no complete request headers within %.0f s",
                 peer[0] if peer else "?", self._header_timeout)
        self.force_close()
        transport.abort()  # not close(): a TLS close_notify would wait on the silent peer


class _GatedConnection(asyncio.BufferedProtocol):
    """The accepted TCP connection's protocol: counted by the gate, then TLS, then HTTP."""

    def __init__(self, site: GatedTLSSite) -> None:
        self.site = site
        self.source = ""
        self.tls: sslproto.SSLProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if peer else "?"
        if not self.site.gate.admit(source, loop.time()):
            transport.abort()
            return
        self.source = source
        limits = self.site.limits
        deadline = loop.time() + limits.header_timeout
        handler = self.site.make_handler(deadline)
        # What BaseSelectorEventLoop._make_ssl_transport builds, with no waiter (nobody awaits the handshake)
        self.tls = sslproto.SSLProtocol(loop, handler, self.site.ssl_context, None,  # type: ignore[arg-type]
                                        server_side=True,
                                        ssl_handshake_timeout=limits.header_timeout,  # type: ignore[arg-type]
                                        ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        self.tls.connection_made(transport)

    def get_buffer(self, sizehint: int) -> Any:
        assert self.tls is not None
        return self.tls.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        assert self.tls is not None
        self.tls.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        if self.tls is not None:
            self.tls.eof_received()
        return None

    def pause_writing(self) -> None:
        if self.tls is not None:
            self.tls.pause_writing()

    def resume_writing(self) -> None:
        if self.tls is not None:
            self.tls.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.source:
            self.site.gate.release(self.source)
            self.source = ""
        if self.tls is not None:
            self.tls.connection_lost(exc)


class GatedTLSSite(web.BaseSite):
    """An HTTPS site for an :class:`~aiohttp.web.AppRunner` with the limits above."""

    __slots__ = ("_host", "_port", "limits", "gate", "ssl_context")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, ssl_context: ssl.SSLContext,
                 limits: ServerLimits, backlog: int = 1024) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port = host, port
        self.limits = limits
        self.gate = SourceGate(limits.max_connections_per_source)
        self.ssl_context = ssl_context

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        server = self._server
        if isinstance(server, asyncio.Server) and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port

    def make_handler(self, first_deadline: float) -> DeadlineRequestHandler:
        server = self._runner.server
        assert server is not None
        return DeadlineRequestHandler(
            server, loop=asyncio.get_running_loop(), header_timeout=self.limits.header_timeout,
            first_deadline=first_deadline, keepalive_timeout=self.limits.idle_timeout, access_log=None,
            max_line_size=MAX_LINE_BYTES, max_field_size=MAX_FIELD_BYTES, max_headers=MAX_HEADERS,
            lingering_time=LINGERING_SECONDS,
            auto_decompress=False,  # a gzip body is refused (415), never inflated: no decompression bombs
        )

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _GatedConnection(self), self._host, self._port,
                                                backlog=self._backlog, reuse_address=True)
