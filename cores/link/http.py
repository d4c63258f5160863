"""HTTP over the link (the Router's REST ingress and ServiceBus): what never crosses it.

Both ends drop the same headers: the connection's own (host, framing, keep-alive) and those that
could make a server believe a call came from elsewhere; and both pass on only these methods.
"""

from __future__ import annotations

HOP_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
    "proxy-connection", "proxy-authorization", "proxy-authenticate", "forwarded", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip",
})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
