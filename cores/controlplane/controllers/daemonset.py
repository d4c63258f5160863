"""DaemonSets: one pod of the template on every node that should run it, and status to match.

As kube-controller-manager's DaemonSet controller, in small:

* A node should run the daemon when it matches the template's nodeSelector and required node
  affinity, and every NoSchedule/NoExecute taint in its spec is tolerated by the template's
  tolerations plus those the controller adds to every daemon pod (not-ready and unreachable
  NoExecute; disk, memory and PID pressure, unschedulable, and for hostNetwork pods
  network-unavailable, NoSchedule). This is how a mapper or an agent lands on every edge.
* Its pods are those whose controller ownerReference is the DaemonSet. A missing one is created
  bound to its node (``spec.nodeName``), labelled with ``pod-template-generation`` and
  ``controller-revision-hash``; extra ones on a node, and those on nodes that should not run the
  daemon, are deleted. Finished (Succeeded, Failed) pods are deleted, to be created again.
* RollingUpdate (the default): pods of an older template generation are deleted while fewer than
  ``maxUnavailable`` (default 1, or a percentage of the desired number) daemon pods are
  unavailable; a node gets its new pod once the old one is gone (no surge: a hostNetwork daemon's
  ports would clash). OnDelete leaves them until they are deleted.
* Status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
  numberAvailable (Ready for ``minReadySeconds``), updatedNumberScheduled, numberUnavailable,
  observedGeneration: what ``kubectl get ds`` and ``kubectl rollout status`` read.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import math
from collections.abc import Iterable
from typing import Any

from cores.controlplane import errors
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.controllers.replicaset import available_in, delete_pods, is_active, owner_reference
from cores.controlplane.controllers.scheduler import matches_affinity, tolerates
from cores.controlplane.objects import meta
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

COMPONENT = "daemonset-controller"
GENERATION_LABEL = "pod-template-generation"
HASH_LABEL = "controller-revision-hash"
BURST = 250  # pods created or deleted per pass
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


def daemon_tolerations(template_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's tolerations plus those every daemon pod gets (util.AddOrUpdateDaemonPodTolerations)."""
    tolerations = [dict(t) for t in template_spec.get("tolerations") or [] if isinstance(t, dict)]
    extra = [*DAEMON_TOLERATIONS, *([NETWORK_TOLERATION] if template_spec.get("hostNetwork") else [])]
    for toleration in extra:
        if not any(t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"] for t in tolerations):
            tolerations.append(dict(toleration))
    return tolerations


def should_run(daemon_set: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether ``node`` should run a pod of ``daemon_set`` (nodeShouldRunDaemonPod)."""
    template_spec = ((daemon_set.get("spec") or {}).get("template") or {}).get("spec") or {}
    if meta(node).get("deletionTimestamp"):
        return False
    probe = {"spec": template_spec}
    if not matches_affinity(probe, node):
        return False
    tolerations = daemon_tolerations(template_spec)
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in tolerations):
            return False
    return True


def template_hash(daemon_set: dict[str, Any]) -> str:
    template = (daemon_set.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def max_unavailable(daemon_set: dict[str, Any], desired: int) -> int:
    """RollingUpdate's maxUnavailable as a number of pods (at least 1 while any are desired)."""
    rolling = ((daemon_set.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    value = rolling.get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        try:
            value = math.floor(desired * int(value[:-1]) / 100)
        except ValueError:
            value = 1
    return max(int(value) if isinstance(value, int) else 1, 1 if desired else 0)


def is_current(pod: dict[str, Any], daemon_set: dict[str, Any]) -> bool:
    labels = meta(pod).get("labels") or {}
    return labels.get(GENERATION_LABEL) == str(meta(daemon_set).get("generation", 1))


class DaemonSetController:
    def __init__(self, api: Api, recorder: EventRecorder, resync: float) -> None:
        self.api, self.recorder = api, recorder
        self.daemon_sets = base.resource(api, "apps", "daemonsets")
        self.pods = base.resource(api, "", "pods")
        self.nodes = base.resource(api, "", "nodes")
        self.loop = base.KeyedLoop(api, COMPONENT, self.keys_of, self.reconcile, self.all_keys, resync)
        self._known: set[str] = set()  # the DaemonSets seen, so a node event wakes them all

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        group, plural, namespace, name = base.split_key(event.key)
        if group == "apps" and plural == "daemonsets":
            self._known.add(f"{namespace}/{name}")
            return (f"{namespace}/{name}",)
        if plural == "pods" and '"kind":"DaemonSet"' in event.value:
            owner = base.controller_of(json.loads(event.value))
            if owner and owner.get("kind") == "DaemonSet":
                return (f"{namespace}/{owner.get('name')}",)
        if plural == "nodes" and group == "core":
            return tuple(self._known)  # a node came, went or changed its labels or taints
        return ()

    async def all_keys(self) -> list[str]:
        keys = [f"{meta(ds)['namespace']}/{meta(ds)['name']}" for ds in await base.list_objects(self.api, self.daemon_sets)]
        self._known = set(keys)
        return keys

    async def reconcile(self, key: object) -> float | None:
        namespace, _, name = str(key).partition("/")
        daemon_set = await base.get(self.api, self.daemon_sets, namespace, name)
        if daemon_set is None or meta(daemon_set).get("deletionTimestamp"):
            self._known.discard(str(key))
            return None
        uid = meta(daemon_set)["uid"]
        owned = [pod for pod in await base.list_objects(self.api, self.pods, namespace, match=lambda row: uid in row.value)
                 if (base.controller_of(pod) or {}).get("uid") == uid]
        nodes = {meta(node)["name"]: node for node in await base.list_objects(self.api, self.nodes)}
        wanted = {node_name for node_name, node in nodes.items() if should_run(daemon_set, node)}
        by_node: dict[str, list[dict[str, Any]]] = {}
        doomed: list[dict[str, Any]] = []
        terminating: set[str] = set()  # a node's new daemon waits until its old one is gone (no surge)
        for pod in owned:
            if meta(pod).get("deletionTimestamp"):
                terminating.add((pod.get("spec") or {}).get("nodeName") or "")
                continue
            node_name = (pod.get("spec") or {}).get("nodeName") or ""
            if not is_active(pod) or node_name not in wanted:
                doomed.append(pod)  # finished, or on a node that should not run it
            else:
                by_node.setdefault(node_name, []).append(pod)
        for pods in by_node.values():
            pods.sort(key=lambda p: (not is_current(p, daemon_set), meta(p).get("creationTimestamp", "")))
            doomed += pods[1:]  # one daemon a node: the newest template and oldest pod stays
            del pods[1:]
        doomed += self._rolling_victims(daemon_set, by_node, len(wanted))
        await self._delete_pods(daemon_set, doomed[:BURST])
        terminating |= {(pod.get("spec") or {}).get("nodeName") or "" for pod in doomed[:BURST]
                        if (pod.get("spec") or {}).get("nodeName") in wanted}
        missing = sorted(node for node in wanted if not by_node.get(node) and node not in terminating)
        for node_name in missing[:BURST]:
            by_node[node_name] = [await self._create_pod(daemon_set, node_name)]
        return await self._update_status(daemon_set, wanted, owned, by_node)

    def _rolling_victims(self, daemon_set: dict[str, Any], by_node: dict[str, list[dict[str, Any]]],
                         desired: int) -> list[dict[str, Any]]:
        strategy = ((daemon_set.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            return []
        min_ready = int((daemon_set.get("spec") or {}).get("minReadySeconds") or 0)
        now = datetime.datetime.now(datetime.timezone.utc)
        pods = [pods[0] for pods in by_node.values() if pods]
        unavailable = desired - sum(1 for pod in pods if available_in(pod, min_ready, now) == 0)
        budget = max_unavailable(daemon_set, desired) - max(unavailable, 0)
        old = sorted((pod for pod in pods if not is_current(pod, daemon_set)),
                     key=lambda p: available_in(p, min_ready, now) == 0)  # the unavailable old ones go first
        victims = []
        for pod in old:
            if available_in(pod, min_ready, now) != 0:
                victims.append(pod)  # already unavailable: replacing it costs nothing
            elif budget > 0:
                victims.append(pod)
                budget -= 1
        for pod in victims:
            by_node.pop((pod.get("spec") or {}).get("nodeName") or "", None)
        return victims

    async def _create_pod(self, daemon_set: dict[str, Any], node_name: str) -> dict[str, Any]:
        template = copy.deepcopy((daemon_set.get("spec") or {}).get("template") or {})
        metadata = template.get("metadata") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        spec["nodeName"] = node_name
        spec["tolerations"] = daemon_tolerations(spec)
        labels = {**(metadata.get("labels") or {}), GENERATION_LABEL: str(meta(daemon_set).get("generation", 1)),
                  HASH_LABEL: template_hash(daemon_set)}
        body: dict[str, Any] = {"metadata": {"generateName": f"{meta(daemon_set)['name']}-", "labels": labels,
                                             "ownerReferences": [owner_reference(daemon_set)]}, "spec": spec}
        if metadata.get("annotations"):
            body["metadata"]["annotations"] = dict(metadata["annotations"])
        try:
            pod = await self.api.create(self.pods, meta(daemon_set)["namespace"], body)
        except errors.ApiError as error:
            await self.recorder.record(daemon_set, "Warning", "FailedCreate", f"Error creating: {error}", COMPONENT)
            raise
        await self.recorder.record(daemon_set, "Normal", "SuccessfulCreate", f"Created pod: {meta(pod)['name']}", COMPONENT)
        return pod

    async def _delete_pods(self, daemon_set: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        await delete_pods(self.api, self.pods, self.recorder, daemon_set, pods, COMPONENT)

    async def _update_status(self, daemon_set: dict[str, Any], wanted: set[str], owned: list[dict[str, Any]],
                             by_node: dict[str, list[dict[str, Any]]]) -> float | None:
        min_ready = int((daemon_set.get("spec") or {}).get("minReadySeconds") or 0)
        now = datetime.datetime.now(datetime.timezone.utc)
        scheduled = [pods[0] for node, pods in by_node.items() if pods and node in wanted]
        misscheduled = {(pod.get("spec") or {}).get("nodeName") for pod in owned
                        if is_active(pod) and not meta(pod).get("deletionTimestamp")
                        and (pod.get("spec") or {}).get("nodeName") not in wanted}
        waits = [available_in(pod, min_ready, now) for pod in scheduled]
        available = sum(1 for wait in waits if wait == 0)
        status: dict[str, Any] = {
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": len(misscheduled - {None, ""}),
            "desiredNumberScheduled": len(wanted),
            "numberReady": sum(1 for wait in waits if wait is not None),
            "observedGeneration": meta(daemon_set).get("generation", 1),
            "updatedNumberScheduled": sum(1 for pod in scheduled if is_current(pod, daemon_set)),
            "numberAvailable": available,
            "numberUnavailable": len(wanted) - available,
        }

        def report(obj: dict[str, Any]) -> bool:
            current = obj.get("status") or {}
            new = {**{k: v for k, v in current.items() if k in ("conditions", "collisionCount")}, **status}
            for key in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"):
                if not new[key]:
                    del new[key]  # omitempty, as the real object reads
            if new == current:
                return False
            obj["status"] = new
            return True

        await base.update(self.api, self.daemon_sets, daemon_set, report, "status")
        pending = [wait for wait in waits if wait]
        return min(pending) + 0.1 if pending else None
