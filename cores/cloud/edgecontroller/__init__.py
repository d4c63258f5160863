"""EdgeController: what edges ask of the Kubernetes API, applied and answered in upstream's shapes.

Node presence (this part): ``insert null/node/<n>`` creates the Node, ``patch null/nodepatch/<n>``
applies the kubelet's strategic merge patch to its status, ``kube-node-lease/lease/<n>`` is
queried, created and updated. Replies go back with ``source edgecontroller, group resource,
operation response``, ``parent_msg_id`` set, and content ``{"Object": ..., "Err": ...}`` where
``Err`` is the API's Status as ``{"ErrStatus": ...}``. A node may only act on its own Node and
Lease (the NodeRestriction idea): anything else is answered Forbidden and logged with its name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from cores.beehive import Context, Message
from cores.beehive.message import OP_RESPONSE
from cores.cloud.kube import Kube, KubeError
from cores.common.config import Config
from cores.common.resource import ObjectResource, ResourceError, parse_object, split_node_prefix

log = logging.getLogger("kubeedge.edgecontroller")

Handler = Callable[[str, ObjectResource, Message], Awaitable[Message | None]]


def object_response(request: Message, obj: Any, error: dict[str, Any] | None, resource_version: str = "") -> Message:
    """The recorded reply shape: ObjectResp with capitalised keys, group resource, parent linked."""
    reply = Message.new(
        source="edgecontroller", group="resource", operation=OP_RESPONSE, resource=request.route.resource,
        content={"Object": obj, "Err": None if error is None else {"ErrStatus": _error_status(error)}},
        parent_msg_id=request.msg_id, resource_version=resource_version,
    )
    return reply


def _error_status(status: dict[str, Any]) -> dict[str, Any]:
    # Go's metav1.Status as the edge decodes it: no kind/apiVersion inside ErrStatus.
    return {k: v for k, v in status.items() if k not in ("kind", "apiVersion")}


def forbidden_status(node: str, what: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": f"node {node!r} is not allowed to access {what}"}


def _strip_meta_type(obj: dict[str, Any]) -> dict[str, Any]:
    # Upstream's ObjectResp carries the typed object, which Go serialises without kind/apiVersion.
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


class EdgeController:
    name = "edgecontroller"
    group = "edgecontroller"

    def __init__(self, config: Config, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.cloudcore_address = (list(config.modules.cloudHub.advertiseAddress) or [socket.gethostname()])[0]
        self._handlers: dict[tuple[str, str], Handler] = {
            ("insert", "node"): self._create_node,
            ("patch", "nodepatch"): self._patch_node,
            ("query", "node"): self._query_node,
            ("query", "lease"): self._query_lease,
            ("insert", "lease"): self._create_lease,
            ("update", "lease"): self._update_lease,
        }

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        while True:
            message = await ctx.receive(self.name)
            asyncio.create_task(self._handle(message))

    async def _handle(self, message: Message) -> None:
        try:
            if message.route.operation in ("connected", "disconnected"):
                await self._connection_event(message)
                return
            node, resource = split_node_prefix(message.route.resource)
            parsed = parse_object(resource)
        except ResourceError as error:
            log.warning("ignored %s: %s", message.describe(), error)
            return
        handler = self._handlers.get((message.route.operation, parsed.type))
        if handler is None:
            log.debug("no handler for %s from node %s", message.describe(), node)
            return
        if not self._entitled(node, parsed):
            log.warning("node %s asked for %s %s, which is not its own: refused", node, message.route.operation, resource)
            reply: Message | None = object_response(message, None, forbidden_status(node, resource))
        else:
            try:
                reply = await handler(node, parsed, message)
            except KubeError as error:
                reply = object_response(message, None, error.status)
        if reply is not None:
            await self.ctx.send("cloudhub", reply)

    @staticmethod
    def _entitled(node: str, resource: ObjectResource) -> bool:
        if resource.type in ("node", "nodepatch", "nodestatus"):
            return resource.name == node
        if resource.type == "lease":
            return resource.namespace == "kube-node-lease" and resource.name == node
        return True

    async def _connection_event(self, message: Message) -> None:
        node = message.route.resource.split("/", 1)[-1]
        if message.route.operation != "connected":
            return
        try:
            await self.kube.patch_node(node, {"metadata": {"annotations": {"cloudcore": self.cloudcore_address}}})
        except KubeError as error:
            if error.code != 404:  # a fresh node registers itself right after connecting
                log.warning("cannot annotate node %s: %s", node, error)

    # nodes ----------------------------------------------------------------------------------
    async def _create_node(self, node: str, resource: ObjectResource, message: Message) -> Message:
        body = message.content if isinstance(message.content, dict) else {}
        metadata = body.setdefault("metadata", {})
        metadata["name"] = node
        metadata.pop("creationTimestamp", None)
        metadata.setdefault("annotations", {})["cloudcore"] = self.cloudcore_address
        try:
            created = await self.kube.create_node(body)
        except KubeError as error:
            if error.code != 409:
                raise
            created = await self.kube.get_node(node)  # registered before: the kubelet takes it as is
            log.info("node %s registered again", node)
        else:
            log.info("node %s registered", node)
        return object_response(message, _strip_meta_type(created), None)

    async def _patch_node(self, node: str, resource: ObjectResource, message: Message) -> Message:
        patch = message.content
        if isinstance(patch, str):
            try:
                patch = json.loads(patch)
            except ValueError:
                return object_response(message, None, {"metadata": {}, "status": "Failure", "reason": "BadRequest",
                                                       "code": 400, "message": "nodepatch content is not JSON"})
        patched = await self.kube.patch_node_status(node, patch)
        return object_response(message, _strip_meta_type(patched), None, patched["metadata"].get("resourceVersion", ""))

    async def _query_node(self, node: str, resource: ObjectResource, message: Message) -> Message:
        found = await self.kube.get_node(node)
        return object_response(message, found, None, found["metadata"].get("resourceVersion", ""))

    # leases ---------------------------------------------------------------------------------
    async def _query_lease(self, node: str, resource: ObjectResource, message: Message) -> Message:
        lease = await self.kube.get_lease(resource.namespace, resource.name)
        return object_response(message, lease, None)

    async def _create_lease(self, node: str, resource: ObjectResource, message: Message) -> Message:
        lease = dict(message.content or {})
        lease.setdefault("metadata", {}).pop("creationTimestamp", None)
        created = await self.kube.create_lease(resource.namespace, lease)
        return object_response(message, _strip_meta_type(created), None)

    async def _update_lease(self, node: str, resource: ObjectResource, message: Message) -> Message:
        updated = await self.kube.update_lease(resource.namespace, resource.name, dict(message.content or {}))
        return object_response(message, _strip_meta_type(updated), None)
