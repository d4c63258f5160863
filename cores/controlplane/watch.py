"""Watch streams: history from a resourceVersion (or the current state), then live events.

The watcher subscribes before it reads history, so no event falls between the two; events are
de-duplicated by revision. With selectors, a change that makes an object start or stop matching
is sent as ADDED or DELETED, as kube-apiserver's watch cache does. A watch from a compacted
revision gets one ERROR event carrying a 410 ``Expired`` Status, as the real server sends.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from cores.controlplane.api import Api, Matcher
from cores.controlplane.errors import gone
from cores.controlplane.registry import ResourceType
from cores.controlplane.store import Compacted, Event

BOOKMARK_INTERVAL = 60.0
GONE_CHECK_SECONDS = 5.0  # how soon a watch whose client left ends, when no event would tell
# As kube-apiserver's watch cache, also send a bookmark shortly before the watch times out,
# so a client re-watching after the timeout resumes from a recent resourceVersion.
BOOKMARK_BEFORE_DEADLINE = 2.0


def event_type(event: Event, matcher: Matcher | None) -> str | None:
    """The type this watcher sees for ``event``, or None when it does not concern it."""
    if matcher is None:
        return event.type
    now = matcher(event.labels, event.fields)
    if event.type != "MODIFIED":
        return event.type if now else None
    before = now if event.prev_labels is None else matcher(event.prev_labels, event.prev_fields or {})
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None


def line(kind: str, obj: str) -> bytes:
    return f'{{"type":"{kind}","object":{obj}}}\n'.encode()


def bookmark(resource: ResourceType, revision: int) -> bytes:
    obj = {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": {"resourceVersion": str(revision)}}
    return line("BOOKMARK", json.dumps(obj, separators=(",", ":")))


async def stream(
    api: Api, resource: ResourceType, namespace: str | None, matcher: Matcher | None, *,
    resource_version: str, timeout: float | None, bookmarks: bool, client_gone: Callable[[], bool] = lambda: False,
) -> AsyncGenerator[bytes, None]:
    """Yield the lines of one watch response until it times out, the client is gone (``client_gone``, checked
    every :data:`GONE_CHECK_SECONDS`), or the caller stops iterating."""
    store = api.store
    prefix = resource.list_prefix(namespace)
    watcher = store.subscribe(prefix)
    deadline = time.monotonic() + (timeout if timeout is not None else random.uniform(1800, 3600))
    try:
        if resource_version not in ("", "0"):
            try:
                history = await store.events_since(prefix, int(resource_version))
            except Compacted as error:
                yield line("ERROR", json.dumps(gone(str(error)).status()))
                return
            last = int(resource_version)
            for event in history:
                last = event.revision
                kind = event_type(event, matcher)
                if kind:
                    yield line(kind, api.render(resource, event.value))
        else:
            revision, rows, _ = await store.list(prefix, match=None if matcher is None else (lambda r: matcher(r.labels, r.fields)))
            for row in rows:
                yield line("ADDED", api.render(resource, row.value))
            last = revision
        async for chunk in _live(api, resource, watcher, matcher, last, deadline, bookmarks, client_gone):
            yield chunk
    finally:
        store.unsubscribe(watcher)


async def _live(api: Api, resource: ResourceType, watcher: Any, matcher: Matcher | None, last: int,
                deadline: float, bookmarks: bool, client_gone: Callable[[], bool]) -> AsyncGenerator[bytes, None]:
    next_bookmark = _next_bookmark(deadline)
    while True:
        now = time.monotonic()
        if now >= deadline or client_gone():
            return  # a client that left (kubectl get -w ended) is noticed without waiting for an event
        wait = min(deadline, next_bookmark, now + GONE_CHECK_SECONDS) - now
        try:
            event = await asyncio.wait_for(watcher.queue.get(), wait)
        except TimeoutError:
            if bookmarks and time.monotonic() >= next_bookmark and watcher.queue.empty():
                yield bookmark(resource, max(last, api.store.published_revision))
                next_bookmark = _next_bookmark(deadline)
            continue
        if event is None:
            return  # overflowed: the client re-watches from its last resourceVersion
        if event.revision <= last:
            continue
        last = event.revision
        kind = event_type(event, matcher)
        if kind:
            yield line(kind, api.render(resource, event.value))


def _next_bookmark(deadline: float) -> float:
    now = time.monotonic()
    regular = now + BOOKMARK_INTERVAL
    before_end = deadline - BOOKMARK_BEFORE_DEADLINE
    return before_end if now < before_end < regular else regular
