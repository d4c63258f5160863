"""The image a container is created from: kubelet's ``imagePullPolicy``, its pull back-off, the pull events.

``Never`` runs only an image that is present; ``IfNotPresent`` pulls one that is missing;
``Always`` pulls, but when the pull fails an edge runs the image it has (autonomy: the registry
may be as far away as the cloud). A failed pull of a missing image backs off as kubelet's does
(``Backoff``, keyed ``<uid>/<container>/pull``): ``ErrImagePull``, then ``ImagePullBackOff``
until the delay is over.

It changes no worker state: :meth:`ImagePuller.choose` returns an :class:`ImageChoice`, and the
worker records why a container waits and when to look again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from cores.edge.cri import CriClient, CriError, api
from cores.edge.edged import podspec
from cores.edge.edged.backoff import Backoff
from cores.edge.edged.events import EventRecorder

log = logging.getLogger("kubeedge.edged")


@dataclasses.dataclass(frozen=True)
class ImageChoice:
    ref: str | None = None      # the image to create the container from; None: it cannot be created yet
    reason: str = ""            # and then why it waits (ErrImageNeverPull, ImagePullBackOff, ErrImagePull)
    message: str = ""
    retry_in: float = 0.0       # in back-off: seconds until a pull may be tried again


class ImagePuller:
    def __init__(self, cri: CriClient, backoff: Backoff, events: EventRecorder) -> None:
        self.cri = cri
        self.backoff = backoff
        self.events = events

    async def choose(self, pod: Mapping[str, Any], spec: Mapping[str, Any]) -> ImageChoice:
        """The image for container ``spec`` of ``pod``, pulled when its policy asks for it."""
        name, image = str(spec["name"]), str(spec.get("image") or "")
        policy = podspec.pull_policy(spec)
        present = await self.cri.image_status(image)
        if policy == "Never" and present is None:
            message = f'Container image "{image}" is not present with pull policy of Never'
            self.events.pod(pod, "Warning", "ErrImageNeverPull", message, name)
            return ImageChoice(reason="ErrImageNeverPull", message=message)
        if present is not None and policy in ("Never", "IfNotPresent"):
            self.events.pod(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', name)
            return ImageChoice(ref=present.id)
        key = f"{podspec.pod_uid(pod)}/{name}/pull"
        now = asyncio.get_running_loop().time()
        remaining = self.backoff.remaining(key, now) if present is None else 0.0
        if remaining > 0:
            message = f'Back-off pulling image "{image}"'
            self.events.pod(pod, "Normal", "BackOff", message, name)
            return ImageChoice(reason="ImagePullBackOff", message=message, retry_in=remaining)
        return await self._pull(pod, name, image, present, key)

    async def _pull(self, pod: Mapping[str, Any], name: str, image: str, present: api.Image | None, key: str) -> ImageChoice:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.events.pod(pod, "Normal", "Pulling", f'Pulling image "{image}"', name)
        try:
            pulled = await self.cri.pull_image(image)
        except CriError as error:
            self.events.pod(pod, "Warning", "Failed", f'Failed to pull image "{image}": {error.message}', name)
            if present is not None:  # Always, but no registry: an edge runs what it has (autonomy)
                log.warning("pod %s: pulling %s failed (%s); using the local image", podspec.pod_key(pod), image, error.message)
                return ImageChoice(ref=present.id)
            self.backoff.next(key, started)
            return ImageChoice(reason="ErrImagePull", message=f'failed to pull image "{image}": {error.message}')
        took = loop.time() - started
        self.events.pod(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s', name)
        return ImageChoice(ref=pulled)
