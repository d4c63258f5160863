"""One look at a pod in CRI, as the status wants it: a :class:`ContainerView` per container of its spec.

Nothing is remembered between looks, so a restarted Edged reports what it adopted: the latest
instance of a container gives its state and restart count (its attempt number), the instance
before it the ``lastState``, and termination messages come from :mod:`.termination`. What CRI
cannot tell comes from the worker, as :class:`Known`: why a container waits (image pulls,
back-off, config errors) and what its probes say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cores.edge.cri import CONTAINER_NAME, CriClient, api
from cores.edge.edged import podspec, termination
from cores.edge.edged.probes import ContainerProbes
from cores.edge.edged.status import ContainerView, from_nanoseconds

CREATING = ("ContainerCreating", "")


@dataclasses.dataclass(frozen=True)
class Known:
    """What the worker knows of its pod that CRI does not tell."""

    sandbox_id: str                                  # the sandbox in use ("" before there is one)
    pod_dir: Path                                    # <root>/pods/<uid>: termination message files
    waiting: Mapping[str, tuple[str, str]]           # container name -> why it cannot run: (reason, message)
    probes: Mapping[str, ContainerProbes]            # container id -> its probe loops


@dataclasses.dataclass(frozen=True)
class Observation:
    sandbox_ready: bool
    init: list[ContainerView]
    app: list[ContainerView]


def attempt(container: api.Container) -> int:
    return int(container.metadata.attempt)


async def instances(cri: CriClient, labels: dict[str, str], sandbox_id: str) -> dict[str, list[api.Container]]:
    """Container name -> its instances in the sandbox, oldest first."""
    found: dict[str, list[api.Container]] = {}
    listed = await cri.list_containers(labels=labels, pod_sandbox_id=sandbox_id)
    for container in sorted(listed, key=lambda c: (attempt(c), c.created_at)):
        found.setdefault(container.labels.get(CONTAINER_NAME, container.metadata.name), []).append(container)
    return found


async def observe(cri: CriClient, pod: Mapping[str, Any], labels: dict[str, str], known: Known) -> Observation:
    spec = pod.get("spec") or {}
    sandbox_ready = False
    present: dict[str, list[api.Container]] = {}
    if known.sandbox_id:
        found = await cri.list_pod_sandbox(labels=labels, pod_sandbox_id=known.sandbox_id)
        sandbox_ready = bool(found) and found[0].state == api.SANDBOX_READY
        if found:
            present = await instances(cri, labels, known.sandbox_id)
    init = [dataclasses.replace(await view(cri, c, present.get(c["name"], []), known), sidecar=podspec.is_sidecar(c))
            for c in spec.get("initContainers") or []]
    app = [await view(cri, c, present.get(c["name"], []), known) for c in spec.get("containers") or []]
    return Observation(sandbox_ready, init, app)


async def view(cri: CriClient, spec: Mapping[str, Any], mine: list[api.Container], known: Known) -> ContainerView:
    """Container ``spec`` as its instances ``mine`` (oldest first) show it."""
    name, image = str(spec["name"]), str(spec.get("image") or "")
    if not mine:
        reason, message = known.waiting.get(name, CREATING) if known.sandbox_id else CREATING
        return ContainerView(name=name, image=image, reason=reason, message=message)
    latest = mine[-1]
    status = (await cri.container_status(latest.id)).status
    last = None
    if len(mine) > 1:
        previous = (await cri.container_status(mine[-2].id)).status
        last = terminated(previous, await termination.message(known.pod_dir, spec, previous))
    base = ContainerView(name=name, image=image, container_id=latest.id, image_id=status.image_ref,
                         restart_count=attempt(latest), last_terminated=last)
    if status.state == api.CONTAINER_RUNNING:
        return _running(base, spec, known.probes.get(latest.id), status)
    if status.state == api.CONTAINER_EXITED:
        return await _exited(base, spec, known, status)
    reason, message = known.waiting.get(name, CREATING)
    return dataclasses.replace(base, reason=reason, message=message)


def _running(base: ContainerView, spec: Mapping[str, Any], probes: ContainerProbes | None,
             status: api.ContainerStatus) -> ContainerView:
    started = probes.started if probes else not spec.get("startupProbe")
    ready = bool(probes.ready and probes.started) if probes else not (spec.get("readinessProbe") or spec.get("startupProbe"))
    return dataclasses.replace(base, state="running", started_at=from_nanoseconds(status.started_at), started=started, ready=ready)


async def _exited(base: ContainerView, spec: Mapping[str, Any], known: Known, status: api.ContainerStatus) -> ContainerView:
    message = await termination.message(known.pod_dir, spec, status)
    waiting = known.waiting.get(base.name)
    if waiting and waiting[0] == "CrashLoopBackOff":  # waiting out the back-off: the exit is its lastState
        return dataclasses.replace(base, reason=waiting[0], message=waiting[1], last_terminated=terminated(status, message))
    return dataclasses.replace(base, state="terminated", exit_code=status.exit_code, reason=status.reason, message=message,
                               started_at=from_nanoseconds(status.started_at), finished_at=from_nanoseconds(status.finished_at))


def terminated(status: api.ContainerStatus, message: str = "") -> dict[str, Any]:
    """A ``terminated`` container state, as ``lastState`` shows it."""
    state = {"containerID": f"containerd://{status.id}", "exitCode": status.exit_code,
             "finishedAt": from_nanoseconds(status.finished_at),
             "reason": status.reason or ("Completed" if status.exit_code == 0 else "Error"),
             "startedAt": from_nanoseconds(status.started_at)}
    if message:
        state["message"] = message
    return state
