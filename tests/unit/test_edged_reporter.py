"""Status reporting: only the latest status, only when changed, retried on any error; the final delete."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cores.edge.edged import reporter as reporters
from cores.edge.edged.reporter import StatusReporter
from cores.edge.edged.static import CONFIG_MIRROR
from cores.edge.edged.status import StatusTracker
from cores.link.status import StatusError


class Cloud:
    """CloudRequests' patch and delete: refuses the first ``refusals`` requests, records the rest."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.patches: list[tuple[str, Any]] = []
        self.deletes: list[tuple[str, Any]] = []

    def _refuse(self) -> None:
        if self.refusals:
            self.refusals -= 1
            raise StatusError.make(503, "ServiceUnavailable", "edge is not connected to the cloud")

    async def patch(self, resource: str, patch: Any) -> Any:
        self._refuse()
        self.patches.append((resource, patch))
        return {}

    async def delete(self, resource: str, options: Any) -> Any:
        self._refuse()
        self.deletes.append((resource, options))
        return "OK"


class Host:
    """What the reporter uses of a PodHost."""

    def __init__(self, cloud: Cloud) -> None:
        self.requests = cloud
        self.mirrors: dict[str, dict[str, Any]] = {}
        self.waits = 0

    def mirror(self, key: str) -> dict[str, Any] | None:
        return self.mirrors.get(key)

    async def wait_connected_or(self, seconds: float) -> None:
        self.waits += 1


def reporter(host: Host, static: bool = False) -> StatusReporter:
    return StatusReporter(host, "ns/p", "u1", static, StatusTracker())  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_only_changes_are_reported_and_failures_retried() -> None:
    cloud = Cloud(refusals=1)
    host = Host(cloud)
    status = reporter(host)
    status.publish({"phase": "Pending"})
    await settle()
    assert host.waits == 1 and len(cloud.patches) == 1  # refused once, then sent
    status.publish({"phase": "Pending"})
    await settle()
    assert len(cloud.patches) == 1
    status.publish({"phase": "Running"})
    await settle()
    assert [resource for resource, _ in cloud.patches] == ["ns/podpatch/p", "ns/podpatch/p"]
    assert '"uid":"u1"' in cloud.patches[-1][1] and '"Running"' in cloud.patches[-1][1]
    status.cancel()


async def test_a_static_pod_reports_to_its_mirror_once_there_is_one() -> None:
    cloud = Cloud()
    host = Host(cloud)
    status = reporter(host, static=True)
    status.publish({"phase": "Running"})
    await settle()
    assert cloud.patches == []
    host.mirrors["ns/p"] = {"metadata": {"uid": "mirror-uid", "annotations": {CONFIG_MIRROR: "u1"}}}
    status.mirror_changed()
    await settle()
    assert len(cloud.patches) == 1 and '"uid":"mirror-uid"' in cloud.patches[0][1]
    status.cancel()


async def test_the_delete_request_is_repeated_until_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporters, "RETRY_SECONDS", 0.01)
    cloud = Cloud(refusals=1)
    status = reporter(Host(cloud))
    woken = asyncio.Event()
    await status.request_delete(woken.set)
    assert not status.delete_requested
    await status.request_delete(woken.set)  # asked moments ago: not again yet
    await asyncio.wait_for(woken.wait(), 1)
    await status.request_delete(woken.set)
    assert status.delete_requested
    assert cloud.deletes == [("ns/pod/p", {"gracePeriodSeconds": 0, "preconditions": {"uid": "u1"}})]
    await status.request_delete(woken.set)
    assert len(cloud.deletes) == 1
    status.cancel()
