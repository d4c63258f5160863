"""Starting one container of a pod, as kubelet's ``startContainer``: image, config, create, start.

The image comes from :mod:`.images`; the config from the pod's spec (:mod:`.podspec`), the
ConfigMaps and Secrets its environment names, its volumes' paths, and a fresh termination message
file for this attempt (:mod:`.termination`). Each step sends its event (Created, Started,
Failed). A container that cannot be made gets a waiting reason instead (the image's,
``CreateContainerConfigError`` or ``CreateContainerError``), which its status shows until a later
pass makes it. Which container to start, and when, is the worker's decision.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cores.edge.cri import CriError, api
from cores.edge.edged import podspec, termination, volumes
from cores.edge.edged.host import PodHost
from cores.edge.edged.images import ImagePuller

log = logging.getLogger("kubeedge.edged")


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """The running sandbox a container is created in."""

    id: str
    config: api.PodSandboxConfig
    pod_ip: str


@dataclasses.dataclass(frozen=True)
class Started:
    created: bool           # the container exists now (started, or to be started by a later pass)
    reason: str = ""        # else why it waits, and what the status says
    message: str = ""
    retry_in: float = 0.0   # in image pull back-off: seconds until a pull may be tried again


class ContainerStarter:
    def __init__(self, host: PodHost, pod_dir: Path) -> None:
        self.host = host
        self.pod_dir = pod_dir      # <root>/pods/<uid>: where termination message files go
        self.images = ImagePuller(host.cri, host.backoff, host.events)

    async def start(self, pod: Mapping[str, Any], spec: Mapping[str, Any], attempt: int, sandbox: Sandbox,
                    lookup: podspec.Lookup, volume_paths: Mapping[str, Path]) -> Started:
        """Create and start container ``spec`` of ``pod`` in ``sandbox`` as attempt ``attempt``."""
        name = str(spec["name"])
        image = await self.images.choose(pod, spec)
        if image.ref is None:
            return Started(False, image.reason, image.message, image.retry_in)
        try:
            config = await self._config(pod, spec, attempt, sandbox, lookup, volume_paths)
        except (podspec.SpecError, ValueError) as error:
            message = error.message if isinstance(error, podspec.SpecError) else str(error)
            self.host.events.pod(pod, "Warning", "Failed", f"Error: {message}", name)
            return Started(False, "CreateContainerConfigError", message)
        await asyncio.to_thread(os.makedirs, f"{sandbox.config.log_directory}/{name}", exist_ok=True)
        try:
            container_id = await self.host.cri.create_container(sandbox.id, config, sandbox.config)
        except CriError as error:
            self.host.events.pod(pod, "Warning", "Failed", f"Error: {error.message}", name)
            return Started(False, "CreateContainerError", error.message)
        self.host.events.pod(pod, "Normal", "Created", f"Created container: {name}", name)
        await self._run(pod, name, container_id, attempt)
        return Started(True)

    async def _config(self, pod: Mapping[str, Any], spec: Mapping[str, Any], attempt: int, sandbox: Sandbox,
                      lookup: podspec.Lookup, volume_paths: Mapping[str, Path]) -> api.ContainerConfig:
        env = podspec.environment(pod, spec, lookup, self.host.node_ip, sandbox.pod_ip, self.host.api_service)
        mounts = volumes.mounts(spec, pod, volume_paths)
        message_mount = await termination.mount(self.pod_dir, spec, attempt, mounts)
        if message_mount is not None:
            mounts.append(message_mount)
        return podspec.container_config(pod, spec, self.host.node_name, attempt, env, mounts, str(spec["image"]))

    async def _run(self, pod: Mapping[str, Any], name: str, container_id: str, attempt: int) -> None:
        key = podspec.pod_key(pod)
        try:
            await self.host.cri.start_container(container_id)
        except CriError as error:  # it exists: the next pass starts it again or sees it exited
            log.warning("pod %s: container %s did not start: %s", key, name, error)
            self.host.events.pod(pod, "Warning", "Failed", f"Error: {error.message}", name)
            return
        self.host.events.pod(pod, "Normal", "Started", f"Started container {name}", name)
        log.info("pod %s: container %s started (%s, attempt %d)", key, name, container_id[:12], attempt)
