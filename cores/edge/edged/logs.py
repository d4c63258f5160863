"""Container logs as kubelet serves them (``/containerLogs``), read from the CRI log files.

containerd writes each line as ``<RFC 3339 time> <stream> <P|F> <text>``: ``F`` ends a line, ``P``
is a piece of a longer one. The options are kubelet's (``PodLogOptions``): ``tailLines``,
``sinceSeconds``/``sinceTime``, ``timestamps``, ``limitBytes`` and ``follow``; ``follow`` ends when
the container is no longer running and its file is read to the end, or when the reader goes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import BinaryIO
from urllib.parse import parse_qs

FOLLOW_POLL_SECONDS = 0.1
RUNNING_CHECK_SECONDS = 1.0
READ_BLOCK = 64 * 1024


class LogOptionsError(ValueError):
    """A query option kubelet would refuse (400)."""


@dataclasses.dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since: datetime.datetime | None = None  # lines at or after this time


def _flag(values: dict[str, list[str]], name: str) -> bool:
    value = (values.get(name) or ["false"])[-1].lower()
    if value in ("", "1", "true", "t"):
        return True
    if value in ("0", "false", "f"):
        return False
    raise LogOptionsError(f"{name}: {value!r} is not a boolean")


def _count(values: dict[str, list[str]], name: str, minimum: int) -> int | None:
    if name not in values:
        return None
    text = values[name][-1]
    if not re.fullmatch(r"-?[0-9]{1,18}", text):
        raise LogOptionsError(f"{name}: {text!r} is not an integer")
    number = int(text)
    if number < minimum:
        raise LogOptionsError(f"{name}: must be at least {minimum}")
    return number


def parse_options(query: str, now: datetime.datetime | None = None) -> LogOptions:
    values = parse_qs(query, keep_blank_values=True)
    since: datetime.datetime | None = None
    seconds = _count(values, "sinceSeconds", 1)
    if "sinceTime" in values:
        if seconds is not None:
            raise LogOptionsError("at most one of sinceTime or sinceSeconds may be specified")
        since = parse_time(values["sinceTime"][-1])
        if since is None:
            raise LogOptionsError(f"sinceTime: {values['sinceTime'][-1]!r} is not an RFC 3339 time")
    elif seconds is not None:
        since = (now or datetime.datetime.now(datetime.timezone.utc)) - datetime.timedelta(seconds=seconds)
    tail = _count(values, "tailLines", 0)
    return LogOptions(follow=_flag(values, "follow"), previous=_flag(values, "previous"),
                      timestamps=_flag(values, "timestamps"), tail_lines=tail,
                      limit_bytes=_count(values, "limitBytes", 1), since=since)


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_time(text: str) -> datetime.datetime | None:
    """RFC 3339 with up to nanoseconds (Python keeps microseconds)."""
    match = _TIME.fullmatch(text)
    if not match:
        return None
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    try:
        return datetime.datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class LogLine:
    timestamp: str    # as written, RFC 3339 with nanoseconds
    stream: str       # stdout | stderr
    text: bytes       # the line's text, with its newline when the line is complete


def parse_line(raw: bytes) -> LogLine | None:
    """One line of a CRI log file (without its final newline), or None when it is not one."""
    parts = raw.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"P", b"F"):
        return None
    text = parts[3] if len(parts) == 4 else b""
    return LogLine(parts[0].decode("ascii", "replace"), parts[1].decode(), text + (b"\n" if parts[2] == b"F" else b""))


def _tail_span(path: str, lines: int) -> tuple[int, int]:
    """Where the last ``lines`` lines of the file begin, and the file's end when they were counted."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        return (end if lines == 0 else _tail_start(handle, end, lines)), end


def _tail_start(handle: BinaryIO, end: int, lines: int) -> int:
    position, newlines = end, 0
    while position > 0:
        start = max(0, position - READ_BLOCK)
        handle.seek(start)
        block = handle.read(position - start)
        # the file's last byte is a newline: it ends the last line, it does not start one
        count_from = len(block) - 1 if position == end and block.endswith(b"\n") else len(block)
        index = count_from
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            newlines += 1
            if newlines >= lines:
                return start + index + 1
        position = start
    return 0


class _Formatter:
    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self.remaining = options.limit_bytes
        self.pending_partial = False  # inside a line made of P pieces: its time filter was decided

    def format(self, line: LogLine) -> bytes:
        if self.options.since is not None:
            stamp = parse_time(line.timestamp)
            if stamp is not None and stamp < self.options.since:
                return b""
        out = line.text
        if self.options.timestamps and not self.pending_partial:
            out = line.timestamp.encode() + b" " + out
        self.pending_partial = not line.text.endswith(b"\n")
        if self.remaining is not None:
            out = out[: self.remaining]
            self.remaining -= len(out)
        return out

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


def _lines(buffer: bytearray) -> Iterator[bytes]:
    while True:
        index = buffer.find(b"\n")
        if index < 0:
            return
        raw = bytes(buffer[:index])
        del buffer[: index + 1]
        yield raw


async def stream_log(path: str, options: LogOptions, still_running: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """The container's output as kubectl shows it, in chunks; with ``follow``, until the container
    stops (checked every second) and its file is read to the end."""
    if options.tail_lines is not None:
        offset, end = await asyncio.to_thread(_tail_span, path, options.tail_lines)
    else:
        offset, end = 0, await asyncio.to_thread(os.path.getsize, path)
    # Without follow, what was in the file when the request came, no more: a line the container
    # writes meanwhile would make --tail=2 print three
    stop_at = None if options.follow else end
    handle = await asyncio.to_thread(open, path, "rb")
    formatter = _Formatter(options)
    buffer = bytearray()
    loop = asyncio.get_running_loop()
    next_check = loop.time() + RUNNING_CHECK_SECONDS
    running = options.follow
    try:
        await asyncio.to_thread(handle.seek, offset)
        position = offset
        while True:
            size = READ_BLOCK if stop_at is None else min(READ_BLOCK, stop_at - position)
            block = await asyncio.to_thread(handle.read, size) if size > 0 else b""
            position += len(block)
            if block:
                buffer += block
                out = bytearray()
                for raw in _lines(buffer):
                    line = parse_line(raw)
                    if line is not None:
                        out += formatter.format(line)
                    if formatter.exhausted:
                        break
                if out:
                    yield bytes(out)
                if formatter.exhausted:
                    return
                continue
            if not running:
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
            if loop.time() >= next_check:
                next_check = loop.time() + RUNNING_CHECK_SECONDS
                # one more read after it stopped: what it wrote last is in the file by then
                running = await still_running()
    finally:
        await asyncio.to_thread(handle.close)
