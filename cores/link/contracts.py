"""The message kinds of the link: typed builders and parsers, so no module looks inside a reply.

Shapes as recorded between upstream's peers (tests/testdata/upstream-v1.23):

- **push** (cloud -> edge): ``source edgecontroller|devicecontroller, group resource``, operation
  ``insert|update|delete``, resource ``<ns>/<type>/<name>``, the object as content and its
  resourceVersion in the header;
- **ack** (edge -> cloud): the response to a push, ``"OK"``, ``parent_msg_id`` the push's id,
  source, group and resource those of the push (upstream's ``NewRespByMessage``); the edge also
  acks the replies it keeps (insert, update and query replies: upstream's ``feedbackResponse``);
- **edge request** (edge -> cloud): ``source edged, group meta``, operation
  ``insert|update|patch|delete|query``;
- **reply** (cloud -> edge): ``source edgecontroller, group resource, operation response``,
  ``parent_msg_id`` the request's id. Mutations and node/lease queries reply ``{"Object": obj,
  "Err": null | {"ErrStatus": Status}}``; ConfigMap, Secret and service-account-token requests
  reply with the bare object or ``{"ErrStatus": Status}``; a pod delete replies ``"OK"``;
- **control** (either way): ``ping``/``pong``/``config`` answered with ``"ack"``; ``keepalive``
  (edge -> cloud, resource ``node``, content ``"ping"``) answered with nothing.
"""

from __future__ import annotations

import json
from typing import Any

from cores.beehive.message import (
    OP_DELETE,
    OP_INSERT,
    OP_KEEPALIVE,
    OP_QUERY,
    OP_RESPONSE,
    OP_UPDATE,
    Message,
)
from cores.common.objects import ObjectReply, ObjectView
from cores.common.resource import ResourceError, parse_object
from cores.link.status import StatusError

ACK_CONTENT = "OK"
CONTROL_OPERATIONS = frozenset({"ping", "pong", "config"})
PUSH_OPERATIONS = frozenset({OP_INSERT, OP_UPDATE, OP_DELETE})
REQUEST_OPERATIONS = frozenset({OP_INSERT, OP_UPDATE, "patch", OP_DELETE, OP_QUERY})
# Replies to these operations are acked by the edge (upstream's feedbackResponse); patch replies are not.
FEEDBACK_OPERATIONS = frozenset({OP_INSERT, OP_UPDATE, OP_QUERY})
# Requests about these types are answered with the bare object (or a bare {"ErrStatus"}).
BARE_REPLY_TYPES = frozenset({"configmap", "secret", "serviceaccounttoken"})
# Pushes of these types are acked and resent until acked (with "update" of the node itself).
ACKED_TYPES = frozenset({"pod", "configmap", "secret", "device", "devicemodel"})
# Query replies of these types carry an object the edge keeps: they are acked like pushes.
ACKED_RESPONSE_TYPES = frozenset({"configmap", "secret", "persistentvolume", "persistentvolumeclaim", "volumeattachment"})

CLOUD_REPLY_SOURCE = "edgecontroller"


# ------------------------------------------------------------------------------ cloud -> edge
def push(operation: str, resource: str, obj: Any, *, source: str = CLOUD_REPLY_SOURCE, resource_version: str = "") -> Message:
    """A push of ``obj`` to an edge (``resource`` may carry the cloud's ``node/<id>/`` prefix)."""
    return Message.new(source=source, group="resource", operation=operation, resource=resource, content=obj,
                       resource_version=resource_version)


def object_reply(request: Message, obj: Any, error: StatusError | None = None, *, resource_version: str = "",
                 source: str = CLOUD_REPLY_SOURCE) -> Message:
    """``{"Object": obj, "Err": ...}``, upstream's ``ObjectResp``."""
    content: ObjectReply = {"Object": obj, "Err": None if error is None else error.wire()}
    return _reply(request, content, resource_version, source)


def bare_reply(request: Message, content: Any, *, resource_version: str = "", source: str = CLOUD_REPLY_SOURCE) -> Message:
    """The bare answer: an object (ConfigMap, Secret, TokenRequest) or ``"OK"``."""
    return _reply(request, content, resource_version, source)


def error_reply(request: Message, error: StatusError, *, source: str = CLOUD_REPLY_SOURCE) -> Message:
    """A refusal in the shape the request's kind is answered with."""
    if replies_bare(request):
        return _reply(request, error.wire(), "", source)
    return object_reply(request, None, error, source=source)


