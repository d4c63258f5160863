"""The default scheduler: bind each pending pod to a node that fits, the fewest pods first.

Filters, in kube-scheduler's order: NodeUnschedulable (``spec.unschedulable``), TaintToleration
(NoSchedule and NoExecute taints the pod does not tolerate; a node whose Ready condition is not
True counts as tainted ``not-ready``/``unreachable`` even before the node lifecycle controller
taints it), NodeAffinity (``nodeSelector`` and required node affinity), and the node's pod
capacity. Among the nodes left, the one with the fewest pods bound wins (ties: by name). When none
fits, the pod gets ``PodScheduled=False``/``Unschedulable`` with kube-scheduler's message and a
``FailedScheduling`` event; it is tried again whenever a node changes in a way that matters.
Binding takes the same path as ``POST pods/<name>/binding``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Iterable
from typing import Any

from cores.controlplane import errors, objects
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.defaults import NOT_READY_TAINT, UNREACHABLE_TAINT
from cores.controlplane.objects import meta
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

COMPONENT = "default-scheduler"
ALL_PENDING = "*"
FAILED_EVENT_REPEAT = 60.0  # seconds between repeats of the same FailedScheduling event
TERMINAL = ("Succeeded", "Failed")


def _int(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def _expression_matches(expression: dict[str, Any], values: dict[str, str]) -> bool:
    key, operator, wanted = expression.get("key", ""), expression.get("operator"), expression.get("values") or []
    present, have = key in values, values.get(key)
    if operator == "In":
        return present and have in wanted
    if operator == "NotIn":
        return not present or have not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(wanted) == 1:
        number, limit = _int(have), _int(wanted[0])
        if number is None or limit is None:
            return False
        return number > limit if operator == "Gt" else number < limit
    return False


def _term_matches(term: dict[str, Any], node: dict[str, Any]) -> bool:
    expressions, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no objects
    labels = meta(node).get("labels") or {}
    return (all(_expression_matches(e, labels) for e in expressions)
            and all(_expression_matches(f, {"metadata.name": meta(node)["name"]}) for f in fields))


def matches_affinity(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    labels = meta(node).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration.get("key") == taint.get("key")
    return toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def effective_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    ready = base.condition(node, "Ready")
    status = (ready or {}).get("status")
    if status != "True":
        key = UNREACHABLE_TAINT if status == "Unknown" else NOT_READY_TAINT
        if not any(t.get("key") in (NOT_READY_TAINT, UNREACHABLE_TAINT) for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def untolerated_taint(pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in effective_taints(node):
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def filter_reason(pod: dict[str, Any], node: dict[str, Any], bound: int) -> str | None:
    """Why ``node`` cannot run ``pod`` (kube-scheduler's words), or None when it can."""
    if (node.get("spec") or {}).get("unschedulable"):
        unschedulable = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        if not any(tolerates(t, unschedulable) for t in (pod.get("spec") or {}).get("tolerations") or []):
            return "node(s) were unschedulable"
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    if not matches_affinity(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    capacity = _int(((node.get("status") or {}).get("allocatable") or {}).get("pods", ""))
    if capacity is not None and bound >= capacity:
        return "Too many pods"
    return None


def failure_message(total: int, reasons: collections.Counter[str]) -> str:
    """framework.FitError.Error() with the preemption post-filter's note."""
    listed = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    head = f"0/{total} nodes are available"
    message = f"{head}: {listed}." if listed else f"{head}."
    return f"{message} preemption: {head}: {total} Preemption is not helpful for scheduling."


def wants_scheduling(pod: dict[str, Any]) -> bool:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName", COMPONENT) == COMPONENT
            and not meta(pod).get("deletionTimestamp") and status.get("phase") not in TERMINAL)


class Scheduler:
    def __init__(self, api: Api, recorder: EventRecorder, resync: float) -> None:
        self.api, self.recorder = api, recorder
        self.pods = base.resource(api, "", "pods")
        self.nodes = base.resource(api, "", "nodes")
        self.loop = base.KeyedLoop(api, "scheduler", self.keys_of, self.reconcile, self.all_keys, resync)
        self._node_shapes: dict[str, str] = {}
        self._failed_at: dict[str, tuple[str, float]] = {}  # pod uid -> (message, loop time of its event)

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        _, plural, namespace, name = base.split_key(event.key)
        if plural == "pods" and event.type != "DELETED" and not event.fields.get("spec.nodeName"):
            return (f"{namespace}/{name}",)
        if plural == "nodes":
            if event.type == "DELETED":
                self._node_shapes.pop(name, None)
                return ()
            shape = self._shape(json.loads(event.value))
            if self._node_shapes.get(name) != shape:
                self._node_shapes[name] = shape
                return (ALL_PENDING,)
        return ()

    @staticmethod
    def _shape(node: dict[str, Any]) -> str:
        """What of a node scheduling looks at (not its heartbeats)."""
        spec, status = node.get("spec") or {}, node.get("status") or {}
        ready = (base.condition(node, "Ready") or {}).get("status")
        return json.dumps([meta(node).get("labels"), spec.get("taints"), spec.get("unschedulable"), ready,
                           (status.get("allocatable") or {}).get("pods")], sort_keys=True)

    async def all_keys(self) -> list[str]:
        return [ALL_PENDING]

    async def reconcile(self, key: object) -> float | None:
        if key == ALL_PENDING:
            pending = await base.list_objects(self.api, self.pods, match=lambda row: not row.fields.get("spec.nodeName"))
        else:
            namespace, _, name = str(key).partition("/")
            pod = await base.get(self.api, self.pods, namespace, name)
            pending = [pod] if pod is not None else []
        pending = [pod for pod in pending if wants_scheduling(pod)]
        if not pending:
            return None
        nodes = await base.list_objects(self.api, self.nodes)
        _, rows, _ = await self.api.store.list(self.pods.key_prefix)
        bound = collections.Counter(row.fields["spec.nodeName"] for row in rows if row.fields.get("spec.nodeName"))
        for pod in sorted(pending, key=lambda p: meta(p).get("creationTimestamp", "")):
            await self._schedule(pod, nodes, bound)
        return None

    async def _schedule(self, pod: dict[str, Any], nodes: list[dict[str, Any]], bound: collections.Counter[str]) -> None:
        reasons: collections.Counter[str] = collections.Counter()
        fits = []
        for node in nodes:
            name = meta(node)["name"]
            reason = filter_reason(pod, node, bound[name])
            if reason is None:
                fits.append(name)
            else:
                reasons[reason] += 1
        if not fits:
            await self._unschedulable(pod, failure_message(len(nodes), reasons))
            return
        chosen = min(fits, key=lambda name: (bound[name], name))
        namespace, name = meta(pod)["namespace"], meta(pod)["name"]
        try:
            await self.api.bind(self.pods, namespace, name, {"target": {"name": chosen}})
        except errors.ApiError as error:
            if error.code in (404, 409):
                return  # gone, going, or bound by someone else meanwhile
            raise
        bound[chosen] += 1
        self._failed_at.pop(meta(pod).get("uid", ""), None)
        await self.recorder.record(pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {chosen}", COMPONENT)

    async def _unschedulable(self, pod: dict[str, Any], message: str) -> None:
        def mark(obj: dict[str, Any]) -> bool:
            if (obj.get("spec") or {}).get("nodeName"):
                return False  # bound meanwhile (a Binding from elsewhere): its PodScheduled=True stands
            current = base.condition(obj, "PodScheduled") or {}
            if (current.get("status"), current.get("reason"), current.get("message")) == ("False", "Unschedulable", message):
                return False
            status = obj.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                               "lastTransitionTime": current.get("lastTransitionTime") if current.get("status") == "False"
                               else objects.now_rfc3339(), "reason": "Unschedulable", "message": message})
            status["conditions"] = conditions
            return True

        updated = await base.update(self.api, self.pods, pod, mark, "status")
        if updated is None or (updated.get("spec") or {}).get("nodeName"):
            return
        uid = meta(pod).get("uid", "")
        now = asyncio.get_running_loop().time()
        last = self._failed_at.get(uid)
        if last is None or last[0] != message or now - last[1] >= FAILED_EVENT_REPEAT:
            self._failed_at[uid] = (message, now)
            if len(self._failed_at) > 10_000:
                self._failed_at.pop(next(iter(self._failed_at)))
            await self.recorder.record(updated, "Warning", "FailedScheduling", message, COMPONENT)
