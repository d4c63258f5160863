"""Stopping and removing what CRI holds of one pod: its containers and sandboxes, by the node's labels.

Used when a pod is deleted (stop with the grace period, then remove everything), when its sandbox
died (remove it and its containers before a new one), and for old instances of a container.
What is already gone is not an error: another pass, or housekeeping, may have removed it first.
Probes and files are the worker's; this module only talks to CRI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cores.edge.cri import CriClient, CriError, api

log = logging.getLogger("kubeedge.edged")

LIVE_STATES = (api.CONTAINER_RUNNING, api.CONTAINER_CREATED)


class Teardown:
    def __init__(self, cri: CriClient, labels: dict[str, str], key: str) -> None:
        self.cri = cri
        self.labels = labels    # what this node made for the pod
        self.key = key          # "<ns>/<name>", for the log

    async def stop(self, grace: int, stopping: Callable[[str], None]) -> None:
        """Stop every live container (``grace`` seconds each, all at once), then the sandboxes.
        ``stopping`` is told the name of each container as it is asked to stop."""
        listed = await self.cri.list_containers(labels=self.labels)
        running = [c for c in listed if c.state in LIVE_STATES]
        for container in running:
            stopping(container.metadata.name)
        results = await asyncio.gather(*(self.cri.stop_container(c.id, grace) for c in running), return_exceptions=True)
        for container, result in zip(running, results):
            if isinstance(result, Exception) and not (isinstance(result, CriError) and result.not_found):
                log.warning("pod %s: stopping %s: %s", self.key, container.id[:12], result)
        for sandbox in await self.cri.list_pod_sandbox(labels=self.labels):
            try:
                await self.cri.stop_pod_sandbox(sandbox.id)
            except CriError as error:
                log.warning("pod %s: stopping sandbox %s: %s", self.key, sandbox.id[:12], error)
        if running:
            log.info("pod %s: %d container(s) stopped (grace %ds)", self.key, len(running), grace)

    async def remove_all(self) -> None:
        await self.remove_containers(await self.cri.list_containers(labels=self.labels))
        for sandbox in await self.cri.list_pod_sandbox(labels=self.labels):
            await self.remove_sandbox(sandbox.id)

    async def remove_containers(self, containers: list[api.Container]) -> None:
        """Remove ``containers``, the live ones stopped at once."""
        for container in containers:
            if container.state in LIVE_STATES:
                try:
                    await self.cri.stop_container(container.id, 0)
                except CriError:
                    pass
            await self.remove_container(container.id)

    async def remove_container(self, container_id: str) -> None:
        try:
            await self.cri.remove_container(container_id)
        except CriError as error:
            if not error.not_found:
                log.warning("pod %s: removing container %s: %s", self.key, container_id[:12], error)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        for call in (self.cri.stop_pod_sandbox, self.cri.remove_pod_sandbox):
            try:
                await call(sandbox_id)
            except CriError as error:
                if not error.not_found:
                    log.warning("pod %s: removing sandbox %s: %s", self.key, sandbox_id[:12], error)
