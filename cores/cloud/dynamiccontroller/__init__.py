"""DynamicController: the cloud end of MetaServer, executing edges' Applications (upstream §6.4).

An edge's MetaServer sends what it cannot answer alone (writes, lists, discovery) as an
Application (:mod:`cores.link.application`). This module runs it against the Kubernetes API
**as the node that sent it**: every call carries ``Impersonate-User: system:node:<node>`` and
``Impersonate-Group: system:nodes``, so the API server's own Node authorizer and NodeRestriction
admission decide, exactly as for a kubelet, on a real cluster and on the embedded control plane
alike. The node is the one of the session the message came on, never the one the Application
names (upstream trusts the Application's ``Nodename`` unless ``requireAuthorization`` is on).

Verbs: ``get``, ``list``, ``create``, ``update``, ``updatestatus``, ``patch`` (upstream's
``PatchInfo``) and ``delete``; a ``get`` of a discovery path is passed through. ``watch``
Applications are refused with the reason: the edge serves watches from its own store, which the
cloud's pushes keep current (upstream's edge falls back to that too). The answer is upstream's
``applicationResponse``: ``Approved`` with the API server's reply, or ``Rejected`` with its
``Status`` (403 for what the node may not do).

Limits: answers up to :data:`MAX_ANSWER_BYTES` (413 past it); at most :data:`PER_NODE`
Applications of one node run at once and :data:`QUEUED_PER_NODE` wait (more get 429), so one busy
edge never delays another; each call is bounded by the client's 30 s timeout.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from typing import Any

from cores.beehive import Context, Message
from cores.cloud.kube import Kube, KubeError
from cores.common.config import Config
from cores.common.tasks import TaskSupervisor
from cores.link import application as apps
from cores.link import routing
from cores.link.application import Application, ApplicationError

log = logging.getLogger("kubeedge.dynamiccontroller")

HUB = "cloudhub"
PER_NODE = 4
QUEUED_PER_NODE = 64
# An answer travels base64 in one frame (8 MiB at most on the link): a larger one is refused with
# the way out (a list's limit and continue), rather than a frame the edge would have to drop.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
NODE_USER_PREFIX, NODES_GROUP = "system:node:", "system:nodes"
LIST_OPTIONS = ("labelSelector", "fieldSelector", "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "limit",
                "continue", "allowWatchBookmarks", "sendInitialEvents")
WRITE_OPTIONS = ("dryRun", "fieldManager", "fieldValidation", "force")
PATCH_TYPES = frozenset({"application/json-patch+json", "application/merge-patch+json",
                         "application/strategic-merge-patch+json", "application/apply-patch+yaml"})


class Refused(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                       "reason": reason, "code": code}


class DynamicController:
    name = "dynamiccontroller"
    group = "dynamiccontroller"

    def __init__(self, config: Config, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self._running: dict[str, asyncio.Semaphore] = {}
        self._queued: collections.Counter[str] = collections.Counter()
        self.tasks = TaskSupervisor(self.name)

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        try:
            while True:
                message = await ctx.receive(self.name)
                node = routing.node_of(message)
                if not node or not apps.is_request(message):
                    continue  # session events, or nothing an edge sent
                if self._queued[node] >= QUEUED_PER_NODE:
                    log.warning("node %s has %d Applications waiting: refused one", node, self._queued[node])
                    self.tasks.spawn(self._refuse_busy(node, message), "busy")
                    continue
                self._queued[node] += 1
                self.tasks.spawn(self._process(node, message), "application")
        finally:
            await self.tasks.close()

    async def _refuse_busy(self, node: str, message: Message) -> None:
        try:
            app = Application.from_wire(message.content)
        except ApplicationError:
            return
        await self._answer(node, message, self._rejected(app, Refused(
            429, "TooManyRequests", f"node {node} has {QUEUED_PER_NODE} Applications waiting in the cloud")))

    async def _process(self, node: str, message: Message) -> None:
        semaphore = self._running.setdefault(node, asyncio.Semaphore(PER_NODE))
        try:
            async with semaphore:
                if message.route.resource.endswith(apps.WATCH_SYNC):
                    await self._watch_sync(node, message)
                    return
                try:
                    app = Application.from_wire(message.content)
                except ApplicationError as error:
                    log.warning("node %s sent a malformed Application: %s", node, error)
                    return  # nothing to answer with: the edge's own timeout ends its wait
                await self._answer(node, message, await self._apply(node, app))
        finally:
            self._queued[node] -= 1
            if self._queued[node] <= 0:
                del self._queued[node]
                self._running.pop(node, None)

    async def _answer(self, node: str, request: Message, content: Any) -> None:
        await self.ctx.send(HUB, apps.response_message(request, node, content))

    async def _apply(self, node: str, app: Application) -> dict[str, Any]:
        if app.nodename and app.nodename != node:
            log.warning("node %s sent an Application in the name of node %s: refused", node, app.nodename)
            return self._rejected(app, Refused(403, "Forbidden", f"node {node} may not apply in the name of node "
                                                                 f"{app.nodename}"))
        app.nodename = node
        app.status = apps.IN_PROCESSING
        try:
            answer = await self._execute(node, app)
        except Refused as refused:
            return self._rejected(app, refused)
        except ApplicationError as error:
            return self._rejected(app, Refused(400, "BadRequest", str(error)))
        except KubeError as error:
            log.info("node %s: %s %s refused by the API server: %s", node, app.verb, app.key[:200], error)
            return self._rejected(app, error)
        except Exception as error:  # noqa: BLE001 - the API unreachable, TLS, the client's own errors: answered
            log.warning("node %s: %s %s failed: %s", node, app.verb, app.key[:200], error)
            return self._rejected(app, Refused(503, "ServiceUnavailable", f"the Kubernetes API did not answer: "
                                                                          f"{type(error).__name__}"))
        if answer is not None and len(answer) > MAX_ANSWER_BYTES:
            return self._rejected(app, Refused(
                413, "RequestEntityTooLarge", f"the answer is {len(answer)} bytes, more than the {MAX_ANSWER_BYTES} the link "
                                              "carries: list with limit and continue"))
        app.status, app.resp_body = apps.APPROVED, answer
        log.debug("node %s: %s %s approved", node, app.verb, app.key[:200])
        return app.wire()

    @staticmethod
    def _rejected(app: Application, error: Refused | KubeError) -> dict[str, Any]:
        app.status = apps.REJECTED
        app.error = dict(error.status)
        app.error.setdefault("metadata", {})
        app.resp_body = None
        return app.wire()

    async def _execute(self, node: str, app: Application) -> bytes | None:
        """The API call ``app`` asks for, as ``node``; the reply's bytes."""
        identity = {"Impersonate-User": NODE_USER_PREFIX + node, "Impersonate-Group": NODES_GROUP}
        if apps.is_discovery(app.key, app.verb):
            return await self.kube.request_raw("GET", app.key, headers=identity)
        if app.verb not in apps.VERBS:
            raise Refused(400, "BadRequest", f"unknown Application verb {app.verb!r}")
        if app.verb == "watch":
            raise Refused(405, "MethodNotAllowed", "watch Applications are not served by this CloudCore: the edge "
                                                   "serves watches from its store, which the cloud's pushes keep current")
        target = apps.parse_key(app.key)
        options = app.option_json()
        options = options if isinstance(options, dict) else {}
        if app.verb == "patch":
            return await self._patch(target, options, identity)
        if app.subresource and not (app.subresource.isascii() and app.subresource.isalpha() and len(app.subresource) <= 63):
            raise Refused(400, "BadRequest", f"invalid subresource {app.subresource[:80]!r}")
        subresource = "status" if app.verb == "updatestatus" else app.subresource
        path = target.api_path(subresource)
        if app.verb == "get":
            query = [("resourceVersion", str(options["resourceVersion"]))] if options.get("resourceVersion") else []
            return await self.kube.request_raw("GET", path, query=query, headers=identity)
        if app.verb == "list":
            if target.name:
                raise Refused(400, "BadRequest", "a list names no object")
            return await self.kube.request_raw("GET", path, query=_query(options, LIST_OPTIONS), headers=identity)
        if app.verb == "delete":
            if not target.name:
                raise Refused(405, "MethodNotAllowed", "a delete of a whole collection is not served through the edge")
            return await self.kube.request_raw("DELETE", path, body=options or None, headers=identity)
        body = app.body_json()
        if not isinstance(body, dict):
            raise Refused(400, "BadRequest", f"a {app.verb} needs an object as its body")
        method = "POST" if app.verb == "create" else "PUT"
        if method == "POST" and target.name and not subresource:
            path = target.api_path().rsplit("/", 1)[0]  # a create is posted to the collection
        return await self.kube.request_raw(method, path, body=body, query=_query(options, WRITE_OPTIONS), headers=identity)

    async def _patch(self, target: apps.Target, info: dict[str, Any], identity: dict[str, str]) -> bytes:
        """Upstream's ``PatchInfo``: Name, PatchType, Data (base64), Options, Subresources."""
        patch_type = str(info.get("PatchType") or "")
        if patch_type not in PATCH_TYPES:
            raise Refused(415, "UnsupportedMediaType", f"unsupported patch type {patch_type[:80]!r}")
        name = str(info.get("Name") or target.name)
        if not name or (target.name and name != target.name):
            raise Refused(400, "BadRequest", "the patch names no object, or another one than its key")
        subresources = info.get("Subresources") or []
        if not isinstance(subresources, list) or not all(isinstance(s, str) and (not s or s.isalpha()) for s in subresources):
            raise Refused(400, "BadRequest", "invalid Subresources")
        subresources = [s for s in subresources if s]  # upstream's edge sends [""] for none
        try:
            raw = apps.decode_bytes(info.get("Data"), "Data")
        except ApplicationError as error:
            raise Refused(400, "BadRequest", str(error)) from None
        if not raw:
            raise Refused(400, "BadRequest", "the patch is empty")
        data: Any = raw
        if patch_type != "application/apply-patch+yaml":  # the client sends JSON bodies as objects
            try:
                data = json.loads(raw)
            except ValueError:
                raise Refused(400, "BadRequest", "the patch is not JSON") from None
        path = apps.Target(target.group, target.version, target.resource, target.namespace, name).api_path(
            "/".join(subresources))
        given = info.get("Options")
        options: dict[str, Any] = given if isinstance(given, dict) else {}
        return await self.kube.request_raw("PATCH", path, body=data, content_type=patch_type,
                                           query=_query(options, WRITE_OPTIONS), headers=identity)

    async def _watch_sync(self, node: str, message: Message) -> None:
        """Upstream's edge lists its watch Applications on connect; every one is answered as failed,
        with the reason, so it stops asking and serves those watches from its store."""
        content = message.content if isinstance(message.content, dict) else {}
        failed: dict[str, Any] = {}
        for app_id, raw in list(content.items())[:1024]:
            try:
                app = Application.from_wire(raw)
            except ApplicationError:
                continue
            failed[str(app_id)] = self._rejected(app, Refused(
                405, "MethodNotAllowed", "watch Applications are not served by this CloudCore"))
        await self._answer(node, message, failed)


def _query(options: dict[str, Any], names: tuple[str, ...]) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = []
    for name in names:
        value = options.get(name)
        if value in (None, "", [], 0, False):
            continue
        for one in value if isinstance(value, list) else [value]:
            query.append((name, str(one).lower() if isinstance(one, bool) else str(one)))
    return query
