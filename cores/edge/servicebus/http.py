"""HTTP/1.1 for ServiceBus on asyncio streams, parsed by h11 (sans-I/O, as the link's core).

The edge may not import aiohttp (its footprint); h11 is a few hundred kB and does the parsing,
framing and keep-alive rules, so what is left here is reading, writing and the limits:
every call and every request has a deadline and a body bound, and a peer that breaks HTTP gets
an error, never a hang.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from collections.abc import Awaitable, Callable

import h11

log = logging.getLogger("kubeedge.servicebus")

READ_CHUNK = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024     # request line and headers, either way
MAX_HEADERS = 100

Headers = list[tuple[str, str]]


class BodyTooLarge(Exception):
    pass


class CallFailed(Exception):
    """The local server could not be reached or broke HTTP; ``timed_out`` when it was too slow."""

    def __init__(self, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: Headers
    body: bytes


async def _read_body(reader: asyncio.StreamReader, conn: h11.Connection, max_body: int) -> bytes:
    body = bytearray()
    while True:
        event = await _next_event(reader, conn)
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise BodyTooLarge(f"body over {max_body} bytes")
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return bytes(body)


async def _next_event(reader: asyncio.StreamReader, conn: h11.Connection) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(READ_CHUNK))


async def call(port: int, method: str, target: str, headers: Headers, body: bytes, *, timeout: float,
               max_body: int) -> Answer:
    """``method target`` on ``127.0.0.1:port``: always loopback (the host is never taken from the
    request), one connection a call, the whole exchange within ``timeout``."""
    try:
        return await asyncio.wait_for(_call(port, method, target, headers, body, max_body), timeout)
    except TimeoutError:
        raise CallFailed(f"127.0.0.1:{port} did not answer within {timeout:g}s", timed_out=True) from None


async def _call(port: int, method: str, target: str, headers: Headers, body: bytes, max_body: int) -> Answer:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as error:
        raise CallFailed(f"127.0.0.1:{port}: {error.strerror or error}") from None
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    try:
        sent = [("Host", f"127.0.0.1:{port}"), *headers, ("Content-Length", str(len(body))), ("Connection", "close")]
        writer.write(conn.send(h11.Request(method=method, target=target, headers=sent)) or b"")
        writer.write(conn.send(h11.Data(data=body)) or b"" if body else b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        while True:
            event = await _next_event(reader, conn)
            if isinstance(event, h11.Response):
                break
            if isinstance(event, h11.ConnectionClosed):
                raise CallFailed(f"127.0.0.1:{port} closed the connection without an answer")
        received = await _read_body(reader, conn, max_body)
        return Answer(event.status_code, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers], received)
    except h11.ProtocolError as error:
        raise CallFailed(f"127.0.0.1:{port} broke HTTP: {error}") from None
    except (ConnectionError, OSError) as error:
        raise CallFailed(f"127.0.0.1:{port}: {error}") from None
    finally:
        await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: Headers
    body: bytes


Handler = Callable[[Request], Awaitable[Answer]]


async def serve(host: str, port: int, handler: Handler, *, max_body: int, timeout: float,
                tls: ssl.SSLContext | None = None) -> asyncio.Server:
    """A server that gives each request to ``handler``; one request a connection (it closes after
    the answer), the request read within ``timeout``, its body bounded (413 past it)."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            answer = await _serve_one(reader, conn, handler, max_body, timeout)
            if answer is not None:
                headers = [*answer.headers, ("Content-Length", str(len(answer.body))), ("Connection", "close")]
                writer.write(conn.send(h11.Response(status_code=answer.status, headers=headers)) or b"")
                writer.write(conn.send(h11.Data(data=answer.body)) or b"" if answer.body else b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
        except (ConnectionError, OSError, h11.ProtocolError) as error:
            log.debug("servicebus server: connection dropped: %s", error)
        finally:
            await _close(writer)

    return await asyncio.start_server(connected, host, port, ssl=tls)


async def _serve_one(reader: asyncio.StreamReader, conn: h11.Connection, handler: Handler, max_body: int,
                     timeout: float) -> Answer | None:
    try:
        async with asyncio.timeout(timeout):
            event = await _next_event(reader, conn)
            if not isinstance(event, h11.Request):
                return None
            if len(event.headers) > MAX_HEADERS:
                return Answer(431, [], b"too many headers")
            try:
                body = await _read_body(reader, conn, max_body)
            except BodyTooLarge as error:
                return _json_answer(413, str(error))
    except TimeoutError:
        return _json_answer(408, f"the request was not read within {timeout:g}s")
    except h11.RemoteProtocolError as error:
        return Answer(error.error_status_hint, [], str(error).encode())
    request = Request(event.method.decode("latin-1"), event.target.decode("latin-1"),
                      [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers], body)
    return await handler(request)


def _json_answer(code: int, message: str) -> Answer:
    import json

    body = json.dumps({"code": code, "msg": message, "body": ""}).encode()
    return Answer(code, [("Content-Type", "application/json")], body)
