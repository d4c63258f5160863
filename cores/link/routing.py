"""The one routing table of the link, for both ends: who gets a message, and the node prefix.

Inside CloudCore every message about a node carries ``node/<id>/`` in front of its resource;
on the wire it never does. CloudHub adds the prefix going up (:func:`from_edge`) and strips it
going down (:func:`to_edge`). Which module group gets a message follows upstream's dispatchers:
CloudHub's ``dispatchMessage`` going up, EdgeHub's ``messagehandler`` going down.
"""

from __future__ import annotations

import dataclasses
import enum

from cores.beehive.message import OP_RESPONSE, Message
from cores.common.resource import ResourceError, add_node_prefix, split_node_prefix
from cores.link.contracts import is_control, is_keepalive


class Action(enum.Enum):
    KEEPALIVE = "keepalive"      # reset the session's deadline, nothing else
    ANSWER = "answer"            # send ``reply`` back on the same session
    RESPONSE = "response"        # a reply or an ack: to its waiter, else to the ack queues (cloud)
    DELIVER = "deliver"          # to the module group ``group``
    DROP = "drop"                # nobody takes it; ``reason`` says why


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    message: Message
    group: str = ""
    reason: str = ""


# Cloud modules by what comes up from an edge (upstream dispatchMessage): twin traffic to the
# DeviceController, MetaServer's Applications to the DynamicController, user traffic (EventBus and ServiceBus uploads, ServiceBus's HTTP answers) to
# the Router, everything else to the EdgeController.
UPSTREAM_GROUPS_BY_SOURCE = {"twin": "devicecontroller"}
# (upstream routes by the source alone; MetaServer's own queries for EdgeController share the source)
APPLICATION_SOURCE, APPLICATION_GROUP = "metaserver", "dynamiccontroller"
UPSTREAM_DEFAULT_GROUP = "edgecontroller"
USER_GROUP, ROUTER_GROUP = "user", "router"
# Session events (``connected``/``disconnected`` of ``node/<id>``) go to these cloud groups.
SESSION_EVENT_GROUPS = ("edgecontroller", "synccontroller", ROUTER_GROUP)

# Edge modules by what comes down from the cloud (upstream edgehub messagehandler).
DOWNSTREAM_GROUPS = {"resource": "meta", "func": "meta", "twin": "twin", "taskmanager": "taskmanager"}
# ``servicebus``: the Router's answers to ServiceBus's uploads (upstream's NewRespByMessage keeps
# the upload's source), which ServiceBus hands to the local caller waiting for them.
USER_GROUPS_BY_SOURCE = {"router_eventbus": "bus", "router_servicebus": "servicebus", "servicebus": "servicebus"}
# Edge groups told when the link comes or goes (``node/connection``).
CONNECTION_EVENT_GROUPS = ("twin", "meta", "bus", "servicebus", "taskmanager", "edged")


def from_edge(node_id: str, message: Message) -> Decision:
    """CloudHub, a message from ``node_id``: what to do with it, the prefix added."""
    if is_keepalive(message):
        return Decision(Action.KEEPALIVE, message)
    if is_control(message):
        return Decision(Action.ANSWER, message.response("ack"))
    if is_user_traffic(message):
        # upstream: ``node/<id>/<resource>`` even when the resource is empty (ServiceBus's answers)
        return Decision(Action.DELIVER, message.with_resource(add_node_prefix(node_id, message.route.resource)),
                        group=ROUTER_GROUP)
    if not message.route.resource:
        return Decision(Action.DROP, message, reason="message without resource")
    routed = message.with_resource(add_node_prefix(node_id, message.route.resource))
    if message.route.operation == OP_RESPONSE:
        return Decision(Action.RESPONSE, routed)
    if (message.route.source, message.route.group) == (APPLICATION_SOURCE, APPLICATION_GROUP):
        return Decision(Action.DELIVER, routed, group=APPLICATION_GROUP)
    group = UPSTREAM_GROUPS_BY_SOURCE.get(message.route.source, UPSTREAM_DEFAULT_GROUP)
    return Decision(Action.DELIVER, routed, group=group)


def is_user_traffic(message: Message) -> bool:
    """An edge's upload for the Router, or ServiceBus's answer to one of its requests (upstream
    sends its error answers with no operation at all, so the group and the parent decide)."""
    return message.route.group == USER_GROUP and (message.route.operation == "upload" or bool(message.parent_msg_id))


def to_edge(message: Message) -> tuple[str, Message]:
    """CloudHub, a message from a cloud module: (its node, the message with the prefix stripped).

    Raises :class:`ResourceError` when the resource names no node.
    """
    node_id, resource = split_node_prefix(message.route.resource)
    return node_id, message.with_resource(resource)


def node_of(message: Message) -> str:
    """The node a prefixed message is about ("" when it has no prefix)."""
    try:
        return split_node_prefix(message.route.resource)[0]
    except ResourceError:
        return ""


def from_cloud(message: Message) -> Decision:
    """EdgeHub, a message from the cloud: which edge group gets it (replies included: MetaManager
    finishes the requests it forwarded, so their replies go where the request came from)."""
    if is_control(message):
        return Decision(Action.ANSWER, message.response("ack"))
    group = message.route.group
    target = USER_GROUPS_BY_SOURCE.get(message.route.source, "") if group == "user" else DOWNSTREAM_GROUPS.get(group, "")
    if not target:
        return Decision(Action.DROP, message, reason=f"no edge module for group {group!r}")
    return Decision(Action.DELIVER, message, group=target)


ACK_EVENT_GROUP, ACK_EVENT_OPERATION = "hub", "ack"


def ack_event(response: Message) -> Message:
    """An edge's response that no cloud module waits for, as CloudHub's own mailbox gets it: an
    ack for its queues. A new message (the response itself may travel on), marked so that it
    can never be taken for a reply on its way down."""
    return Message.new(source="cloudhub", group=ACK_EVENT_GROUP, operation=ACK_EVENT_OPERATION,
                       resource=response.route.resource, content=response.content, parent_msg_id=response.parent_msg_id)


def is_ack_event(message: Message) -> bool:
    return message.route.group == ACK_EVENT_GROUP and message.route.operation == ACK_EVENT_OPERATION


def is_session_event(message: Message) -> bool:
    return message.route.source == "cloudhub" and message.route.operation in ("connected", "disconnected")


def session_event(node_id: str, connected: bool) -> Message:
    """What CloudHub tells cloud modules when a node's session opens or closes."""
    return Message.new(source="cloudhub", group="resource", operation="connected" if connected else "disconnected",
                       resource=f"node/{node_id}")


CLOUD_CONNECTED, CLOUD_DISCONNECTED = "cloud_connected", "cloud_disconnected"


def connection_event(connected: bool) -> Message:
    """What EdgeHub tells edge modules when the link comes or goes."""
    return Message.new(source="edgehub", group="", operation="connect", resource="node/connection",
                       content=CLOUD_CONNECTED if connected else CLOUD_DISCONNECTED)


def is_connection_event(message: Message) -> bool:
    return message.route.resource == "node/connection"


def connected_in(message: Message) -> bool:
    return bool(message.content == CLOUD_CONNECTED)
