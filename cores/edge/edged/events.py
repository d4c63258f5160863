"""Events Edged reports about pods (Pulling, Created, Started, Killing, BackOff, Unhealthy, ...).

Only when ``modules.edged.reportEvent`` is true, as upstream (default false). Events travel as
upstream's edged sends them: ``insert <ns>/event/<name>`` with the Event, and repeats of the same
event as ``patch`` with ``{"event": <Event>, "patchData": "<strategic merge patch>"}`` raising its
``count`` (client-go's correlation: same object, reason, message and type within 10 minutes). No
reply comes back (:meth:`CloudRequests.tell`); with the cloud away they are dropped, as kubelet
drops what it cannot send.

Repeats are sent at most every :data:`REPEAT_SECONDS` per event (the count keeps growing in
between), so a container in back-off does not flood the link.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from cores.link.requests import CloudRequests

log = logging.getLogger("kubeedge.edged")

SERIES_SECONDS = 600.0   # client-go: an identical event within 10 minutes is the same series
REPEAT_SECONDS = 10.0
MAX_SERIES = 4096        # remembered series; the oldest are forgotten beyond that
NORMAL, WARNING = "Normal", "Warning"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Series:
    __slots__ = ("event", "count", "last_seen", "last_sent")

    def __init__(self, event: dict[str, Any], now: float) -> None:
        self.event = event
        self.count = 1
        self.last_seen = now
        self.last_sent = now


class EventRecorder:
    def __init__(self, requests: CloudRequests, node_name: str, enabled: bool) -> None:
        self.requests = requests
        self.node_name = node_name
        self.enabled = enabled
        self._series: dict[tuple[str, ...], _Series] = {}

    def pod(self, pod: Mapping[str, Any], kind: str, reason: str, message: str, container: str = "") -> None:
        """An event about a pod, or one of its containers (``spec.containers{name}`` as kubelet says)."""
        if not self.enabled:
            return
        meta = pod.get("metadata") or {}
        involved = {"kind": "Pod", "namespace": meta.get("namespace") or "default", "name": meta.get("name"),
                    "uid": meta.get("uid"), "apiVersion": "v1"}
        if container:
            spec = pod.get("spec") or {}
            init = any(c.get("name") == container for c in spec.get("initContainers") or [])
            involved["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
        self._record(involved, kind, reason, message)

    def node(self, kind: str, reason: str, message: str) -> None:
        if self.enabled:
            self._record({"kind": "Node", "name": self.node_name, "uid": self.node_name, "apiVersion": "v1"}, kind, reason, message)

    def _record(self, involved: dict[str, Any], kind: str, reason: str, message: str) -> None:
        key = (str(involved.get("uid")), str(involved.get("fieldPath", "")), kind, reason, message)
        now = time.monotonic()
        series = self._series.get(key)
        if series is not None and now - series.last_seen < SERIES_SECONDS:
            series.count += 1
            series.last_seen = now
            if now - series.last_sent < REPEAT_SECONDS:
                return
            series.last_sent = now
            stamp = _now()
            # a new dict each time: a message already queued must keep what it said
            series.event = {**series.event, "count": series.count, "lastTimestamp": stamp}
            patch = json.dumps({"count": series.count, "lastTimestamp": stamp, "message": message}, separators=(",", ":"))
            self._send("patch", series.event, {"event": series.event, "patchData": patch})
            return
        namespace = involved.get("namespace") or "default"
        stamp = _now()
        event = {
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": f"{involved.get('name')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "type": kind,
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        }
        if len(self._series) >= MAX_SERIES:
            del self._series[min(self._series, key=lambda k: self._series[k].last_seen)]
        self._series[key] = _Series(event, now)
        self._send("insert", event, dict(event))

    def _send(self, operation: str, event: Mapping[str, Any], content: Any) -> None:
        meta = event["metadata"]
        # an event is never worth failing or holding up the pod's work: one not queued is dropped
        if not self.requests.tell(operation, f"{meta['namespace']}/event/{meta['name']}", content):
            log.debug("event %s not sent: MetaManager takes no messages now", meta["name"])
