"""Deployments: a ReplicaSet per pod template, rolled from the old ones to the new one.

As kube-controller-manager's deployment controller: the new ReplicaSet is
``<deployment>-<pod-template-hash>`` (a hash of the template; the label goes on its selector and
template too), carrying the ``deployment.kubernetes.io/revision`` annotation (one above the
highest so far) and ``desired-replicas``/``max-replicas``. RollingUpdate scales the new one up
within ``replicas + maxSurge`` and the old ones down keeping ``replicas - maxUnavailable``
available (ints or percentages, surge rounded up, unavailable down); Recreate scales the old
ones to zero first. Status carries the counts and the Available / Progressing conditions that
``kubectl rollout status`` reads. Old ReplicaSets beyond ``revisionHistoryLimit`` are deleted.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Iterable
from typing import Any

from cores.controlplane import errors, objects
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.controllers.replicaset import owner_reference
from cores.controlplane.objects import meta
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = ("kubectl.kubernetes.io/last-applied-configuration", REVISION, DESIRED, MAX_REPLICAS,
               "deployment.kubernetes.io/revision-history")
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def semantic(value: Any) -> Any:
    """The value with null, empty maps and empty lists dropped: Go's Semantic.DeepEqual treats them alike."""
    if isinstance(value, dict):
        kept = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def template_hash(template: dict[str, Any]) -> str:
    """FNV-32a of the template, spelt with rand.SafeEncodeString's alphabet (as ComputeHash)."""
    value = 0x811C9DC5
    for byte in json.dumps(semantic(template), sort_keys=True, separators=(",", ":")).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in str(value))


