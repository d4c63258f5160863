"""What the cloud hears of one pod: its status, as a patch, and at the end the request to delete it.

As kubelet's status manager, beside the pod's worker: the worker publishes each status it builds;
a task of its own sends only the latest one, only when it differs from what the cloud last
accepted, and after any failure sends it again once the cloud is connected or after a pause. A
static pod's status goes to its mirror pod, and waits until there is a mirror of this version of
the pod. Once a deleted pod's containers have stopped, the cloud is asked to delete it
(``gracePeriodSeconds: 0`` with the uid precondition), again every few seconds until it accepts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cores.edge.edged.host import PodHost
from cores.edge.edged.static import CONFIG_MIRROR
from cores.edge.edged.status import StatusTracker, patch_text
from cores.link.status import RequestTimeout, StatusError

log = logging.getLogger("kubeedge.edged")

RETRY_SECONDS = 5.0


class StatusReporter:
    def __init__(self, host: PodHost, key: str, uid: str, static: bool, tracker: StatusTracker) -> None:
        self.host = host
        self.key = key                          # "<ns>/<name>"
        self.namespace, self.name = key.split("/", 1)
        self.uid = uid
        self.static = static                    # a static pod: its status goes to its mirror pod
        self.tracker = tracker                  # what was last reported
        self.latest: dict[str, Any] | None = None
        self.due = asyncio.Event()
        self.delete_requested = False
        self.next_delete_request = 0.0          # loop time of the next delete request while the cloud refuses
        self.task = asyncio.create_task(self._loop(), name=f"pod-status-{key}")

    def publish(self, status: dict[str, Any]) -> None:
        self.latest = status
        if self.tracker.changed(status):
            self.due.set()

    def mirror_changed(self) -> None:
        """The mirror pod appeared or was replaced: it needs the whole status again."""
        self.tracker.last_reported = ""
        self.due.set()

    def reconnected(self) -> None:
        """The cloud is back: report now, and send a delete request it refused while away at once."""
        self.due.set()
        self.next_delete_request = 0.0

    def cancel(self) -> None:
        self.task.cancel()

    def report_uid(self) -> str | None:
        """The UID status goes to: the pod's own, or for a static pod its current mirror's (None: no mirror yet)."""
        if not self.static:
            return self.uid
        mirror = self.host.mirror(self.key) or {}
        meta = mirror.get("metadata") or {}
        if (meta.get("annotations") or {}).get(CONFIG_MIRROR) != self.uid or not meta.get("uid"):
            return None
        return str(meta["uid"])

    async def _loop(self) -> None:
        while True:
            await self.due.wait()
            self.due.clear()
            status = self.latest
            uid = self.report_uid()
            if status is None or not self.tracker.changed(status) or uid is None:
                continue  # no mirror pod yet: mirror_changed() brings us back
            try:
                await self.host.requests.patch(f"{self.namespace}/podpatch/{self.name}", patch_text(uid, status))
            except StatusError as error:  # any error: the same status again, once connected or after a pause
                log.debug("pod %s: status not reported: %s", self.key, error)
                await self.host.wait_connected_or(RETRY_SECONDS)
                self.due.set()
                continue
            self.tracker.reported(status)
            log.info("pod %s: status reported (%s)", self.key, status.get("phase"))

    async def request_delete(self, wake: Callable[[], None]) -> None:
        """Ask the cloud to delete the pod (kubelet's final status manager step), unless it accepted
        already or was asked moments ago; ``wake`` is called when it is time to ask again."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.delete_requested or now < self.next_delete_request:
            return
        self.next_delete_request = now + RETRY_SECONDS
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            await self.host.requests.delete(f"{self.namespace}/pod/{self.name}", options)
        except StatusError as error:
            level = logging.WARNING if isinstance(error, RequestTimeout) else logging.INFO
            log.log(level, "pod %s: delete request not done yet: %s", self.key, error)
            loop.call_later(RETRY_SECONDS, wake)
            return
        self.delete_requested = True
        log.info("pod %s: asked the cloud to delete it", self.key)
