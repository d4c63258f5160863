"""A watch whose client went away ends without waiting for an event or its timeout: ``kubectl get
-w`` stopped with Ctrl-C must not leave a watcher in the store for the next hour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cores.common.selectors import selector_fields
from cores.controlplane import watch
from cores.controlplane.api import Api
from cores.controlplane.registry import Registry
from cores.controlplane.store import Store


@pytest.fixture()
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = Store(tmp_path / "state.db", selector_fields)
    try:
        yield Api(store, Registry())
    finally:
        store.close()


async def test_a_watch_ends_soon_after_its_client_is_gone(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "GONE_CHECK_SECONDS", 0.2)
    resource = api.registry.get("", "v1", "configmaps")
    assert resource is not None
    left = False
    lines = watch.stream(api, resource, "default", None, resource_version="", timeout=3600, bookmarks=False,
                         client_gone=lambda: left)
    started = time.monotonic()

    async def drain() -> list[bytes]:
        return [chunk async for chunk in lines]

    draining = asyncio.create_task(drain())
    await asyncio.sleep(0.5)
    assert not draining.done() and len(api.store._watchers) == 1  # waiting for events, as it should
    left = True
    assert await asyncio.wait_for(draining, 5) == []
    assert time.monotonic() - started < 3 and not api.store._watchers
