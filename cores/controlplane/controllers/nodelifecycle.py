"""Node lifecycle: a node that stops renewing its Lease (or posting status) becomes Unknown.

As kube-controller-manager's node lifecycle controller, in its monitor loop: a node's probe time
moves whenever its Lease ``kube-node-lease/<node>`` has a new ``renewTime`` or its Ready
condition a new ``lastHeartbeatTime``, measured on this process's monotonic clock. A node not
probed for ``nodeMonitorGracePeriodSeconds`` gets every condition ``Unknown``
(``NodeStatusUnknown``, "Kubelet stopped posting node status."), its pods ``Ready=False``
(``MarkPodsNotReady``) and a ``NodeNotReady`` event. Taints follow the Ready condition
(TaintNodesByCondition and the NoExecute taints): Unknown -> ``node.kubernetes.io/unreachable``,
False -> ``node.kubernetes.io/not-ready``, both with NoSchedule and NoExecute; True -> none.
When the node reports Ready again (its kubelet or edged posts status), the taints go.

Deliberately, nothing is ever evicted, on any node: KubeEdge's edge autonomy keeps pods bound to
a disconnected edge node (upstream disables the taint-based eviction for edge nodes), and this
control plane only serves KubeEdge, so the NoExecute taints are informational here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from cores.controlplane import objects
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.defaults import NOT_READY_TAINT, UNREACHABLE_TAINT
from cores.controlplane.objects import meta

log = logging.getLogger("kubeedge.controlplane.controllers")

COMPONENT = "node-controller"
LEASE_NAMESPACE = "kube-node-lease"
STANDARD_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
STOPPED = ("NodeStatusUnknown", "Kubelet stopped posting node status.")
NEVER = ("NodeStatusNeverUpdated", "Kubelet never posted node status.")
CONDITION_TAINTS = {"Unknown": UNREACHABLE_TAINT, "False": NOT_READY_TAINT}


@dataclasses.dataclass(frozen=True)
class Health:
    probed: float  # loop time of the last sign of life
    renew_time: str
    heartbeat: str


class NodeLifecycleController:
    def __init__(self, api: Api, recorder: EventRecorder, grace: float, period: float) -> None:
        self.api, self.recorder = api, recorder
        self.grace, self.period = grace, period
        self.nodes = base.resource(api, "", "nodes")
        self.pods = base.resource(api, "", "pods")
        self.leases = api.registry.get("coordination.k8s.io", "v1", "leases")
        self.health: dict[str, Health] = {}

    async def run(self) -> None:
        while True:
            await self.monitor()
            await asyncio.sleep(self.period)

    async def monitor(self) -> None:
        """One pass over every node (kube-controller-manager's monitorNodeHealth)."""
        assert self.leases is not None
        nodes = await base.list_objects(self.api, self.nodes)
        leases = {meta(lease)["name"]: lease for lease in await base.list_objects(self.api, self.leases, LEASE_NAMESPACE)}
        now = asyncio.get_running_loop().time()
        names = set()
        for node in nodes:
            name = meta(node)["name"]
            names.add(name)
            renew = str(((leases.get(name) or {}).get("spec") or {}).get("renewTime") or "")
            heartbeat = str((base.condition(node, "Ready") or {}).get("lastHeartbeatTime") or "")
            seen = self.health.get(name)
            if seen is None or seen.renew_time != renew or seen.heartbeat != heartbeat:
                seen = Health(now, renew, heartbeat)
                self.health[name] = seen
            try:
                await self._check(node, now - seen.probed > self.grace)
            except Exception:  # noqa: BLE001 - one node must not stop the others
                log.exception("node lifecycle: checking node %s failed", name)
        for gone in set(self.health) - names:
            del self.health[gone]

    async def _check(self, node: dict[str, Any], silent: bool) -> None:
        if silent and (base.condition(node, "Ready") or {}).get("status") != "Unknown":
            node = await self._mark_unknown(node) or node
        await self._sync_taints(node)

    async def _mark_unknown(self, node: dict[str, Any]) -> dict[str, Any] | None:
        name = meta(node)["name"]

        def unknown(obj: dict[str, Any]) -> bool:
            now = objects.now_rfc3339()
            conditions = list((obj.setdefault("status", {})).get("conditions") or [])
            present = {c.get("type") for c in conditions}
            for item in conditions:
                if item.get("status") != "Unknown":
                    item.update(status="Unknown", reason=STOPPED[0], message=STOPPED[1], lastTransitionTime=now)
            for kind in STANDARD_CONDITIONS:
                if kind not in present:
                    conditions.append({"type": kind, "status": "Unknown", "lastHeartbeatTime": objects.meta(obj).get("creationTimestamp"),
                                       "lastTransitionTime": now, "reason": NEVER[0], "message": NEVER[1]})
            obj["status"]["conditions"] = conditions
            return True

        updated = await base.update(self.api, self.nodes, node, unknown, "status")
        if updated is None:
            return None
        log.warning("node %s stopped posting status (no lease renewal for %.0f s): Unknown", name, self.grace)
        await self.recorder.record(updated, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady", COMPONENT)
        await self._mark_pods_not_ready(name)
        return updated

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        pods = await base.list_objects(self.api, self.pods, match=lambda row: row.fields.get("spec.nodeName") == node_name)

        def not_ready(obj: dict[str, Any]) -> bool:
            changed = False
            for item in (obj.get("status") or {}).get("conditions") or []:
                if item.get("type") == "Ready" and item.get("status") != "False":
                    item.update(status="False", lastTransitionTime=objects.now_rfc3339())
                    changed = True
            return changed

        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            await base.update(self.api, self.pods, pod, not_ready, "status")

    async def _sync_taints(self, node: dict[str, Any]) -> None:
        status = (base.condition(node, "Ready") or {}).get("status")
        if status is None:
            return  # no condition yet: the kubelet has not reported (nor the grace period passed)
        wanted_key = CONDITION_TAINTS.get(status)

        def retaint(obj: dict[str, Any]) -> bool:
            spec = obj.setdefault("spec", {})
            current = list(spec.get("taints") or [])
            kept = [t for t in current if t.get("key") not in (NOT_READY_TAINT, UNREACHABLE_TAINT)
                    or (t.get("key") == wanted_key and t.get("effect") in ("NoSchedule", "NoExecute"))]
            for effect in ("NoSchedule", "NoExecute") if wanted_key else ():
                if not any(t.get("key") == wanted_key and t.get("effect") == effect for t in kept):
                    taint = {"key": wanted_key, "effect": effect}
                    if effect == "NoExecute":
                        taint["timeAdded"] = objects.now_rfc3339()
                    kept.append(taint)
            if kept == current:
                return False
            if kept:
                spec["taints"] = kept
            else:
                spec.pop("taints", None)
            return True

        was_tainted = any(t.get("key") in (NOT_READY_TAINT, UNREACHABLE_TAINT) for t in (node.get("spec") or {}).get("taints") or [])
        updated = await base.update(self.api, self.nodes, node, retaint)
        if updated is not None and was_tainted and status == "True":
            name = meta(node)["name"]
            log.info("node %s is Ready again", name)
            await self.recorder.record(updated, "Normal", "NodeReady", f"Node {name} status is now: NodeReady", COMPONENT)