def _resolve(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent of ``total``; 422 for what validation refuses now (a stored legacy value)."""
    if isinstance(value, int):
        return value
    text = str(value or "0")
    number = text[:-1] if text.endswith("%") else text
    if not number.isascii() or not number.isdigit():
        raise errors.invalid("apps", "Deployment", "", f"spec.strategy.rollingUpdate: Invalid value: {text[:64]!r}: "
                             "a valid percent string must be a numeric string followed by an ending '%'", [])
    if text.endswith("%"):
        scaled = int(number) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(number)


def surge_and_unavailable(deployment: dict[str, Any]) -> tuple[int, int]:
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # "Validation should never allow the user to explicitly use zero values for both"
    return surge, min(unavailable, desired)


def revision_of(replica_set: dict[str, Any]) -> int:
    try:
        return int((meta(replica_set).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    """The template as compared with a deployment's (EqualIgnoreHash)."""
    copied = copy.deepcopy(template)
    labels = (copied.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return semantic(copied)


def _replicas(replica_set: dict[str, Any]) -> int:
    return int((replica_set.get("spec") or {}).get("replicas", 0))


def _status(replica_set: dict[str, Any] | None, key: str) -> int:
    return int(((replica_set or {}).get("status") or {}).get(key) or 0)


class DeploymentController:
    def __init__(self, api: Api, recorder: EventRecorder, resync: float) -> None:
        self.api, self.recorder = api, recorder
        self.deployments = base.resource(api, "apps", "deployments")
        self.replica_sets = base.resource(api, "apps", "replicasets")
        self.loop = base.KeyedLoop(api, "deployment-controller", self.keys_of, self.reconcile, self.all_keys, resync)

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        group, plural, namespace, name = base.split_key(event.key)
        if group == "apps" and plural == "deployments":
            return (f"{namespace}/{name}",)
        if group == "apps" and plural == "replicasets" and '"kind":"Deployment"' in event.value:
            owner = base.controller_of(json.loads(event.value))
            if owner and owner.get("kind") == "Deployment":
                return (f"{namespace}/{owner.get('name')}",)
        return ()

    async def all_keys(self) -> list[str]:
        return [f"{meta(d)['namespace']}/{meta(d)['name']}" for d in await base.list_objects(self.api, self.deployments)]

    # one deployment -----------------------------------------------------------------------------------
    async def reconcile(self, key: object) -> float | None:
        namespace, _, name = str(key).partition("/")
        deployment = await base.get(self.api, self.deployments, namespace, name)
        if deployment is None or meta(deployment).get("deletionTimestamp"):
            return None
        uid = meta(deployment)["uid"]
        owned = [rs for rs in await base.list_objects(self.api, self.replica_sets, namespace, match=lambda row: uid in row.value)
                 if (base.controller_of(rs) or {}).get("uid") == uid]
        template = (deployment.get("spec") or {}).get("template") or {}
        wanted = semantic(template)
        new = next((rs for rs in owned if _without_hash((rs.get("spec") or {}).get("template") or {}) == wanted), None)
        old = sorted((rs for rs in owned if rs is not new), key=lambda rs: (revision_of(rs), meta(rs).get("creationTimestamp", "")))
        created = False
        if (deployment.get("spec") or {}).get("paused"):
            await self._sync_status(deployment, new, old, False)
            return None
        if new is None:
            new, created = await self._create_new(deployment, old), True
        else:
            new = await self._ensure_revision(deployment, new, old)
        if (deployment.get("spec") or {}).get("strategy", {}).get("type") == "Recreate":
            await self._recreate(deployment, new, old)
        else:
            await self._rolling(deployment, new, old)
        await self._cleanup(deployment, old)
        await self._sync_status(deployment, new, old, created)
        return None

    async def _create_new(self, deployment: dict[str, Any], old: list[dict[str, Any]]) -> dict[str, Any]:
        spec = deployment.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        digest = template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        desired = int(spec.get("replicas", 1))
        surge, _ = surge_and_unavailable(deployment)
        old_total = sum(_replicas(rs) for rs in old)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            count = 0 if old_total else desired
        else:
            count = max(min(desired + surge - old_total, desired), 0)  # NewRSNewReplicas
        annotations = {k: v for k, v in (meta(deployment).get("annotations") or {}).items() if k not in _NOT_COPIED}
        annotations.update({REVISION: str(max([revision_of(rs) for rs in old] or [0]) + 1),
                            DESIRED: str(desired), MAX_REPLICAS: str(desired + surge)})
        name = f"{meta(deployment)['name']}-{digest}"
        body = {"metadata": {"name": name, "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                             "ownerReferences": [owner_reference(deployment)]},
                "spec": {"replicas": count, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                         "selector": selector, "template": template}}
        try:
            replica_set = await self.api.create(self.replica_sets, meta(deployment)["namespace"], body)
        except errors.ApiError as error:
            if error.code != 409:
                raise
            return await self._adopt(deployment, name)
        if count:
            await self.recorder.record(deployment, "Normal", "ScalingReplicaSet",
                                       f"Scaled up replica set {name} from 0 to {count}", COMPONENT)
        return replica_set

    async def _adopt(self, deployment: dict[str, Any], name: str) -> dict[str, Any]:
        """A ReplicaSet of that name exists already (an orphan of an earlier deployment): take it over."""
        existing = await base.get(self.api, self.replica_sets, meta(deployment)["namespace"], name)
        if existing is None or base.controller_of(existing) is not None:
            raise errors.conflict("apps", "replicasets", name, "a replica set of that name belongs to someone else")

        def adopt(obj: dict[str, Any]) -> bool:
            meta(obj).setdefault("ownerReferences", []).append(owner_reference(deployment))
            return True

        adopted = await base.update(self.api, self.replica_sets, existing, adopt)
        if adopted is None:
            raise errors.conflict("apps", "replicasets", name, "the replica set went away while being adopted")
        return adopted

    async def _ensure_revision(self, deployment: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]]) -> dict[str, Any]:
        highest = max([revision_of(rs) for rs in old] or [0])
        if revision_of(new) > highest:
            return new

        def bump(obj: dict[str, Any]) -> bool:
            meta(obj).setdefault("annotations", {})[REVISION] = str(highest + 1)
            return True

        return await base.update(self.api, self.replica_sets, new, bump) or new

    async def _scale(self, deployment: dict[str, Any], replica_set: dict[str, Any], count: int) -> bool:
        """Set a ReplicaSet's replicas (and its desired/max annotations); True when it changed."""
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        surge, _ = surge_and_unavailable(deployment)
        before = _replicas(replica_set)
        annotations = {DESIRED: str(desired), MAX_REPLICAS: str(desired + surge)}

        def scale(obj: dict[str, Any]) -> bool:
            current = meta(obj).get("annotations") or {}
            if _replicas(obj) == count and all(current.get(k) == v for k, v in annotations.items()):
                return False
            obj.setdefault("spec", {})["replicas"] = count
            meta(obj)["annotations"] = {**current, **annotations}
            return True

        updated = await base.update(self.api, self.replica_sets, replica_set, scale)
        if updated is not None:
            replica_set.clear()
            replica_set.update(updated)
        if before == count:
            return False
        direction = "up" if count > before else "down"
        await self.recorder.record(deployment, "Normal", "ScalingReplicaSet",
                                   f"Scaled {direction} replica set {meta(replica_set)['name']} from {before} to {count}", COMPONENT)
        return True

    # strategies ---------------------------------------------------------------------------------------
    async def _recreate(self, deployment: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]]) -> None:
        for replica_set in old:
            if _replicas(replica_set):
                await self._scale(deployment, replica_set, 0)
        if any(_status(rs, "replicas") for rs in old):
            return  # wait until the old pods are gone
        await self._scale(deployment, new, int((deployment.get("spec") or {}).get("replicas", 1)))

    async def _rolling(self, deployment: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]]) -> None:
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        surge, unavailable = surge_and_unavailable(deployment)
        # reconcileNewReplicaSet
        current = _replicas(new)
        if current > desired:
            await self._scale(deployment, new, desired)
        elif current < desired:
            total = current + sum(_replicas(rs) for rs in old)
            room = desired + surge - total
            if room > 0:
                await self._scale(deployment, new, current + min(room, desired - current))
        # reconcileOldReplicaSets
        old_total = sum(_replicas(rs) for rs in old)
        if not old_total:
            return
        all_total = _replicas(new) + old_total
        min_available = desired - unavailable
        new_unavailable = _replicas(new) - _status(new, "availableReplicas")
        budget = all_total - min_available - new_unavailable
        if budget <= 0:
            return
        # first the old pods that are not available anyway (cleanupUnhealthyReplicas)
        for replica_set in old:
            if budget <= 0:
                break
            unhealthy = _replicas(replica_set) - _status(replica_set, "availableReplicas")
            if unhealthy <= 0 or not _replicas(replica_set):
                continue
            cut = min(budget, unhealthy)
            await self._scale(deployment, replica_set, _replicas(replica_set) - cut)
            budget -= cut
        # then available ones, keeping minAvailable (scaleDownOldReplicaSetsForRollingUpdate)
        available = _status(new, "availableReplicas") + sum(_status(rs, "availableReplicas") for rs in old)
        budget = available - min_available
        for replica_set in old:
            if budget <= 0:
                break
            if not _replicas(replica_set):
                continue
            cut = min(_replicas(replica_set), budget)
            await self._scale(deployment, replica_set, _replicas(replica_set) - cut)
            budget -= cut

    async def _cleanup(self, deployment: dict[str, Any], old: list[dict[str, Any]]) -> None:
        limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        idle = [rs for rs in old if not _replicas(rs) and not _status(rs, "replicas") and not meta(rs).get("deletionTimestamp")]
        for replica_set in idle[:max(len(idle) - int(limit), 0)]:
            try:
                await self.api.delete(self.replica_sets, meta(replica_set)["namespace"], meta(replica_set)["name"], {})
            except errors.ApiError as error:
                if error.code != 404:
                    raise

    # status -------------------------------------------------------------------------------------------
    async def _sync_status(self, deployment: dict[str, Any], new: dict[str, Any] | None, old: list[dict[str, Any]],
                           created: bool) -> None:
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        _, unavailable = surge_and_unavailable(deployment)
        every = ([new] if new else []) + old
        available = sum(_status(rs, "availableReplicas") for rs in every)
        counts = {
            "observedGeneration": meta(deployment).get("generation", 1),
            "replicas": sum(_status(rs, "replicas") for rs in every),
            "updatedReplicas": _status(new, "replicas"),
            "readyReplicas": sum(_status(rs, "readyReplicas") for rs in every),
            "availableReplicas": available,
            "unavailableReplicas": max(desired - available, 0),
        }
        new_name = meta(new)["name"] if new else ""
        complete = (counts["updatedReplicas"] == desired and counts["replicas"] == desired and available == desired)
        if available >= desired - unavailable:
            available_condition = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            available_condition = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        if created:
            progressing = ("True", "NewReplicaSetCreated", f'Created new replica set "{new_name}"')
        elif complete and new:
            progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{new_name}" has successfully progressed.')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{new_name}" is progressing.')

        def report(obj: dict[str, Any]) -> bool:
            current = dict(obj.get("status") or {})
            changed_counts = {k: v for k, v in counts.items() if current.get(k, 0) != v}
            conditions = list(current.get("conditions") or [])
            touched = _set_condition(conditions, "Available", available_condition, bool(changed_counts))
            touched |= _set_condition(conditions, "Progressing", progressing, bool(changed_counts))
            if not changed_counts and not touched:
                return False
            status = {**current, **counts, "conditions": conditions}
            for key in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas", "replicas"):
                if not status.get(key):
                    status.pop(key, None)  # omitempty
            obj["status"] = status
            return True

        updated = await base.update(self.api, self.deployments, deployment, report, "status")
        if updated is not None and new is not None:
            await self._annotate_revision(updated, str(revision_of(new)))

    async def _annotate_revision(self, deployment: dict[str, Any], revision: str) -> None:
        def annotate(obj: dict[str, Any]) -> bool:
            annotations = meta(obj).setdefault("annotations", {})
            if annotations.get(REVISION) == revision:
                return False
            annotations[REVISION] = revision
            return True

        await base.update(self.api, self.deployments, deployment, annotate)


def _set_condition(conditions: list[dict[str, Any]], kind: str, wanted: tuple[str, str, str], progressed: bool) -> bool:
    """SetDeploymentCondition: a new status or reason replaces the condition; True when something changed."""
    status, reason, message = wanted
    now = objects.now_rfc3339()
    for index, item in enumerate(conditions):
        if item.get("type") != kind:
            continue
        if item.get("status") == status and item.get("reason") == reason:
            if item.get("message") == message and not (progressed and kind == "Progressing"):
                return False
            conditions[index] = {**item, "message": message, "lastUpdateTime": now}
            return True
        transition = item.get("lastTransitionTime") if item.get("status") == status else now
        conditions[index] = {"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": transition,
                             "reason": reason, "message": message}
        return True
    conditions.append({"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
                       "reason": reason, "message": message})
    return True
