"""Per-node reliable delivery, without I/O (upstream ``message_pool``): fed with messages and a clock.

Messages that need an ack go one at a time per node, keyed by the object's UID: a newer
version replaces an unsent older one, a delete replaces anything; the one in flight is resent
every :data:`RESEND_INTERVAL` seconds until the edge's response names it as parent (a reconnect
sends it again at once). What the node has acked is remembered (uid -> resourceVersion, mirrored
in ObjectSync) so an object is never sent again unless it is newer.

Bound and policy: at most ``limit`` objects wait per node; past that a new object is refused
(the caller logs it). Nothing is lost for good: SyncController compares ObjectSyncs with the
cluster and queues again whatever is behind.

The adapter's loop: ``message = queue.poll(now)`` (send it when not None), then sleep until
``queue.wake_at(now)`` or until something is enqueued, acked or the node connects.
"""

from __future__ import annotations

import collections
import dataclasses

from cores.beehive.message import Message

RESEND_INTERVAL = 5.0


def version(text: str | None) -> int:
    """resourceVersions compare as unsigned integers (upstream ``CompareResourceVersion``)."""
    try:
        return int(text or 0)
    except (TypeError, ValueError):
        return 0


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    message: Message
    uid: str
    resource_version: int
    delete: bool


class NodeQueue:
    def __init__(self, node: str, limit: int = 10_000, resend_interval: float = RESEND_INTERVAL) -> None:
        self.node = node
        self.limit = limit
        self.resend_interval = resend_interval
        self.pending: collections.OrderedDict[str, Entry] = collections.OrderedDict()
        self.in_flight: Entry | None = None
        self.sent_at: float | None = None      # when the one in flight last went out (None: not yet)
        self.connected = False
        self.acked: dict[str, int] = {}        # uid -> resourceVersion the node has
        self.sends = 0                         # every send, resends included

    # -- inputs ------------------------------------------------------------------------------
    def enqueue(self, message: Message, uid: str, delete: bool) -> bool:
        """Queue ``message``; False when the node needs nothing new or the queue is full."""
        rv = version(message.header.resource_version)
        if not delete and rv and self.acked.get(uid, -1) >= rv:
            return False  # the node already has this version or a newer one
        flying = self.in_flight
        if flying is not None and flying.uid == uid and not delete and flying.resource_version >= rv:
            return False
        waiting = self.pending.get(uid)
        if waiting is not None:
            if waiting.delete or (not delete and rv <= waiting.resource_version):
                return False
            self.pending[uid] = Entry(message, uid, rv, delete)
            return True
        if len(self.pending) >= self.limit:
            return False
        self.pending[uid] = Entry(message, uid, rv, delete)
        return True

    def ack(self, parent_msg_id: str) -> Entry | None:
        """The entry the edge just acked, when ``parent_msg_id`` names the one in flight.

        An ack for anything else (a duplicate, or one for an entry already replaced) is None
        and changes nothing.
        """
        entry = self.in_flight
        if entry is None or entry.message.msg_id != parent_msg_id:
            return None
        self.in_flight = None
        self.sent_at = None
        if entry.delete:
            self.acked.pop(entry.uid, None)
        else:
            self.acked[entry.uid] = max(entry.resource_version, self.acked.get(entry.uid, 0))
        return entry

    def set_connected(self, connected: bool) -> None:
        """The node's session opened or closed; on a new session the one in flight goes again at once."""
        self.connected = connected
        self.sent_at = None

    # -- outputs -----------------------------------------------------------------------------
    def poll(self, now: float) -> Message | None:
        """The message to send now, if any: the next one, or the one in flight when its ack is late."""
        if not self.connected:
            return None
        if self.in_flight is None:
            if not self.pending:
                return None
            _, self.in_flight = self.pending.popitem(last=False)
            self.sent_at = None
        if self.sent_at is not None and now < self.sent_at + self.resend_interval:
            return None
        self.sent_at = now
        self.sends += 1
        return self.in_flight.message

    def wake_at(self) -> float | None:
        """When :meth:`poll` may next have something without any new input (None: only on input)."""
        if not self.connected:
            return None
        if self.in_flight is None:
            return 0.0 if self.pending else None
        return 0.0 if self.sent_at is None else self.sent_at + self.resend_interval

    def __len__(self) -> int:
        return len(self.pending) + (1 if self.in_flight else 0)
