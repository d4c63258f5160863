"""The per-node ack queue: ordering, replacement, acked versions, and its bound."""

from __future__ import annotations

from cores.beehive import Message
from cores.cloud.cloudhub import needs_ack
from cores.cloud.cloudhub.reliable import NodeQueue


def push(uid: str, rv: int, operation: str = "update", resource: str = "default/pod/p") -> Message:
    return Message.new(source="edgecontroller", group="resource", operation=operation, resource=resource,
                       content={"metadata": {"uid": uid, "name": "p", "namespace": "default"}}, resource_version=str(rv))


async def test_one_in_flight_and_newer_replaces_unsent() -> None:
    queue = NodeQueue("n1")
    assert queue.enqueue(push("a", 1), "a", False)
    assert queue.enqueue(push("b", 2), "b", False)
    first = queue.start_next()
    assert first is not None and first.uid == "a"
    assert queue.start_next() is first  # still in flight: nothing else goes
    newer = push("b", 5)
    assert queue.enqueue(newer, "b", False)  # replaces the unsent b@2
    assert not queue.enqueue(push("b", 4), "b", False)  # older than what waits: dropped
    assert queue.ack("not-it") is None
    assert queue.ack(first.message.msg_id) is first
    second = queue.start_next()
    assert second is not None and second.message is newer


async def test_acked_versions_are_not_sent_again_but_deletes_are() -> None:
    queue = NodeQueue("n1")
    queue.enqueue(push("a", 7), "a", False)
    entry = queue.start_next()
    assert entry is not None
    queue.ack(entry.message.msg_id)
    assert queue.acked == {"a": 7}
    assert not queue.enqueue(push("a", 7), "a", False)  # the node has it
    assert queue.enqueue(push("a", 8), "a", False)
    assert queue.enqueue(push("a", 0, "delete"), "a", True)  # a delete replaces anything waiting
    assert not queue.enqueue(push("a", 9), "a", False)  # and nothing replaces a waiting delete
    entry = queue.start_next()
    assert entry is not None and entry.delete
    queue.ack(entry.message.msg_id)
    assert "a" not in queue.acked


async def test_full_queue_refuses_new_objects_and_keeps_updating_waiting_ones() -> None:
    queue = NodeQueue("n1", limit=3)
    for uid in "abc":
        assert queue.enqueue(push(uid, 1), uid, False)
    assert not queue.enqueue(push("d", 1), "d", False)  # full: left to SyncController's resync
    assert queue.enqueue(push("c", 2), "c", False)  # an object already waiting still gets its newest version
    assert len(queue) == 3


def test_which_messages_need_an_ack() -> None:
    assert needs_ack(push("a", 1, "insert"))
    assert needs_ack(push("a", 1, "update", "null/node/n1"))
    assert not needs_ack(push("a", 1, "delete", "null/node/n1"))
    assert not needs_ack(push("a", 1, "update", "kube-node-lease/lease/n1"))
    reply = Message.new(source="edgecontroller", group="resource", operation="response", resource="default/configmap/c",
                        content={"metadata": {"uid": "u"}, "data": {}})
    assert needs_ack(reply)
    patch_reply = Message.new(source="edgecontroller", group="resource", operation="response",
                              resource="default/podpatch/p", content={"Object": {}, "Err": None})
    assert not needs_ack(patch_reply)
