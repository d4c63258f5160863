"""CloudHub: the cloud end of the cloud-edge link.

It owns the KubeEdge CA and the join token, serves the bootstrap HTTPS endpoints (10002) and
the WebSocket server (10000), and moves messages between edge sessions and the cloud modules:
up from a node with the ``node/<id>/`` prefix added, down to a node with it stripped.

A deleted Node loses its keys: EdgeController's ``forget`` makes CloudHub revoke every certificate
issued to the node (:mod:`cores.cloud.revocation`, shared by all CloudCores and by CloudStream) and close its session; the
WebSocket admission and the bootstrap server's renewal refuse a revoked certificate.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from cores.beehive import Context, Message
from cores.cloud.cloudhub import bootstrap, credentials, objectsync
from cores.cloud.revocation import Revocations
from cores.cloud.cloudhub.hub import (NODE_MESSAGE_BURST, NODE_MESSAGE_QPS, SEND_BUFFER_BYTES, WRITE_TIMEOUT_SECONDS, Hub,
                                     HubSettings)
from cores.cloud.kube import Kube, KubeError
from cores.common.config import Config
from cores.common.resource import ResourceError, split_node_prefix
from cores.common.tasks import TaskSupervisor
from cores.link import contracts, routing
from cores.link.reliable import Entry, NodeQueue, version
from cores.wire import Limits

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
        self.tasks = TaskSupervisor(self.name)
        self.queues: dict[str, NodeQueue] = {}
        self._wakes: dict[str, asyncio.Event] = {}  # per node: its queue has something new
        self._recording: dict[tuple[str, str], asyncio.Task[None]] = {}  # ObjectSync creations in flight
        self.queue_limit = 10_000  # objects waiting per node; see reliable.py for the policy
        self.revocations = Revocations(kube)

    async def start(self, ctx: Context) -> None:
        hub = self.hub_config
        creds = await credentials.ensure(self.kube, hub)
        ca_file, cert_file, key_file = (str(p) for p in credentials.write_tls_files(creds, hub))
        # before any edge is served: the revoked certificates, and what nodes deleted meanwhile still hold
        await self.revocations.load()
        await self.revocations.reconcile(await self._node_names())
        if hub.https.enable:
            server = bootstrap.BootstrapServer(creds, self._node_exists, self._signing_duration(), self.revocations)
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
            owner=self.name, is_revoked=self.revocations.is_revoked,
            write_timeout=float(hub.get("writeTimeout") or WRITE_TIMEOUT_SECONDS),
            send_buffer_bytes=int(hub.get("sendBufferBytes") or SEND_BUFFER_BYTES),
            node_message_qps=float(hub.get("nodeMessageQPS", NODE_MESSAGE_QPS)),
            node_message_burst=int(hub.get("nodeMessageBurst") or NODE_MESSAGE_BURST),
        ))
        if hub.websocket.enable:
            await self.hub.start(bootstrap.tls_context(ca_file, cert_file, key_file, require_client=True))
        self.tasks.keep(lambda: self._refresh_token(creds), "token-refresh")
        self.tasks.keep(self.revocations.keep_current, "revocations")
        mailbox = asyncio.create_task(self._read_mailbox(ctx), name="cloudhub-mailbox")
        failed = asyncio.create_task(self.tasks.failed(), name="cloudhub-supervision")
        try:
            done, _ = await asyncio.wait([mailbox, failed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a supervised task that gave up stops CloudCore loudly
        finally:
            mailbox.cancel()
            failed.cancel()

    async def _read_mailbox(self, ctx: Context) -> None:
        while True:
            message = await ctx.receive(self.name)
            if routing.is_ack_event(message):
                self._on_ack(message)
            elif routing.is_session_event(message):
                self._on_session(message.route.resource.split("/", 1)[-1], message.route.operation == "connected")
            else:
                await self._downstream(message)

    async def stop(self) -> None:
        await self.tasks.close()
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

    async def _node_names(self) -> list[str]:
        listed = await self.kube.request("GET", "/api/v1/nodes")
        return [str((item.get("metadata") or {}).get("name") or "") for item in listed.get("items") or []]

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
            node_id, message = routing.to_edge(message)
        except ResourceError as error:
            log.error("cannot route %s to a node: %s", message.describe(), error)
            return
        if message.route.operation == "forget":  # EdgeController: the node was deleted
            self._forget(node_id)
            return
        if (message.route.resource == f"null/node/{node_id}" and message.route.operation != "delete"
                and not self.revocations.seen(node_id)):
            # the Node exists: its certificates now count as registered (revoked at start if it goes meanwhile)
            self.tasks.spawn(self._node_seen(node_id), f"registered-{node_id}")
        assert self.hub is not None
        if contracts.needs_ack(message) and contracts.object_uid(message):
            await self._enqueue(node_id, message)
        elif not await self.hub.send_to_node(node_id, message):
            log.info("node %s is not connected: %s not sent", node_id, message.describe())

    # reliable delivery --------------------------------------------------------------------
    def _queue(self, node_id: str) -> NodeQueue:
        queue = self.queues.get(node_id)
        if queue is None:
            queue = self.queues[node_id] = NodeQueue(node_id, self.queue_limit)
            self._wakes[node_id] = asyncio.Event()
            queue.set_connected(self.hub is not None and node_id in self.hub.sessions)
            self.tasks.keep(lambda: self._send_queued(queue), f"send-{node_id}")
        return queue

    def _wake(self, node_id: str) -> None:
        wake = self._wakes.get(node_id)
        if wake is not None:
            wake.set()

    def _forget(self, node_id: str) -> None:
        self.tasks.cancel(f"send-{node_id}")
        self.queues.pop(node_id, None)
        self._wakes.pop(node_id, None)
        log.info("forgot node %s and its queue", node_id)
        self.tasks.spawn(self._revoke(node_id), f"revoke-{node_id}")

    async def _revoke(self, node_id: str) -> None:
        """Revoke the deleted node's certificates, then close its session; retried until the cluster takes it."""
        delay = 1.0
        while True:
            try:
                await self.revocations.revoke_node(node_id)
                break
            except Exception as error:  # noqa: BLE001 - the API may be down: the revocation must still happen
                log.error("cannot revoke the certificates of deleted node %s, retrying in %.0fs: %s", node_id, delay, error)
                self._close_revoked(node_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self._close_revoked(node_id)

    def _close_revoked(self, node_id: str) -> None:
        if self.hub is not None:
            self.hub.close_node(node_id, 4003, "node deleted: certificate revoked")

    async def _node_seen(self, node_id: str) -> None:
        try:
            await self.revocations.node_seen(node_id)
        except Exception as error:  # noqa: BLE001 - only the start-up check misses it; logged, retried next time
            log.warning("cannot mark the certificates of node %s as registered: %s", node_id, error)
            self.revocations.unsee(node_id)

    async def _enqueue(self, node_id: str, message: Message) -> None:
        queue = self._queue(node_id)
        uid = contracts.object_uid(message)
        delete = message.route.operation == "delete"
        first_time = uid not in queue.acked and not delete
        if not queue.enqueue(message, uid, delete):
            if len(queue.pending) >= queue.limit:
                log.warning("queue of node %s is full (%d): %s left to SyncController", node_id, queue.limit, message.describe())
            return
        self._wake(node_id)
        if first_time and message.route.operation != "response":
            # In the background: the mailbox must not wait on two API calls per push. The ack's
            # bookkeeping waits for this record first (see _record_ack).
            self._recording[(node_id, uid)] = self.tasks.spawn(self._record_queued(node_id, uid, message.content),
                                                               f"objectsync-{node_id}")

    async def _record_queued(self, node_id: str, uid: str, obj: Any) -> None:
        try:
            await objectsync.record_queued(self.kube, node_id, obj)
        except KubeError as error:
            log.warning("cannot record ObjectSync for %s on %s: %s", uid, node_id, error)

    async def _send_queued(self, queue: NodeQueue) -> None:
        """The adapter of the node's queue: send what it says, sleep until it says to wake."""
        assert self.hub is not None
        loop = asyncio.get_running_loop()
        wake = self._wakes[queue.node]
        while True:
            wake.clear()
            message = queue.poll(loop.time())
            if message is not None:
                await self.hub.send_to_node(queue.node, message)
                continue
            wake_at = queue.wake_at()
            timeout = None if wake_at is None else max(wake_at - loop.time(), 0.0)
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                pass

    def _on_ack(self, message: Message) -> None:
        node_id, _ = split_node_prefix(message.route.resource)
        queue = self.queues.get(node_id)
        entry = queue.ack(message.parent_msg_id) if queue is not None else None
        if entry is not None:
            self._wake(node_id)
            self.tasks.spawn(self._record_ack(node_id, entry), f"record-ack-{node_id}")

    async def _record_ack(self, node_id: str, entry: Entry) -> None:
        recording = self._recording.pop((node_id, entry.uid), None)
        if recording is not None:
            await recording
        namespace = contracts.object_namespace(entry.message)
        try:
            if entry.delete:
                await objectsync.remove(self.kube, node_id, namespace, entry.uid)
            elif entry.message.route.operation != "response":
                await objectsync.set_version(self.kube, node_id, namespace, entry.uid, str(entry.resource_version))
        except KubeError as error:
            log.warning("cannot record the ack of %s by %s: %s", entry.uid, node_id, error)

    def _on_session(self, node_id: str, connected: bool) -> None:
        queue = self._queue(node_id) if connected else self.queues.get(node_id)
        if queue is not None:
            queue.set_connected(connected)
            self._wake(node_id)

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
