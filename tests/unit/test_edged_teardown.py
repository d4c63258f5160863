"""Teardown: stopping and removing a pod's containers and sandboxes, what is gone already is no error."""

from __future__ import annotations

from typing import Any

from cores.edge.cri import CriError, api
from cores.edge.edged.teardown import Teardown


def gone(method: str) -> CriError:
    return CriError(f"runtime.v1.RuntimeService/{method}", "NOT_FOUND", 5, "not found")


class Runtime:
    """CRI with two containers (one running, one exited) and a sandbox; ``c-run`` vanishes when stopped."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.containers = [api.Container(id="c-run", metadata=api.ContainerMetadata(name="main"), state=api.CONTAINER_RUNNING),
                           api.Container(id="c-old", metadata=api.ContainerMetadata(name="main"), state=api.CONTAINER_EXITED)]

    async def list_containers(self, labels: Any = None) -> list[api.Container]:
        assert labels == {"mine": "yes"}
        return list(self.containers)

    async def list_pod_sandbox(self, labels: Any = None) -> list[api.PodSandbox]:
        return [api.PodSandbox(id="s1", state=api.SANDBOX_READY)]

    async def stop_container(self, container_id: str, grace: int) -> None:
        self.calls.append(("stop", container_id, grace))
        raise gone("StopContainer")

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("remove", container_id, None))
        if container_id == "c-run":
            raise gone("RemoveContainer")

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("stop sandbox", sandbox_id, None))

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("remove sandbox", sandbox_id, None))


async def test_stop_uses_the_grace_period_and_names_what_it_stops() -> None:
    runtime = Runtime()
    stopping: list[str] = []
    await Teardown(runtime, {"mine": "yes"}, "ns/p").stop(7, stopping.append)  # type: ignore[arg-type]
    assert stopping == ["main"]
    assert runtime.calls == [("stop", "c-run", 7), ("stop sandbox", "s1", None)]


async def test_remove_all_stops_live_containers_at_once_and_removes_everything() -> None:
    runtime = Runtime()
    await Teardown(runtime, {"mine": "yes"}, "ns/p").remove_all()  # type: ignore[arg-type]
    assert runtime.calls == [("stop", "c-run", 0), ("remove", "c-run", None), ("remove", "c-old", None),
                             ("stop sandbox", "s1", None), ("remove sandbox", "s1", None)]
