"""StatefulSets: pods with stable names ``<set>-<ordinal>``, made, replaced and removed in order.

As kube-controller-manager's StatefulSet controller, in small. Pod ``<set>-<i>`` for i in
``0..replicas-1``, with ``hostname`` its own name and ``subdomain`` the ``serviceName``, labelled
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash``. With ``podManagementPolicy: OrderedReady`` (the default) pod i is
created only once every lower one is Running and Ready, a scale-down removes the highest first
and one at a time, and nothing is done while a pod is unready; ``Parallel`` creates and removes
them all at once. A pod deleted, or Failed, is made again with the same name once the old one
is gone. RollingUpdate replaces pods of an older template from the highest ordinal down, one at
a time, down to ``partition``; OnDelete waits for them to be deleted. (volumeClaimTemplates are
stored but make no claims: the control plane serves no PersistentVolumeClaims yet.) Status:
replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas, currentRevision,
updateRevision, observedGeneration, as ``kubectl get sts`` and ``rollout status`` read them.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from cores.controlplane import errors
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.controllers.replicaset import available_in, owner_reference
from cores.controlplane.objects import meta
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

COMPONENT = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
HASH_LABEL = "controller-revision-hash"


def revision(stateful_set: dict[str, Any]) -> str:
    template = (stateful_set.get("spec") or {}).get("template") or {}
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    return f"{meta(stateful_set)['name']}-{digest}"


def ordinal(stateful_set: dict[str, Any], pod: dict[str, Any]) -> int | None:
    prefix, name = f"{meta(stateful_set)['name']}-", meta(pod)["name"]
    rest = name[len(prefix):] if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def running_and_ready(pod: dict[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase") == "Running" and not meta(pod).get("deletionTimestamp")
            and (base.condition(pod, "Ready") or {}).get("status") == "True")


class StatefulSetController:
    def __init__(self, api: Api, recorder: EventRecorder, resync: float) -> None:
        self.api, self.recorder = api, recorder
        self.stateful_sets = base.resource(api, "apps", "statefulsets")
        self.pods = base.resource(api, "", "pods")
        self.loop = base.KeyedLoop(api, COMPONENT, self.keys_of, self.reconcile, self.all_keys, resync)

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        group, plural, namespace, name = base.split_key(event.key)
        if group == "apps" and plural == "statefulsets":
            return (f"{namespace}/{name}",)
        if plural == "pods" and '"kind":"StatefulSet"' in event.value:
            owner = base.controller_of(json.loads(event.value))
            if owner and owner.get("kind") == "StatefulSet":
                return (f"{namespace}/{owner.get('name')}",)
        return ()

    async def all_keys(self) -> list[str]:
        return [f"{meta(s)['namespace']}/{meta(s)['name']}" for s in await base.list_objects(self.api, self.stateful_sets)]

    async def reconcile(self, key: object) -> float | None:
        namespace, _, name = str(key).partition("/")
        stateful_set = await base.get(self.api, self.stateful_sets, namespace, name)
        if stateful_set is None or meta(stateful_set).get("deletionTimestamp"):
            return None
        spec = stateful_set.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        uid, update_revision = meta(stateful_set)["uid"], revision(stateful_set)
        pods: dict[int, dict[str, Any]] = {}
        for owned in await base.list_objects(self.api, self.pods, namespace, match=lambda row: uid in row.value):
            index = ordinal(stateful_set, owned)
            if (base.controller_of(owned) or {}).get("uid") == uid and index is not None:
                pods[index] = owned
        # replace failed pods, then create the missing ones in order
        for index in range(replicas):
            pod = pods.get(index)
            if pod is not None and (pod.get("status") or {}).get("phase") == "Failed" and not meta(pod).get("deletionTimestamp"):
                await self._delete(stateful_set, pod)
                if ordered:
                    return await self._update_status(stateful_set, pods, update_revision)
                continue
            if pod is None:
                pods[index] = await self._create(stateful_set, index, update_revision)
                if ordered:
                    return await self._update_status(stateful_set, pods, update_revision)
            elif ordered and not running_and_ready(pod):
                return await self._update_status(stateful_set, pods, update_revision)  # wait for it first
        # scale down: the highest first, one at a time when ordered
        surplus = sorted((index for index in pods if index >= replicas), reverse=True)
        for index in surplus:
            if not meta(pods[index]).get("deletionTimestamp"):
                await self._delete(stateful_set, pods[index])
            if ordered:
                return await self._update_status(stateful_set, pods, update_revision)
        # rolling update from the highest ordinal down to the partition
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
            for index in sorted((i for i in pods if partition <= i < replicas), reverse=True):
                pod = pods[index]
                if (meta(pod).get("labels") or {}).get(HASH_LABEL) != update_revision and not meta(pod).get("deletionTimestamp"):
                    if all(running_and_ready(p) for i, p in pods.items() if i < replicas and i != index):
                        await self._delete(stateful_set, pod)
                    break
        return await self._update_status(stateful_set, pods, update_revision)

    async def _create(self, stateful_set: dict[str, Any], index: int, update_revision: str) -> dict[str, Any]:
        template = copy.deepcopy((stateful_set.get("spec") or {}).get("template") or {})
        metadata = template.get("metadata") or {}
        name = f"{meta(stateful_set)['name']}-{index}"
        pod_spec = copy.deepcopy(template.get("spec") or {})
        pod_spec["hostname"] = name
        if (stateful_set.get("spec") or {}).get("serviceName"):
            pod_spec["subdomain"] = stateful_set["spec"]["serviceName"]
        labels = {**(metadata.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(index),
                  HASH_LABEL: update_revision}
        body: dict[str, Any] = {"metadata": {"name": name, "labels": labels, "ownerReferences": [owner_reference(stateful_set)]},
                                "spec": pod_spec}
        if metadata.get("annotations"):
            body["metadata"]["annotations"] = dict(metadata["annotations"])
        try:
            pod = await self.api.create(self.pods, meta(stateful_set)["namespace"], body)
        except errors.ApiError as error:
            if error.code == 409:  # the old pod of that name is still being deleted: next pass
                found = await base.get(self.api, self.pods, meta(stateful_set)["namespace"], name)
                if found is not None:
                    return found
            await self.recorder.record(stateful_set, "Warning", "FailedCreate", f"create Pod {name} in StatefulSet "
                                       f"{meta(stateful_set)['name']} failed error: {error}", COMPONENT)
            raise
        await self.recorder.record(stateful_set, "Normal", "SuccessfulCreate", f"create Pod {name} in StatefulSet "
                                   f"{meta(stateful_set)['name']} successful", COMPONENT)
        return pod

    async def _delete(self, stateful_set: dict[str, Any], pod: dict[str, Any]) -> None:
        try:
            await self.api.delete(self.pods, meta(pod)["namespace"], meta(pod)["name"], {})
        except errors.ApiError as error:
            if error.code != 404:
                raise
        await self.recorder.record(stateful_set, "Normal", "SuccessfulDelete", f"delete Pod {meta(pod)['name']} in "
                                   f"StatefulSet {meta(stateful_set)['name']} successful", COMPONENT)

    async def _update_status(self, stateful_set: dict[str, Any], pods: dict[int, dict[str, Any]],
                             update_revision: str) -> float | None:
        spec = stateful_set.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = datetime.datetime.now(datetime.timezone.utc)
        live = [pod for pod in pods.values() if not meta(pod).get("deletionTimestamp")]
        waits = [available_in(pod, min_ready, now) for pod in live if running_and_ready(pod)]
        updated = sum(1 for pod in live if (meta(pod).get("labels") or {}).get(HASH_LABEL) == update_revision)
        current_revision = (stateful_set.get("status") or {}).get("currentRevision") or update_revision
        if updated == len(live) == int(spec.get("replicas", 1)):
            current_revision = update_revision  # the rollout is over
        current = sum(1 for pod in live if (meta(pod).get("labels") or {}).get(HASH_LABEL) == current_revision)
        status = {"replicas": len(live), "readyReplicas": len(waits), "availableReplicas": sum(1 for w in waits if w == 0),
                  "currentReplicas": current, "updatedReplicas": updated, "currentRevision": current_revision,
                  "updateRevision": update_revision, "observedGeneration": meta(stateful_set).get("generation", 1),
                  "collisionCount": 0}

        def report(obj: dict[str, Any]) -> bool:
            old = obj.get("status") or {}
            new = {**{k: v for k, v in old.items() if k == "conditions"}, **status}
            for key in ("readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"):
                if not new[key]:
                    del new[key]  # omitempty
            if new == old:
                return False
            obj["status"] = new
            return True

        await base.update(self.api, self.stateful_sets, stateful_set, report, "status")
        pending = [wait for wait in waits if wait]
        return min(pending) + 0.1 if pending else None
