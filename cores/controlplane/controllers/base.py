"""What every controller shares: supervision, a keyed work loop fed by store events, and safe updates.

A controller here is level-triggered, as kube-controller-manager's are: store events only say
*which* keys to look at again; :meth:`KeyedLoop.run` then reconciles each key from the current
state. A periodic resync (and a watch overflow) reconciles every key, so a missed event costs
time, never correctness. Reads and writes go through the in-process :class:`Api`, so a write a
controller made is visible to its next read (no informer cache, no expectations needed).

Controllers read stored objects only through :func:`decode`: an object whose values do not have
their schema's types (stored before writes were type-checked, or written around the API) is
skipped and logged by name, once per resourceVersion, so it can never crash-loop a controller; the
others are seen as Go's decoder would see them, without ``null`` values. A ``keys_of`` that fails on
an event is logged and the event dropped; the periodic resync covers what it named.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

from cores.controlplane import errors, openapi, typecheck
from cores.controlplane.api import Api
from cores.controlplane.objects import meta
from cores.controlplane.registry import ResourceType
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
RETRY_DELAY = 1.0
BATCH_DELAY = 0.02  # let a burst of events (one transaction, a kubectl apply) arrive before reconciling


async def supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run`` for ever: a crash (or an unexpected return) is logged and it starts again, with backoff."""
    delay = RESTART_DELAY
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await run()
            log.error("controller %s stopped unexpectedly; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a controller must not take the server down
            log.exception("controller %s crashed; restarting in %.0f s", name, delay)
        if loop.time() - started > MAX_RESTART_DELAY:
            delay = RESTART_DELAY  # it ran a good while: start the backoff over
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RESTART_DELAY)


Key = Hashable
KeysOf = Callable[[Event], Iterable[Key]]
Reconcile = Callable[[Key], Awaitable["float | None"]]  # returns a delay to look again after, or None


class KeyedLoop:
    """Reconcile the keys store events name, once per burst; every key again each ``resync`` seconds."""

    def __init__(self, api: Api, name: str, keys_of: KeysOf, reconcile: Reconcile,
                 all_keys: Callable[[], Awaitable[Iterable[Key]]], resync: float) -> None:
        self.api, self.name = api, name
        self.keys_of, self.reconcile, self.all_keys = keys_of, reconcile, all_keys
        self.resync = resync
        self._later: dict[Key, float] = {}  # key -> loop time to reconcile it again

    async def run(self) -> None:
        store, loop = self.api.store, asyncio.get_running_loop()
        watcher = store.subscribe("/")
        try:
            dirty: set[Key] = set(await self.all_keys())
            next_resync = loop.time() + self.resync
            while True:
                now = loop.time()
                dirty.update(key for key, due in list(self._later.items()) if due <= now)
                if dirty:
                    await self._reconcile_all(dirty)
                    dirty = set()
                    continue
                wake = min([next_resync, *self._later.values()])
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), max(wake - loop.time(), 0))
                except TimeoutError:
                    if loop.time() >= next_resync:
                        dirty.update(await self.all_keys())
                        next_resync = loop.time() + self.resync
                    continue
                await asyncio.sleep(BATCH_DELAY)
                events = [event]
                while not watcher.queue.empty():
                    events.append(watcher.queue.get_nowait())
                if any(e is None for e in events):  # overflowed: start over from the current state
                    store.unsubscribe(watcher)
                    watcher = store.subscribe("/")
                    dirty.update(await self.all_keys())
                    continue
                for item in events:
                    assert item is not None
                    dirty.update(self._keys_of(item))
        finally:
            store.unsubscribe(watcher)

    def _keys_of(self, event: Event) -> Iterable[Key]:
        try:
            return list(self.keys_of(event))
        except Exception:  # noqa: BLE001 - a malformed object's event must not stop the loop
            log.exception("%s: cannot read the event of %s at revision %d; skipped", self.name, event.key[:300], event.revision)
            return ()

    async def _reconcile_all(self, keys: set[Key]) -> None:
        loop = asyncio.get_running_loop()
        for key in sorted(keys, key=str):
            self._later.pop(key, None)
            try:
                again = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except errors.ApiError as error:
                log.info("%s: %s: %s; retrying", self.name, key, error)
                again = RETRY_DELAY
            except Exception:  # noqa: BLE001 - one bad object must not stop the others
                log.exception("%s: reconciling %s failed; retrying", self.name, key)
                again = RETRY_DELAY * 5
            if again is not None:
                due = loop.time() + again
                self._later[key] = min(due, self._later.get(key, due))


