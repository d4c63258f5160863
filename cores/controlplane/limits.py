"""The bounds the control plane's HTTPS port puts on every client, named once (docs/security.md cites them).

Every request is hostile until proven otherwise: these bound what one source can hold open, how long
it may take to say what it wants, and how much it may make the server parse. The values follow
kube-apiserver where it has one (``staging/src/k8s.io/apiserver/pkg/server/secure_serving.go``:
``ReadHeaderTimeout: 32s``, ``IdleTimeout: 90s``; ``MaxRequestBodyBytes`` 3 MiB), and are lower
where Python's recursion makes kube-apiserver's own bound (10,000 nested levels) unsafe.

:class:`ServerLimits` carries them into a server; :meth:`ServerLimits.from_config` reads them from
the config's ``server:`` section (``maxRequestBytes``, ``maxJSONDepth``, ``requestHeaderTimeoutSeconds``,
``requestBodyTimeoutSeconds``, ``idleTimeoutSeconds``, ``maxConnectionsPerSource``), these values
where a key is absent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# A request body larger than this is refused with 413 before it is parsed (kube-apiserver: 3 MiB;
# the config's server.maxRequestBytes overrides it). Also the bound of aiohttp's body buffer.
MAX_REQUEST_BYTES = 3 * 1024 * 1024
# JSON nested deeper than this is refused with 400 before json.loads sees it: the parser, deepcopy
# and the validators recurse, and Python's stack is ~1000 frames. Built-in kinds nest < 20 levels.
MAX_JSON_DEPTH = 100
# From the TCP accept to the end of the first request's headers (TLS handshake included), and from
# the first byte of each later request to the end of its headers (kube-apiserver ReadHeaderTimeout).
REQUEST_HEADER_TIMEOUT_SECONDS = 32.0
# From the end of the headers to the end of the body: a body that trickles in is cut (408).
REQUEST_BODY_TIMEOUT_SECONDS = 60.0
# A kept-alive connection with no request in flight is closed after this (kube-apiserver IdleTimeout).
IDLE_TIMEOUT_SECONDS = 90.0
# Connections (TLS handshakes in progress included) one source IP address may hold at once; the next
# is closed at accept, before any TLS work. CloudCore's watches and kubectl stay far below it.
MAX_CONNECTIONS_PER_SOURCE = 100
# aiohttp's parser limits, made explicit: request line and each header field (bytes), header count.
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 128
# resourceVersion is a SQLite rowid: a signed 64-bit integer (kube-apiserver parses a uint64).
MAX_RESOURCE_VERSION = 2**63 - 1
# An unread request body is drained for at most this long before the connection is closed.
LINGERING_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_json_depth: int = MAX_JSON_DEPTH
    header_timeout: float = REQUEST_HEADER_TIMEOUT_SECONDS
    body_timeout: float = REQUEST_BODY_TIMEOUT_SECONDS
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    max_connections_per_source: int = MAX_CONNECTIONS_PER_SOURCE

    @classmethod
    def from_config(cls, config: Any) -> ServerLimits:
        """The limits a control plane config asks for: the keys of ``server:`` it has, defaults for the rest."""
        server = config.server
        defaults = cls()

        def read(key: str, default: float) -> Any:
            return server[key] if key in server else default

        return cls(
            max_request_bytes=int(read("maxRequestBytes", defaults.max_request_bytes)),
            max_json_depth=int(read("maxJSONDepth", defaults.max_json_depth)),
            header_timeout=float(read("requestHeaderTimeoutSeconds", defaults.header_timeout)),
            body_timeout=float(read("requestBodyTimeoutSeconds", defaults.body_timeout)),
            idle_timeout=float(read("idleTimeoutSeconds", defaults.idle_timeout)),
            max_connections_per_source=int(read("maxConnectionsPerSource", defaults.max_connections_per_source)),
        )
