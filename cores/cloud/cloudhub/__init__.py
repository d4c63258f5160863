"""CloudHub: the cloud end of the cloud-edge link.

It owns the KubeEdge CA and the join token, serves the bootstrap HTTPS endpoints (10002) and
the WebSocket server (10000), and moves messages between edge sessions and the cloud modules:
up from a node with the ``node/<id>/`` prefix added, down to a node with it stripped.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from cores.beehive import Context, Message
from cores.cloud.cloudhub import bootstrap, credentials, objectsync
from cores.cloud.cloudhub.hub import Hub, HubSettings
from cores.cloud.cloudhub.reliable import RESEND_INTERVAL, Entry, NodeQueue, version
from cores.cloud.kube import Kube, KubeError
from cores.common.config import Config
from cores.common.resource import ResourceError, parse_object, split_node_prefix
from cores.wire import Limits

ACKED_TYPES = frozenset({"pod", "configmap", "secret", "device", "devicemodel"})
ACKED_RESPONSE_TYPES = frozenset({"configmap", "secret", "persistentvolume", "persistentvolumeclaim", "volumeattachment"})


def needs_ack(message: Message) -> bool:
    """Upstream's rule (doc 4.2): object pushes and object-carrying query replies are acked."""
    if message.route.group != "resource":
        return False
    try:
        kind = parse_object(message.route.resource).type
    except ResourceError:
        return False
    operation = message.route.operation
    if operation in ("insert", "update", "delete"):
        return kind in ACKED_TYPES or (kind == "node" and operation == "update")
    if operation == "response":
        content = message.content
        return kind in ACKED_RESPONSE_TYPES and isinstance(content, dict) and "metadata" in content
    return False


def object_uid(message: Message) -> str:
    content = message.content if isinstance(message.content, dict) else {}
    return str((content.get("metadata") or {}).get("uid") or "")

log = logging.getLogger("kubeedge.cloudhub")


