"""List-and-watch of one resource, as client-go's informer: a cache and a stream of changes.

It lists, emits an ADDED for every object, then watches from the list's resourceVersion; when
the watch ends it resumes from the last version seen, and on 410 Gone it lists again and emits
what changed meanwhile (deletes included). The watch runs on a thread (the client library
blocks); events reach the loop through a bounded queue, and so do the end of the stream and its
errors, after the events before them: the thread waits for room for each, as long as the loop side
still listens (a cancelled or finished watch closes the channel, which also ends a read the thread
is blocked in).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from cores.cloud.kube import Kube, KubeError

log = logging.getLogger("kubeedge.informer")

Handler = Callable[[str, dict[str, Any], dict[str, Any] | None], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class WatchEnded(Exception):
    gone: bool


# How often a streaming thread waiting for room in a full queue checks that the loop side still listens.
_HANDOFF_POLL_SECONDS = 0.5


class _Channel:
    """One watch's hand-off from its streaming thread to the loop.

    The thread calls :meth:`put` for every item (events, then the end marker ``None`` or the
    error), which waits for room in the bounded queue, so nothing is dropped and order is kept;
    the loop side calls :meth:`close` when it stops reading, which makes a waiting :meth:`put`
    give up and shuts down the response, so a thread blocked in a read wakes up too.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue(size)
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None

    def put(self, item: Any) -> bool:
        """Hand ``item`` to the loop, waiting for room; False (item dropped) once nobody listens."""
        if self.closed.is_set():
            return False
        try:
            future = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                future.result(timeout=_HANDOFF_POLL_SECONDS)
                return True
            except concurrent.futures.TimeoutError:
                if self.closed.is_set() or self.loop.is_closed() or not self.loop.is_running():
                    try:
                        future.cancel()
                    except RuntimeError:  # the loop closed meanwhile: nothing left to cancel
                        pass
                    return False
            except concurrent.futures.CancelledError:  # the loop cancelled the put (shutting down)
                return False

    def attach(self, response: Any) -> bool:
        """The thread's response, to shut down on :meth:`close`; False if already closed."""
        with self._lock:
            if self.closed.is_set():
                return False
            self._response = response
            return True

    def detach(self) -> bool:
        """The thread is done reading; True if the response is intact (not shut down by :meth:`close`)."""
        with self._lock:
            intact = self._response is not None
            self._response = None
            return intact

    def close(self) -> None:
        """Loop side: stop listening; the thread stops at its next hand-off or read."""
        with self._lock:
            self.closed.set()
            response, self._response = self._response, None
            if response is not None:
                try:
                    response.shutdown()  # wakes a read blocked in the thread; under the lock, so
                    # never after the thread released the connection to the pool
                except (AttributeError, ValueError, RuntimeError, OSError):
                    pass


def object_key(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


class Informer:
    """Keeps ``cache`` in step with the API and calls ``handler(event_type, obj, old)`` for each change."""

    queue_size = 10_000  # events one watch may hold between its thread and the loop

    def __init__(self, kube: Kube, path: str, handler: Handler, *, query: list[tuple[str, str]] | None = None) -> None:
        self.kube = kube
        self.path = path
        self.handler = handler
        self.query = query or []
        self.cache: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self._stop = threading.Event()

    def get(self, key: str) -> dict[str, Any] | None:
        return self.cache.get(key)

    async def run(self) -> None:
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    resource_version = await self._relist()
                resource_version = await self._watch(resource_version)
            except WatchEnded as ended:
                if ended.gone:
                    resource_version = ""
            except (KubeError, OSError) as error:
                log.warning("watch of %s failed, retrying: %s", self.path, error)
                await asyncio.sleep(1)

    def stop(self) -> None:
        self._stop.set()

    async def _relist(self) -> str:
        listed = await self.kube.request("GET", self.path, query=self.query)
        fresh = {object_key(item): item for item in listed.get("items") or []}
        for key, gone in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                await self._dispatch("DELETED", gone, None)
        for key, obj in fresh.items():
            old = self.cache.get(key)
            self.cache[key] = obj
            if old is None:
                await self._dispatch("ADDED", obj, None)
            elif old.get("metadata", {}).get("resourceVersion") != obj.get("metadata", {}).get("resourceVersion"):
                await self._dispatch("MODIFIED", obj, old)
        self.synced.set()
        return str((listed.get("metadata") or {}).get("resourceVersion") or "")

    async def _dispatch(self, kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        try:
            await self.handler(kind, obj, old)
        except Exception:  # noqa: BLE001 - one bad event must not stop the informer
            log.exception("handling %s %s of %s failed", kind, object_key(obj), self.path)

    async def _watch(self, resource_version: str) -> str:
        channel = _Channel(asyncio.get_running_loop(), self.queue_size)
        thread = threading.Thread(target=self._stream, args=(resource_version, channel), daemon=True,
                                  name=f"watch {self.path}")
        thread.start()
        try:
            while True:
                item = await channel.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    return resource_version
                kind, obj = item["type"], item["object"]
                if kind == "ERROR":
                    raise WatchEnded(gone=int(obj.get("code") or 0) == 410)
                resource_version = str(obj.get("metadata", {}).get("resourceVersion") or resource_version)
                if kind == "BOOKMARK":
                    continue
                key = object_key(obj)
                old = self.cache.get(key)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                await self._dispatch(kind, obj, old)
        finally:
            channel.close()  # returned, raised or cancelled: the thread must not wait for us

    def _stream(self, resource_version: str, channel: _Channel) -> None:
        import urllib3

        api = self.kube.api_client
        query = [*self.query, ("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", "300")]
        response = None
        try:
            method, url, headers, _, _ = api.param_serialize("GET", self.path, query_params=query,
                                                             header_params={"Accept": "application/json"},
                                                             auth_settings=["BearerToken"])
            response = api.rest_client.pool_manager.request(method, url, headers=headers, preload_content=False,
                                                            timeout=urllib3.Timeout(connect=10, read=330))
            if not channel.attach(response):
                return
            if response.status >= 400:
                code, body = response.status, response.read()
                if channel.detach():
                    response.release_conn()
                    response = None
                status = json.loads(body or b"{}")
                raise WatchEnded(gone=code == 410) if code == 410 else KubeError(status)
            buffer = b""
            for chunk in response.stream(65536):
                if self._stop.is_set() or channel.closed.is_set():
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and not channel.put(json.loads(line)):
                        return
            else:  # read to its end: the connection may go back to the pool
                if channel.detach():
                    response.release_conn()
                    response = None
            channel.put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the loop, which decides
            channel.put(error)
        finally:
            if response is not None:  # not read to its end, or shut down by the loop side: not for the pool
                channel.detach()
                response.close()
