"""The device twin's rules, pure: topics, validation, version vectors, and what each change sends.

Shapes are upstream's (``edge/pkg/devicetwin/dttype``): a twin is
``{"expected": {"value", "metadata": {"timestamp"}}, "actual": {...}, "optional": bool,
"metadata": {"type"}, "expected_version": {"cloud", "edge"}, "actual_version": {...}}`` and the
results published to apps are ``{"event_id", "timestamp", ...}``; errors add ``code`` and ``reason``.

Two writers change a twin:

- an app or mapper over MQTT (``twin/update``, upstream's "rest" deal): values are validated
  against the twin's type, the changed side's ``edge`` counter goes up, and the change is synced
  to the cloud (``twin/edge_updated``);
- the cloud: a Device's ``spec.properties[].desired`` (v1beta1, how our DeviceController and
  upstream's send desired values) or a ``twin/cloud_updated`` message with version vectors, which
  is taken only when its ``edge`` counter is not behind ours (``TwinVersion.CompareWithCloud``).

Every function takes the twins as they are and returns new ones: a refused update leaves nothing
half-applied.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import re
import uuid
from typing import Any

Obj = dict[str, Any]

DEVICE_PREFIX = "$hw/events/device/"
NODE_PREFIX = "$hw/events/node/"
CONNECTED_PREFIX = "$hw/events/connected/"
DISCONNECTED_PREFIX = "$hw/events/disconnected/"

# suffixes after $hw/events/device/{ns}/{name}
TWIN_UPDATE = "/twin/update"
TWIN_UPDATE_RESULT = "/twin/update/result"
TWIN_DELTA = "/twin/update/delta"
TWIN_DOCUMENT = "/twin/update/document"
TWIN_GET = "/twin/get"
TWIN_GET_RESULT = "/twin/get/result"
TWIN_CLOUD_UPDATED = "/twin/cloud_updated"
TWIN_EDGE_UPDATED = "/twin/edge_updated"
STATE_UPDATE = "/state/update"
STATE_UPDATE_RESULT = "/state/update/result"
STATE_GET = "/state/get"
STATE_GET_RESULT = "/state/get/result"
# suffixes after $hw/events/node/{node}
MEMBERSHIP_GET = "/membership/get"
MEMBERSHIP_GET_RESULT = "/membership/get/result"
MEMBERSHIP_UPDATED = "/membership/updated"

BAD_REQUEST, NOT_FOUND, CONFLICT, INTERNAL_ERROR = 400, 404, 409, 500
TYPE_DELETED = "deleted"

MAX_PAYLOAD = 64 * 1024          # one MQTT message to the twin
MAX_TWINS_PER_UPDATE = 256
KEY_PATTERN = re.compile(r"[a-zA-Z0-9\-_.,:/@#]{1,128}")
VALUE_PATTERN = re.compile(r"[a-zA-Z0-9\-_.,:/@#]{1,512}")
INT_PATTERN = re.compile(r"[+-]?[0-9]+")
FLOAT_PATTERN = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|Inf|infinity|Infinity|NaN)")
# DeviceModel property types (v1beta1, upper case) to twin types; DOUBLE is checked as a float,
# BYTES and STREAM carry text as upstream's DMI does.
MODEL_TYPES = {"INT": "int", "FLOAT": "float", "DOUBLE": "double", "STRING": "string", "BOOLEAN": "boolean",
               "BYTES": "bytes", "STREAM": "stream"}


class TwinError(Exception):
    """An update refused: ``code`` (400, 404, 409, 500) and ``reason`` for the error result."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- topics ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Topic:
    """What an inbound topic asks: ``action`` is the suffix (``/twin/update``, ...), ``subject``
    the device ID (``ns/name``) or the node name."""

    action: str
    subject: str
    about_device: bool


DEVICE_ACTIONS = (TWIN_UPDATE, TWIN_GET, TWIN_CLOUD_UPDATED, STATE_UPDATE, STATE_GET)
NODE_ACTIONS = (MEMBERSHIP_GET,)


def classify(topic: str) -> Topic | None:
    """The action of a topic the twin answers, or None (results and deltas it publishes itself,
    lifecycle topics, anything else)."""
    if topic.startswith(DEVICE_PREFIX):
        parts = topic[len(DEVICE_PREFIX):].split("/", 2)
        if len(parts) == 3 and ("/" + parts[2]) in DEVICE_ACTIONS:
            return Topic("/" + parts[2], f"{parts[0]}/{parts[1]}", True)
    elif topic.startswith(NODE_PREFIX):
        node, _, rest = topic[len(NODE_PREFIX):].partition("/")
        if node and ("/" + rest) in NODE_ACTIONS:
            return Topic("/" + rest, node, False)
    return None


