"""Upstream's Application: how an edge's MetaServer asks the cloud's DynamicController to read or
write the Kubernetes API for it (``pkg/metaserver/application.go``). Pure: shapes, no I/O.

On the link an Application is the content of one message each way:

- edge -> cloud: ``source metaserver, group dynamiccontroller``, resource and operation ``null``;
  a ``watchapp/sync`` resource carries a map of watch Applications by id instead;
- cloud -> edge: ``source dynamiccontroller, group resource``, operation ``applicationResponse``,
  resource ``node/<id>/ignore/Application/ignore`` inside CloudCore (the node prefix is CloudHub's),
  ``parent_msg_id`` the request's id. It needs no ack (upstream's ``noAckRequired``).

The JSON has Go's field names and no tags: ``ID``, ``Key``, ``Verb``, ``Nodename``, ``Option``,
``ReqBody``, ``Subresource``, ``RespBody``, ``Status``, ``Reason``, ``Error`` (an
``apierrors.StatusError``: ``{"ErrStatus": <Status>}``) and ``Timestamp``; the ``[]byte`` fields
are base64 (``null`` when nil), as ``encoding/json`` writes them. ``Key`` is
``/<group>/<version>/<resource>/<namespace>/<name>`` with ``core`` for the core group and ``null``
for no namespace or name; a discovery read keys by its path (``/version``, ``/apis/apps``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from typing import Any

from cores.beehive.message import Message

SOURCE, GROUP = "metaserver", "dynamiccontroller"
RESPONSE_OPERATION = "applicationResponse"
RESPONSE_RESOURCE = "ignore/Application/ignore"
WATCH_SYNC = "watchapp/sync"
CORE_GROUP, NULL = "core", "null"

VERBS = frozenset({"get", "list", "watch", "create", "delete", "update", "updatestatus", "patch"})
# set by the edge / by the cloud / both
PRE_APPLYING, IN_APPLYING = "PreApplying", "InApplying"
IN_PROCESSING, APPROVED, REJECTED = "InProcessing", "Approved", "Rejected"
FAILED, COMPLETED = "Failed", "Completed"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
DISCOVERY_PATHS = frozenset({"/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi/v2", "/openapi/v3"})
MAX_KEY = 1024


class ApplicationError(ValueError):
    """Content that is not an Application."""


@dataclasses.dataclass
class Application:
    key: str
    verb: str
    nodename: str
    option: bytes | None = None
    req_body: bytes | None = None
    subresource: str = ""
    resp_body: bytes | None = None
    status: str = PRE_APPLYING
    reason: str = ""
    error: dict[str, Any] = dataclasses.field(default_factory=dict)  # the StatusError's ErrStatus ({} when none)
    id: str = ""
    timestamp: str = GO_ZERO_TIME

    def identifier(self) -> str:
        """Upstream's ID: the SHA-256 of node, key, verb, option, body and subresource, in hex."""
        if not self.id:
            digest = hashlib.sha256()
            for part in (self.nodename.encode(), self.key.encode(), self.verb.encode(), self.option or b"",
                         self.req_body or b"", self.subresource.encode()):
                digest.update(part)
            self.id = digest.hexdigest()
        return self.id

    def wire(self) -> dict[str, Any]:
        self.identifier()
        return {"ID": self.id, "Key": self.key, "Verb": self.verb, "Nodename": self.nodename,
                "Option": _b64(self.option), "ReqBody": _b64(self.req_body), "Subresource": self.subresource,
                "RespBody": _b64(self.resp_body), "Status": self.status, "Reason": self.reason,
                "Error": {"ErrStatus": self.error or {"metadata": {}}}, "Timestamp": self.timestamp}

    @classmethod
    def from_wire(cls, content: Any) -> Application:
        """An Application from a message's content (a JSON object, or its text or bytes)."""
        data = _object(content)
        try:
            error = data.get("Error") or {}
            status = error.get("ErrStatus") if isinstance(error, dict) else None
            app = cls(key=_text(data, "Key"), verb=_text(data, "Verb"), nodename=_text(data, "Nodename"),
                      option=_bytes(data, "Option"), req_body=_bytes(data, "ReqBody"), subresource=_text(data, "Subresource"),
                      resp_body=_bytes(data, "RespBody"), status=_text(data, "Status"), reason=_text(data, "Reason"),
                      error=dict(status) if isinstance(status, dict) and status.get("code") else {},
                      id=_text(data, "ID"), timestamp=_text(data, "Timestamp") or GO_ZERO_TIME)
        except (TypeError, AttributeError) as error:
            raise ApplicationError(f"not an Application: {error}") from None
        if len(app.key) > MAX_KEY:
            raise ApplicationError(f"the Application's Key is longer than {MAX_KEY} characters")
        return app

    # what the parts mean ------------------------------------------------------------------
    def option_json(self) -> Any:
        return _json(self.option, "Option")

    def body_json(self) -> Any:
        return _json(self.req_body, "ReqBody")

    def response_json(self) -> Any:
        return _json(self.resp_body, "RespBody")


def _b64(data: bytes | None) -> str | None:
    return to_b64(data)


