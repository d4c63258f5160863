"""Jobs and CronJobs: pods that run to completion, and Jobs made on a schedule.

Jobs, as kube-controller-manager's Job controller in small: the Job's pods are those whose
controller ownerReference is it. While fewer than ``completions`` (default 1) have succeeded,
up to ``parallelism`` (default 1) run; a Job is ``Complete`` once ``completions`` pods succeeded
and ``Failed`` once more than ``backoffLimit`` (default 6) failed (``BackoffLimitExceeded``) or
it ran past ``activeDeadlineSeconds`` (``DeadlineExceeded``); then its remaining pods are
deleted. ``suspend`` deletes the running pods and creates none. Status: active, ready,
succeeded, failed, startTime, completionTime and the conditions ``kubectl wait`` reads
(SuccessCriteriaMet then Complete; FailureTarget then Failed). ``ttlSecondsAfterFinished``
deletes a finished Job (its pods follow through the garbage collector).

CronJobs: at each time of ``schedule`` (:mod:`cores.controlplane.cron`, in ``timeZone`` or
UTC), a Job ``<cronjob>-<minutes since the epoch>`` from ``jobTemplate``, unless it is
suspended, the time is older than ``startingDeadlineSeconds``, or ``concurrencyPolicy`` Forbid
finds one still active (Replace deletes those first). Only the latest missed time runs, as
upstream. Finished Jobs beyond ``successfulJobsHistoryLimit`` (3) and ``failedJobsHistoryLimit``
(1) are deleted, oldest first. Status: active references, lastScheduleTime, lastSuccessfulTime.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import zoneinfo
from collections.abc import Iterable
from typing import Any

from cores.controlplane import cron, errors
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.controllers.replicaset import delete_pods, owner_reference
from cores.controlplane.objects import meta
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

JOB_COMPONENT = "job-controller"
CRONJOB_COMPONENT = "cronjob-controller"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
BURST = 100
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def finished(job: dict[str, Any]) -> str:
    """"Complete" or "Failed" when the Job is over, else ""."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return ""


