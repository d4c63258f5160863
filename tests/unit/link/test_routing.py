"""The one routing table: decisions for what edges send up and what the cloud sends down."""

from __future__ import annotations

from cores.beehive import Message
from cores.link import contracts, routing
from cores.link.routing import Action


def test_from_edge_keepalive_control_response_and_delivery() -> None:
    assert routing.from_edge("n1", contracts.keepalive()).action is Action.KEEPALIVE
    ping = Message.new(source="x", group="g", operation="ping", resource="r")
    answer = routing.from_edge("n1", ping)
    assert answer.action is Action.ANSWER and answer.message.content == "ack" and answer.message.parent_msg_id == ping.msg_id
    ack = contracts.ack(contracts.push("insert", "default/pod/p", {}))
    response = routing.from_edge("n1", ack)
    assert response.action is Action.RESPONSE and response.message.route.resource == "node/n1/default/pod/p"
    assert ack.route.resource == "default/pod/p"  # the original is never changed
    twin = Message.new(source="twin", group="resource", operation="get", resource="membership/detail")
    assert routing.from_edge("n1", twin).group == "devicecontroller"
    edged = contracts.edge_request("patch", "null/nodepatch/n1", "{}")
    delivered = routing.from_edge("n1", edged)
    assert (delivered.action, delivered.group, delivered.message.route.resource) == (
        Action.DELIVER, "edgecontroller", "node/n1/null/nodepatch/n1")
    assert routing.from_edge("n1", Message.new(source="x", group="g", operation="o", resource="")).action is Action.DROP


def test_to_edge_strips_the_prefix_and_keeps_the_id() -> None:
    pushed = contracts.push("update", "node/n1/default/configmap/c", {})
    node, stripped = routing.to_edge(pushed)
    assert (node, stripped.route.resource, stripped.msg_id) == ("n1", "default/configmap/c", pushed.msg_id)


def test_from_cloud_groups_as_upstream_messagehandler() -> None:
    def group_of(group: str, source: str = "edgecontroller") -> str:
        return routing.from_cloud(Message.new(source=source, group=group, operation="update", resource="default/pod/p")).group

    assert group_of("resource") == "meta"
    assert group_of("func") == "meta"
    assert group_of("twin") == "twin"
    assert group_of("user", "router_eventbus") == "bus"
    assert group_of("user", "router_servicebus") == "servicebus"
    assert routing.from_cloud(Message.new(source="x", group="user", operation="o", resource="r")).action is Action.DROP
    reply = contracts.object_reply(contracts.edge_request("insert", "null/node/n1", {}), {})
    assert routing.from_cloud(reply).group == "meta"  # MetaManager finishes the requests it forwarded


def test_internal_events_are_told_apart_from_replies() -> None:
    reply = contracts.object_reply(contracts.edge_request("insert", "node/n1/null/node/n1", {}), {})
    assert not routing.is_ack_event(reply)
    event = routing.ack_event(reply)
    assert routing.is_ack_event(event) and event.parent_msg_id == reply.parent_msg_id
    assert routing.is_session_event(routing.session_event("n1", True))
    assert routing.connected_in(routing.connection_event(True)) and not routing.connected_in(routing.connection_event(False))
