"""Pod status as kubelet reports it: phase, conditions, container statuses, IPs, start time.

Pure functions over what Edged observed (:class:`ContainerView` per container), so the same
observation gives the same status and a change is a real change. The patch sent upstream is a
strategic merge patch ``{"metadata":{"uid"},"status":{..., "$setElementOrder/conditions"}}``, the
shape of the podpatch frames in upstream's capture (conditions merge by ``type``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def rfc3339(seconds: float | None = None) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) if seconds is None else \
        datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def from_nanoseconds(value: int) -> str | None:
    return rfc3339(value / 1e9) if value > 0 else None


@dataclasses.dataclass(frozen=True)
class ContainerView:
    """What Edged knows of one container of the spec (its latest instance, if any)."""

    name: str
    image: str
    state: str = "waiting"          # waiting | running | terminated
    reason: str = ""
    message: str = ""
    container_id: str = ""
    image_id: str = ""
    exit_code: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    last_terminated: Mapping[str, Any] | None = None
    sidecar: bool = False           # an init container with restartPolicy Always: runs beside the app

    def terminated_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"containerID": f"containerd://{self.container_id}", "exitCode": self.exit_code,
                                 "finishedAt": self.finished_at, "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                                 "startedAt": self.started_at}
        if self.message:
            state["message"] = self.message
        return state


def container_status(view: ContainerView, spec: Mapping[str, Any]) -> dict[str, Any]:
    if view.state == "running":
        state: dict[str, Any] = {"running": {"startedAt": view.started_at}}
    elif view.state == "terminated":
        state = {"terminated": view.terminated_state()}
    else:
        waiting: dict[str, Any] = {"reason": view.reason or "ContainerCreating"}
        if view.message:
            waiting["message"] = view.message
        state = {"waiting": waiting}
    status: dict[str, Any] = {}
    if view.container_id:
        status["containerID"] = f"containerd://{view.container_id}"
    status.update({
        "image": view.image, "imageID": view.image_id,
        "lastState": {"terminated": dict(view.last_terminated)} if view.last_terminated else {},
        "name": view.name, "ready": view.ready, "restartCount": view.restart_count,
        "started": view.started, "state": state,
    })
    mounts = [{"mountPath": m["mountPath"], "name": m["name"], **({"readOnly": True} if m.get("readOnly") else {})}
              for m in spec.get("volumeMounts") or []]
    if mounts:
        status["volumeMounts"] = mounts
    return status


def phase(pod: Mapping[str, Any], init: Sequence[ContainerView], app: Sequence[ContainerView], sandbox_ready: bool) -> str:
    """kubelet's getPhase, for the cases the edge meets."""
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    for view in init:
        if not view.sidecar and view.state == "terminated" and view.exit_code != 0 and policy == "Never":
            return "Failed"
    if incomplete_init(init, app):
        return "Pending"
    running = stopped = succeeded = waiting = 0
    for view in app:
        if view.state == "running":
            running += 1
        elif view.state == "terminated":
            stopped += 1
            succeeded += view.exit_code == 0
        elif view.last_terminated:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def terminal_phase(app: Sequence[ContainerView]) -> str:
    """After deletion stopped every container: Succeeded when all exited 0."""
    return "Succeeded" if all(v.state == "terminated" and v.exit_code == 0 for v in app) else "Failed"


def app_started(app: Sequence[ContainerView]) -> bool:
    return any(v.state != "waiting" or v.last_terminated for v in app)


def incomplete_init(init: Sequence[ContainerView], app: Sequence[ContainerView]) -> list[str]:
    """Init containers the pod still waits for: regular ones until they exit 0, sidecars until they
    have started; once an app container has run, sidecars restarting no longer hold the pod back."""
    return [v.name for v in init
            if (v.sidecar and not (v.state == "running" and v.started) and not app_started(app))
            or (not v.sidecar and not (v.state == "terminated" and v.exit_code == 0))]


