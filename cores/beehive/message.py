"""The beehive message: upstream's ``model.Message``, the unit that moves between modules and over the wire.

Field names and their JSON spelling follow ``beehive/pkg/core/model/message.go``: header keys
``msg_id``, ``parent_msg_id`` (only when set), ``timestamp`` (Unix milliseconds), ``resourceversion``
(only when set), ``type`` (only when set); route keys ``source``, ``destination``, ``group``,
``operation``, ``resource`` (each only when set). ``sync`` lives in the header for in-process use
but is never put on the wire: upstream's ``WriteMessageAsync`` always clears it.

A message is frozen: nothing changes it in flight. A reply, a re-routed copy (the hubs add and
strip the ``node/<id>/`` prefix) or a copy marked ``sync`` is a new object made with
:meth:`Message.with_resource`, :meth:`Message.with_header` or :meth:`Message.response`. The
``content`` value itself is JSON data handed on by reference: modules that need a changed body
build a new one instead of editing what they received.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

# Operations (beehive model, edge message package, cloudhub model): the ones our code names.
OP_INSERT = "insert"
OP_UPDATE = "update"
OP_PATCH = "patch"
OP_DELETE = "delete"
OP_QUERY = "query"
OP_RESPONSE = "response"
OP_ERROR = "error"
OP_UPLOAD = "upload"
OP_KEEPALIVE = "keepalive"
OP_CONNECT = "connect"


def now_ms() -> int:
    """Unix time in milliseconds, as upstream stamps ``header.timestamp``."""
    return time.time_ns() // 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class MessageHeader:
    msg_id: str = ""
    parent_msg_id: str = ""
    timestamp: int = 0
    resource_version: str = ""
    sync: bool = False
    type: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRoute:
    source: str = ""
    destination: str = ""
    group: str = ""
    operation: str = ""
    resource: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One beehive message. ``content`` is any JSON value (object, list, string, number, null)."""

    header: MessageHeader
    route: MessageRoute
    content: Any = None

    @classmethod
    def new(
        cls,
        *,
        source: str,
        group: str,
        operation: str,
        resource: str,
        content: Any = None,
        destination: str = "",
        resource_version: str = "",
        parent_msg_id: str = "",
    ) -> Message:
        """A fresh message with a new uuid4 id and the current time."""
        header = MessageHeader(
            msg_id=str(uuid.uuid4()),
            parent_msg_id=parent_msg_id,
            timestamp=now_ms(),
            resource_version=resource_version,
        )
        route = MessageRoute(
            source=source, destination=destination, group=group, operation=operation, resource=resource
        )
        return cls(header, route, content)

    def response(self, content: Any, *, operation: str = OP_RESPONSE) -> Message:
        """The reply to this message, as upstream's ``NewRespByMessage``.

        It keeps this message's source, group and resource (so an edge ack names
        ``edgecontroller/resource``, the sender of what it acks) and links back through
        ``parent_msg_id``; the receiver routes it by that id alone.
        """
        return Message.new(
            source=self.route.source,
            group=self.route.group,
            operation=operation,
            resource=self.route.resource,
            content=content,
            parent_msg_id=self.header.msg_id,
        )

    def with_resource(self, resource: str) -> Message:
        """The same message (same id) routed to another resource string: the hubs' prefix changes."""
        return dataclasses.replace(self, route=dataclasses.replace(self.route, resource=resource))

    def with_header(self, **changes: Any) -> Message:
        """The same message with header fields changed (``sync``, ``parent_msg_id``, ...)."""
        return dataclasses.replace(self, header=dataclasses.replace(self.header, **changes))

    @property
    def msg_id(self) -> str:
        return self.header.msg_id

    @property
    def parent_msg_id(self) -> str:
        return self.header.parent_msg_id

    @property
    def is_response(self) -> bool:
        return bool(self.header.parent_msg_id)

    def to_wire_dict(self) -> dict[str, Any]:
        """The JSON object upstream puts on the wire: keys in Go's struct order, empty ones left out."""
        h = self.header
        header: dict[str, Any] = {"msg_id": h.msg_id}
        if h.parent_msg_id:
            header["parent_msg_id"] = h.parent_msg_id
        header["timestamp"] = h.timestamp
        if h.resource_version:
            header["resourceversion"] = h.resource_version
        if h.type:
            header["type"] = h.type
        r = self.route
        route: dict[str, Any] = {}
        for key in ("source", "destination", "group", "operation", "resource"):
            value = getattr(r, key)
            if value:
                route[key] = value
        return {"header": header, "route": route, "content": self.content}

    def describe(self) -> str:
        """A short one-line form for logs: never the content, which may hold secrets."""
        r = self.route
        parent = f" parent={self.header.parent_msg_id}" if self.header.parent_msg_id else ""
        return f"{r.source}/{r.group} {r.operation} {r.resource} id={self.header.msg_id}{parent}"
