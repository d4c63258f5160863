"""The runtime's streaming server (containerd's, for exec, attach and port-forward): a client's
upgrade request passed on to the URL CRI gives, then bytes both ways, as kubelet proxies them.

Nothing here parses SPDY or WebSocket: the upgraded connection goes through byte for byte. Used by
Edged's kubelet server (for the cloud's stream tunnel) and MetaServer (kubectl exec at the edge).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

PIPE_CHUNK = 64 * 1024
_SKIP = {"host", "content-length", "transfer-encoding"}


class StreamProxyError(Exception):
    """The streaming server cannot be reached: an HTTP status and its reason, for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def proxy_upgrade(method: str, url: str, headers: list[tuple[str, str]], rest: bytes,
                        reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The client's request, sent on to the runtime's streaming URL, then bytes both ways."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StreamProxyError(500, f"the runtime gave an unusable stream URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, port, ssl=parts.scheme == "https" or None)
    except OSError as error:
        raise StreamProxyError(502, f"the runtime's streaming server is unreachable: {error}") from None
    target = parts.path + ("?" + parts.query if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _SKIP]
    up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rest)
    await pipe_both(reader, writer, up_reader, up_writer)


async def pipe_both(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                    b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until either side ends, then close both."""

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(PIPE_CHUNK):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass

    tasks = [asyncio.create_task(copy(a_reader, b_writer)), asyncio.create_task(copy(b_reader, a_writer))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await close_quietly(b_writer)


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (ConnectionError, OSError, TimeoutError, ssl.SSLError):
        pass