def replies_bare(request: Message) -> bool:
    """Whether the reply to ``request`` is bare (no ``{"Object","Err"}`` wrapper)."""
    if request.route.operation == OP_DELETE:
        return True
    try:
        kind = parse_object(_without_node_prefix(request.route.resource)).type
    except ResourceError:
        return False
    return kind in BARE_REPLY_TYPES


def _reply(request: Message, content: Any, resource_version: str, source: str) -> Message:
    return Message.new(source=source, group="resource", operation=OP_RESPONSE, resource=request.route.resource,
                       content=content, parent_msg_id=request.msg_id, resource_version=resource_version)


def _without_node_prefix(resource: str) -> str:
    parts = resource.split("/", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "node" else resource


# ------------------------------------------------------------------------------ acks
def ack(message: Message) -> Message:
    """The edge's ``"OK"`` for a push it committed (or a reply it kept)."""
    return message.response(ACK_CONTENT)


def control_ack(message: Message) -> Message:
    """The answer to ``ping``/``pong``/``config``."""
    return message.response("ack")


def is_control(message: Message) -> bool:
    return message.route.operation in CONTROL_OPERATIONS


def is_keepalive(message: Message) -> bool:
    return message.route.operation == OP_KEEPALIVE


def keepalive() -> Message:
    """EdgeHub's heartbeat, as upstream's edgehub sends it."""
    return Message.new(source="websocket", group="resource", operation=OP_KEEPALIVE, resource="node", content="ping")


def needs_ack(message: Message) -> bool:
    """Upstream's rule: object pushes, and query replies that carry an object, wait for the edge's ack."""
    if message.route.group != "resource":
        return False
    try:
        kind = parse_object(message.route.resource).type
    except ResourceError:
        return False
    operation = message.route.operation
    if operation in PUSH_OPERATIONS:
        return kind in ACKED_TYPES or (kind == "node" and operation == OP_UPDATE)
    if operation == OP_RESPONSE:
        content = message.content
        return kind in ACKED_RESPONSE_TYPES and isinstance(content, dict) and "metadata" in content
    return False


def object_uid(message: Message) -> str:
    """The uid of the object a push carries ("" when it carries none)."""
    return ObjectView(message.content).uid


def object_namespace(message: Message) -> str | None:
    return ObjectView(message.content).namespace or None


# ------------------------------------------------------------------------------ edge -> cloud
def edge_request(operation: str, resource: str, content: Any = None, *, source: str = "edged", group: str = "meta") -> Message:
    """A request from an edge module to the cloud (through MetaManager)."""
    return Message.new(source=source, group=group, operation=operation, resource=resource, content=content)


def wants_feedback(request: Message) -> bool:
    """Whether the edge acks the cloud's reply to ``request``."""
    return request.route.operation in FEEDBACK_OPERATIONS


def parse_reply(reply: Message) -> Any:
    """What a reply answers: the object (or ``"OK"``), or :class:`StatusError` raised.

    Accepts every shape a peer may send: ``{"Object","Err"}``, a bare object, a bare
    ``{"ErrStatus"}``, ``"OK"``, a JSON text, and upstream MetaManager's local answer (a list of
    JSON texts, the first being the object). A malformed reply is an error, never a crash.
    """
    content = reply.content
    if isinstance(content, (bytes, bytearray)):
        content = content.decode(errors="replace")
    if isinstance(content, str) and content not in (ACK_CONTENT, "") and content[:1] in "[{":
        try:
            content = json.loads(content)
        except ValueError:
            raise StatusError.make(500, "InternalError", "malformed reply from the cloud: not JSON") from None
    if isinstance(content, list):
        if not content:
            raise StatusError.make(404, "NotFound", "the cloud's answer is empty")
        first = content[0]
        if isinstance(first, str):
            try:
                first = json.loads(first)
            except ValueError:
                raise StatusError.make(500, "InternalError", "malformed reply from the cloud: not JSON") from None
        content = first
    if isinstance(content, dict):
        if "Err" in content or "Object" in content:
            if content.get("Err"):
                raise StatusError.from_error(content["Err"])
            return content.get("Object")
        if content.get("ErrStatus"):
            raise StatusError.from_error(content)
    return content


# ------------------------------------------------------------------------------ stored answers
def local_reply(request: Message, obj: Any) -> Message:
    """An answer made at the edge (MetaManager with the cloud away) in the shape the cloud uses."""
    if replies_bare(request):
        return request.response(obj)
    return request.response({"Object": obj, "Err": None})


def local_error(request: Message, error: StatusError) -> Message:
    if replies_bare(request):
        return request.response(error.wire())
    return request.response({"Object": None, "Err": error.wire()})