def device_topic(device_id: str, suffix: str) -> str:
    return f"{DEVICE_PREFIX}{device_id}{suffix}"


def node_topic(node: str, suffix: str) -> str:
    return f"{NODE_PREFIX}{node}{suffix}"


def encode_topic(topic: str) -> str:
    """How EventBus names a topic in a message resource (upstream: base64 URL encoding)."""
    return base64.urlsafe_b64encode(topic.encode()).decode()


def decode_topic(resource: str) -> str:
    try:
        return base64.urlsafe_b64decode(resource.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise TwinError(BAD_REQUEST, "resource is not a base64url topic") from None


# -- results ---------------------------------------------------------------------------------------
def base(event_id: str, now: int) -> Obj:
    return {"event_id": event_id, "timestamp": now}


def error_result(event_id: str, now: int, error: TwinError) -> Obj:
    return {**base(event_id, now), "code": error.code, "reason": error.reason}


def new_event_id() -> str:
    return str(uuid.uuid4())


def without_versions(twins: dict[str, Obj]) -> dict[str, Obj]:
    """Twins as apps get them (upstream BuildDeviceTwinResult, deal type 0): no version vectors,
    deleted ones left out."""
    shown = {}
    for name, twin in twins.items():
        if (twin.get("metadata") or {}).get("type") == TYPE_DELETED:
            continue
        shown[name] = {k: v for k, v in twin.items() if k not in ("expected_version", "actual_version")}
    return shown


def delta(event_id: str, now: int, twins: dict[str, Obj]) -> Obj | None:
    """``twin/update/delta``: the twins whose expected value differs from the actual one, or None."""
    differing = {}
    for name, twin in twins.items():
        if (twin.get("metadata") or {}).get("type") == TYPE_DELETED:
            continue
        expected = _value_of(twin.get("expected"))
        if expected and expected != _value_of(twin.get("actual")):
            differing[name] = expected
    if not differing:
        return None
    return {**base(event_id, now), "twin": without_versions({n: twins[n] for n in differing}), "delta": differing}


def _value_of(side: Any) -> str:
    return str(side.get("value") or "") if isinstance(side, dict) else ""


# -- validation ------------------------------------------------------------------------------------
def check_key(key: Any) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise TwinError(BAD_REQUEST, f"the twin key {str(key)[:140]!r} is not valid (1-128 of a-z A-Z 0-9 -_.,:/@#)")
    return key


def check_value(type_: str, value: Any, key: str) -> str:
    """The value as text, checked against the pattern and the twin's type (upstream ValidateValue)."""
    if not isinstance(value, str):
        raise TwinError(BAD_REQUEST, f"the value of {key} must be a string")
    if not VALUE_PATTERN.fullmatch(value):
        raise TwinError(BAD_REQUEST, f"the value of {key} is not valid (1-512 of a-z A-Z 0-9 -_.,:/@#)")
    if type_ in ("", "string", "bytes", "stream", TYPE_DELETED):
        return value
    if type_ in ("int", "integer"):
        if not INT_PATTERN.fullmatch(value) or not -(2**63) <= int(value) < 2**63:
            raise TwinError(BAD_REQUEST, f"the value {value!r} of {key} is not int or integer")
    elif type_ in ("float", "double"):
        if not FLOAT_PATTERN.fullmatch(value):
            raise TwinError(BAD_REQUEST, f"the value {value!r} of {key} is not float")
    elif type_ == "boolean":
        if value not in ("true", "false"):
            raise TwinError(BAD_REQUEST, f"the bool value of {key} must be true or false")
    else:
        raise TwinError(BAD_REQUEST, f"the value type {type_!r} of {key} is not allowed")
    return value


def _type_of(twin: Obj) -> str:
    return str((twin.get("metadata") or {}).get("type") or "")


def _version(twin: Obj, side: str) -> Obj:
    version = twin.get(f"{side}_version")
    if isinstance(version, dict):
        return {"cloud": int(version.get("cloud") or 0), "edge": int(version.get("edge") or 0)}
    return {"cloud": 0, "edge": 0}


def _request_side(update: Obj, side: str, key: str) -> str | None:
    """The value an update sets on one side, or None when it leaves that side alone."""
    part = update.get(side)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise TwinError(BAD_REQUEST, f"{key}.{side} must be an object")
    value = part.get("value")
    if value is None:
        return None
    return value if isinstance(value, str) else _not_text(key, side)


def _not_text(key: str, side: str) -> str:
    raise TwinError(BAD_REQUEST, f"the value of {key}.{side} must be a string")


# -- changes from apps and mappers -----------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Change:
    """What one accepted change did: the device's new twins, the names changed, and the payloads
    to publish (``result``, ``document``) and to sync to the cloud (``sync``)."""

    twins: dict[str, Obj]
    changed: list[str]
    result: dict[str, Obj]
    document: dict[str, Obj]
    sync: dict[str, Obj]


def parse_update(payload: Any) -> tuple[str, dict[str, Any]]:
    """(event_id, twin map) of a ``twin/update`` payload; TwinError 400 when malformed."""
    if not isinstance(payload, dict):
        raise TwinError(BAD_REQUEST, "the payload is not a JSON object")
    event_id = payload.get("event_id") or ""
    if not isinstance(event_id, str) or len(event_id) > 64:
        raise TwinError(BAD_REQUEST, "event_id must be a string of at most 64 characters")
    twins = payload.get("twin")
    if not isinstance(twins, dict):
        raise TwinError(BAD_REQUEST, "key twin does not exist or is not an object")
    if len(twins) > MAX_TWINS_PER_UPDATE:
        raise TwinError(BAD_REQUEST, f"more than {MAX_TWINS_PER_UPDATE} twins in one update")
    return event_id, twins


def apply_edge_update(twins: dict[str, Obj], update: dict[str, Any], now: int) -> Change:
    """An app's or mapper's ``twin/update``, all or nothing (upstream's rest deal type)."""
    new = copy.deepcopy(twins)
    change = Change(new, [], {}, {}, {})
    for key, request in update.items():
        check_key(key)
        if request is None:
            _delete_by_edge(new, key, change)
            continue
        if not isinstance(request, dict):
            raise TwinError(BAD_REQUEST, f"twin {key} must be an object")
        metadata = request.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise TwinError(BAD_REQUEST, f"{key}.metadata must be an object")
        current = new.get(key)
        last = copy.deepcopy(current) if current is not None and _type_of(current) != TYPE_DELETED else None
        twin = current if current is not None else {"optional": True, "metadata": {"type": str((metadata or {}).get("type") or "string")}}
        if current is not None and _type_of(current) == TYPE_DELETED:
            twin["metadata"] = {"type": str((metadata or {}).get("type") or "string")}
        type_ = _type_of(twin)
        if type_ not in ("", "string", "int", "integer", "float", "double", "boolean", "bytes", "stream"):
            raise TwinError(BAD_REQUEST, f"the value type {type_!r} of {key} is not allowed")
        touched = False
        sync: Obj = {}
        for side in ("expected", "actual"):
            value = _request_side(request, side, key)
            if value is None:
                continue
            check_value(type_, value, key)
            version = _version(twin, side)
            version["edge"] += 1
            twin[side] = {"value": value, "metadata": {"timestamp": now}}
            twin[f"{side}_version"] = version
            sync[side] = copy.deepcopy(twin[side])
            sync[f"{side}_version"] = dict(version)
            touched = True
        optional = request.get("optional")
        if isinstance(optional, bool) and optional != twin.get("optional", True) and twin.get("optional", True):
            twin["optional"] = optional  # as upstream: only an optional twin may become required
            touched = True
        if current is None:
            touched = True
        if not touched:
            continue
        new[key] = twin
        change.changed.append(key)
        sync.update({"optional": twin.get("optional", True), "metadata": {"type": type_ or "string"}})
        change.sync[key] = sync
        change.result[key] = {k: v for k, v in sync.items() if not k.endswith("_version")}
        change.document[key] = {"last": _doc(last), "current": _doc(twin)}
    return change


def _delete_by_edge(twins: dict[str, Obj], key: str, change: Change) -> None:
    """``"key": null`` deletes an optional twin (upstream dealTwinDelete); a required one stays."""
    twin = twins.get(key)
    if twin is None or _type_of(twin) == TYPE_DELETED:
        return
    if not twin.get("optional", True):
        raise TwinError(BAD_REQUEST, f"twin {key} is not optional and cannot be deleted")
    last = copy.deepcopy(twin)
    sync: Obj = {"metadata": {"type": TYPE_DELETED}, "optional": True}
    for side in ("expected", "actual"):
        if side in twin:
            version = _version(twin, side)
            version["edge"] += 1
            twin[f"{side}_version"] = version
            twin.pop(side, None)
            sync[f"{side}_version"] = dict(version)
    twin["metadata"] = {"type": TYPE_DELETED}
    change.changed.append(key)
    change.sync[key] = sync
    change.result[key] = None  # type: ignore[assignment]  # upstream shows a deleted twin as null
    change.document[key] = {"last": _doc(last), "current": None}


def _doc(twin: Obj | None) -> Obj | None:
    if twin is None:
        return None
    return {k: copy.deepcopy(v) for k, v in twin.items() if k not in ("expected_version", "actual_version")}


# -- changes from the cloud ------------------------------------------------------------------------
def apply_cloud_sync(twins: dict[str, Obj], update: dict[str, Any], now: int) -> tuple[Change, list[str]]:
    """A ``twin/cloud_updated`` message: each twin is taken when its version vector is not behind
    ours (cloud counter not older, edge counter not behind); the names refused are returned too,
    and their current state goes back to the cloud in ``sync`` (upstream's conflict answer)."""
    new = copy.deepcopy(twins)
    change = Change(new, [], {}, {}, {})
    refused = []
    for key, request in update.items():
        check_key(key)
        if not isinstance(request, dict):
            raise TwinError(BAD_REQUEST, f"twin {key} must be an object")
        twin = new.get(key) or {"optional": True, "metadata": {"type": "string"}}
        metadata = request.get("metadata")
        type_ = str((metadata or {}).get("type") or _type_of(twin) or "string") if isinstance(metadata, dict) or metadata is None else "string"
        accepted = True
        staged = copy.deepcopy(twin)
        for side in ("expected", "actual"):
            value = _request_side(request, side, key)
            if value is None:
                continue
            theirs = request.get(f"{side}_version")
            if not isinstance(theirs, dict):
                raise TwinError(BAD_REQUEST, f"{key}.{side}_version is required from the cloud")
            ours = _version(twin, side)
            their_version = {"cloud": int(theirs.get("cloud") or 0), "edge": int(theirs.get("edge") or 0)}
            if ours["cloud"] > their_version["cloud"] or ours["edge"] > their_version["edge"]:
                accepted = False
                break
            check_value(type_ if type_ != TYPE_DELETED else "string", value, key)
            staged[side] = {"value": value, "metadata": {"timestamp": now}}
            staged[f"{side}_version"] = their_version
        if not accepted:
            refused.append(key)
            change.sync[key] = copy.deepcopy(twin)
            continue
        staged["metadata"] = {"type": type_}
        if staged != twin:
            new[key] = staged
            change.changed.append(key)
            change.document[key] = {"last": _doc(twins.get(key)), "current": _doc(staged)}
    return change, refused


def apply_desired(twins: dict[str, Obj], desired: dict[str, tuple[str | None, str]], now: int) -> Change:
    """A v1beta1 Device from the cloud: each property's ``desired.value`` becomes the twin's
    expected value (the ``cloud`` counter goes up when it changes) and the model's type its type.
    A desired value that does not fit the type is left out (the cloud's API checked the Device;
    a model changed under it must not break the twin). Twins of properties the Device no longer
    has are marked deleted."""
    new = copy.deepcopy(twins)
    change = Change(new, [], {}, {}, {})
    for key, (value, type_) in desired.items():
        try:
            check_key(key)
        except TwinError:
            continue
        twin = new.get(key)
        last = _doc(twin) if twin is not None and _type_of(twin) != TYPE_DELETED else None
        staged: Obj = copy.deepcopy(twin) if twin is not None else {"optional": False}
        staged["optional"] = False
        staged["metadata"] = {"type": type_ or "string"}
        if value is not None:
            try:
                check_value(type_, value, key)
            except TwinError:
                value = None
        if value is not None and _value_of(staged.get("expected")) != value:
            version = _version(staged, "expected")
            version["cloud"] += 1
            staged["expected"] = {"value": value, "metadata": {"timestamp": now}}
            staged["expected_version"] = version
        if staged == twin:
            continue
        new[key] = staged
        change.changed.append(key)
        change.document[key] = {"last": last, "current": _doc(staged)}
        sync: Obj = {"optional": False, "metadata": {"type": type_ or "string"}}
        if "expected" in staged:
            sync["expected"] = copy.deepcopy(staged["expected"])
            sync["expected_version"] = dict(_version(staged, "expected"))
        change.sync[key] = sync
    for key, twin in list(new.items()):
        if key not in desired and _type_of(twin) != TYPE_DELETED and not twin.get("optional", True):
            new[key] = {**twin, "metadata": {"type": TYPE_DELETED}}
            new[key].pop("expected", None)
            change.changed.append(key)
    return change


def desired_of(device: Obj, model: Obj | None) -> dict[str, tuple[str | None, str]]:
    """A v1beta1 Device's properties: name -> (desired value or None, twin type from the model)."""
    types = {}
    for prop in ((model or {}).get("spec") or {}).get("properties") or []:
        if isinstance(prop, dict) and isinstance(prop.get("name"), str):
            types[prop["name"]] = MODEL_TYPES.get(str(prop.get("type") or "").upper(), "string")
    desired: dict[str, tuple[str | None, str]] = {}
    for prop in (device.get("spec") or {}).get("properties") or []:
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
            continue
        wanted = prop.get("desired")
        value = wanted.get("value") if isinstance(wanted, dict) else None
        desired[prop["name"]] = (str(value) if isinstance(value, (str, int, float)) and value != "" else None,
                                 types.get(prop["name"], "string"))
    return desired
