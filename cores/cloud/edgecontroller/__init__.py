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
from cores.cloud.edgecontroller import admission, downstream
from cores.cloud.informer import Informer
from cores.cloud.kube import Kube, KubeError
from cores.common.config import Config
from cores.common.objects import NodeView, PodView, pod_references
from cores.common.resource import ObjectResource, ResourceError, add_node_prefix, parse_object, split_node_prefix
from cores.common.tasks import TaskSupervisor
from cores.link import contracts
from cores.link.status import StatusError, bad_request, forbidden

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"  # a static pod's mirror, created by its node
EVENT_REPEAT_FIELDS = {"count", "lastTimestamp", "message", "series"}  # what kubelet's patch of a repeated event sets

log = logging.getLogger("kubeedge.edgecontroller")

Handler = Callable[[str, ObjectResource, Message], Awaitable[Message | None]]


def _cloud_owned_left_out(patch: Any) -> Any:
    """A node status patch without ``daemonEndpoints``: the cloud owns the kubelet endpoint port
    (CloudStream sets the tunnel port there, which the API server dials and the iptables manager
    DNATs), and an edge's own 10350 must not undo it. Upstream's EdgeController keeps the stored port too."""
    if isinstance(patch, dict) and isinstance(patch.get("status"), dict) and "daemonEndpoints" in patch["status"]:
        return {**patch, "status": {k: v for k, v in patch["status"].items() if k != "daemonEndpoints"}}
    return patch


def _strip_meta_type(obj: dict[str, Any]) -> dict[str, Any]:
    # Upstream's ObjectResp carries the typed object, which Go serialises without kind/apiVersion.
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _mirror_pod_refusal(node: str, node_uid: str, pod: Any) -> str:
    """NodeRestriction for pod creation (upstream's ``admitPodCreate``): why the node may not create
    this pod, or "" for a mirror pod of its own that reaches nothing through the API (no service
    account, ConfigMap, Secret or claim), at most owned by the node itself."""
    if not isinstance(pod, dict):
        return "not a pod"
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
        return "only mirror pods may be created by a node"
    if spec.get("nodeName") != node:
        return "a node may only create mirror pods bound to itself"
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        return "a mirror pod may not reference a service account"
    if any(True for _ in pod_references(pod)) or any(
            "persistentVolumeClaim" in v or "ephemeral" in v or any("serviceAccountToken" in s for s in (v.get("projected") or {}).get("sources") or [])
            for v in spec.get("volumes") or []):
        return "a mirror pod may not reference secrets, configmaps, service account tokens or persistent volume claims"
    owners = meta.get("ownerReferences") or []
    if len(owners) > 1 or any((o.get("apiVersion"), o.get("kind"), o.get("name")) != ("v1", "Node", node)
                              or o.get("controller") is not True or (node_uid and o.get("uid") != node_uid) for o in owners):
        return "a mirror pod may only be owned by its node"
    return ""


def _is_mirror(pod: dict[str, Any]) -> bool:
    return MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})