def to_b64(data: bytes | None) -> str | None:
    """A Go ``[]byte`` as ``encoding/json`` writes it: base64 text, or null for nil."""
    return None if data is None else base64.b64encode(data).decode()


def _object(content: Any) -> dict[str, Any]:
    if isinstance(content, (bytes, bytearray)):
        content = bytes(content).decode("utf-8", "replace")
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            raise ApplicationError("an Application must be a JSON object") from None
    if not isinstance(content, dict):
        raise ApplicationError("an Application must be a JSON object")
    return content


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApplicationError(f"the Application's {name} must be a string")
    return value


def _bytes(data: dict[str, Any], name: str) -> bytes | None:
    return decode_bytes(data.get(name), name)


def decode_bytes(value: Any, name: str) -> bytes | None:
    """A Go ``[]byte`` from its JSON: base64 text, or null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApplicationError(f"the Application's {name} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApplicationError(f"the Application's {name} is not base64") from None


def _json(data: bytes | None, name: str) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise ApplicationError(f"the Application's {name} is not JSON") from None


def to_bytes(value: Any) -> bytes | None:
    """As upstream's ``ToBytes``: nil stays nil, bytes stay bytes, anything else is JSON."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return json.dumps(value, separators=(",", ":")).encode()


# keys ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Target:
    """What a Key names: a resource path, or a discovery path (``path`` set, the rest empty)."""

    group: str = ""
    version: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    def api_path(self, subresource: str = "") -> str:
        """The Kubernetes API path of this target."""
        if self.path:
            return self.path
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespace and self.resource != "namespaces":
            base += f"/namespaces/{self.namespace}"
        base += f"/{self.resource}"
        if self.name:
            base += f"/{self.name}"
        if subresource and self.name:
            base += f"/{subresource}"
        return base


def build_key(group: str, version: str, resource: str, namespace: str | None, name: str) -> str:
    """Upstream's ``KeyFuncReq`` of a resource request."""
    if resource == "namespaces":
        namespace = None
    return f"/{group or CORE_GROUP}/{version}/{resource}/{namespace or NULL}/{name or NULL}"


def is_discovery(key: str, verb: str) -> bool:
    """Upstream's ``IsPassThroughPath``: a get of a discovery path; and the OpenAPI v3 documents of
    each group version (``/openapi/v3/apis/apps/v1``), which kubectl validates with."""
    if verb != "get":
        return False
    if key in DISCOVERY_PATHS:
        return True
    if key.startswith("/openapi/v3/") and len(key) <= 256 and all(part and part not in (".", "..") and part.isprintable()
                                                                  and not any(c in part for c in "?#%\\")
                                                                  for part in key.split("/")[1:]):
        return True
    parts = key.split("/")
    if not all(_path_safe(part) for part in parts[2:]):
        return False
    return (len(parts) == 3 and parts[1] == "api") or (len(parts) in (3, 4) and parts[1] == "apis")


def _path_safe(part: str) -> bool:
    return bool(part) and part not in (".", "..") and part.isprintable() and len(part) <= 253 \
        and not any(c in part for c in "?#%\\ ")


def parse_key(key: str) -> Target:
    """The target of a resource Key, as upstream's ``ParseKey`` reads it (missing parts empty).

    Raises :class:`ApplicationError` for a key that is not ``/group/version/resource[/ns[/name]]``
    or whose parts are not path-safe (each becomes one segment of an API path).
    """
    parts = key.rstrip("/").split("/")
    if len(parts) < 4 or parts[0] != "" or len(parts) > 6:
        raise ApplicationError(f"invalid Application key {key[:100]!r}: not /group/version/resource/namespace/name")
    for part in parts[1:]:
        if not part or part in (".", "..") or any(c in part for c in "?#%\\") or not part.isprintable() \
                or len(part) > 253:
            raise ApplicationError(f"invalid Application key {key[:100]!r}")
    group, version, resource = parts[1], parts[2], parts[3]
    namespace = parts[4] if len(parts) > 4 else NULL
    name = parts[5] if len(parts) > 5 else NULL
    return Target("" if group == CORE_GROUP else group, version, resource,
                  "" if namespace == NULL else namespace, "" if name == NULL else name)


# messages -----------------------------------------------------------------------------------
def request_message(app: Application) -> Message:
    """The edge's message for ``app`` (upstream's ``doApply``)."""
    return Message.new(source=SOURCE, group=GROUP, operation=NULL, resource=NULL, content=app.wire())


def is_request(message: Message) -> bool:
    return message.route.source == SOURCE


def is_response(message: Message) -> bool:
    return message.route.operation == RESPONSE_OPERATION


def response_message(request: Message, node: str, content: Any) -> Message:
    """The cloud's answer to ``request`` (prefixed with ``node``, for CloudHub to strip)."""
    resource = request.route.resource if request.route.resource.endswith(WATCH_SYNC) else f"node/{node}/{RESPONSE_RESOURCE}"
    return Message.new(source="dynamiccontroller", group="resource", operation=RESPONSE_OPERATION, resource=resource,
                       content=content, parent_msg_id=request.msg_id)
