"""The informer's watch thread hands its end marker and its errors to the loop even when the
queue between them is full, and stops when the loop side stops listening.

These drive the real ``Informer._watch`` and ``Informer._stream`` with a fake HTTP response
(the pool manager of the API client is the only thing faked) and a queue of two items.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cores.cloud.informer import Informer, WatchEnded

BOUND = 5.0  # seconds any of these watches may take; the bug was a silent hang


def event(revision: int, kind: str = "ADDED") -> bytes:
    obj = {"metadata": {"name": f"cm{revision}", "namespace": "default", "resourceVersion": str(revision)}}
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class FakeResponse:
    """A watch response: ``chunks``, then ``error`` (raised) or the end; ``block`` holds the read open."""

    def __init__(self, chunks: list[bytes], *, status: int = 200, body: bytes = b"", error: BaseException | None = None,
                 block: bool = False) -> None:
        self.chunks, self.status, self.body, self.error, self.block = chunks, status, body, error, block
        self.yielded = 0
        self.finished = threading.Event()  # the stream is exhausted (right before the end marker or error)
        self.shut = threading.Event()
        self.released = self.closed = False

    def stream(self, amount: int) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.yielded += 1
            yield chunk
        if self.block:  # a read that waits for the server until the socket is shut down
            assert self.shut.wait(BOUND), "nobody shut the response down"
            raise OSError("shut down")
        self.finished.set()
        if self.error is not None:
            raise self.error

    def read(self) -> bytes:
        return self.body

    def release_conn(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True

    def shutdown(self) -> None:
        self.shut.set()


class FakeApiClient:
    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.thread: threading.Thread | None = None
        self.rest_client = SimpleNamespace(pool_manager=self)

    def param_serialize(self, method: str, path: str, **_: Any) -> tuple[str, str, dict[str, str], None, None]:
        return method, f"https://127.0.0.1:1{path}", {}, None, None

    def request(self, method: str, url: str, **_: Any) -> FakeResponse:
        self.thread = threading.current_thread()
        return self.response


def informer_for(response: FakeResponse, handler: Any) -> tuple[Informer, FakeApiClient]:
    api = FakeApiClient(response)
    informer = Informer(SimpleNamespace(api_client=api), "/api/v1/configmaps", handler)  # type: ignore[arg-type]
    informer.queue_size = 2
    return informer, api


def holding_first_event(response: FakeResponse, seen: list[str]) -> Any:
    """A handler that holds the first event until the stream is exhausted, so the queue is full
    (two events waiting) when the thread hands over the end marker or the error."""

    async def handler(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if not seen:
            while not response.finished.is_set():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # time for a marker sent at once (put_nowait) to have been lost
        seen.append(obj["metadata"]["resourceVersion"])

    return handler


async def test_end_marker_reaches_a_full_queue() -> None:
    response = FakeResponse([event(1), event(2), event(3)])
    seen: list[str] = []
    informer, api = informer_for(response, holding_first_event(response, seen))
    assert await asyncio.wait_for(informer._watch("0"), BOUND) == "3"
    assert seen == ["1", "2", "3"]
    assert set(informer.cache) == {"default/cm1", "default/cm2", "default/cm3"}
    assert api.thread is not None
    await asyncio.to_thread(api.thread.join, BOUND)
    assert not api.thread.is_alive()
    assert response.released and not response.closed  # read to its end: back to the pool


async def test_error_reaches_a_full_queue() -> None:
    response = FakeResponse([event(1), event(2), event(3)], error=OSError("connection reset"))
    seen: list[str] = []
    informer, api = informer_for(response, holding_first_event(response, seen))
    with pytest.raises(OSError, match="connection reset"):
        await asyncio.wait_for(informer._watch("0"), BOUND)
    assert seen == ["1", "2", "3"]  # the error comes after the events before it
    assert api.thread is not None
    await asyncio.to_thread(api.thread.join, BOUND)
    assert response.closed and not response.released


async def test_error_event_after_a_full_queue_ends_the_watch() -> None:
    gone = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410}}).encode() + b"\n"
    response = FakeResponse([event(1), event(2), gone])
    seen: list[str] = []
    informer, _ = informer_for(response, holding_first_event(response, seen))
    with pytest.raises(WatchEnded) as ended:
        await asyncio.wait_for(informer._watch("0"), BOUND)
    assert ended.value.gone
    assert seen == ["1", "2"]


async def test_gone_response_ends_the_watch() -> None:
    response = FakeResponse([], status=410, body=b'{"kind":"Status","code":410}')
    informer, api = informer_for(response, holding_first_event(response, []))
    with pytest.raises(WatchEnded) as ended:
        await asyncio.wait_for(informer._watch("0"), BOUND)
    assert ended.value.gone
    assert api.thread is not None
    await asyncio.to_thread(api.thread.join, BOUND)
    assert response.released and not response.closed


async def test_cancelled_watch_frees_a_thread_waiting_for_room() -> None:
    response = FakeResponse([event(revision) for revision in range(1, 51)])
    forever = asyncio.Event()
    handled = asyncio.Event()

    async def stuck(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        handled.set()
        await forever.wait()

    informer, api = informer_for(response, stuck)
    task = asyncio.create_task(informer._watch("0"))
    await asyncio.wait_for(handled.wait(), BOUND)
    while response.yielded < 4:  # one event in the handler, two queued, the thread waiting with the fourth
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert api.thread is not None
    await asyncio.to_thread(api.thread.join, BOUND)
    assert not api.thread.is_alive(), "the streaming thread still waits for a loop that stopped listening"
    assert response.yielded < 50 and response.closed


async def test_cancelled_watch_wakes_a_thread_blocked_in_a_read() -> None:
    response = FakeResponse([event(1)], block=True)
    handled = asyncio.Event()

    async def handler(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        handled.set()

    informer, api = informer_for(response, handler)
    task = asyncio.create_task(informer._watch("0"))
    await asyncio.wait_for(handled.wait(), BOUND)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert api.thread is not None
    await asyncio.to_thread(api.thread.join, BOUND)
    assert not api.thread.is_alive()
    assert response.shut.is_set() and response.closed and not response.released
