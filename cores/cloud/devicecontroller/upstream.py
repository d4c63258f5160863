"""What edges report about their devices, checked and turned into DeviceStatus changes: pure, no I/O.

From upstream's edge (``edge/pkg/devicetwin``), through CloudHub (``node/<id>/`` added):

- ``device/{ns}/{name}/twin/edge_updated``, ``update``: the twin sync result, sent as a JSON
  object ``{event_id, timestamp, twin: {prop: {actual: {value, metadata: {timestamp}},
  expected: ..., metadata: {type}, actual_version, expected_version}}}``;
- ``device/{ns}/{name}/state/update``, ``update``: a JSON *string*
  ``{"event_id", "timestamp", "device": {"name", "state", "lastOnlineTime"}}``;
- ``membership/detail``, ``get``: a JSON string ``{"event_type": "group_membership_event", ...}``
  the twin sends on every connection (upstream's cloud never answers it; we do, with the node's
  devices, which the upstream edge takes as ``MemDetailResult`` and reconciles with).

Both content forms (object or JSON text) are accepted for every message. The answer is upstream's
``"OK"`` (``devicecontroller/twin``, ``response``, resource ``twin``, ``parent_msg_id`` the
report's id); a refused report is answered in the same route with the twin's error result
``{event_id, timestamp, code, reason}`` and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from cores.beehive import Message
from cores.beehive.message import now_ms
from cores.common.names import is_dns1123_label, is_dns1123_subdomain

SOURCE = "devicecontroller"
MAX_CONTENT_BYTES = 256 * 1024   # one report; the link's frame limit is far larger
MAX_TWINS = 256                  # properties in one report
MAX_KEY = 128                    # upstream's twin key pattern allows 1-128 characters
MAX_VALUE = 512                  # upstream's twin value pattern allows 1-512 characters
MAX_TYPE = 32
MAX_STATE = 64
MAX_TIME = 64
MAX_EVENT_ID = 64

Obj = dict[str, Any]


class Refusal(Exception):
    """A report that is not taken: the code (400, 403, 404) and reason of the error reply."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Reported:
    """One property's report: the actual value and the expected value the edge holds, with metadata."""

    name: str
    actual: Obj | None          # {"value", "metadata": {...}} in DeviceStatus form
    expected: Obj | None


def decode(content: Any) -> Obj:
    """The report as a JSON object, whether it came as an object or as JSON text."""
    if isinstance(content, (bytes, bytearray)):
        content = content.decode("utf-8", errors="replace")
    if isinstance(content, str):
        if len(content.encode()) > MAX_CONTENT_BYTES:
            raise Refusal(400, f"report larger than {MAX_CONTENT_BYTES} bytes")
        try:
            content = json.loads(content)
        except ValueError:
            raise Refusal(400, "report is not JSON") from None
    if not isinstance(content, dict):
        raise Refusal(400, "report is not a JSON object")
    if len(json.dumps(content, separators=(",", ":"))) > MAX_CONTENT_BYTES:
        raise Refusal(400, f"report larger than {MAX_CONTENT_BYTES} bytes")
    return content


def event_id_of(content: Any) -> str:
    try:
        event_id = decode(content).get("event_id")
    except Refusal:
        return ""
    return event_id if isinstance(event_id, str) and len(event_id) <= MAX_EVENT_ID else ""


def check_device_names(namespace: str, name: str) -> None:
    if not is_dns1123_label(namespace) or not is_dns1123_subdomain(name):
        raise Refusal(400, "device namespace or name is not a valid Kubernetes name")


