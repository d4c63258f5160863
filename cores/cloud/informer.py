"""List-and-watch of one resource, as client-go's informer: a cache and a stream of changes.

It lists, emits an ADDED for every object, then watches from the list's resourceVersion; when
the watch ends it resumes from the last version seen, and on 410 Gone it lists again and emits
what changed meanwhile (deletes included). The watch runs on a thread (the client library
blocks); events reach the loop through a bounded queue.
"""

from __future__ import annotations

import asyncio
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


def object_key(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


class Informer:
    """Keeps ``cache`` in step with the API and calls ``handler(event_type, obj, old)`` for each change."""

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
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                await self._dispatch("DELETED", old, None)
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
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(10_000)
        thread = threading.Thread(target=self._stream, args=(resource_version, loop, queue), daemon=True)
        thread.start()
        while True:
            item = await queue.get()
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

    def _stream(self, resource_version: str, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        import urllib3

        api = self.kube.api_client
        query = [*self.query, ("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", "300")]
        try:
            method, url, headers, _, _ = api.param_serialize("GET", self.path, query_params=query,
                                                             header_params={"Accept": "application/json"},
                                                             auth_settings=["BearerToken"])
            response = api.rest_client.pool_manager.request(method, url, headers=headers, preload_content=False,
                                                            timeout=urllib3.Timeout(connect=10, read=330))
            if response.status >= 400:
                body = response.read()
                response.release_conn()
                status = json.loads(body or b"{}")
                raise WatchEnded(gone=response.status == 410) if response.status == 410 else KubeError(status)
            buffer = b""
            for chunk in response.stream(65536):
                if self._stop.is_set():
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        asyncio.run_coroutine_threadsafe(queue.put(json.loads(line)), loop).result()
            response.release_conn()
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as error:  # noqa: BLE001 - handed to the loop, which decides
            loop.call_soon_threadsafe(queue.put_nowait, error)
