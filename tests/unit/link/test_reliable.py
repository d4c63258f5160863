"""The per-node ack queue, driven by messages and a fake clock: ordering, replacement, lost and
duplicate acks, resend timing, reconnects and its bound."""

from __future__ import annotations

from cores.beehive import Message
from cores.link.reliable import RESEND_INTERVAL, NodeQueue


def push(uid: str, rv: int, operation: str = "update", resource: str = "default/pod/p") -> Message:
    return Message.new(source="edgecontroller", group="resource", operation=operation, resource=resource,
                       content={"metadata": {"uid": uid, "name": "p", "namespace": "default"}}, resource_version=str(rv))


def connected_queue(limit: int = 10_000) -> NodeQueue:
    queue = NodeQueue("n1", limit)
    queue.set_connected(True)
    return queue


def test_one_in_flight_and_newer_replaces_unsent() -> None:
    queue = connected_queue()
    a, b = push("a", 1), push("b", 2)
    assert queue.enqueue(a, "a", False) and queue.enqueue(b, "b", False)
    assert queue.poll(0.0) is a
    assert queue.poll(1.0) is None  # a is in flight: nothing else goes, and it is not due again yet
    newer = push("b", 5)
    assert queue.enqueue(newer, "b", False)  # replaces the unsent b@2
    assert not queue.enqueue(push("b", 4), "b", False)  # older than what waits: dropped
    assert queue.ack(a.msg_id) is not None
    assert queue.poll(1.5) is newer


def test_lost_ack_resends_after_exactly_the_interval_and_not_before() -> None:
    queue = connected_queue()
    message = push("a", 1)
    queue.enqueue(message, "a", False)
    assert queue.poll(10.0) is message
    assert queue.wake_at() == 10.0 + RESEND_INTERVAL
    assert queue.poll(10.0 + RESEND_INTERVAL - 0.001) is None
    assert queue.poll(10.0 + RESEND_INTERVAL) is message  # the ack was lost: same message, same id
    assert queue.poll(10.0 + 2 * RESEND_INTERVAL) is message
    assert queue.sends == 3
    assert queue.ack(message.msg_id) is not None
    assert queue.wake_at() is None and queue.poll(100.0) is None


def test_duplicate_and_stray_acks_change_nothing() -> None:
    queue = connected_queue()
    first, second = push("a", 1), push("b", 1)
    queue.enqueue(first, "a", False)
    queue.enqueue(second, "b", False)
    assert queue.poll(0.0) is first
    assert queue.ack("not-it") is None
    entry = queue.ack(first.msg_id)
    assert entry is not None and entry.uid == "a"
    assert queue.poll(0.0) is second
    assert queue.ack(first.msg_id) is None  # the duplicate of the first ack does not ack the second
    assert queue.in_flight is not None and queue.in_flight.message is second
    assert queue.acked == {"a": 1}


def test_nothing_is_sent_while_disconnected_and_a_reconnect_resends_at_once() -> None:
    queue = NodeQueue("n1")
    message = push("a", 1)
    queue.enqueue(message, "a", False)
    assert queue.poll(0.0) is None and queue.wake_at() is None
    queue.set_connected(True)
    assert queue.wake_at() == 0.0
    assert queue.poll(1.0) is message
    queue.set_connected(False)
    queue.set_connected(True)  # a new session: the one in flight goes again, without waiting 5 s
    assert queue.poll(1.1) is message


def test_acked_versions_are_not_sent_again_but_deletes_are() -> None:
    queue = connected_queue()
    message = push("a", 7)
    queue.enqueue(message, "a", False)
    queue.poll(0.0)
    queue.ack(message.msg_id)
    assert queue.acked == {"a": 7}
    assert not queue.enqueue(push("a", 7), "a", False)  # the node has it
    assert queue.enqueue(push("a", 8), "a", False)
    delete = push("a", 0, "delete")
    assert queue.enqueue(delete, "a", True)  # a delete replaces anything waiting
    assert not queue.enqueue(push("a", 9), "a", False)  # and nothing replaces a waiting delete
    assert queue.poll(1.0) is delete
    queue.ack(delete.msg_id)
    assert "a" not in queue.acked


def test_an_older_version_than_the_one_in_flight_is_not_queued() -> None:
    queue = connected_queue()
    queue.enqueue(push("a", 5), "a", False)
    queue.poll(0.0)
    assert not queue.enqueue(push("a", 5), "a", False)
    assert queue.enqueue(push("a", 6), "a", False)  # newer: waits behind the one in flight


def test_full_queue_refuses_new_objects_and_keeps_updating_waiting_ones() -> None:
    queue = NodeQueue("n1", limit=3)
    for uid in "abc":
        assert queue.enqueue(push(uid, 1), uid, False)
    assert not queue.enqueue(push("d", 1), "d", False)  # full: left to SyncController's resync
    assert queue.enqueue(push("c", 2), "c", False)  # an object already waiting still gets its newest version
    assert len(queue) == 3
