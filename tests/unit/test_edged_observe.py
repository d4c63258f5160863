"""Observation: CRI's containers as ContainerViews, with the worker's waiting reasons and probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cores.edge.cri import CONTAINER_NAME, api
from cores.edge.edged import observe, termination

SECOND = 1_000_000_000
POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
       "spec": {"initContainers": [{"name": "side", "image": "img", "restartPolicy": "Always"}],
                "containers": [{"name": "main", "image": "img"}]}}


class Runtime:
    """CRI's list and status calls over a fixed set of containers in sandbox ``s1``."""

    def __init__(self, *statuses: api.ContainerStatus) -> None:
        self.statuses = {s.id: s for s in statuses}

    async def list_pod_sandbox(self, labels: Any = None, pod_sandbox_id: str = "") -> list[api.PodSandbox]:
        return [api.PodSandbox(id="s1", state=api.SANDBOX_READY)] if pod_sandbox_id == "s1" else []

    async def list_containers(self, labels: Any = None, pod_sandbox_id: str = "") -> list[api.Container]:
        return [api.Container(id=s.id, metadata=s.metadata, state=s.state, created_at=s.created_at,
                              labels={CONTAINER_NAME: s.metadata.name}) for s in self.statuses.values()]

    async def container_status(self, container_id: str) -> api.ContainerStatusResponse:
        return api.ContainerStatusResponse(status=self.statuses[container_id])


def container(cid: str, name: str, attempt: int, state: api.ContainerState, exit_code: int = 0) -> api.ContainerStatus:
    return api.ContainerStatus(id=cid, metadata=api.ContainerMetadata(name=name, attempt=attempt), state=state,
                               exit_code=exit_code, created_at=attempt, started_at=5 * SECOND,
                               finished_at=6 * SECOND if state == api.CONTAINER_EXITED else 0, image_ref="sha256:i")


async def look(runtime: Runtime, pod: dict[str, Any], known: observe.Known) -> observe.Observation:
    return await observe.observe(runtime, pod, {}, known)  # type: ignore[arg-type]


def known(tmp_path: Path, sandbox_id: str = "s1", **waiting: tuple[str, str]) -> observe.Known:
    return observe.Known(sandbox_id, tmp_path, waiting, {})


async def test_before_a_sandbox_everything_is_being_created(tmp_path: Path) -> None:
    seen = await look(Runtime(), POD, known(tmp_path, "", main=("ErrImagePull", "no")))
    assert not seen.sandbox_ready
    assert [(v.name, v.state, v.reason, v.message) for v in [*seen.init, *seen.app]] == [
        ("side", "waiting", "ContainerCreating", ""), ("main", "waiting", "ContainerCreating", "")]
    assert seen.init[0].sidecar and not seen.app[0].sidecar


async def test_running_containers_without_probes_are_ready(tmp_path: Path) -> None:
    runtime = Runtime(container("c1", "main", 0, api.CONTAINER_RUNNING))
    seen = await look(runtime, POD, known(tmp_path, side=("ErrImagePull", "no registry")))
    assert seen.sandbox_ready
    assert (seen.init[0].reason, seen.init[0].message) == ("ErrImagePull", "no registry")
    main = seen.app[0]
    assert (main.state, main.ready, main.started, main.container_id, main.image_id) == ("running", True, True, "c1", "sha256:i")


async def test_restarts_show_the_attempt_and_the_previous_exit_with_its_message(tmp_path: Path) -> None:
    path = termination.message_file(tmp_path, "main", 0)
    path.parent.mkdir(parents=True)
    path.write_text("out of memory")
    runtime = Runtime(container("c0", "main", 0, api.CONTAINER_EXITED, 1), container("c1", "main", 1, api.CONTAINER_EXITED, 2))
    view = (await look(runtime, POD, known(tmp_path))).app[0]
    assert (view.state, view.exit_code, view.restart_count) == ("terminated", 2, 1)
    assert view.last_terminated == {"containerID": "containerd://c0", "exitCode": 1, "finishedAt": "1970-01-01T00:00:06Z",
                                    "reason": "Error", "startedAt": "1970-01-01T00:00:05Z", "message": "out of memory"}


async def test_back_off_shows_waiting_with_the_exit_as_last_state(tmp_path: Path) -> None:
    runtime = Runtime(container("c0", "main", 0, api.CONTAINER_EXITED, 0))
    view = (await look(runtime, POD, known(tmp_path, main=("CrashLoopBackOff", "back-off 10s")))).app[0]
    assert (view.state, view.reason, view.message) == ("waiting", "CrashLoopBackOff", "back-off 10s")
    assert view.last_terminated is not None and view.last_terminated["reason"] == "Completed"
