"""MetaManager: the edge's store of what the cloud said, and the path of edge requests to the cloud.

Cloud pushes (insert, update, delete) are written to SQLite (``meta(key, type, value)`` as
upstream) and acked with ``"OK"`` only once the commit is on disk (``synchronous=FULL``: an ack
survives a power cut). Requests from edge modules (made with :class:`cores.link.requests.CloudRequests`)
go to the cloud through EdgeHub as they are, with the requester's own id: the cloud's reply
comes back here (EdgeHub routes group ``resource`` to ``meta``), is stored when it carries an
object, acked as upstream's ``feedbackResponse`` does (insert, update and query replies), and
handed to the one requester that waits for it. With the cloud away, queries are answered from
SQLite and writes fail at once with 503.

Every SQLite call runs on the store's own thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cores.beehive import Context, Message
from cores.beehive.context import BeehiveError, SyncTimeout
from cores.beehive.message import OP_DELETE, OP_QUERY, OP_RESPONSE
from cores.common.config import Config
from cores.common.resource import ResourceError, parse_object
from cores.common.tasks import TaskSupervisor
from cores.link import application, contracts, routing
from cores.link.requests import CloudRequests
from cores.edge.metamanager.store import MetaStore
from cores.link.status import RequestTimeout, StatusError, not_connected

log = logging.getLogger("kubeedge.metamanager")

EDGED_TYPES = ("pod", "configmap", "secret")  # pushes Edged acts on, forwarded after the commit
TWIN_TYPES = ("device", "devicemodel")  # pushes DeviceTwin acts on (upstream: to the twin's DMI worker)
PENDING_PRUNE_AT = 256
CLOUD_FIRST_TIMEOUT = 5.0  # a MetaServer get waits this long for the cloud before the store answers  # requests in flight before those nobody waits for any more are dropped

T = TypeVar("T")


class MetaManager:
    name = "metamanager"
    group = "meta"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.modules.metaManager
        self.hub_module = str(self.settings.contextSendModule)
        self.store = MetaStore(Path(config.database.dataSource))
        # One thread owns the database: writes keep their order, and the loop never blocks on disk.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="metastore")
        self.connected = False
        self._pending: dict[str, Message] = {}  # request id -> request forwarded to the cloud, awaiting its reply
        self.tasks = TaskSupervisor(self.name)
        self.metaserver: Any = None

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        await self._replay_pods()
        server = self.settings.get("metaServer") or {}
        if server.get("enable"):
            from cores.edge.metamanager.metaserver import MetaServer  # h11 and the printers, only when on

            edged = self.config.modules.get("edged") or {}
            runtime = str((edged.get("tailoredKubeletConfig") or {}).get("containerRuntimeEndpoint") or "") \
                if edged.get("enable") else ""
            address = str(server.get("server") or "127.0.0.1:10550")
            node = str(edged.get("hostnameOverride") or "")
            auth = context = None
            dummy = ""
            if (self.config.get("featureGates") or {}).get("requireAuthorization"):
                dummy = str(server.get("dummyServer") or "")
                from cores.edge.metamanager.metaauth import MetaAuth
                from cores.edge.metamanager.metatls import serving_context

                auth = MetaAuth(self._apply_in_cloud, node)
                context, _ = serving_context(server, address.rpartition(":")[0] or "127.0.0.1")
            self.metaserver = MetaServer(address, self._db, self.store, runtime or None, self._unhold if runtime else None,
                                         node, self._ask_cloud, self._apply_in_cloud, auth=auth, ssl_context=context)
            await self.metaserver.start(dummy)
        while True:
            message = await ctx.receive(self.name)
            if routing.is_connection_event(message):
                self.connected = routing.connected_in(message)
                if not self.connected:
                    self._fail_pending()
            elif message.route.operation in (OP_RESPONSE, application.RESPONSE_OPERATION) and message.parent_msg_id:
                self.tasks.spawn(self._finish(message), "reply")
            elif message.route.source == "edged" or message.route.group in ("meta", application.GROUP):
                self._request(message)
            elif message.route.operation in contracts.PUSH_OPERATIONS:
                await self._push(message)

    async def stop(self) -> None:
        if self.metaserver is not None:
            await self.metaserver.stop()
        await self.tasks.close()
        await self._db(self.store.close)
        self._executor.shutdown(wait=True)

    async def _db(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(call, *args))

    # -- pushes --------------------------------------------------------------------------------
    async def _push(self, message: Message) -> None:
        """A cloud push: commit it, then ack it (never the other way round)."""
        try:
            resource = parse_object(message.route.resource)
        except ResourceError as error:
            log.warning("ignored push %s: %s", message.describe(), error)
            return
        if message.route.operation == OP_DELETE:
            self._publish(await self._db(self.store.delete, message.route.resource))
            uid = contracts.object_uid(message)
            if resource.type == "pod" and uid:
                # the tokens bound to the pod go with it (upstream's DeleteServiceAccountToken)
                await self._db(self.store.delete_tokens_of, f"{resource.namespace}/serviceaccounttoken/", uid)
        else:
            self._publish(await self._db(self.store.put, message.route.resource, resource.type, message.content))
        await self.ctx.send(self.hub_module, contracts.ack(message))
        if resource.type in EDGED_TYPES:
            await self._to_edged(message.route.operation, message.route.resource, message.content)
        elif resource.type in TWIN_TYPES and "twin" in self.ctx.modules():
            await self.ctx.send("twin", Message.new(source="metamanager", group="meta", operation=message.route.operation,
                                                    resource=message.route.resource, content=message.content))

    async def _to_edged(self, operation: str, resource: str, content: Any) -> None:
        if "edged" in self.ctx.modules():
            await self.ctx.send("edged", Message.new(source="metamanager", group="meta", operation=operation,
                                                     resource=resource, content=content))

    async def _replay_pods(self) -> None:
        """Autonomy: the pods this node was told about come back from SQLite at start, cloud or not."""
        for key, value in await self._db(self.store.of_type, "pod"):
            await self._to_edged("insert", key, json.loads(value))

    # -- requests ------------------------------------------------------------------------------
    def _request(self, request: Message) -> None:
        if "/event/" in request.route.resource:
            # events go straight to the cloud and get no reply (upstream); with the cloud away, dropped
            if self.connected:
                self._forward(request)
            return
        if not self.connected:
            if request.route.operation == OP_QUERY:
                self.tasks.spawn(self._answer_locally(request), "local-query")
            else:
                self.ctx.send_response(contracts.local_error(request, not_connected()))
            return
        if len(self._pending) >= PENDING_PRUNE_AT:
            self._prune_pending()
        self._pending[request.msg_id] = request
        self._forward(request)

    def _forward(self, request: Message) -> None:
        try:
            self.ctx.send_nowait(self.hub_module, request)
        except BeehiveError as error:
            self._pending.pop(request.msg_id, None)
            log.warning("cannot hand %s to %s: %s", request.describe(), self.hub_module, error)
            self.ctx.send_response(contracts.local_error(request, StatusError.make(503, "ServiceUnavailable", str(error))))

    def _prune_pending(self) -> None:
        """Forget requests whose requester gave up (its timeout passed): their late replies are dropped."""
        for msg_id in [msg_id for msg_id in self._pending if not self.ctx.is_awaited(msg_id)]:
            del self._pending[msg_id]

    async def _finish(self, reply: Message) -> None:
        """The cloud answered a request: keep what it carries, ack it, then wake the requester."""
        request = self._pending.pop(reply.parent_msg_id, None)
        if request is None:
            if not self.ctx.send_response(reply):
                log.debug("reply nobody waits for (its request timed out): %s", reply.describe())
            return
        if not application.is_response(reply):
            await self._remember(request, reply)
        if contracts.wants_feedback(request):
            await self.ctx.send(self.hub_module, contracts.ack(reply))
        self.ctx.send_response(reply)

    def _fail_pending(self) -> None:
        """The link broke: requests sent on it will get no reply, so answer them now."""
        pending, self._pending = self._pending, {}
        for request in pending.values():
            self.ctx.send_response(contracts.local_error(request, not_connected()))

    async def _remember(self, request: Message, reply: Message) -> None:
        try:
            obj = contracts.parse_reply(reply)
        except StatusError:
            return  # a refusal or failure never replaces what was stored
        if not isinstance(obj, dict):
            return
        resource = request.route.resource.replace("/nodepatch/", "/node/").replace("/podpatch/", "/pod/")
        try:
            kind = parse_object(resource).type
        except ResourceError:
            return
        self._publish(await self._db(self.store.put, _store_key(request, resource), kind, obj))

    async def _ask_cloud(self, resource: str) -> Any:
        """MetaServer's get, cloud first: a query through this module (stored, then answered); with
        the link down it is not asked at all."""
        if not self.connected:
            return None
        return await CloudRequests(self.ctx, source="metaserver", module=self.name).query(resource, timeout=CLOUD_FIRST_TIMEOUT)

    async def _apply_in_cloud(self, app: application.Application, timeout: float) -> application.Application:
        """MetaServer's Application, to the cloud's DynamicController (upstream's ``doApply``): the
        cloud's answer, or :class:`StatusError` (503 offline, 504 when nothing answered in time)."""
        if not self.connected:
            raise not_connected()
        request = application.request_message(app)
        try:
            reply = await self.ctx.send_sync(self.name, request, timeout)
        except SyncTimeout:
            raise RequestTimeout("the cloud's DynamicController", timeout) from None
        if not application.is_response(reply):
            contracts.parse_reply(reply)  # this edge's own answer (the link broke meanwhile): its error
            raise not_connected()
        try:
            return application.Application.from_wire(reply.content)
        except application.ApplicationError as error:
            raise StatusError.make(502, "BadGateway", f"the cloud's answer: {error}") from None

    def _unhold(self, namespace: str, name: str) -> None:
        """MetaServer's unhold-upgrade, to Edged (upstream's model.UnholdUpgradeOperation)."""
        self.tasks.spawn(self._to_edged("unhold-upgrade", f"{namespace}/pod/{name}", None), "unhold-upgrade")

    def _publish(self, change: Any) -> None:
        if self.metaserver is not None:
            self.metaserver.publish(change)

    async def _answer_locally(self, request: Message) -> None:
        """A query answered from SQLite, in the shape the cloud would have used."""
        try:
            parse_object(request.route.resource)
        except ResourceError as error:
            self.ctx.send_response(contracts.local_error(request, StatusError.make(400, "BadRequest", str(error))))
            return
        value = await self._db(self.store.get, _store_key(request, request.route.resource))
        if value is None:
            self.ctx.send_response(contracts.local_error(request, not_connected()))
            return
        self.ctx.send_response(contracts.local_reply(request, json.loads(value)))


def _store_key(request: Message, resource: str) -> str:
    """Where a reply is kept. Tokens of one service account differ by pod, audience and lifetime
    (upstream keys them likewise), so a pod restarted with the cloud away finds its own again."""
    if "/serviceaccounttoken/" not in resource or not isinstance(request.content, dict):
        return resource
    spec = request.content.get("spec") or {}
    bound = spec.get("boundObjectRef") or {}
    audiences = ",".join(spec.get("audiences") or [])
    return f"{resource}/{bound.get('uid') or ''}/{audiences}/{spec.get('expirationSeconds') or ''}"