def conditions(init: Sequence[ContainerView], app: Sequence[ContainerView], sandbox_ready: bool,
               pod_phase: str) -> dict[str, tuple[str, str, str]]:
    """type -> (status, reason, message)."""
    completed = pod_phase in ("Succeeded", "Failed")
    pending_init = incomplete_init(init, app)
    if completed and pod_phase == "Succeeded":
        initialized = ("True", "PodCompleted", "")
    elif pending_init:
        initialized = ("False", "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(pending_init)}]")
    else:
        initialized = ("True", "", "")
    unready = [v.name for v in [*(v for v in init if v.sidecar), *app] if not v.ready]
    if completed and pod_phase == "Succeeded":
        ready = ("False", "PodCompleted", "")
    elif pending_init and not unready:
        ready = ("False", "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(pending_init)}]")
    elif unready:
        ready = ("False", "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = ("True", "", "")
    return {
        "PodReadyToStartContainers": ("True" if sandbox_ready and not completed else "False", "", ""),
        "Initialized": initialized,
        "Ready": ready,
        "ContainersReady": ready if ready[1] != "ContainersNotInitialized" else ("False", "ContainersNotReady",
                                                                                 f"containers with unready status: [{' '.join(unready)}]"),
        "PodScheduled": ("True", "", ""),
    }


class StatusTracker:
    """Remembers when each condition last changed and what was last reported."""

    def __init__(self, start_time: str | None = None) -> None:
        self.transitions: dict[str, tuple[str, str]] = {}
        self.start_time = start_time or rfc3339()
        self.last_reported = ""

    def build(self, pod: Mapping[str, Any], init: Sequence[ContainerView], app: Sequence[ContainerView], sandbox_ready: bool,
              host_ip: str, pod_ip: str, pod_phase: str | None = None) -> dict[str, Any]:
        spec = pod.get("spec") or {}
        pod_phase = pod_phase or phase(pod, init, app, sandbox_ready)
        now = rfc3339()
        entries = []
        for kind, (value, reason, message) in conditions(init, app, sandbox_ready, pod_phase).items():
            previous = self.transitions.get(kind)
            if previous is None or previous[0] != value:
                self.transitions[kind] = (value, now)
            entry: dict[str, Any] = {"lastProbeTime": None, "lastTransitionTime": self.transitions[kind][1], "status": value, "type": kind}
            if reason:
                entry["reason"] = reason
            if message:
                entry["message"] = message
            entries.append(entry)
        specs = {c["name"]: c for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]}
        status: dict[str, Any] = {
            "$setElementOrder/conditions": [{"type": kind} for kind in CONDITION_ORDER],
            "conditions": entries,
            "containerStatuses": [container_status(v, specs.get(v.name, {})) for v in app],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "phase": pod_phase,
            "qosClass": qos_class(pod),
            "startTime": self.start_time,
        }
        if init:
            status["initContainerStatuses"] = [container_status(v, specs.get(v.name, {})) for v in init]
        if pod_ip:
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        return status

    def changed(self, status: Mapping[str, Any]) -> bool:
        text = json.dumps(status, sort_keys=True)
        return text != self.last_reported

    def reported(self, status: Mapping[str, Any]) -> None:
        self.last_reported = json.dumps(status, sort_keys=True)


def patch_text(uid: str, status: Mapping[str, Any]) -> str:
    """The podpatch content: a JSON *string* (upstream ``metaclient.Pods().Patch``)."""
    return json.dumps({"metadata": {"uid": uid}, "status": status}, separators=(",", ":"))


def qos_class(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in containers]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(lim.get("cpu") and lim.get("memory") and req.get("cpu", lim["cpu"]) == lim["cpu"]
                     and req.get("memory", lim["memory"]) == lim["memory"] for req, lim in zip(requests, limits))
    return "Guaranteed" if guaranteed else "Burstable"
