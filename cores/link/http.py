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

MAX_HEAD_BYTES = 16 * 1024  # a request or response line and its headers


class HeadError(ValueError):
    """A request or response head that is not HTTP/1.1 (answered 400, or the stream ends)."""


def split_head(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(head, rest) once ``buffer`` holds a whole head, None while it does not; past the bound an error."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise HeadError(f"head over {MAX_HEAD_BYTES} bytes")
        return None
    if end > MAX_HEAD_BYTES:
        raise HeadError(f"head over {MAX_HEAD_BYTES} bytes")
    return buffer[:end], buffer[end + 4:]


def parse_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    """A head's first line split in three (method, target, version / version, status, reason) and
    its headers, in order; names are tokens and values carry no control characters."""
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    if len(first) < 2:
        raise HeadError(f"malformed first line {lines[0][:80]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or any(c in name for c in " \t()<>@,;\\\"/[]?={}"):
            raise HeadError(f"malformed header line {line[:80]!r}")
        value = value.strip()
        if any(ord(c) < 32 and c != "\t" for c in value):
            raise HeadError(f"control character in header {name!r}")
        headers.append((name, value))
    if len(headers) > 100:
        raise HeadError("more than 100 headers")
    return first[0], first[1], headers


def header(headers: list[tuple[str, str]], name: str) -> str:
    """The first value of ``name`` (case-insensitive), "" when absent."""
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), "")