def _text(value: Any, limit: int, what: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise Refusal(400, f"{what} must be a string of at most {limit} characters")
    return value


def _timestamp(metadata: Any, what: str) -> str:
    if metadata is None:
        return ""
    if not isinstance(metadata, dict):
        raise Refusal(400, f"{what}.metadata is not an object")
    stamp = metadata.get("timestamp")
    if stamp is None:
        return ""
    if isinstance(stamp, bool) or not isinstance(stamp, int) or not 0 <= stamp < 2**63:
        raise Refusal(400, f"{what}.metadata.timestamp is not a Unix time in milliseconds")
    return str(stamp)


def _value(twin_value: Any, type_: str, what: str) -> Obj | None:
    """``{"value", "metadata"}`` in DeviceStatus form (upstream: timestamp as a string, the type)."""
    if twin_value is None:
        return None
    if not isinstance(twin_value, dict):
        raise Refusal(400, f"{what} is not an object")
    if twin_value.get("value") is None:
        return None  # upstream: a value-less side is left as it was
    value = _text(twin_value.get("value"), MAX_VALUE, f"{what}.value")
    metadata: dict[str, str] = {}
    stamp = _timestamp(twin_value.get("metadata"), what)
    if stamp:
        metadata["timestamp"] = stamp
    if type_:
        metadata["type"] = type_
    return {"value": value, "metadata": metadata} if metadata else {"value": value}


def parse_twin_update(content: Any) -> list[Reported]:
    """The properties an ``edge_updated`` report carries; Refusal when it is malformed or too big."""
    twins = decode(content).get("twin")
    if not isinstance(twins, dict):
        raise Refusal(400, "twin is not an object")
    if len(twins) > MAX_TWINS:
        raise Refusal(400, f"more than {MAX_TWINS} properties in one report")
    reported = []
    for name, twin in twins.items():
        _text(name, MAX_KEY, "property name", required=True)
        if twin is None:
            continue
        if not isinstance(twin, dict):
            raise Refusal(400, f"twin {name} is not an object")
        metadata = twin.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise Refusal(400, f"twin {name}.metadata is not an object")
        type_ = _text((metadata or {}).get("type"), MAX_TYPE, f"twin {name}.metadata.type")
        reported.append(Reported(name, _value(twin.get("actual"), type_, f"twin {name}.actual"),
                                 _value(twin.get("expected"), type_, f"twin {name}.expected")))
    return reported


def merged_twins(current: Any, device: Obj, reports: list[Reported]) -> list[Obj]:
    """``status.twins`` after ``reports``: one entry per property of the Device (upstream
    ``findOrCreateTwinByName``; names the Device does not declare are ignored, and entries of
    properties it no longer has are dropped, as upstream's ``removeTwinWithNameChanged``)."""
    declared = [p.get("name") for p in (device.get("spec") or {}).get("properties") or [] if isinstance(p, dict)]
    by_name: dict[str, Obj] = {}
    for twin in current if isinstance(current, list) else []:
        if isinstance(twin, dict) and twin.get("propertyName") in declared:
            by_name[twin["propertyName"]] = dict(twin)
    order = [t["propertyName"] for t in current if isinstance(t, dict) and t.get("propertyName") in by_name] \
        if isinstance(current, list) else []
    for report in reports:
        if report.name not in declared:
            continue
        twin = by_name.get(report.name)
        if twin is None:
            twin = by_name[report.name] = {"propertyName": report.name}
            order.append(report.name)
        if report.actual is not None:
            twin["reported"] = report.actual
        if report.expected is not None:
            twin["observedDesired"] = report.expected
    return [by_name[name] for name in dict.fromkeys(order)]


def parse_state_update(content: Any) -> Obj:
    """``{"state", "lastOnlineTime"}`` to patch (empty ones left out, as upstream's omitempty)."""
    body = decode(content)
    device = body.get("device", body.get("Device"))
    if not isinstance(device, dict):
        raise Refusal(400, "device is not an object")
    state = _text(device.get("state"), MAX_STATE, "device.state")
    last_online = _text(device.get("lastOnlineTime"), MAX_TIME, "device.lastOnlineTime")
    patch = {k: v for k, v in (("state", state), ("lastOnlineTime", last_online)) if v}
    if not patch:
        raise Refusal(400, "neither state nor lastOnlineTime reported")
    return patch


def ok_reply(report: Message, node: str) -> Message:
    """Upstream's confirmation: the edge's twin drops the report from its resend map."""
    return Message.new(source=SOURCE, group="twin", operation="response", resource=f"node/{node}/twin", content="OK",
                       parent_msg_id=report.msg_id)


def error_reply(report: Message, node: str, refusal: Refusal) -> Message:
    content = {"event_id": event_id_of(report.content), "timestamp": now_ms(), "code": refusal.code, "reason": refusal.reason}
    return Message.new(source=SOURCE, group="twin", operation="response", resource=f"node/{node}/twin", content=content,
                       parent_msg_id=report.msg_id)


def detail_reply(request: Message, node: str, detail: Obj) -> Message:
    """The node's devices, answering its ``membership/detail`` get (upstream edge: ``MemDetailResult``)."""
    return Message.new(source=SOURCE, group="twin", operation="response", resource=f"node/{node}/membership/detail",
                       content=detail, parent_msg_id=request.msg_id)