# --- reading and writing through the Api ------------------------------------------------------------------

def resource(api: Api, group: str, plural: str) -> ResourceType:
    found = api.registry.get(group, "v1", plural)
    assert found is not None, plural
    return found


MALFORMED_MEMORY = 4096  # (key, resourceVersion) pairs already reported as malformed


class _Malformed:
    """Which malformed stored objects were already logged, so a resync every 30 s does not repeat them."""

    def __init__(self) -> None:
        self.reported: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()

    def report(self, key: str, version: str, why: object) -> None:
        if (key, version) in self.reported:
            return
        self.reported[(key, version)] = None
        if len(self.reported) > MALFORMED_MEMORY:
            self.reported.popitem(last=False)
        log.warning("skipping the stored object %s (resourceVersion %s): it is malformed: %s", key[:300], version[:20], why)


_reporters: weakref.WeakKeyDictionary[Api, _Malformed] = weakref.WeakKeyDictionary()  # one memory per Api


def _reporter(api: Api) -> _Malformed:
    found = _reporters.get(api)
    if found is None:
        found = _reporters[api] = _Malformed()
    return found


def without_nulls(value: Any) -> Any:
    """The value as Go's decoder leaves it: null fields and null list items are zero values, i.e. absent."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value if item is not None]
    return value


def malformation(kind: ResourceType, obj: Any) -> object | None:
    """Why a stored object of ``kind`` cannot be reconciled, or None when it can."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    definition = openapi.schema_name(kind.group, kind.version, kind.kind)
    problem = typecheck.first_problem(definition, obj) if definition else None
    if problem is not None:
        return problem
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        return "no metadata.name"
    if kind.namespaced and (not isinstance(metadata.get("namespace"), str) or not metadata["namespace"]):
        return "no metadata.namespace"
    if not metadata.get("uid"):
        return "no metadata.uid (every object the API wrote has one)"
    return None


def decode(api: Api, kind: ResourceType, key: str, value: str) -> dict[str, Any] | None:
    """A stored object as controllers read it, or None (logged once) when it is malformed."""
    try:
        obj = json.loads(value)
    except ValueError as error:
        _reporter(api).report(key, "?", f"not JSON: {error}")
        return None
    why = malformation(kind, obj)
    if why is not None:
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        _reporter(api).report(key, str(version), why)
        return None
    return dict(without_nulls(obj))


async def get(api: Api, kind: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The object, None when it is gone or malformed (then nothing can be done with it but report it)."""
    key = kind.key(namespace, name)
    value = await api.store.get(key)
    return None if value is None else decode(api, kind, key, value)


async def list_objects(api: Api, kind: ResourceType, namespace: str | None = None,
                       match: Callable[[Any], bool] | None = None) -> list[dict[str, Any]]:
    """The objects under ``kind`` (in ``namespace``), malformed ones left out and reported."""
    _, rows, _ = await api.store.list(kind.list_prefix(namespace), match=match)
    decoded = (decode(api, kind, row.key, row.value) for row in rows)
    return [obj for obj in decoded if obj is not None]


async def update(api: Api, kind: ResourceType, obj: dict[str, Any], mutate: Callable[[dict[str, Any]], bool],
                 subresource: str = "") -> dict[str, Any] | None:
    """Apply ``mutate`` (True: changed) and write, re-reading and retrying on a conflict; None if gone."""
    namespace, name = meta(obj).get("namespace"), meta(obj)["name"]
    for _ in range(5):
        if not mutate(obj):
            return obj
        try:
            return await api.update(kind, namespace, name, obj, subresource)
        except errors.ApiError as error:
            if error.code == 404:
                return None
            if error.code != 409:
                raise
        fresh = await get(api, kind, namespace, name)
        if fresh is None:
            return None
        obj = fresh
    raise errors.conflict(kind.group, kind.plural, name, "too many conflicting writes")


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def split_key(key: str) -> tuple[str, str, str, str]:
    """``/<group>/<plural>/<namespace>/<name>`` -> (group, plural, namespace, name); cluster-scoped: namespace ""."""
    parts = key.split("/")
    if len(parts) == 4:
        return parts[1], parts[2], "", parts[3]
    return parts[1], parts[2], parts[3], "/".join(parts[4:])


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None

