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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cores.edge.cri import CONTAINER_NAME, CriError, api
from cores.edge.edged import podspec, volumes
from cores.edge.edged.probes import ContainerProbes
from cores.edge.edged.static import CONFIG_MIRROR
from cores.edge.edged.status import ContainerView, StatusTracker, from_nanoseconds, patch_text, terminal_phase
from cores.link.status import RequestTimeout, StatusError

if TYPE_CHECKING:
    from cores.edge.edged.pods import PodManager

log = logging.getLogger("kubeedge.edged")

RESYNC_SECONDS = 10.0  # a worker's periodic pass; changes in the runtime wake it sooner (PodManager's relist)
REPORT_RETRY_SECONDS = 5.0
TERMINATION_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048


def _attempt(container: api.Container) -> int:
    return int(container.metadata.attempt)


class PodWorker:
    def __init__(self, manager: PodManager, pod: dict[str, Any], static: bool = False) -> None:
        self.manager = manager
        self.static = static                   # from a manifest file: reported on its mirror pod
        self.cri = manager.cri
        self.pod = pod
        self.uid = podspec.pod_uid(pod)
        self.key = podspec.pod_key(pod)
        self.namespace, self.name = self.key.split("/", 1)
        self.removed = False                   # the cloud's delete arrived: remove everything
        self.terminated = False                # containers stopped for deletion
        self.delete_requested = False
        self.next_delete_request = 0.0         # loop time of the next delete request while the cloud refuses
        self.app_ran = False                   # an app container has existed: sidecars no longer gate it
        self.app_done = False                  # every app container exited for good (policy Never/OnFailure)
        self.volumes_dirty = True
        self.volume_paths: dict[str, Path] = {}
        self.objects: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.sandbox_id = ""
        self.sandbox_config: api.PodSandboxConfig | None = None
        self.pod_ip = ""
        self.waiting: dict[str, tuple[str, str]] = {}  # container -> (reason, message) while it cannot run
        self.probes: dict[str, ContainerProbes] = {}   # container id -> its probe loops
        self.tracker = StatusTracker((pod.get("status") or {}).get("startTime"))
        self.latest_status: dict[str, Any] | None = None
        self.wake = asyncio.Event()
        self.report_due = asyncio.Event()
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.key}")
        self.reporter = asyncio.create_task(self._report_loop(), name=f"pod-status-{self.key}")

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
        """The mirror pod appeared or was replaced: it needs the whole status again."""
        self.tracker.last_reported = ""
        self.report_due.set()

    def report_uid(self) -> str | None:
        """The UID status goes to: the pod's own, or for a static pod its current mirror's (None: no mirror yet)."""
        if not self.static:
            return self.uid
        mirror = self.manager.mirrors.get(self.key) or {}
        meta = mirror.get("metadata") or {}
        if (meta.get("annotations") or {}).get(CONFIG_MIRROR) != self.uid or not meta.get("uid"):
            return None
        return str(meta["uid"])

    def cancel(self) -> None:
        """Edged stops: leave the containers running (as kubelet does), stop our tasks."""
        for probes in self.probes.values():
            probes.cancel()
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
            for probes in self.probes.values():
                probes.cancel()
            self.reporter.cancel()
            self.done.set()
            self.manager.forget(self)

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
            await self._publish(await self._observe(final=True))
            now = asyncio.get_running_loop().time()
            if not self.delete_requested and now >= self.next_delete_request:
                self.next_delete_request = now + REPORT_RETRY_SECONDS
                await self._request_delete()
                if not self.delete_requested:
                    asyncio.get_running_loop().call_later(REPORT_RETRY_SECONDS, self.wake.set)
            return False
        if not await self._fetch_objects():
            await self._publish(await self._observe())
            return False
        if not await self._ensure_sandbox():
            await self._publish(await self._observe())
            return False
        if self.volumes_dirty:
            await self._write_volumes()
        if await self._run_init_containers():
            await self._run_app_containers()
        await self._publish(await self._observe())
        return False

    # -- objects and volumes -----------------------------------------------------------------------
    async def _fetch_objects(self) -> bool:
        wanted = volumes.referenced_objects(self.pod)
        found = await self.manager.fetch_objects(self.namespace, wanted)
        tokens = await self.manager.service_account_tokens(self.pod, self.wake.set)
        if any(self.objects.get(key) is not token for key, token in tokens.items()):
            self.volumes_dirty = True  # a token issued or renewed: rewrite the projected volume
        found.update(tokens)
        self.objects = found
        missing = [f"{kind} {name}" if kind != "serviceaccounttoken" else "a service account token"
                   for (kind, name), obj in found.items() if obj is None]
        if missing and self._needed_by_volume(found):  # env-only references fail later, per container
            for container in self._all_containers():
                self.waiting.setdefault(container["name"], ("ContainerCreating", ""))
            log.info("pod %s waits for %s", self.key, ", ".join(missing))
            self.manager.events.pod(self.pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {', '.join(missing)} not found")
            return False
        return True

    def _needed_by_volume(self, found: Mapping[tuple[str, str], Any]) -> bool:
        missing = {key for key, obj in found.items() if obj is None}
        if any(kind == "serviceaccounttoken" for kind, _ in missing):
            return True  # only projected volumes ask for tokens
        spec_volumes = (self.pod.get("spec") or {}).get("volumes") or []
        for volume in spec_volumes:
            for ref in volumes.referenced_objects({"spec": {"volumes": [volume]}}):
                source = volume.get("configMap") or volume.get("secret") or {}
                if ref in missing and not source.get("optional"):
                    return True
        return False

    def lookup(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    async def _write_volumes(self) -> None:
        self.volumes_dirty = False
        try:
            self.volume_paths = await asyncio.to_thread(volumes.prepare, self.manager.root_directory, self.pod, self.lookup,
                                                        self.manager.node_ip, self.pod_ip)
        except podspec.SpecError as error:
            self.volumes_dirty = True
            log.warning("pod %s: %s", self.key, error)
            raise

    # -- sandbox -----------------------------------------------------------------------------------
    async def _ensure_sandbox(self) -> bool:
        sandboxes = await self.cri.list_pod_sandbox(labels=self.manager.pod_labels(self.uid))
        ready = sorted((s for s in sandboxes if s.state == api.SANDBOX_READY), key=lambda s: (s.metadata.attempt, s.created_at))
        attempt = max((s.metadata.attempt for s in sandboxes), default=-1) + 1
        if ready:
            sandbox = ready[-1]
            if sandbox.id != self.sandbox_id:
                self.sandbox_id = sandbox.id
                self.sandbox_config = podspec.sandbox_config(self.pod, self.manager.node_name, self.manager.logs_root,
                                                             sandbox.metadata.attempt)
                self.pod_ip = await self._sandbox_ip(sandbox.id)
                log.info("pod %s: using sandbox %s", self.key, sandbox.id[:12])
            return True
        if sandboxes:
            log.info("pod %s: sandbox gone not ready; making a new one", self.key)
            await self._remove_containers(await self.cri.list_containers(labels=self.manager.pod_labels(self.uid)))
            for stale in sandboxes:
                await self._remove_sandbox(stale.id)
        config = podspec.sandbox_config(self.pod, self.manager.node_name, self.manager.logs_root, attempt)
        await asyncio.to_thread(os.makedirs, config.log_directory, exist_ok=True)
        self.sandbox_id = await self.cri.run_pod_sandbox(config)
        self.sandbox_config = config
        self.pod_ip = await self._sandbox_ip(self.sandbox_id)
        self.volumes_dirty = True  # downward API may carry the pod IP
        log.info("pod %s: sandbox %s running (pod IP %s)", self.key, self.sandbox_id[:12], self.pod_ip)
        return True

    async def _sandbox_ip(self, sandbox_id: str) -> str:
        if podspec.host_network(self.pod):
            return self.manager.node_ip
        status = await self.cri.pod_sandbox_status(sandbox_id)
        return status.status.network.ip

    # -- containers --------------------------------------------------------------------------------
    def _all_containers(self) -> list[dict[str, Any]]:
        spec = self.pod.get("spec") or {}
        return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]

    async def _instances(self) -> dict[str, list[api.Container]]:
        """Container name -> its instances in the current sandbox, oldest first."""
        found: dict[str, list[api.Container]] = {}
        listed = await self.cri.list_containers(labels=self.manager.pod_labels(self.uid), pod_sandbox_id=self.sandbox_id)
        for container in sorted(listed, key=lambda c: (_attempt(c), c.created_at)):
            found.setdefault(container.labels.get(CONTAINER_NAME, container.metadata.name), []).append(container)
        return found

    async def _run_init_containers(self) -> bool:
        """Run init containers one after the other; True once all exited 0."""
        instances = await self._instances()
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for spec in (self.pod.get("spec") or {}).get("initContainers") or []:
            mine = instances.get(spec["name"], [])
            latest = mine[-1] if mine else None
            if _is_sidecar(spec):
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
                lambda kind: self.manager.events.pod(self.pod, "Warning", "Unhealthy", f"{kind} probe failed", name))
            return
        if probes and (probes.liveness_failed or probes.startup_failed):
            which = "liveness" if probes.liveness_failed else "startup"
            log.info("pod %s: container %s failed its %s probe, will be restarted", self.key, spec["name"], which)
            self.manager.events.pod(self.pod, "Normal", "Killing", f"Container {spec['name']} failed {which} probe, will be restarted",
                                    str(spec["name"]))
            probes.cancel()
            grace = int(spec.get(f"{which}Probe", {}).get("terminationGracePeriodSeconds") or podspec.grace_seconds(self.pod))
            await self.cri.stop_container(container.id, grace)
            self.wake.set()

    def _stop_probes(self, container_id: str) -> None:
        probes = self.probes.pop(container_id, None)
        if probes:
            probes.cancel()

    async def _restart(self, spec: Mapping[str, Any], latest: api.Container, instances: list[api.Container]) -> None:
        name = str(spec["name"])
        key = f"{self.uid}/{name}"
        now = asyncio.get_running_loop().time()
        remaining = self.manager.backoff.remaining(key, now)
        if remaining > 0:
            delay = self.manager.backoff.delay(key)
            self.waiting[name] = ("CrashLoopBackOff", f"back-off {int(delay)}s restarting failed container={name} "
                                                      f"pod={self.name}_{self.namespace}({self.uid})")
            self.manager.events.pod(self.pod, "Warning", "BackOff",
                                    f"Back-off restarting failed container {name} in pod {self.name}_{self.namespace}({self.uid})", name)
            asyncio.get_running_loop().call_later(remaining + 0.05, self.wake.set)
            return
        self.manager.backoff.next(key, now)
        if await self._start(spec, _attempt(latest) + 1):
            for old in instances[:-1]:  # keep the last dead one: it is the lastState
                await self._remove_instance(old)

    async def _replace(self, spec: Mapping[str, Any], latest: api.Container, instances: list[api.Container]) -> None:
        """The pod's spec of this container changed (a new image): stop it and start the new one at once,
        whatever the restart policy, as kubelet does."""
        log.info("pod %s: container %s definition changed, will be restarted", self.key, spec["name"])
        self.manager.events.pod(self.pod, "Normal", "Killing", f"Container {spec['name']} definition changed, will be restarted",
                                str(spec["name"]))
        self._stop_probes(latest.id)
        if latest.state == api.CONTAINER_RUNNING:
            grace = podspec.grace_seconds(self.pod)
            await self.cri.stop_container(latest.id, grace)
        self.waiting.pop(str(spec["name"]), None)
        if await self._start(spec, _attempt(latest) + 1):
            for old in instances[:-1] if latest.state != api.CONTAINER_CREATED else instances:
                await self._remove_instance(old)

    async def _remove_instance(self, container: api.Container) -> None:
        """An old instance of a container, and the termination-message file of its attempt."""
        await self._remove_container(container.id)
        await asyncio.to_thread(self._termination_file(container.metadata.name, _attempt(container)).unlink, True)

    async def _start_existing(self, container: api.Container) -> None:
        try:
            await self.cri.start_container(container.id)
        except CriError as error:
            log.warning("pod %s: starting container %s: %s", self.key, container.id[:12], error)

    async def _start(self, spec: Mapping[str, Any], attempt: int) -> bool:
        """Create and start one container; False (and a waiting reason) when it cannot be."""
        name = str(spec["name"])
        image_ref = await self._ensure_image(spec)
        if image_ref is None:
            return False
        assert self.sandbox_config is not None
        try:
            env = podspec.environment(self.pod, spec, self.lookup, self.manager.node_ip, self.pod_ip)
            mounts = volumes.mounts(spec, self.pod, self.volume_paths)
            message_path = str(spec.get("terminationMessagePath") or "/dev/termination-log")
            if not any(m.container_path == message_path for m in mounts):
                host_file = self._termination_file(name, attempt)
                await asyncio.to_thread(_empty_file, host_file)
                mounts.append(api.Mount(container_path=message_path, host_path=str(host_file)))
            config = podspec.container_config(self.pod, spec, self.manager.node_name, attempt, env, mounts, str(spec["image"]))
        except (podspec.SpecError, ValueError) as error:
            message = error.message if isinstance(error, podspec.SpecError) else str(error)
            self.waiting[name] = ("CreateContainerConfigError", message)
            self.manager.events.pod(self.pod, "Warning", "Failed", f"Error: {message}", name)
            return False
        await asyncio.to_thread(os.makedirs, f"{self.sandbox_config.log_directory}/{name}", exist_ok=True)
        try:
            container_id = await self.cri.create_container(self.sandbox_id, config, self.sandbox_config)
        except CriError as error:
            self.waiting[name] = ("CreateContainerError", error.message)
            self.manager.events.pod(self.pod, "Warning", "Failed", f"Error: {error.message}", name)
            return False
        self.waiting.pop(name, None)
        self.manager.events.pod(self.pod, "Normal", "Created", f"Created container: {name}", name)
        try:
            await self.cri.start_container(container_id)
        except CriError as error:
            log.warning("pod %s: container %s did not start: %s", self.key, name, error)
            self.manager.events.pod(self.pod, "Warning", "Failed", f"Error: {error.message}", name)
            return True  # it exists: the next pass starts it again or sees it exited
        self.manager.events.pod(self.pod, "Normal", "Started", f"Started container {name}", name)
        log.info("pod %s: container %s started (%s, attempt %d)", self.key, name, container_id[:12], attempt)
        return True

    def _termination_file(self, name: str, attempt: int) -> Path:
        return volumes.pod_dir(self.manager.root_directory, self.uid) / "containers" / name / f"{attempt}.termination-log"

    async def _termination_message(self, spec: Mapping[str, Any], status: api.ContainerStatus) -> str:
        """What the container left at terminationMessagePath, or with FallbackToLogsOnError after a failure
        and an empty file, the tail of its log (kubelet's limits: 4096 bytes; 80 lines, 2048 bytes)."""
        if status.message:
            return str(status.message)
        path = self._termination_file(str(spec["name"]), int(status.metadata.attempt))
        text = await asyncio.to_thread(_read_head, path, TERMINATION_MESSAGE_BYTES)
        if not text and status.exit_code != 0 and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            text = await asyncio.to_thread(_log_tail, status.log_path, FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES)
        return text

    async def _ensure_image(self, spec: Mapping[str, Any]) -> str | None:
        name, image = str(spec["name"]), str(spec.get("image") or "")
        policy = podspec.pull_policy(spec)
        present = await self.cri.image_status(image)
        events = self.manager.events
        if policy == "Never":
            if present is None:
                self.waiting[name] = ("ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never')
                events.pod(self.pod, "Warning", "ErrImageNeverPull", self.waiting[name][1], name)
                return None
            events.pod(self.pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', name)
            return present.id
        if present is not None and policy == "IfNotPresent":
            events.pod(self.pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', name)
            return present.id
        key = f"{self.uid}/{name}/pull"
        now = asyncio.get_running_loop().time()
        remaining = self.manager.backoff.remaining(key, now) if present is None else 0.0
        if remaining > 0:
            asyncio.get_running_loop().call_later(remaining + 0.05, self.wake.set)
            self.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            events.pod(self.pod, "Normal", "BackOff", self.waiting[name][1], name)
            return None
        events.pod(self.pod, "Normal", "Pulling", f'Pulling image "{image}"', name)
        pull_started = asyncio.get_running_loop().time()
        try:
            pulled = await self.cri.pull_image(image)
            took = asyncio.get_running_loop().time() - pull_started
            events.pod(self.pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s', name)
            return pulled
        except CriError as error:
            events.pod(self.pod, "Warning", "Failed", f'Failed to pull image "{image}": {error.message}', name)
            if present is not None:  # Always, but no registry: an edge runs what it has (autonomy)
                log.warning("pod %s: pulling %s failed (%s); using the local image", self.key, image, error.message)
                return present.id
            self.manager.backoff.next(key, now)
            self.waiting[name] = ("ErrImagePull", f'failed to pull image "{image}": {error.message}')
            return None

    # -- termination -------------------------------------------------------------------------------
    async def _terminate(self, grace: int) -> None:
        for probes in self.probes.values():
            probes.cancel()
        self.probes.clear()
        listed = await self.cri.list_containers(labels=self.manager.pod_labels(self.uid))
        running = [c for c in listed if c.state in (api.CONTAINER_RUNNING, api.CONTAINER_CREATED)]
        for container in running:
            self.manager.events.pod(self.pod, "Normal", "Killing", f"Stopping container {container.metadata.name}",
                                    container.metadata.name)
        results = await asyncio.gather(*(self.cri.stop_container(c.id, grace) for c in running), return_exceptions=True)
        for container, result in zip(running, results):
            if isinstance(result, Exception) and not (isinstance(result, CriError) and result.not_found):
                log.warning("pod %s: stopping %s: %s", self.key, container.id[:12], result)
        for sandbox in await self.cri.list_pod_sandbox(labels=self.manager.pod_labels(self.uid)):
            try:
                await self.cri.stop_pod_sandbox(sandbox.id)
            except CriError as error:
                log.warning("pod %s: stopping sandbox %s: %s", self.key, sandbox.id[:12], error)
        if running:
            log.info("pod %s: %d container(s) stopped (grace %ds)", self.key, len(running), grace)

    async def _remove_everything(self) -> None:
        await self._remove_containers(await self.cri.list_containers(labels=self.manager.pod_labels(self.uid)))
        for sandbox in await self.cri.list_pod_sandbox(labels=self.manager.pod_labels(self.uid)):
            await self._remove_sandbox(sandbox.id)
        await asyncio.to_thread(volumes.remove_pod_dir, self.manager.root_directory, self.uid)
        if self.sandbox_config is not None or self.pod.get("metadata"):
            import shutil

            await asyncio.to_thread(shutil.rmtree, podspec.log_directory(self.manager.logs_root, self.pod), True)
        self.manager.backoff.forget_prefix(f"{self.uid}/")

    async def _remove_containers(self, containers: list[api.Container]) -> None:
        for container in containers:
            self._stop_probes(container.id)
            if container.state in (api.CONTAINER_RUNNING, api.CONTAINER_CREATED):
                try:
                    await self.cri.stop_container(container.id, 0)
                except CriError:
                    pass
            await self._remove_container(container.id)

    async def _remove_container(self, container_id: str) -> None:
        try:
            await self.cri.remove_container(container_id)
        except CriError as error:
            if not error.not_found:
                log.warning("pod %s: removing container %s: %s", self.key, container_id[:12], error)

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        for call in (self.cri.stop_pod_sandbox, self.cri.remove_pod_sandbox):
            try:
                await call(sandbox_id)
            except CriError as error:
                if not error.not_found:
                    log.warning("pod %s: removing sandbox %s: %s", self.key, sandbox_id[:12], error)

    async def _request_delete(self) -> None:
        """Ask the cloud to delete the pod now that it has stopped (kubelet's final status manager step)."""
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            await self.manager.requests.delete(f"{self.namespace}/pod/{self.name}", options)
        except RequestTimeout as error:
            log.warning("pod %s: delete request: %s", self.key, error)
            return
        except StatusError as error:
            log.info("pod %s: delete request not done yet: %s", self.key, error)
            return
        self.delete_requested = True
        log.info("pod %s: asked the cloud to delete it", self.key)

    # -- status ------------------------------------------------------------------------------------
    async def _observe(self, final: bool = False) -> dict[str, Any]:
        spec = self.pod.get("spec") or {}
        sandbox_ready = False
        instances: dict[str, list[api.Container]] = {}
        if self.sandbox_id:
            found = await self.cri.list_pod_sandbox(labels=self.manager.pod_labels(self.uid), pod_sandbox_id=self.sandbox_id)
            sandbox_ready = bool(found) and found[0].state == api.SANDBOX_READY
            if found:
                instances = await self._instances()
        init = [dataclasses.replace(await self._view(c, instances.get(c["name"], [])), sidecar=_is_sidecar(c))
                for c in spec.get("initContainers") or []]
        app = [await self._view(c, instances.get(c["name"], [])) for c in spec.get("containers") or []]
        phase = terminal_phase(app) if final and self.terminated else None
        return self.tracker.build(self.pod, init, app, sandbox_ready and not final, self.manager.node_ip, self.pod_ip, phase)

    async def _view(self, spec: Mapping[str, Any], instances: list[api.Container]) -> ContainerView:
        name, image = str(spec["name"]), str(spec.get("image") or "")
        if not instances:
            reason, message = self.waiting.get(name, ("ContainerCreating", "")) if self.sandbox_id else ("ContainerCreating", "")
            if reason == "ContainerCreating" and not self.sandbox_id:
                message = ""
            return ContainerView(name=name, image=image, reason=reason, message=message)
        latest = instances[-1]
        status = (await self.cri.container_status(latest.id)).status
        last = None
        if len(instances) > 1:
            previous = (await self.cri.container_status(instances[-2].id)).status
            last = _terminated(previous, await self._termination_message(spec, previous))
        common = dict(name=name, image=image, container_id=latest.id, image_id=status.image_ref, restart_count=_attempt(latest))
        if status.state == api.CONTAINER_RUNNING:
            probes = self.probes.get(latest.id)
            started = probes.started if probes else not spec.get("startupProbe")
            ready = bool(probes.ready and probes.started) if probes else not (spec.get("readinessProbe") or spec.get("startupProbe"))
            return ContainerView(**common, state="running", started_at=from_nanoseconds(status.started_at), started=started,
                                 ready=ready, last_terminated=last)
        if status.state == api.CONTAINER_EXITED:
            waiting = self.waiting.get(name)
            if waiting and waiting[0] in ("CrashLoopBackOff",):
                return ContainerView(**common, reason=waiting[0], message=waiting[1],
                                     last_terminated=_terminated(status, await self._termination_message(spec, status)))
            return ContainerView(**common, state="terminated", exit_code=status.exit_code, reason=status.reason,
                                 message=await self._termination_message(spec, status), started_at=from_nanoseconds(status.started_at),
                                 finished_at=from_nanoseconds(status.finished_at), last_terminated=last)
        reason, message = self.waiting.get(name, ("ContainerCreating", ""))
        return ContainerView(**common, reason=reason, message=message, last_terminated=last)

    async def _publish(self, status: dict[str, Any]) -> None:
        self.latest_status = status
        if self.tracker.changed(status):
            self.report_due.set()

    async def _report_loop(self) -> None:
        while True:
            await self.report_due.wait()
            self.report_due.clear()
            status = self.latest_status
            uid = self.report_uid()
            if status is None or not self.tracker.changed(status) or uid is None:
                continue  # no mirror pod yet: mirror_changed() brings us back
            try:
                await self.manager.requests.patch(f"{self.namespace}/podpatch/{self.name}", patch_text(uid, status))
            except StatusError as error:  # any error: the same status again, once connected or after a pause
                log.debug("pod %s: status not reported: %s", self.key, error)
                await self.manager.wait_connected_or(REPORT_RETRY_SECONDS)
                self.report_due.set()
                continue
            self.tracker.reported(status)
            log.info("pod %s: status reported (%s)", self.key, status.get("phase"))


def _is_sidecar(spec: Mapping[str, Any]) -> bool:
    return spec.get("restartPolicy") == "Always"


def _outdated(container: api.Container, spec: Mapping[str, Any]) -> bool:
    """Made from another version of the spec; containers from before hashes were recorded never are."""
    made_from = container.annotations.get(podspec.HASH_ANNOTATION)
    return container.state in (api.CONTAINER_RUNNING, api.CONTAINER_CREATED) and bool(made_from) \
        and made_from != podspec.container_hash(spec)


def _terminated(status: api.ContainerStatus, message: str = "") -> dict[str, Any]:
    state = {"containerID": f"containerd://{status.id}", "exitCode": status.exit_code,
             "finishedAt": from_nanoseconds(status.finished_at),
             "reason": status.reason or ("Completed" if status.exit_code == 0 else "Error"),
             "startedAt": from_nanoseconds(status.started_at)}
    if message:
        state["message"] = message
    return state


def _empty_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    path.chmod(0o666)  # any user in the container may write its termination message


def _read_head(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as file:
            return file.read(limit).decode(errors="replace")
    except OSError:
        return ""


def _log_tail(path: str, lines: int, limit: int) -> str:
    """The last lines of a CRI log file (``<time> <stream> <P|F> <text>``), as the container wrote them."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            raw = file.read().splitlines()
    except OSError:
        return ""
    text = ""
    for line in raw:
        parts = line.split(b" ", 3)
        if len(parts) == 4:
            text += parts[3].decode(errors="replace") + ("\n" if parts[2] == b"F" else "")
    tail = "".join(f"{line}\n" for line in text.splitlines()[-lines:])
    return tail.encode()[-limit:].decode(errors="ignore")
