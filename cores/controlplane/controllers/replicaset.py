"""ReplicaSets: keep ``spec.replicas`` pods of the template running, and report them in status.

As kube-controller-manager's ReplicaSet controller: the pods a ReplicaSet controls are those
whose controller ownerReference is its uid; terminating and finished pods do not count. Missing
pods are created from the template (``generateName: <rs>-``, owner reference with
``controller`` and ``blockOwnerDeletion``); surplus ones are deleted, the least useful first
(unscheduled, then pending, then not ready, then the newest). Status: replicas,
fullyLabeledReplicas, readyReplicas, availableReplicas (Ready for ``minReadySeconds``),
observedGeneration.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
from collections.abc import Iterable
from typing import Any

from cores.common.selectors import SelectorError, label_selector_from_dict
from cores.controlplane import errors
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.objects import meta
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

COMPONENT = "replicaset-controller"
BURST = 500  # pods created or deleted per pass (kube-controller-manager: burstReplicas)
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod: dict[str, Any]) -> bool:
    return not meta(pod).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def ready_since(pod: dict[str, Any]) -> datetime.datetime | None:
    ready = base.condition(pod, "Ready")
    if not ready or ready.get("status") != "True":
        return None
    stamp = ready.get("lastTransitionTime") or meta(pod).get("creationTimestamp") or ""
    try:
        return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def available_in(pod: dict[str, Any], min_ready: int, now: datetime.datetime) -> float | None:
    """0 if available now, the seconds until it will be, or None when it is not ready."""
    since = ready_since(pod)
    if since is None:
        return None
    return max((since + datetime.timedelta(seconds=min_ready) - now).total_seconds(), 0.0)


def deletion_order(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """controller.ActivePods order, most expendable first."""
    newest_first = sorted(pods, key=lambda p: meta(p).get("creationTimestamp", ""), reverse=True)
    return sorted(newest_first, key=lambda p: (bool((p.get("spec") or {}).get("nodeName")),
                                               _PHASE_RANK.get((p.get("status") or {}).get("phase", ""), 0),
                                               ready_since(p) is not None))


async def delete_pods(api: Api, pods_kind: Any, recorder: EventRecorder, owner: dict[str, Any],
                      pods: list[dict[str, Any]], component: str) -> None:
    """Delete ``pods`` (one already gone is fine) and record each on their owner, as its controller does."""
    for pod in pods:
        try:
            await api.delete(pods_kind, meta(pod)["namespace"], meta(pod)["name"], {})
        except errors.ApiError as error:
            if error.code != 404:
                raise
        await recorder.record(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta(pod)['name']}", component)


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner.get("apiVersion", ""), "kind": owner.get("kind", ""), "name": meta(owner)["name"],
            "uid": meta(owner)["uid"], "controller": True, "blockOwnerDeletion": True}


class ReplicaSetController:
    def __init__(self, api: Api, recorder: EventRecorder, resync: float) -> None:
        self.api, self.recorder = api, recorder
        self.replica_sets = base.resource(api, "apps", "replicasets")
        self.pods = base.resource(api, "", "pods")
        self.loop = base.KeyedLoop(api, "replicaset-controller", self.keys_of, self.reconcile, self.all_keys, resync)

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        group, plural, namespace, name = base.split_key(event.key)
        if group == "apps" and plural == "replicasets":
            return (f"{namespace}/{name}",)
        if plural == "pods" and '"kind":"ReplicaSet"' in event.value:
            owner = base.controller_of(json.loads(event.value))
            if owner and owner.get("kind") == "ReplicaSet":
                return (f"{namespace}/{owner.get('name')}",)
        return ()

    async def all_keys(self) -> list[str]:
        return [f"{meta(rs)['namespace']}/{meta(rs)['name']}" for rs in await base.list_objects(self.api, self.replica_sets)]

    async def reconcile(self, key: object) -> float | None:
        namespace, _, name = str(key).partition("/")
        replica_set = await base.get(self.api, self.replica_sets, namespace, name)
        if replica_set is None or meta(replica_set).get("deletionTimestamp"):
            return None
        uid = meta(replica_set)["uid"]
        owned = [pod for pod in await base.list_objects(self.api, self.pods, namespace, match=lambda row: uid in row.value)
                 if (base.controller_of(pod) or {}).get("uid") == uid]
        active = [pod for pod in owned if is_active(pod)]
        wanted = int((replica_set.get("spec") or {}).get("replicas", 1))
        if len(active) < wanted:
            active += await self._create_pods(replica_set, min(wanted - len(active), BURST))
        elif len(active) > wanted:
            doomed = deletion_order(active)[:min(len(active) - wanted, BURST)]
            await self._delete_pods(replica_set, doomed)
            active = [pod for pod in active if pod not in doomed]
        return await self._update_status(replica_set, active)

    async def _create_pods(self, replica_set: dict[str, Any], count: int) -> list[dict[str, Any]]:
        template = copy.deepcopy((replica_set.get("spec") or {}).get("template") or {})
        metadata = template.get("metadata") or {}
        created = []
        for _ in range(count):
            body = {"metadata": {"generateName": f"{meta(replica_set)['name']}-",
                                 "labels": dict(metadata.get("labels") or {}),
                                 "ownerReferences": [owner_reference(replica_set)]},
                    "spec": copy.deepcopy(template.get("spec") or {})}
            if metadata.get("annotations"):
                body["metadata"]["annotations"] = dict(metadata["annotations"])
            try:
                pod = await self.api.create(self.pods, meta(replica_set)["namespace"], body)
            except errors.ApiError as error:
                await self.recorder.record(replica_set, "Warning", "FailedCreate", f"Error creating: {error}", COMPONENT)
                raise
            created.append(pod)
            await self.recorder.record(replica_set, "Normal", "SuccessfulCreate", f"Created pod: {meta(pod)['name']}", COMPONENT)
        return created

    async def _delete_pods(self, replica_set: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        await delete_pods(self.api, self.pods, self.recorder, replica_set, pods, COMPONENT)

    async def _update_status(self, replica_set: dict[str, Any], active: list[dict[str, Any]]) -> float | None:
        spec = replica_set.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        try:
            labelled = label_selector_from_dict(template_labels and {"matchLabels": template_labels})
        except SelectorError:
            labelled = label_selector_from_dict({})
        now = datetime.datetime.now(datetime.timezone.utc)
        waits = [available_in(pod, min_ready, now) for pod in active]
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for pod in active if labelled.matches(meta(pod).get("labels") or {})),
            "readyReplicas": sum(1 for wait in waits if wait is not None),
            "availableReplicas": sum(1 for wait in waits if wait == 0),
            "observedGeneration": meta(replica_set).get("generation", 1),
        }

        def report(obj: dict[str, Any]) -> bool:
            current = obj.get("status") or {}
            new = {**{k: v for k, v in current.items() if k == "conditions"}, **status}
            for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
                if not new[key]:
                    del new[key]  # omitempty, as the real object reads
            if new == current:
                return False
            obj["status"] = new
            return True

        await base.update(self.api, self.replica_sets, replica_set, report, "status")
        pending = [wait for wait in waits if wait]
        return min(pending) + 0.1 if pending else None
