"""Message contracts: the reply shapes both ways, errors as StatusError, which pushes are acked,
and the captured upstream replies read back through the one parser."""

from __future__ import annotations

import json

import pytest

from cores.beehive import Message
from cores.link import contracts
from cores.link.status import RequestTimeout, StatusError, forbidden, not_connected
from cores.wire import decode
from tests.captures import UPSTREAM



def request(operation: str, resource: str, content: object = None) -> Message:
    return contracts.edge_request(operation, resource, content)


def test_object_reply_and_its_parse() -> None:
    ask = request("insert", "null/node/n1", {"metadata": {"name": "n1"}})
    reply = contracts.object_reply(ask, {"metadata": {"name": "n1", "uid": "u"}}, resource_version="7")
    assert (reply.route.source, reply.route.group, reply.route.operation, reply.parent_msg_id) == (
        "edgecontroller", "resource", "response", ask.msg_id)
    assert reply.content == {"Object": {"metadata": {"name": "n1", "uid": "u"}}, "Err": None}
    assert reply.header.resource_version == "7"
    assert contracts.parse_reply(reply) == {"metadata": {"name": "n1", "uid": "u"}}


def test_errors_take_the_shape_of_the_request_kind() -> None:
    refusal = forbidden("n1", "default/secret/s")
    secret = contracts.error_reply(request("query", "default/secret/s"), refusal)
    assert secret.content == {"ErrStatus": {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
                                            "message": "node 'n1' is not allowed to access default/secret/s"}}
    lease = contracts.error_reply(request("query", "kube-node-lease/lease/n2"), refusal)
    assert lease.content["Object"] is None and lease.content["Err"]["ErrStatus"]["code"] == 403
    for reply in (secret, lease):
        with pytest.raises(StatusError) as raised:
            contracts.parse_reply(reply)
        assert (raised.value.code, raised.value.reason) == (403, "Forbidden")


def test_status_error_drops_kind_and_api_version_as_the_edge_decoder_does() -> None:
    error = StatusError({"kind": "Status", "apiVersion": "v1", "code": 404, "reason": "NotFound", "message": "gone"})
    assert error.wire() == {"ErrStatus": {"code": 404, "reason": "NotFound", "message": "gone", "metadata": {}, "status": "Failure"}}
    assert str(error) == "gone"
    timeout = RequestTimeout("query default/pod/p", 2.0)
    assert isinstance(timeout, StatusError) and timeout.code == 504 and timeout.reason == "Timeout"
    assert not_connected().code == 503


@pytest.mark.parametrize("content, expected", [
    ("OK", "OK"),
    ({"metadata": {"name": "c"}, "data": {}}, {"metadata": {"name": "c"}, "data": {}}),
    ('{"metadata":{"name":"c"}}', {"metadata": {"name": "c"}}),
    (['{"metadata":{"name":"c"}}'], {"metadata": {"name": "c"}}),  # upstream MetaManager's local answer
    ({"Object": None, "Err": None}, None),
])
def test_every_reply_shape_a_peer_sends_parses(content: object, expected: object) -> None:
    assert contracts.parse_reply(request("query", "default/configmap/c").response(content)) == expected


@pytest.mark.parametrize("content", ["{not json", [], ["{bad"], {"Err": "boom"}, {"Err": {"ErrStatus": "x"}}])
def test_malformed_replies_are_errors_never_crashes(content: object) -> None:
    with pytest.raises(StatusError):
        contracts.parse_reply(request("query", "default/configmap/c").response(content))


def test_which_messages_need_an_ack() -> None:
    def push(operation: str, resource: str) -> Message:
        return contracts.push(operation, resource, {"metadata": {"uid": "a"}}, resource_version="1")

    assert contracts.needs_ack(push("insert", "default/pod/p"))
    assert contracts.needs_ack(push("update", "null/node/n1"))
    assert not contracts.needs_ack(push("delete", "null/node/n1"))
    assert not contracts.needs_ack(push("update", "kube-node-lease/lease/n1"))
    reply = Message.new(source="edgecontroller", group="resource", operation="response", resource="default/configmap/c",
                        content={"metadata": {"uid": "u"}, "data": {}})
    assert contracts.needs_ack(reply)
    patch_reply = Message.new(source="edgecontroller", group="resource", operation="response",
                              resource="default/podpatch/p", content={"Object": {}, "Err": None})
    assert not contracts.needs_ack(patch_reply)


def test_ack_names_the_push_it_acks() -> None:
    pushed = contracts.push("insert", "default/pod/p", {"metadata": {"uid": "a"}})
    ack = contracts.ack(pushed)
    assert (ack.parent_msg_id, ack.content, ack.route.source, ack.route.resource) == (
        pushed.msg_id, "OK", "edgecontroller", "default/pod/p")


def _captured(name: str) -> list[tuple[str, Message]]:
    frames = []
    for line in (UPSTREAM / name).read_text().splitlines():
        record = json.loads(line)
        if isinstance(record.get("frame"), dict):
            frames.append((record["dir"], decode(json.dumps(record["frame"]))))
    return frames


def test_captured_cloud_replies_parse_and_our_builders_make_the_same_shape() -> None:
    frames = _captured("capture1-full.jsonl")
    requests = {m.msg_id: m for direction, m in frames if direction == "edge->cloud" and not m.parent_msg_id}
    checked = 0
    for direction, reply in frames:
        request = requests.get(reply.parent_msg_id)
        if direction != "cloud->edge" or request is None or reply.route.operation != "response":
            continue  # (upstream's node update after the insert names the insert as parent, yet is a push)
        try:
            answer = contracts.parse_reply(reply)
        except StatusError as error:
            rebuilt = contracts.error_reply(request, error)
        else:
            rebuilt = (contracts.bare_reply(request, answer) if contracts.replies_bare(request)
                       else contracts.object_reply(request, answer))
        assert type(rebuilt.content) is type(reply.content)
        if isinstance(reply.content, dict):
            assert list(rebuilt.content) == list(reply.content), reply.describe()
        assert (rebuilt.route.operation, rebuilt.route.group, rebuilt.parent_msg_id) == ("response", "resource", request.msg_id)
        checked += 1
    assert checked >= 10
