"""core/v1 Events the controllers emit, as client-go's recorder writes them.

An event is named ``<object>.<unix nanoseconds in hex>``; a repeat of the same (object, type,
reason, message, component) within the recorder's memory bumps ``count`` and ``lastTimestamp``
of the first one instead of making a new one (client-go's EventCorrelator). Cluster-scoped
objects' events go to the ``default`` namespace. Recording never raises: an event is a hint.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

from cores.controlplane import errors, objects
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.objects import meta

log = logging.getLogger("kubeedge.controlplane.controllers")

MEMORY = 4096


class EventRecorder:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.events = base.resource(api, "", "events")
        self._seen: collections.OrderedDict[tuple[str, ...], tuple[str, str]] = collections.OrderedDict()

    async def record(self, involved: dict[str, Any], kind: str, reason: str, message: str, component: str) -> None:
        metadata = meta(involved)
        namespace = metadata.get("namespace") or "default"
        identity = (metadata.get("uid", ""), kind, reason, message, component)
        try:
            if identity in self._seen and await self._bump(*self._seen[identity]):
                self._seen.move_to_end(identity)
                return
            name = f"{metadata.get('name', '')}.{time.time_ns():x}"
            await self.api.create(self.events, namespace, self._event(involved, name, kind, reason, message, component))
        except errors.ApiError as error:
            log.info("cannot record event %s for %s: %s", reason, metadata.get("name"), error)
            return
        self._seen[identity] = (namespace, name)
        if len(self._seen) > MEMORY:
            self._seen.popitem(last=False)

    async def _bump(self, namespace: str, name: str) -> bool:
        event = await base.get(self.api, self.events, namespace, name)
        if event is None:
            return False

        def more(obj: dict[str, Any]) -> bool:
            obj["count"] = int(obj.get("count") or 1) + 1
            obj["lastTimestamp"] = objects.now_rfc3339()
            return True

        return await base.update(self.api, self.events, event, more) is not None

    @staticmethod
    def _event(involved: dict[str, Any], name: str, kind: str, reason: str, message: str, component: str) -> dict[str, Any]:
        metadata = meta(involved)
        reference = {"kind": involved.get("kind", ""), "name": metadata.get("name", ""), "uid": metadata.get("uid", ""),
                     "apiVersion": involved.get("apiVersion", ""), "resourceVersion": metadata.get("resourceVersion", "")}
        if metadata.get("namespace"):
            reference["namespace"] = metadata["namespace"]
        now = objects.now_rfc3339()
        return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name}, "involvedObject": reference,
                "reason": reason, "message": message, "source": {"component": component},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": kind, "eventTime": None,
                "reportingComponent": component, "reportingInstance": ""}