async def _ignore(event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    return None


class _Downstream:
    """Watch events turned into pushes to edge nodes (mixed into EdgeController)."""

    ctx: Context
    kube: Kube
    edge_nodes: set[str]
    pods_by_node: dict[str, set[str]]
    informers: dict[str, Informer]

    async def _send(self, message: Message) -> None:
        await self.ctx.send("cloudhub", message)

    async def _on_node(self, event: str, node: dict[str, Any], old: dict[str, Any] | None) -> None:
        view = NodeView(node)
        name = view.name
        if not view.is_edge:
            return
        if event == "DELETED":
            self.edge_nodes.discard(name)
            self.pods_by_node.pop(name, None)
            await self._send(downstream.push(name, "delete", "node", node, "Node"))
            await self._send(Message.new(source="edgecontroller", group="resource", operation="forget",
                                         resource=add_node_prefix(name, "null/node/" + name)))
            return
        new_edge = name not in self.edge_nodes
        self.edge_nodes.add(name)
        await self._send(downstream.push(name, "update", "node", node, "Node"))
        if new_edge:  # pods bound before the node was known as an edge node
            for pod in list(self.informers["pods"].cache.values()):
                if PodView(pod).node_name == name:
                    await self._on_pod("ADDED", pod, None)

    async def _on_pod(self, event: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        view, before = PodView(pod), PodView(old)
        node = view.node_name
        if not node or node not in self.edge_nodes:
            return
        key = view.key
        if event == "DELETED":
            self.pods_by_node.get(node, set()).discard(key)
        else:
            self.pods_by_node.setdefault(node, set()).add(key)
            if event == "MODIFIED" and old is not None and before.node_name == node and not downstream.pod_changed(pod, old):
                return
            if old is not None and not before.node_name:
                event = "ADDED"  # just bound to this node: new to it
        await self._send(downstream.push(node, downstream.pod_operation(event, pod), "pod", pod, "Pod"))

    async def _on_configmap(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        operation = {"ADDED": "insert", "MODIFIED": "update", "DELETED": "delete"}[event]
        await self._to_users("configmap", obj, operation, "ConfigMap")

    async def _on_secret(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        await self._to_users("secret", obj, "delete" if event == "DELETED" else "update", "Secret")

    async def _to_users(self, type_: str, obj: dict[str, Any], operation: str, kind: str) -> None:
        key = (type_, f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")
        for node in list(self.edge_nodes):
            if key in self._references(node):  # type: ignore[attr-defined]
                await self._send(downstream.push(node, operation, type_, obj, kind))

    # SyncController's comparison: ObjectSyncs against the caches -------------------------
    async def resync_all(self) -> None:
        index = self._syncs_by_node()
        for node in list(self.edge_nodes):
            await self.resync(node, index.get(node, []))
        await self._collect_orphan_syncs()

    async def resync(self, node: str, syncs: list[dict[str, Any]] | None = None) -> None:
        """Queue for ``node`` whatever it acked an older version of, and deletes for what is gone."""
        if not all(informer.synced.is_set() for informer in self.informers.values()):
            return
        for sync in syncs if syncs is not None else self._syncs_by_node().get(node, []):
            spec = sync.get("spec") or {}
            kind, name = spec.get("objectKind", ""), spec.get("objectName", "")
            namespace = sync["metadata"].get("namespace")
            uid = sync["metadata"]["name"].rsplit(".", 1)[-1]
            cache = {"Pod": "pods", "ConfigMap": "configmaps", "Secret": "secrets", "Node": "nodes"}.get(kind)
            if cache is None:
                continue
            current = self.informers[cache].get(f"{namespace}/{name}" if namespace else name)
            acked = int((sync.get("status") or {}).get("objectResourceVersion") or 0)
            type_ = kind.lower()
            if current is None or current["metadata"].get("uid") != uid:
                stub = {"metadata": {"name": name, "namespace": namespace, "uid": uid}} if namespace else {"metadata": {"name": name, "uid": uid}}
                await self._send(downstream.push(node, "delete", type_, stub, kind))
            elif int(current["metadata"].get("resourceVersion") or 0) > acked:
                operation = "update" if acked or type_ in ("secret", "node") else "insert"
                await self._send(downstream.push(node, operation, type_, current, kind))

    def _syncs_by_node(self) -> dict[str, list[dict[str, Any]]]:
        """Every (Cluster)ObjectSync by node, in one pass (``<node>.<uid>``; uids have no dots)."""
        index: dict[str, list[dict[str, Any]]] = {}
        for name in ("objectsyncs", "clusterobjectsyncs"):
            for sync in self.informers[name].cache.values():
                index.setdefault(sync["metadata"]["name"].rsplit(".", 1)[0], []).append(sync)
        return index

    async def _collect_orphan_syncs(self) -> None:
        """ObjectSyncs of nodes that no longer exist go (upstream: on start and on node deletion)."""
        nodes = self.informers["nodes"].cache
        for name in ("objectsyncs", "clusterobjectsyncs"):
            for sync in list(self.informers[name].cache.values()):
                sync_name = sync["metadata"]["name"]
                if sync_name.rsplit(".", 1)[0] not in nodes:
                    namespace = sync["metadata"].get("namespace")
                    path = (f"/apis/reliablesyncs.kubeedge.io/v1alpha1/namespaces/{namespace}/objectsyncs/{sync_name}"
                            if namespace else f"/apis/reliablesyncs.kubeedge.io/v1alpha1/clusterobjectsyncs/{sync_name}")
                    try:
                        await self.kube.request("DELETE", path)
                    except KubeError as error:
                        if error.code != 404:
                            log.warning("cannot remove ObjectSync %s: %s", sync_name, error)


class EdgeController(_Downstream):
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
            ("query", "configmap"): self._query_object,
            ("query", "secret"): self._query_object,
            ("patch", "podpatch"): self._patch_pod,
            ("delete", "pod"): self._delete_pod,
            ("insert", "pod"): self._create_mirror_pod,
            ("insert", "event"): self._event,
            ("update", "event"): self._event,
            ("patch", "event"): self._event,
            ("update", "podstatus"): self._legacy_pod_status,
            ("update", "nodestatus"): self._legacy_node_status,
            ("query", "serviceaccounttoken"): self._service_account_token,
            ("insert", "serviceaccounttoken"): self._service_account_token,
        }
        self.edge_nodes: set[str] = set()
        self.pods_by_node: dict[str, set[str]] = {}  # node -> pod keys ("ns/name")
        self.informers: dict[str, Informer] = {}

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        handlers = {
            "nodes": ("/api/v1/nodes", self._on_node),
            "pods": ("/api/v1/pods", self._on_pod),
            "configmaps": ("/api/v1/configmaps", self._on_configmap),
            "secrets": ("/api/v1/secrets", self._on_secret),
            "objectsyncs": ("/apis/reliablesyncs.kubeedge.io/v1alpha1/objectsyncs", _ignore),
            "clusterobjectsyncs": ("/apis/reliablesyncs.kubeedge.io/v1alpha1/clusterobjectsyncs", _ignore),
        }
        tasks = TaskSupervisor(self.name)
        for name, (path, handler) in handlers.items():
            informer = self.informers[name] = Informer(self.kube, path, handler)
            tasks.keep(informer.run, f"informer-{name}")
        mailbox = asyncio.create_task(self._read_mailbox(ctx, tasks), name="edgecontroller-mailbox")
        failed = asyncio.create_task(tasks.failed(), name="edgecontroller-supervision")
        try:
            done, _ = await asyncio.wait([mailbox, failed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # an informer that keeps dying stops CloudCore loudly
        finally:
            mailbox.cancel()
            failed.cancel()
            await tasks.close()

    async def _read_mailbox(self, ctx: Context, tasks: TaskSupervisor) -> None:
        while True:
            message = await ctx.receive(self.name)
            tasks.spawn(self._handle_logged(message), "handle")

    async def _handle_logged(self, message: Message) -> None:
        try:
            await self._handle(message)
        except Exception:  # noqa: BLE001 - one message's failure is logged; the module goes on
            log.exception("handling %s failed", message.describe())

    async def _handle(self, message: Message) -> None:
        try:
            if message.route.operation in ("connected", "disconnected"):
                await self._connection_event(message)
                return
            if message.route.operation == "resync":
                await self.resync_all()
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
        if parsed.type == "event":
            allowed = self._event_entitled(node, message)
        elif (message.route.operation, parsed.type) == ("insert", "pod"):
            node_uid = ((self.informers["nodes"].cache.get(node) or {}).get("metadata") or {}).get("uid", "") \
                if "nodes" in self.informers else ""
            refusal = _mirror_pod_refusal(node, node_uid, message.content)
            if refusal:
                log.warning("node %s may not create pod %s: %s", node, resource, refusal)
            allowed = not refusal
        else:
            allowed = self._entitled(node, parsed)
        if not allowed and parsed.type == "event":
            log.warning("node %s reported an event about an object that is not its own: dropped", node)
            return
        refusal_status = None if not allowed else self._content_refusal(node, parsed, message)
        if not allowed:
            log.warning("node %s asked for %s %s, which is not its own: refused", node, message.route.operation, resource)
            reply: Message | None = contracts.error_reply(message, forbidden(node, resource))
        elif refusal_status is not None:
            log.warning("node %s: %s %s refused: %s", node, message.route.operation, resource, refusal_status.message)
            if parsed.type in ("podstatus", "nodestatus"):
                return  # legacy status updates get no reply, as upstream
            reply = contracts.error_reply(message, refusal_status)
        else:
            try:
                reply = await handler(node, parsed, message)
            except KubeError as error:
                reply = contracts.error_reply(message, StatusError(error.status))
        if reply is not None:
            await self.ctx.send("cloudhub", reply)

    def _content_refusal(self, node: str, resource: ObjectResource, message: Message) -> StatusError | None:
        """What the node writes, checked before CloudCore writes it (admission.py): names, labels,
        token bindings and status types. None when the write may go."""
        operation, kind, content = message.route.operation, resource.type, message.content
        if kind == "lease" or (operation, kind) == ("insert", "pod"):
            reason = admission.name_mismatch(content, resource.name, resource.namespace)
            return StatusError.make(403, "Forbidden", reason) if reason else None
        if (operation, kind) == ("insert", "node"):
            reason = admission.name_mismatch(content, node, None) or admission.labels_refusal(content)
            return StatusError.make(403, "Forbidden", reason) if reason else None
        if kind == "serviceaccounttoken":
            reason = admission.token_refusal(content, resource.namespace, resource.name,
                                             lambda namespace, name: self._pod_of(node, namespace, name))
            return StatusError.make(403, "Forbidden", reason) if reason else None
        if kind in ("nodepatch", "podpatch"):
            patch, reason = admission.parse_patch(content)
            if not reason:
                labels = admission.labels_refusal(patch) if kind == "nodepatch" else ""
                if labels:
                    return StatusError.make(403, "Forbidden", labels)
                reason = admission.status_patch_refusal(patch, "node" if kind == "nodepatch" else "pod")
            return StatusError.make(400, "BadRequest", reason) if reason else None
        if kind in ("podstatus", "nodestatus"):
            request = content if isinstance(content, dict) else {}
            schema = admission.POD_STATUS if kind == "podstatus" else admission.NODE_STATUS
            reason = admission.type_error(request.get("Status"), schema, "Status")
            return StatusError.make(400, "BadRequest", reason) if reason else None
        return None

    def _pod_of(self, node: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = f"{namespace}/{name}"
        if key not in self.pods_by_node.get(node, set()) or "pods" not in self.informers:
            return None
        pod = self.informers["pods"].cache.get(key)
        return None if pod is None or _is_mirror(pod) else pod

    def _entitled(self, node: str, resource: ObjectResource) -> bool:
        """NodeRestriction: a node reaches only its own Node, Lease and pods, and what its pods use."""
        if resource.type in ("node", "nodepatch", "nodestatus"):
            return resource.name == node
        if resource.type == "lease":
            return resource.namespace == "kube-node-lease" and resource.name == node
        if resource.type in ("pod", "podpatch", "podstatus"):
            return f"{resource.namespace}/{resource.name}" in self.pods_by_node.get(node, set())
        if resource.type in ("configmap", "secret"):
            return (resource.type, f"{resource.namespace}/{resource.name}") in self._references(node)
        if resource.type == "serviceaccounttoken":
            return resource.name in self._service_accounts(node, resource.namespace)
        return False

    def _event_entitled(self, node: str, message: Message) -> bool:
        """Events a node reports are about itself (namespace default, as kubelet files them) or its own
        pods (in the pod's namespace); a repeat may only change the count, time and message."""
        content = message.content if isinstance(message.content, dict) else {}
        event = content.get("event") if message.route.operation == "patch" else content
        if not isinstance(event, dict):
            return False
        involved = event.get("involvedObject") or {}
        namespace = parse_object(split_node_prefix(message.route.resource)[1]).namespace
        if message.route.operation == "patch":
            try:
                changes = json.loads(content.get("patchData") or "{}")
            except (TypeError, ValueError):
                return False
            if not isinstance(changes, dict) or not set(changes) <= EVENT_REPEAT_FIELDS:
                return False
        if involved.get("kind") == "Node":
            return involved.get("name") == node and namespace == "default"
        if involved.get("kind") == "Pod":
            return (namespace == involved.get("namespace")
                    and f"{involved.get('namespace')}/{involved.get('name')}" in self.pods_by_node.get(node, set()))
        return False

    def _service_accounts(self, node: str, namespace: str) -> set[str]:
        pods = self.informers["pods"].cache if "pods" in self.informers else {}
        found: set[str] = set()
        for key in self.pods_by_node.get(node, set()):
            pod = pods.get(key)
            if pod is not None and pod["metadata"]["namespace"] == namespace and not _is_mirror(pod):
                found |= downstream.service_accounts(pod)
        return found

    def _references(self, node: str) -> set[tuple[str, str]]:
        pods = self.informers["pods"].cache if "pods" in self.informers else {}
        found: set[tuple[str, str]] = set()
        for key in self.pods_by_node.get(node, set()):
            pod = pods.get(key)
            if pod is None or _is_mirror(pod):
                continue  # a mirror pod reaches nothing (see _mirror_pod_refusal)
            namespace = pod["metadata"]["namespace"]
            found.update((kind, f"{namespace}/{name}") for kind, name in pod_references(pod) if name)
        return found

    async def _connection_event(self, message: Message) -> None:
        node = message.route.resource.split("/", 1)[-1]
        if message.route.operation != "connected":
            return
        await self.resync(node)
        try:
            await self.kube.patch_node(node, {"metadata": {"annotations": {"cloudcore": self.cloudcore_address}}})
        except KubeError as error:
            if error.code != 404:  # a fresh node registers itself right after connecting
                log.warning("cannot annotate node %s: %s", node, error)

    # nodes ----------------------------------------------------------------------------------
    async def _create_node(self, node: str, resource: ObjectResource, message: Message) -> Message:
        body = dict(message.content) if isinstance(message.content, dict) else {}
        metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "creationTimestamp"}
        metadata["name"] = node
        metadata["annotations"] = {**(metadata.get("annotations") or {}), "cloudcore": self.cloudcore_address}
        body["metadata"] = metadata
        try:
            created = await self.kube.create_node(body)
        except KubeError as error:
            if error.code != 409:
                raise
            created = await self.kube.get_node(node)  # registered before: the kubelet takes it as is
            log.info("node %s registered again", node)
        else:
            log.info("node %s registered", node)
        return contracts.object_reply(message, _strip_meta_type(created))

    async def _patch_node(self, node: str, resource: ObjectResource, message: Message) -> Message:
        patch = message.content
        if isinstance(patch, str):
            try:
                patch = json.loads(patch)
            except ValueError:
                return contracts.object_reply(message, None, bad_request("nodepatch content is not JSON"))
        patched = await self.kube.patch_node_status(node, _cloud_owned_left_out(patch))
        return contracts.object_reply(message, _strip_meta_type(patched), resource_version=patched["metadata"].get("resourceVersion", ""))

    async def _query_node(self, node: str, resource: ObjectResource, message: Message) -> Message:
        found = await self.kube.get_node(node)
        return contracts.object_reply(message, found, resource_version=found["metadata"].get("resourceVersion", ""))

    # pods, configmaps, secrets --------------------------------------------------------------
    async def _query_object(self, node: str, resource: ObjectResource, message: Message) -> Message:
        """The recorded reply: the bare object (with kind and apiVersion), its version in the header."""
        plural = {"configmap": "configmaps", "secret": "secrets"}[resource.type]
        try:
            found = await self.kube.request("GET", f"/api/v1/namespaces/{resource.namespace}/{plural}/{resource.name}")
        except KubeError as error:
            return contracts.error_reply(message, StatusError(error.status))
        found = downstream.with_type(found, {"configmap": "ConfigMap", "secret": "Secret"}[resource.type])
        return contracts.bare_reply(message, found, resource_version=found["metadata"].get("resourceVersion", ""))

    async def _patch_pod(self, node: str, resource: ObjectResource, message: Message) -> Message:
        patch = json.loads(message.content) if isinstance(message.content, str) else message.content
        patched = await self.kube.request("PATCH", f"/api/v1/namespaces/{resource.namespace}/pods/{resource.name}/status",
                                          patch, content_type="application/strategic-merge-patch+json")
        return contracts.object_reply(message, _strip_meta_type(patched), resource_version=patched["metadata"].get("resourceVersion", ""))

    async def _create_mirror_pod(self, node: str, resource: ObjectResource, message: Message) -> Message:
        """A static pod's mirror, created by its node (the only pod a node may create, as NodeRestriction rules)."""
        body = {**message.content, "apiVersion": "v1", "kind": "Pod"}
        created = await self.kube.request("POST", f"/api/v1/namespaces/{resource.namespace}/pods", body)
        return contracts.object_reply(message, _strip_meta_type(created), resource_version=created["metadata"].get("resourceVersion", ""))

    async def _event(self, node: str, resource: ObjectResource, message: Message) -> None:
        """kubelet's events through the edge (upstream's Create/Update/PatchWithEventNamespace); no reply."""
        content = message.content if isinstance(message.content, dict) else {}
        path = f"/api/v1/namespaces/{resource.namespace}/events"
        event = content.get("event") if message.route.operation == "patch" else content
        if not isinstance(event, dict):
            return None
        event = {**event, "apiVersion": "v1", "kind": "Event"}
        event["metadata"] = {**(event.get("metadata") or {}), "namespace": resource.namespace, "name": resource.name}
        event["source"] = {**(event.get("source") or {}), "host": node}  # it comes from this node, whatever it says
        try:
            if message.route.operation != "insert":
                existing = await self.kube.request("GET", f"{path}/{resource.name}")
                if (existing.get("source") or {}).get("host") != node:
                    log.warning("node %s may not change event %s/%s of another source: dropped", node, resource.namespace, resource.name)
                    return None
            if message.route.operation == "patch":
                await self.kube.request("PATCH", f"{path}/{resource.name}", json.loads(content.get("patchData") or "{}"),
                                        content_type="application/strategic-merge-patch+json")
            elif message.route.operation == "update":
                await self.kube.request("PUT", f"{path}/{resource.name}", event)
            else:
                await self.kube.request("POST", path, event)
        except KubeError as error:
            if error.code == 404 and message.route.operation != "insert":
                try:
                    await self.kube.request("POST", path, event)  # the series' first event is gone: start it again
                except KubeError as again:
                    log.warning("event %s/%s from node %s not recorded: %s", resource.namespace, resource.name, node, again)
            elif error.code != 409:
                log.warning("event %s/%s from node %s not recorded: %s", resource.namespace, resource.name, node, error)
        return None

    async def _delete_pod(self, node: str, resource: ObjectResource, message: Message) -> Message:
        options = message.content if isinstance(message.content, dict) else {"gracePeriodSeconds": 0}
        body = {"apiVersion": "v1", "kind": "DeleteOptions", **options}
        try:
            await self.kube.request("DELETE", f"/api/v1/namespaces/{resource.namespace}/pods/{resource.name}", body)
        except KubeError as error:
            if error.code != 404:
                return contracts.error_reply(message, StatusError(error.status))
        return contracts.bare_reply(message, contracts.ACK_CONTENT)

    async def _legacy_pod_status(self, node: str, resource: ObjectResource, message: Message) -> None:
        """Older edges' ``podstatus`` update (``PodStatusRequest{UID, Name, Status}``): no reply, as upstream."""
        request = message.content if isinstance(message.content, dict) else {}
        patch = {"metadata": {"uid": request.get("UID")}, "status": request.get("Status") or {}}
        await self.kube.request("PATCH", f"/api/v1/namespaces/{resource.namespace}/pods/{resource.name}/status", patch,
                                content_type="application/merge-patch+json")
        return None

    async def _legacy_node_status(self, node: str, resource: ObjectResource, message: Message) -> None:
        """Older edges' ``nodestatus`` update (``NodeStatusRequest{UID, Status, ExtendResources}``): no reply."""
        request = message.content if isinstance(message.content, dict) else {}
        patch = _cloud_owned_left_out({"status": request.get("Status") or {}})
        await self.kube.request("PATCH", f"/api/v1/nodes/{node}/status", patch, content_type="application/merge-patch+json")
        return None

    async def _service_account_token(self, node: str, resource: ObjectResource, message: Message) -> Message:
        """A token for one of this node's pods' service accounts; the reply is the filled TokenRequest."""
        body = message.content if isinstance(message.content, dict) else {}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", **body}
        try:
            issued = await self.kube.request(
                "POST", f"/api/v1/namespaces/{resource.namespace}/serviceaccounts/{resource.name}/token", body)
        except KubeError as error:
            return contracts.error_reply(message, StatusError(error.status))
        return contracts.bare_reply(message, issued)

    # leases ---------------------------------------------------------------------------------
    async def _query_lease(self, node: str, resource: ObjectResource, message: Message) -> Message:
        lease = await self.kube.get_lease(resource.namespace, resource.name)
        return contracts.object_reply(message, lease)

    async def _create_lease(self, node: str, resource: ObjectResource, message: Message) -> Message:
        content = message.content if isinstance(message.content, dict) else {}
        metadata = {k: v for k, v in (content.get("metadata") or {}).items() if k != "creationTimestamp"}
        lease = {**content, "metadata": metadata}
        created = await self.kube.create_lease(resource.namespace, lease)
        return contracts.object_reply(message, _strip_meta_type(created))

    async def _update_lease(self, node: str, resource: ObjectResource, message: Message) -> Message:
        updated = await self.kube.update_lease(resource.namespace, resource.name, dict(message.content or {}))
        return contracts.object_reply(message, _strip_meta_type(updated))