def _condition(kind: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def _owned(pods: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [pod for pod in pods if (base.controller_of(pod) or {}).get("uid") == uid]


class JobController:
    def __init__(self, api: Api, recorder: EventRecorder, resync: float) -> None:
        self.api, self.recorder = api, recorder
        self.jobs = base.resource(api, "batch", "jobs")
        self.pods = base.resource(api, "", "pods")
        self.loop = base.KeyedLoop(api, JOB_COMPONENT, self.keys_of, self.reconcile, self.all_keys, resync)

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        group, plural, namespace, name = base.split_key(event.key)
        if group == "batch" and plural == "jobs":
            return (f"{namespace}/{name}",)
        if plural == "pods" and '"kind":"Job"' in event.value:
            owner = base.controller_of(json.loads(event.value))
            if owner and owner.get("kind") == "Job":
                return (f"{namespace}/{owner.get('name')}",)
        return ()

    async def all_keys(self) -> list[str]:
        return [f"{meta(job)['namespace']}/{meta(job)['name']}" for job in await base.list_objects(self.api, self.jobs)]

    async def reconcile(self, key: object) -> float | None:
        namespace, _, name = str(key).partition("/")
        job = await base.get(self.api, self.jobs, namespace, name)
        if job is None or meta(job).get("deletionTimestamp"):
            return None
        spec, now = job.get("spec") or {}, datetime.datetime.now(datetime.timezone.utc)
        uid = meta(job)["uid"]
        pods = _owned(await base.list_objects(self.api, self.pods, namespace, match=lambda row: uid in row.value), uid)
        phases = [(pod.get("status") or {}).get("phase") for pod in pods]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = [pod for pod, phase in zip(pods, phases)
                  if phase not in ("Succeeded", "Failed") and not meta(pod).get("deletionTimestamp")]
        outcome = finished(job)
        if outcome:
            return await self._expire(job, now)
        completions = int(spec.get("completions") or 1)
        started = parse_time((job.get("status") or {}).get("startTime")) or now
        deadline = spec.get("activeDeadlineSeconds")
        conditions: list[dict[str, Any]] = []
        stamp = format_time(now)
        if succeeded >= completions:
            conditions = [_condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods", stamp),
                          _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods", stamp)]
            await self.recorder.record(job, "Normal", "Completed", "Job completed", JOB_COMPONENT)
        elif failed > int(spec.get("backoffLimit", 6)):
            message = "Job has reached the specified backoff limit"
            conditions = [_condition("FailureTarget", "BackoffLimitExceeded", message, stamp),
                          _condition("Failed", "BackoffLimitExceeded", message, stamp)]
            await self.recorder.record(job, "Warning", "BackoffLimitExceeded", message, JOB_COMPONENT)
        elif isinstance(deadline, int) and (now - started).total_seconds() >= deadline:
            message = "Job was active longer than specified deadline"
            conditions = [_condition("FailureTarget", "DeadlineExceeded", message, stamp),
                          _condition("Failed", "DeadlineExceeded", message, stamp)]
            await self.recorder.record(job, "Warning", "DeadlineExceeded", message, JOB_COMPONENT)
        if conditions or spec.get("suspend"):
            await self._delete(job, active)
            active = []
        else:
            wanted = min(int(spec.get("parallelism", 1)), completions - succeeded) - len(active)
            for _ in range(max(min(wanted, BURST), 0)):
                active.append(await self._create_pod(job))
        ready = sum(1 for pod in active if (base.condition(pod, "Ready") or {}).get("status") == "True")
        await self._update_status(job, active, ready, succeeded, failed, started, conditions, now)
        if conditions:
            return self._ttl_wait(job, now)
        if isinstance(deadline, int):
            return max(deadline - (now - started).total_seconds(), 0.0) + 0.5
        return None

    async def _create_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        metadata = template.get("metadata") or {}
        body: dict[str, Any] = {"metadata": {"generateName": f"{meta(job)['name']}-", "labels": dict(metadata.get("labels") or {}),
                                             "ownerReferences": [owner_reference(job)]},
                                "spec": copy.deepcopy(template.get("spec") or {})}
        if metadata.get("annotations"):
            body["metadata"]["annotations"] = dict(metadata["annotations"])
        try:
            pod = await self.api.create(self.pods, meta(job)["namespace"], body)
        except errors.ApiError as error:
            await self.recorder.record(job, "Warning", "FailedCreate", f"Error creating: {error}", JOB_COMPONENT)
            raise
        await self.recorder.record(job, "Normal", "SuccessfulCreate", f"Created pod: {meta(pod)['name']}", JOB_COMPONENT)
        return pod

    async def _delete(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        await delete_pods(self.api, self.pods, self.recorder, job, pods, JOB_COMPONENT)

    async def _update_status(self, job: dict[str, Any], active: list[dict[str, Any]], ready: int, succeeded: int, failed: int,
                             started: datetime.datetime, conditions: list[dict[str, Any]], now: datetime.datetime) -> None:
        def report(obj: dict[str, Any]) -> bool:
            current = obj.get("status") or {}
            new = {key: value for key, value in current.items() if key in ("conditions", "completionTime", "startTime")}
            new.update(active=len(active), ready=ready, succeeded=succeeded, failed=failed, uncountedTerminatedPods={})
            if not (obj.get("spec") or {}).get("suspend"):
                new.setdefault("startTime", format_time(started))
            if conditions:
                new["conditions"] = [*new.get("conditions", []), *conditions]
                if conditions[-1]["type"] == "Complete":
                    new["completionTime"] = format_time(now)
            for key in ("active", "succeeded", "failed"):
                if not new[key]:
                    del new[key]  # omitempty
            if new == current:
                return False
            obj["status"] = new
            return True

        await base.update(self.api, self.jobs, job, report, "status")

    def _ttl_wait(self, job: dict[str, Any], now: datetime.datetime) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        return float(ttl) + 0.5 if isinstance(ttl, int) else None

    async def _expire(self, job: dict[str, Any], now: datetime.datetime) -> float | None:
        """ttlSecondsAfterFinished: delete the finished Job when its time is up (pods go with it)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        status = job.get("status") or {}
        ended = parse_time(status.get("completionTime")) or parse_time(
            next((c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("type") == "Failed"), None))
        if not isinstance(ttl, int) or ended is None:
            return None
        left = ttl - (now - ended).total_seconds()
        if left > 0:
            return left + 0.5
        try:
            await self.api.delete(self.jobs, meta(job)["namespace"], meta(job)["name"], {"propagationPolicy": "Background"})
        except errors.ApiError as error:
            if error.code != 404:
                raise
        return None


class CronJobController:
    def __init__(self, api: Api, recorder: EventRecorder, resync: float) -> None:
        self.api, self.recorder = api, recorder
        self.cron_jobs = base.resource(api, "batch", "cronjobs")
        self.jobs = base.resource(api, "batch", "jobs")
        self.loop = base.KeyedLoop(api, CRONJOB_COMPONENT, self.keys_of, self.reconcile, self.all_keys, resync)

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        group, plural, namespace, name = base.split_key(event.key)
        if group == "batch" and plural == "cronjobs":
            return (f"{namespace}/{name}",)
        if group == "batch" and plural == "jobs" and '"kind":"CronJob"' in event.value:
            owner = base.controller_of(json.loads(event.value))
            if owner and owner.get("kind") == "CronJob":
                return (f"{namespace}/{owner.get('name')}",)
        return ()

    async def all_keys(self) -> list[str]:
        return [f"{meta(cj)['namespace']}/{meta(cj)['name']}" for cj in await base.list_objects(self.api, self.cron_jobs)]

    async def reconcile(self, key: object) -> float | None:
        namespace, _, name = str(key).partition("/")
        cron_job = await base.get(self.api, self.cron_jobs, namespace, name)
        if cron_job is None or meta(cron_job).get("deletionTimestamp"):
            return None
        spec, status = cron_job.get("spec") or {}, cron_job.get("status") or {}
        try:
            schedule = cron.parse(str(spec.get("schedule", "")))
            zone: datetime.tzinfo = zoneinfo.ZoneInfo(spec["timeZone"]) if spec.get("timeZone") else datetime.timezone.utc
        except (cron.CronError, zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            await self.recorder.record(cron_job, "Warning", "UnparseableSchedule", f"unparseable schedule: {error}", CRONJOB_COMPONENT)
            return None
        uid = meta(cron_job)["uid"]
        jobs = _owned(await base.list_objects(self.api, self.jobs, namespace, match=lambda row: uid in row.value), uid)
        active = [job for job in jobs if not finished(job) and not meta(job).get("deletionTimestamp")]
        now = datetime.datetime.now(datetime.timezone.utc)
        since = parse_time(status.get("lastScheduleTime")) or parse_time(meta(cron_job).get("creationTimestamp")) or now
        due = None
        moment = schedule.next_after(since.astimezone(zone))
        while moment is not None and moment <= now:
            due, moment = moment, schedule.next_after(moment)  # only the latest missed time runs
        scheduled, retry = None, None
        if due is not None and not spec.get("suspend"):
            deadline = spec.get("startingDeadlineSeconds")
            if isinstance(deadline, int) and (now - due).total_seconds() > deadline:
                await self.recorder.record(cron_job, "Warning", "MissSchedule",
                                           f"Missed scheduled time to start a job: {format_time(due)}", CRONJOB_COMPONENT)
            elif spec.get("concurrencyPolicy") == "Forbid" and active:
                retry = 5.0  # it runs once the active ones finish: look again soon
            else:
                if spec.get("concurrencyPolicy") == "Replace":
                    for job in active:
                        await self._delete_job(cron_job, job)
                    active = []
                active.append(await self._create_job(cron_job, due))
                scheduled = due
        await self._prune(cron_job, jobs)
        await self._update_status(cron_job, active, jobs, scheduled)
        if moment is None:
            return retry
        wait = max((moment - now).total_seconds(), 0.0) + 0.2
        return min(wait, retry) if retry is not None else wait

    async def _create_job(self, cron_job: dict[str, Any], due: datetime.datetime) -> dict[str, Any]:
        template = copy.deepcopy((cron_job.get("spec") or {}).get("jobTemplate") or {})
        metadata = template.get("metadata") or {}
        name = f"{meta(cron_job)['name']}-{int(due.timestamp() // 60)}"
        body = {"metadata": {"name": name, "labels": dict(metadata.get("labels") or {}),
                             "annotations": {**(metadata.get("annotations") or {}), SCHEDULED_ANNOTATION: format_time(due)},
                             "ownerReferences": [owner_reference(cron_job)]},
                "spec": copy.deepcopy(template.get("spec") or {})}
        try:
            job = await self.api.create(self.jobs, meta(cron_job)["namespace"], body)
        except errors.ApiError as error:
            if error.code == 409:  # made already (a restart between the create and the status)
                found = await base.get(self.api, self.jobs, meta(cron_job)["namespace"], name)
                if found is not None:
                    return found
            await self.recorder.record(cron_job, "Warning", "FailedCreate", f"Error creating job: {error}", CRONJOB_COMPONENT)
            raise
        await self.recorder.record(cron_job, "Normal", "SuccessfulCreate", f"Created job {name}", CRONJOB_COMPONENT)
        return job

    async def _delete_job(self, cron_job: dict[str, Any], job: dict[str, Any]) -> None:
        try:
            await self.api.delete(self.jobs, meta(job)["namespace"], meta(job)["name"], {"propagationPolicy": "Background"})
        except errors.ApiError as error:
            if error.code != 404:
                raise
        await self.recorder.record(cron_job, "Normal", "SuccessfulDelete", f"Deleted job {meta(job)['name']}", CRONJOB_COMPONENT)

    async def _prune(self, cron_job: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        spec = cron_job.get("spec") or {}
        for outcome, key, default in (("Complete", "successfulJobsHistoryLimit", 3), ("Failed", "failedJobsHistoryLimit", 1)):
            limit = spec.get(key, default)
            done = sorted((job for job in jobs if finished(job) == outcome and not meta(job).get("deletionTimestamp")),
                          key=lambda job: (job.get("status") or {}).get("startTime") or meta(job).get("creationTimestamp", ""))
            for job in done[:max(len(done) - int(limit), 0)]:
                await self._delete_job(cron_job, job)

    async def _update_status(self, cron_job: dict[str, Any], active: list[dict[str, Any]], jobs: list[dict[str, Any]],
                             scheduled: datetime.datetime | None) -> None:
        successful = [(job.get("status") or {}).get("completionTime") for job in jobs if finished(job) == "Complete"]
        last_success = max((stamp for stamp in successful if stamp), default=None)

        def report(obj: dict[str, Any]) -> bool:
            current = obj.get("status") or {}
            new = dict(current)
            refs = [{"apiVersion": "batch/v1", "kind": "Job", "name": meta(job)["name"], "namespace": meta(job)["namespace"],
                     "uid": meta(job)["uid"], "resourceVersion": meta(job).get("resourceVersion", "")} for job in active]
            if refs:
                new["active"] = refs
            else:
                new.pop("active", None)
            if scheduled is not None:
                new["lastScheduleTime"] = format_time(scheduled)
            if last_success and last_success > str(new.get("lastSuccessfulTime") or ""):
                new["lastSuccessfulTime"] = last_success
            if new == current:
                return False
            obj["status"] = new
            return True

        await base.update(self.api, self.cron_jobs, cron_job, report, "status")

