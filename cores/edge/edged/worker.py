"""One pod's life on this node: a task that makes containerd match the Pod, and reports its status.

Each pass of :meth:`PodWorker.sync` looks at what CRI says (sandbox and containers labelled with
this node and the pod's uid), does the next step (run the sandbox, write volumes, run init
containers in order, start or restart containers under the restart policy and back-off, act on
probe results) and builds the pod status. Nothing is remembered that CRI cannot tell again, so
a restarted Edged adopts what is running: same sandbox, same container IDs, restart counts read
from the containers' attempt numbers.

Deletion: an ``update`` with ``deletionTimestamp`` stops the containers with the grace period,
reports the final status and asks the cloud to delete the pod (``gracePeriodSeconds: 0`` with a
uid precondition); the cloud's ``delete`` push then removes everything made for the pod.

The worker sees the node's pod set only as a :class:`~cores.edge.edged.host.PodHost`, and
decides here what happens next; the parts have modules of their own: what CRI says of the pod
(:mod:`.observe`), starting a container (:mod:`.containers`, with images from :mod:`.images` and
termination message files from :mod:`.termination`), stopping and removing containers and
sandboxes (:mod:`.teardown`), and the status and final delete request sent to the cloud
(:mod:`.reporter`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cores.edge.cri import CriError, api
from cores.edge.edged import observe, podspec, termination, volumes
from cores.edge.edged.containers import ContainerStarter, Sandbox
from cores.edge.edged.host import Objects, PodHost
from cores.edge.edged.probes import ContainerProbes
from cores.edge.edged.reporter import StatusReporter
from cores.edge.edged.status import StatusTracker, terminal_phase
from cores.edge.edged.teardown import Teardown

log = logging.getLogger("kubeedge.edged")

RESYNC_SECONDS = 10.0  # a worker's periodic pass; changes in the runtime wake it sooner (PodManager's relist)


class PodWorker:
    def __init__(self, host: PodHost, pod: dict[str, Any], static: bool = False) -> None:
        self.host = host
        self.static = static                   # from a manifest file: reported on its mirror pod
        self.cri = host.cri
        self.pod = pod
        self.uid = podspec.pod_uid(pod)
        self.pod_dir = volumes.pod_dir(host.root_directory, self.uid)
        self.starter = ContainerStarter(host, self.pod_dir)
        self.key = podspec.pod_key(pod)
        self.namespace, self.name = self.key.split("/", 1)
        self.teardown = Teardown(host.cri, host.pod_labels(self.uid), self.key)
        self.removed = False                   # the cloud's delete arrived: remove everything
        self.terminated = False                # containers stopped for deletion
        self.app_ran = False                   # an app container has existed: sidecars no longer gate it
        self.app_done = False                  # every app container exited for good (policy Never/OnFailure)
        self.volumes_dirty = True
        self.volume_paths: dict[str, Path] = {}
        self.objects: Objects = {}
        self.sandbox_id = ""
        self.sandbox_config: api.PodSandboxConfig | None = None
        self.pod_ip = ""
        self.waiting: dict[str, tuple[str, str]] = {}  # container -> (reason, message) while it cannot run
        self.probes: dict[str, ContainerProbes] = {}   # container id -> its probe loops
        self.tracker = StatusTracker((pod.get("status") or {}).get("startTime"))
        self.wake = asyncio.Event()
        self.done = asyncio.Event()
        self.reporter = StatusReporter(host, self.key, self.uid, static, self.tracker)
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.key}")

    # -- inputs ------------------------------------------------------------------------------------
    def update(self, pod: dict[str, Any]) -> None:
        if pod.get("spec"):
            self.pod = pod
        self.wake.set()

    def delete(self) -> None:
        self.removed = True
        self.wake.set()

    def object_changed(self) -> None:
        self.volumes_dirty = True
        self.wake.set()

    def mirror_changed(self) -> None:
        self.reporter.mirror_changed()

    def reconnected(self) -> None:
        self.reporter.reconnected()
        self.wake.set()

    def cancel(self) -> None:
        """Edged stops: leave the containers running (as kubelet does), stop our tasks."""
        self._stop_all_probes()
        self.task.cancel()
        self.reporter.cancel()

    # -- loop --------------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                self.wake.clear()
                try:
                    if await self.sync():
                        return
                except CriError as error:
                    log.warning("pod %s: %s", self.key, error)
                except podspec.SpecError as error:
                    log.warning("pod %s: %s", self.key, error)
                except Exception:  # noqa: BLE001 - one pod's bug must not stop the others
                    log.exception("pod %s: sync failed", self.key)
                try:
                    await asyncio.wait_for(self.wake.wait(), RESYNC_SECONDS)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._stop_all_probes()
            self.reporter.cancel()
            self.done.set()
            self.host.forget(self.uid)

    async def sync(self) -> bool:
        """One pass; True when the pod is gone for good."""
        if self.removed:
            await self._terminate(podspec.grace_seconds(self.pod))
            await self._remove_everything()
            log.info("pod %s (%s) removed", self.key, self.uid)
            return True
        if (self.pod.get("metadata") or {}).get("deletionTimestamp"):
            if not self.terminated:
                await self._terminate(podspec.grace_seconds(self.pod))
                self.terminated = True
            self.reporter.publish(await self._observe(final=True))
            await self.reporter.request_delete(self.wake.set)
            return False
        if not await self._fetch_objects():
            self.reporter.publish(await self._observe())
            return False
        if not await self._ensure_sandbox():
            self.reporter.publish(await self._observe())
            return False
        if self.volumes_dirty:
            await self._write_volumes()
        if await self._run_init_containers():
            await self._run_app_containers()
        self.reporter.publish(await self._observe())
        return False

    # -- objects and volumes -----------------------------------------------------------------------
    async def _fetch_objects(self) -> bool:
        wanted = volumes.referenced_objects(self.pod)
        found = await self.host.fetch_objects(self.namespace, wanted)
        tokens = await self.host.service_account_tokens(self.pod, self.wake.set)
        if any(self.objects.get(key) is not token for key, token in tokens.items()):
            self.volumes_dirty = True  # a token issued or renewed: rewrite the projected volume
        found.update(tokens)
        self.objects = found
        missing = [f"{kind} {name}" if kind != "serviceaccounttoken" else "a service account token"
                   for (kind, name), obj in found.items() if obj is None]
        if missing and volumes.needs_missing(self.pod, found):  # env-only references fail later, per container
            for container in self._all_containers():
                self.waiting.setdefault(container["name"], ("ContainerCreating", ""))
            log.info("pod %s waits for %s", self.key, ", ".join(missing))
            self.host.events.pod(self.pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {', '.join(missing)} not found")
            return False
        return True

    def lookup(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    async def _write_volumes(self) -> None:
        self.volumes_dirty = False
        try:
            self.volume_paths = await asyncio.to_thread(volumes.prepare, self.host.root_directory, self.pod, self.lookup,
                                                        self.host.node_ip, self.pod_ip)
        except podspec.SpecError as error:
            self.volumes_dirty = True
            log.warning("pod %s: %s", self.key, error)
            raise

    # -- sandbox -----------------------------------------------------------------------------------
    async def _ensure_sandbox(self) -> bool:
        sandboxes = await self.cri.list_pod_sandbox(labels=self.host.pod_labels(self.uid))
        ready = sorted((s for s in sandboxes if s.state == api.SANDBOX_READY), key=lambda s: (s.metadata.attempt, s.created_at))
        attempt = max((s.metadata.attempt for s in sandboxes), default=-1) + 1
        if ready:
            sandbox = ready[-1]
            if sandbox.id != self.sandbox_id:
                self.sandbox_id = sandbox.id
                self.sandbox_config = podspec.sandbox_config(self.pod, self.host.node_name, self.host.logs_root,
                                                             sandbox.metadata.attempt)
                self.pod_ip = await self._sandbox_ip(sandbox.id)
                log.info("pod %s: using sandbox %s", self.key, sandbox.id[:12])
            return True
        if sandboxes:
            log.info("pod %s: sandbox gone not ready; making a new one", self.key)
            containers = await self.cri.list_containers(labels=self.host.pod_labels(self.uid))
            for container in containers:
                self._stop_probes(container.id)
            await self.teardown.remove_containers(containers)
            for stale in sandboxes:
                await self.teardown.remove_sandbox(stale.id)
        config = podspec.sandbox_config(self.pod, self.host.node_name, self.host.logs_root, attempt)
        await asyncio.to_thread(os.makedirs, config.log_directory, exist_ok=True)
        self.sandbox_id = await self.cri.run_pod_sandbox(config)
        self.sandbox_config = config
        self.pod_ip = await self._sandbox_ip(self.sandbox_id)
        self.volumes_dirty = True  # downward API may carry the pod IP
        log.info("pod %s: sandbox %s running (pod IP %s)", self.key, self.sandbox_id[:12], self.pod_ip)
        return True

    async def _sandbox_ip(self, sandbox_id: str) -> str:
        if podspec.host_network(self.pod):
            return self.host.node_ip
        status = await self.cri.pod_sandbox_status(sandbox_id)
        return status.status.network.ip

    # -- containers --------------------------------------------------------------------------------
    def _all_containers(self) -> list[dict[str, Any]]:
        spec = self.pod.get("spec") or {}
        return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]

    async def _instances(self) -> dict[str, list[api.Container]]:
        return await observe.instances(self.cri, self.host.pod_labels(self.uid), self.sandbox_id)

    async def _run_init_containers(self) -> bool:
        """Run init containers one after the other; True once all exited 0."""
        instances = await self._instances()
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for spec in (self.pod.get("spec") or {}).get("initContainers") or []:
            mine = instances.get(spec["name"], [])
            latest = mine[-1] if mine else None
            if podspec.is_sidecar(spec):
                if not await self._run_sidecar(spec, latest, mine):
                    return False
                continue
            if latest is None:
                await self._start(spec, 0)
                return False
            if latest.state == api.CONTAINER_CREATED:
                await self._start_existing(latest)
                return False
            if latest.state == api.CONTAINER_RUNNING:
                return False
            status = (await self.cri.container_status(latest.id)).status
            if status.exit_code == 0:
                continue
            if policy != "Never":
                await self._restart(spec, latest, mine)
            return False
        return True

    async def _run_sidecar(self, spec: Mapping[str, Any], latest: api.Container | None, mine: list[api.Container]) -> bool:
        """A sidecar (init container with restartPolicy Always): started in its turn, then kept running
        beside the app, restarted whatever the pod's policy, until the app is done. True: go on."""
        if self.app_done:
            if latest is not None and latest.state == api.CONTAINER_RUNNING:
                self._stop_probes(latest.id)
                await self.cri.stop_container(latest.id, podspec.grace_seconds(self.pod))
            return True
        if latest is None:
            await self._start(spec, 0)
            return False
        if _outdated(latest, spec):
            await self._replace(spec, latest, mine)
            return False
        if latest.state == api.CONTAINER_CREATED:
            await self._start_existing(latest)
            return False
        if latest.state == api.CONTAINER_RUNNING:
            await self._watch_running(spec, latest)
            probes = self.probes.get(latest.id)
            return self.app_ran or (probes.started if probes else not spec.get("startupProbe"))
        self._stop_probes(latest.id)
        await self._restart(spec, latest, mine)
        return self.app_ran

    async def _run_app_containers(self) -> None:
        instances = await self._instances()
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        finished = 0
        for spec in (self.pod.get("spec") or {}).get("containers") or []:
            mine = instances.get(spec["name"], [])
            latest = mine[-1] if mine else None
            if latest is not None:
                self.app_ran = True
            if latest is not None and latest.state == api.CONTAINER_EXITED and not _outdated(latest, spec):
                exit_code = (await self.cri.container_status(latest.id)).status.exit_code
                if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                    finished += 1
                    continue
            if latest is None:
                await self._start(spec, 0)
            elif _outdated(latest, spec):
                await self._replace(spec, latest, mine)
            elif latest.state == api.CONTAINER_CREATED:
                await self._start_existing(latest)
            elif latest.state == api.CONTAINER_RUNNING:
                await self._watch_running(spec, latest)
            else:
                status = (await self.cri.container_status(latest.id)).status
                self._stop_probes(latest.id)
                if policy == "Always" or (policy == "OnFailure" and status.exit_code != 0):
                    await self._restart(spec, latest, mine)
        containers = (self.pod.get("spec") or {}).get("containers") or []
        if containers and finished == len(containers) and not self.app_done:
            self.app_done = True  # the app is done for good: its sidecars are stopped now
            self.wake.set()

    async def _watch_running(self, spec: Mapping[str, Any], container: api.Container) -> None:
        probes = self.probes.get(container.id)
        if probes is None and any(spec.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe")):
            name = str(spec["name"])
            self.probes[container.id] = ContainerProbes(
                self.cri, container.id, spec, podspec.host_network(self.pod), self.wake.set,
                lambda kind: self.host.events.pod(self.pod, "Warning", "Unhealthy", f"{kind} probe failed", name))
            return
        if probes and (probes.liveness_failed or probes.startup_failed):
            which = "liveness" if probes.liveness_failed else "startup"
            log.info("pod %s: container %s failed its %s probe, will be restarted", self.key, spec["name"], which)
            self.host.events.pod(self.pod, "Normal", "Killing", f"Container {spec['name']} failed {which} probe, will be restarted",
                                    str(spec["name"]))
            probes.cancel()
            grace = int(spec.get(f"{which}Probe", {}).get("terminationGracePeriodSeconds") or podspec.grace_seconds(self.pod))
            await self.cri.stop_container(container.id, grace)
            self.wake.set()

    def _stop_probes(self, container_id: str) -> None:
        probes = self.probes.pop(container_id, None)
        if probes:
            probes.cancel()

    def _stop_all_probes(self) -> None:
        for probes in self.probes.values():
            probes.cancel()
        self.probes.clear()

    async def _restart(self, spec: Mapping[str, Any], latest: api.Container, instances: list[api.Container]) -> None:
        name = str(spec["name"])
        key = f"{self.uid}/{name}"
        now = asyncio.get_running_loop().time()
        remaining = self.host.backoff.remaining(key, now)
        if remaining > 0:
            delay = self.host.backoff.delay(key)
            self.waiting[name] = ("CrashLoopBackOff", f"back-off {int(delay)}s restarting failed container={name} "
                                                      f"pod={self.name}_{self.namespace}({self.uid})")
            self.host.events.pod(self.pod, "Warning", "BackOff",
                                    f"Back-off restarting failed container {name} in pod {self.name}_{self.namespace}({self.uid})", name)
            asyncio.get_running_loop().call_later(remaining + 0.05, self.wake.set)
            return
        self.host.backoff.next(key, now)
        if await self._start(spec, observe.attempt(latest) + 1):
            for old in instances[:-1]:  # keep the last dead one: it is the lastState
                await self._remove_instance(old)

    async def _replace(self, spec: Mapping[str, Any], latest: api.Container, instances: list[api.Container]) -> None:
        """The pod's spec of this container changed (a new image): stop it and start the new one at once,
        whatever the restart policy, as kubelet does."""
        log.info("pod %s: container %s definition changed, will be restarted", self.key, spec["name"])
        self.host.events.pod(self.pod, "Normal", "Killing", f"Container {spec['name']} definition changed, will be restarted",
                                str(spec["name"]))
        self._stop_probes(latest.id)
        if latest.state == api.CONTAINER_RUNNING:
            grace = podspec.grace_seconds(self.pod)
            await self.cri.stop_container(latest.id, grace)
        self.waiting.pop(str(spec["name"]), None)
        if await self._start(spec, observe.attempt(latest) + 1):
            for old in instances[:-1] if latest.state != api.CONTAINER_CREATED else instances:
                await self._remove_instance(old)

    async def _remove_instance(self, container: api.Container) -> None:
        """An old instance of a container, and the termination-message file of its attempt."""
        await self.teardown.remove_container(container.id)
        await termination.remove(self.pod_dir, container.metadata.name, observe.attempt(container))

    async def _start_existing(self, container: api.Container) -> None:
        try:
            await self.cri.start_container(container.id)
        except CriError as error:
            log.warning("pod %s: starting container %s: %s", self.key, container.id[:12], error)

    async def _start(self, spec: Mapping[str, Any], attempt: int) -> bool:
        """Create and start one container; False (and a waiting reason) when it cannot be."""
        assert self.sandbox_config is not None
        sandbox = Sandbox(self.sandbox_id, self.sandbox_config, self.pod_ip)
        started = await self.starter.start(self.pod, spec, attempt, sandbox, self.lookup, self.volume_paths)
        name = str(spec["name"])
        if started.created:
            self.waiting.pop(name, None)
            return True
        self.waiting[name] = (started.reason, started.message)
        if started.retry_in > 0:
            asyncio.get_running_loop().call_later(started.retry_in + 0.05, self.wake.set)
        return False

    # -- termination -------------------------------------------------------------------------------
    async def _terminate(self, grace: int) -> None:
        self._stop_all_probes()
        await self.teardown.stop(grace, lambda name: self.host.events.pod(self.pod, "Normal", "Killing",
                                                                          f"Stopping container {name}", name))

    async def _remove_everything(self) -> None:
        self._stop_all_probes()
        await self.teardown.remove_all()
        await asyncio.to_thread(volumes.remove_pod_dir, self.host.root_directory, self.uid)
        if self.sandbox_config is not None or self.pod.get("metadata"):
            await asyncio.to_thread(shutil.rmtree, podspec.log_directory(self.host.logs_root, self.pod), True)
        self.host.backoff.forget_prefix(f"{self.uid}/")

    # -- status ------------------------------------------------------------------------------------
    async def _observe(self, final: bool = False) -> dict[str, Any]:
        known = observe.Known(self.sandbox_id, self.pod_dir, self.waiting, self.probes)
        seen = await observe.observe(self.cri, self.pod, self.host.pod_labels(self.uid), known)
        phase = terminal_phase(seen.app) if final and self.terminated else None
        return self.tracker.build(self.pod, seen.init, seen.app, seen.sandbox_ready and not final, self.host.node_ip,
                                  self.pod_ip, phase)


def _outdated(container: api.Container, spec: Mapping[str, Any]) -> bool:
    """Made from another version of the spec; containers from before hashes were recorded never are."""
    made_from = container.annotations.get(podspec.HASH_ANNOTATION)
    return container.state in (api.CONTAINER_RUNNING, api.CONTAINER_CREATED) and bool(made_from) \
        and made_from != podspec.container_hash(spec)