class CloudHub:
    name = "cloudhub"
    group = "cloudhub"

    def __init__(self, config: Config, kube: Kube) -> None:
        self.config = config
        self.hub_config = config.modules.cloudHub
        self.kube = kube
        self.hub: Hub | None = None
        self._runners: list[Any] = []
        self._refresher: asyncio.Task[None] | None = None
        self.queues: dict[str, NodeQueue] = {}
        self.connected: dict[str, asyncio.Event] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._recording: dict[tuple[str, str], asyncio.Task[None]] = {}  # ObjectSync creations in flight
        self.queue_limit = 10_000  # objects waiting per node; see reliable.py for the policy

    async def start(self, ctx: Context) -> None:
        hub = self.hub_config
        creds = await credentials.ensure(self.kube, hub)
        ca_file, cert_file, key_file = (str(p) for p in credentials.write_tls_files(creds, hub))
        if hub.https.enable:
            server = bootstrap.BootstrapServer(creds, self._node_exists, self._signing_duration())
            context = bootstrap.tls_context(ca_file, cert_file, key_file, require_client=False)
            self._runners.append(await bootstrap.serve(server.application(), hub.https.address, int(hub.https.port), context))
            log.info("bootstrap server listening on %s:%d", hub.https.address, hub.https.port)
        from cores.cloud.crds import ensure_crds

        await ensure_crds(self.kube)  # ObjectSync must exist before the first push is queued
        await self._load_acked()
        self.hub = Hub(ctx, HubSettings(
            host=hub.websocket.address, port=int(hub.websocket.port), keepalive_timeout=float(hub.keepaliveInterval),
            node_limit=int(hub.nodeLimit), authorization=bool(hub.authorization.enable),
            authorization_debug=bool(hub.authorization.debug), frame_limits=Limits(),
        ), on_ack=self._on_ack, on_session=self._on_session)
        if hub.websocket.enable:
            await self.hub.start(bootstrap.tls_context(ca_file, cert_file, key_file, require_client=True))
        self._refresher = asyncio.create_task(self._refresh_token(creds))
        while True:
            await self._downstream(await ctx.receive(self.name))

    async def stop(self) -> None:
        for sender in self._senders.values():
            sender.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
        if self.hub is not None:
            await self.hub.stop()
        for runner in self._runners:
            await runner.cleanup()

    def _signing_duration(self) -> datetime.timedelta:
        seconds = int(self.hub_config.get("edgeCertSigningSeconds") or 0)
        if seconds > 0:
            return datetime.timedelta(seconds=seconds)
        return datetime.timedelta(days=float(self.hub_config.edgeCertSigningDuration))

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.kube.get_node(name)
        except KubeError as error:
            if error.code == 404:
                return False
            raise
        return True

    async def _refresh_token(self, creds: credentials.Credentials) -> None:
        interval = float(self.hub_config.tokenRefreshDuration) * 3600
        while True:
            await asyncio.sleep(interval)
            try:
                await credentials.refresh_token(self.kube, self.hub_config, creds)
            except (KubeError, OSError) as error:
                log.error("token refresh failed, retrying in a minute: %s", error)
                interval = 60

    async def _downstream(self, message: Message) -> None:
        """A message from a cloud module to a node: strip the prefix, then queue it or send it now."""
        try:
            node_id, resource = split_node_prefix(message.route.resource)
        except ResourceError as error:
            log.error("cannot route %s to a node: %s", message.describe(), error)
            return
        if message.route.operation == "forget":  # EdgeController: the node was deleted
            self._forget(node_id)
            return
        message.route.resource = resource
        assert self.hub is not None
        if needs_ack(message) and object_uid(message):
            await self._enqueue(node_id, message)
        elif not await self.hub.send_to_node(node_id, message):
            log.info("node %s is not connected: %s not sent", node_id, message.describe())

    # reliable delivery --------------------------------------------------------------------
    def _queue(self, node_id: str) -> NodeQueue:
        queue = self.queues.get(node_id)
        if queue is None:
            queue = self.queues[node_id] = NodeQueue(node_id, self.queue_limit)
            self.connected.setdefault(node_id, asyncio.Event())
            self._senders[node_id] = asyncio.create_task(self._send_queued(queue))
        return queue

    def _forget(self, node_id: str) -> None:
        sender = self._senders.pop(node_id, None)
        if sender is not None:
            sender.cancel()
        self.queues.pop(node_id, None)
        self.connected.pop(node_id, None)
        log.info("forgot node %s and its queue", node_id)

    async def _enqueue(self, node_id: str, message: Message) -> None:
        queue = self._queue(node_id)
        uid = object_uid(message)
        first_time = uid not in queue.acked and message.route.operation != "delete"
        if not queue.enqueue(message, uid, message.route.operation == "delete"):
            if len(queue.pending) >= queue.limit:
                log.warning("queue of node %s is full (%d): %s left to SyncController", node_id, queue.limit, message.describe())
            return
        if first_time and message.route.operation != "response":
            # In the background: the mailbox must not wait on two API calls per push. The ack's
            # bookkeeping waits for this record first (see _record_ack).
            self._recording[(node_id, uid)] = asyncio.create_task(self._record_queued(node_id, uid, message.content))

    async def _record_queued(self, node_id: str, uid: str, obj: Any) -> None:
        try:
            await objectsync.record_queued(self.kube, node_id, obj)
        except KubeError as error:
            log.warning("cannot record ObjectSync for %s on %s: %s", uid, node_id, error)

    async def _send_queued(self, queue: NodeQueue) -> None:
        """One message at a time for this node, resent every 5 s until the node acks it."""
        assert self.hub is not None
        connected = self.connected[queue.node]
        while True:
            entry = queue.start_next()
            if entry is None:
                await queue.ready.wait()
                continue
            while queue.in_flight is entry:
                await connected.wait()
                await self.hub.send_to_node(queue.node, entry.message)
                try:
                    await asyncio.wait_for(queue.ack_received.wait(), RESEND_INTERVAL)
                except TimeoutError:
                    log.debug("no ack from %s for %s yet: resending", queue.node, entry.message.describe())

    async def _on_ack(self, message: Message) -> None:
        node_id, _ = split_node_prefix(message.route.resource)
        queue = self.queues.get(node_id)
        entry = queue.ack(message.parent_msg_id) if queue is not None else None
        if entry is not None:
            asyncio.create_task(self._record_ack(node_id, entry))

    async def _record_ack(self, node_id: str, entry: Entry) -> None:
        recording = self._recording.pop((node_id, entry.uid), None)
        if recording is not None:
            await recording
        content = entry.message.content if isinstance(entry.message.content, dict) else {}
        namespace = (content.get("metadata") or {}).get("namespace")
        try:
            if entry.delete:
                await objectsync.remove(self.kube, node_id, namespace, entry.uid)
            elif entry.message.route.operation != "response":
                await objectsync.set_version(self.kube, node_id, namespace, entry.uid, str(entry.resource_version))
        except KubeError as error:
            log.warning("cannot record the ack of %s by %s: %s", entry.uid, node_id, error)

    def _on_session(self, node_id: str, connected: bool) -> None:
        event = self.connected.setdefault(node_id, asyncio.Event())
        if connected:
            event.set()
            self._queue(node_id)
        else:
            event.clear()

    async def _load_acked(self) -> None:
        """What nodes acked before this CloudCore started, from their ObjectSyncs."""
        try:
            syncs = await objectsync.list_all(self.kube)
        except KubeError as error:
            log.warning("cannot read ObjectSyncs: %s", error)
            return
        for sync in syncs:
            name = sync["metadata"]["name"]
            node_id, uid = objectsync.node_of(name), name.rsplit(".", 1)[-1]
            acked = version((sync.get("status") or {}).get("objectResourceVersion", "0"))
            if acked:
                self._queue(node_id).acked[uid] = acked
