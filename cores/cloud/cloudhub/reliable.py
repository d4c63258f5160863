"""Per-node reliable delivery: the ack queue of one edge node, without I/O (upstream ``message_pool``).

Messages that need an ack go one at a time, keyed by the object's UID: a newer version replaces
an unsent older one, a delete replaces anything; the one in flight is resent every
``RESEND_INTERVAL`` seconds until the edge's ``response`` names it as parent. What the node has
acked is remembered (uid -> resourceVersion, mirrored in ObjectSync) so an object is never sent
again unless it is newer. Bound and policy: at most ``limit`` objects wait per node; past that a
new object is refused (and logged by the caller) — nothing is lost for good, because
SyncController compares ObjectSyncs with the cluster and queues again whatever is behind.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses

from cores.beehive import Message

RESEND_INTERVAL = 5.0


def version(text: str) -> int:
    """resourceVersions compare as unsigned integers (upstream ``CompareResourceVersion``)."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


@dataclasses.dataclass
class Entry:
    message: Message
    uid: str
    resource_version: int
    delete: bool


class NodeQueue:
    def __init__(self, node: str, limit: int = 10_000) -> None:
        self.node = node
        self.limit = limit
        self.pending: collections.OrderedDict[str, Entry] = collections.OrderedDict()
        self.in_flight: Entry | None = None
        self.acked: dict[str, int] = {}  # uid -> resourceVersion the node has
        self.ready = asyncio.Event()
        self.ack_received = asyncio.Event()

    def enqueue(self, message: Message, uid: str, delete: bool) -> bool:
        """Queue ``message`` for the node; False when it is not needed or the queue is full."""
        rv = version(message.header.resource_version)
        if not delete and rv and self.acked.get(uid, -1) >= rv:
            return False  # the node already has this version or a newer one
        if self.in_flight is not None and self.in_flight.uid == uid and not delete and self.in_flight.resource_version >= rv:
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
        self.ready.set()
        return True

    def start_next(self) -> Entry | None:
        if self.in_flight is None and self.pending:
            _, self.in_flight = self.pending.popitem(last=False)
            self.ack_received.clear()
        if not self.pending:
            self.ready.clear()
        return self.in_flight

    def ack(self, parent_msg_id: str) -> Entry | None:
        """The entry the edge just acked, if ``parent_msg_id`` names the one in flight."""
        entry = self.in_flight
        if entry is None or entry.message.msg_id != parent_msg_id:
            return None
        self.in_flight = None
        if entry.delete:
            self.acked.pop(entry.uid, None)
        else:
            self.acked[entry.uid] = max(entry.resource_version, self.acked.get(entry.uid, 0))
        self.ack_received.set()
        if self.pending:
            self.ready.set()
        return entry

    def __len__(self) -> int:
        return len(self.pending) + (1 if self.in_flight else 0)
