"""DeviceController: the devices API (``devices.kubeedge.io/v1beta1``) to edges and back.

Down: watches DeviceModels, Devices and DeviceStatuses and sends each node its devices as
upstream does (:mod:`.flow`): membership updates straight to the node, model and device pushes
through CloudHub's reliable per-node queue (acked, resent, recorded in ObjectSync). Every 5 s,
as SyncController does for pods, the node's Device and DeviceModel ObjectSyncs are compared with
the caches and whatever it lacks is queued again, deletes included; after a CloudCore restart the
watches' first list queues every device again and CloudHub drops what ObjectSync says was acked.
The edge's ``membership/detail`` get, sent on every connection, is answered with the node's
devices and starts that node's comparison at once.

Up: a node's twin and state reports patch the device's DeviceStatus (:mod:`.upstream`), created
with an owner reference to the Device when missing. A node reports only devices bound to it
(NodeRestriction): anything else is refused with 403, logged with the node's name, and changes
nothing. Reports wait in one bounded queue (:data:`REPORT_QUEUE`, newest dropped when full: the
edge resends unconfirmed reports every 60 s) and are applied one at a time, as upstream's single
worker does.

A Device whose ``deviceModelRef`` names no model is accepted (as upstream) and reported: a
Warning Event ``DeviceModelNotFound`` and the condition ``DeviceModelFound=False`` in the
Device's status, set back to True when the model appears.

Until the devices API is served (CRDs absent on a real cluster) the module waits, saying so once,
and looks again every :data:`API_RETRY_SECONDS`. With no devices it costs four idle watches.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from typing import Any

from cores.beehive import BeehiveError, Context, Message
from cores.cloud.devicecontroller import flow, upstream
from cores.cloud.devicecontroller.flow import DeviceFlow, Obj
from cores.cloud.devicecontroller.upstream import Refusal
from cores.cloud.informer import Informer
from cores.cloud.kube import Kube, KubeError
from cores.common.config import Config
from cores.common.resource import DeviceResource, ResourceError, parse, split_node_prefix
from cores.common.tasks import TaskSupervisor

log = logging.getLogger("kubeedge.devicecontroller")

GROUP_VERSION = "devices.kubeedge.io/v1beta1"
API = f"/apis/{GROUP_VERSION}"
OBJECTSYNCS = "/apis/reliablesyncs.kubeedge.io/v1alpha1/objectsyncs"
RESYNC_SECONDS = 5.0
API_RETRY_SECONDS = 30.0
REPORT_QUEUE = 1024          # upstream's buffer.updateDeviceTwins / updateDeviceStates
SYNC_WAIT_SECONDS = 120.0    # the first list of one resource
CONDITION = "DeviceModelFound"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rv(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class DeviceController:
    name = "devicecontroller"
    group = "devicecontroller"

    def __init__(self, config: Config, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.flow = DeviceFlow()
        self.informers: dict[str, Informer] = {}
        self.reports: asyncio.Queue[Message] = asyncio.Queue(REPORT_QUEUE)
        self.tasks = TaskSupervisor(self.name)
        self._written: dict[str, Obj] = {}       # "ns/name" -> the DeviceStatus as our last write returned it
        self._creating: set[str] = set()         # DeviceStatus creations in flight
        self._status_subresource: dict[str, bool] = {}  # plural -> whether its CRD has one (learnt at the first patch)
        self.ready = asyncio.Event()             # every cache has its first list

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.tasks.keep(self._downstream, "downstream")
        self.tasks.keep(self._work_reports, "reports")
        mailbox = asyncio.create_task(self._read_mailbox(ctx), name="devicecontroller-mailbox")
        failed = asyncio.create_task(self.tasks.failed(), name="devicecontroller-supervision")
        try:
            done, _ = await asyncio.wait([mailbox, failed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            mailbox.cancel()
            failed.cancel()
            await self.tasks.close()

    async def _send(self, message: Message) -> None:
        try:
            await self.ctx.send("cloudhub", message)
        except BeehiveError as error:
            log.warning("cannot hand %s to CloudHub: %s", message.describe(), error)

    # -- downstream ------------------------------------------------------------------------
    async def _downstream(self) -> None:
        await self._wait_for_api()
        # models and statuses first, so the first devices find theirs (upstream sleeps a second)
        for name, path, handler in (("devicemodels", f"{API}/devicemodels", self._on_model),
                                    ("devicestatuses", f"{API}/devicestatuses", self._on_status)):
            self._inform(name, path, handler)
        await self._synced("devicemodels", "devicestatuses")
        self._inform("devices", f"{API}/devices", self._on_device)
        self._inform("objectsyncs", OBJECTSYNCS, self._on_status)
        await self._synced("devices", "objectsyncs")
        self.ready.set()
        log.info("watching %d devices and %d device models", len(self.flow.devices), len(self.flow.models))
        while True:
            await self.resync_all()
            await asyncio.sleep(RESYNC_SECONDS)

    def _inform(self, name: str, path: str, handler: Any) -> None:
        if name in self.informers:
            return  # started before this loop was restarted
        informer = self.informers[name] = Informer(self.kube, path, handler)
        self.tasks.keep(informer.run, f"informer-{name}")

    async def _synced(self, *names: str) -> None:
        for name in names:
            try:
                await asyncio.wait_for(self.informers[name].synced.wait(), SYNC_WAIT_SECONDS)
            except TimeoutError:
                raise RuntimeError(f"the first list of {name} did not come within {SYNC_WAIT_SECONDS:.0f}s") from None

    async def _wait_for_api(self) -> None:
        # CloudHub may be creating the CRDs right now: look again soon, then every API_RETRY_SECONDS
        pause, waiting, warned = 1.0, False, False
        while True:
            try:
                await self.kube.request("GET", API)
                if waiting:
                    log.info("%s is served now: DeviceController starts", GROUP_VERSION)
                return
            except KubeError as error:
                reason = f"{error.code} {error.reason or error}"
            except OSError as error:
                reason = str(error)
            if not waiting:
                log.info("%s is not served yet (%s): DeviceController waits for the devices CRDs", GROUP_VERSION, reason)
                waiting = True
            elif pause >= API_RETRY_SECONDS and not warned:
                log.warning("%s is still not served (%s; are the devices CRDs installed?): DeviceController waits, "
                            "looking again every %.0fs", GROUP_VERSION, reason, API_RETRY_SECONDS)
                warned = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, API_RETRY_SECONDS)

    async def _on_status(self, event: str, obj: Obj, old: Obj | None) -> None:
        return None  # the caches are what we need (DeviceStatuses, ObjectSyncs)

    async def _on_model(self, event: str, model: Obj, old: Obj | None) -> None:
        for message in self.flow.on_model(event, model):
            await self._send(message)
        if self.informers.get("devices") is not None and self.informers["devices"].synced.is_set():
            for device in self.flow.waiting_for(model):
                self._check_model(device)

    async def _on_device(self, event: str, device: Obj, old: Obj | None) -> None:
        for message in self.flow.on_device(event, device):
            await self._send(message)
        key = flow.key_of(device)
        if event == "DELETED":
            self._written.pop(key, None)
            return
        self._check_model(device)
        if key not in self.informers["devicestatuses"].cache and key not in self._written and key not in self._creating:
            self._creating.add(key)
            self.tasks.spawn(self._create_status_logged(device), f"status-{key}")

    async def resync_all(self) -> None:
        if not self.ready.is_set():
            return
        by_node: dict[str, list[Obj]] = {}
        for sync in self.informers["objectsyncs"].cache.values():
            if (sync.get("spec") or {}).get("objectKind") in flow.TYPES:
                by_node.setdefault(sync["metadata"]["name"].rsplit(".", 1)[0], []).append(sync)
        for node, syncs in by_node.items():
            for message in self.flow.resync(node, syncs):
                await self._send(message)

    async def resync(self, node: str) -> None:
        syncs = [s for s in self.informers["objectsyncs"].cache.values()
                 if s["metadata"]["name"].rsplit(".", 1)[0] == node and (s.get("spec") or {}).get("objectKind") in flow.TYPES]
        for message in self.flow.resync(node, syncs):
            await self._send(message)

    # -- missing models: Event and condition -----------------------------------------------
    def _check_model(self, device: Obj) -> None:
        missing = self.flow.model_missing(device)
        conditions = ((device.get("status") or {}).get("conditions")) or []
        current = next((c for c in conditions if isinstance(c, dict) and c.get("type") == CONDITION), None)
        wanted = "False" if missing else "True"
        if (current or {}).get("status") == wanted or (current is None and not missing):
            return
        self.tasks.spawn(self._report_model(device, missing, [c for c in conditions if c is not current]),
                         f"condition-{flow.key_of(device)}")

    async def _report_model(self, device: Obj, missing: bool, others: list[Any]) -> None:
        meta = device["metadata"]
        model = flow.model_key_of(device)
        condition = {"type": CONDITION, "status": "False" if missing else "True",
                     "reason": "DeviceModelNotFound" if missing else "DeviceModelFound",
                     "message": f"device model {model} does not exist" if missing else f"device model {model} exists",
                     "lastTransitionTime": _now()}
        path = f"{API}/namespaces/{meta['namespace']}/devices/{meta['name']}"
        try:
            await self._patch_status(path, {"status": {"conditions": [*others, condition]}})
            if missing:
                await self._event(device, condition["message"])
        except (KubeError, OSError) as error:
            log.warning("cannot report the missing model of device %s: %s", flow.key_of(device), error)
            return
        if missing:
            log.warning("device %s names device model %s, which does not exist", flow.key_of(device), model)

    async def _event(self, device: Obj, message: str) -> None:
        meta = device["metadata"]
        now = _now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": GROUP_VERSION, "kind": "Device", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid", ""),
                               "resourceVersion": meta.get("resourceVersion", "")},
            "reason": "DeviceModelNotFound", "message": message, "type": "Warning", "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": {"component": self.name},
            "reportingComponent": self.name, "reportingInstance": self.name,
        }
        await self.kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)

    async def _patch_status(self, path: str, body: Obj) -> Obj:
        """Merge-patch the status subresource; a CRD without one (upstream's DeviceStatus, ours too)
        takes it on the object, and the first 404 says so for good."""
        resource = path.rsplit("/", 2)[-2]  # devices or devicestatuses
        known = self._status_subresource.get(resource)
        if known is not False:
            try:
                patched = await self.kube.request("PATCH", f"{path}/status", body, content_type="application/merge-patch+json")
                self._status_subresource[resource] = True
                return patched
            except KubeError as error:
                if error.code != 404 or known:
                    raise
                self._status_subresource[resource] = False
        return await self.kube.request("PATCH", path, body, content_type="application/merge-patch+json")

    # -- DeviceStatus ----------------------------------------------------------------------
    async def _create_status_logged(self, device: Obj) -> None:
        key = flow.key_of(device)
        try:
            await self._create_status(device)
        except (KubeError, OSError) as error:
            log.warning("cannot create the DeviceStatus of %s: %s", key, error)
        finally:
            self._creating.discard(key)

    async def _create_status(self, device: Obj) -> Obj:
        meta = device["metadata"]
        body = {
            "apiVersion": GROUP_VERSION, "kind": "DeviceStatus",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "ownerReferences": [{
                "apiVersion": GROUP_VERSION, "kind": "Device", "name": meta["name"], "uid": meta.get("uid", ""),
                "controller": True, "blockOwnerDeletion": True}]},
            "spec": {},
        }
        path = f"{API}/namespaces/{meta['namespace']}/devicestatuses"
        try:
            created = await self.kube.request("POST", path, body)
        except KubeError as error:
            if error.code != 409:
                raise
            created = await self.kube.request("GET", f"{path}/{meta['name']}")
        self._remember(created)
        return created

    def _remember(self, status: Obj) -> None:
        key = flow.key_of(status)
        if _rv(status) >= _rv(self._written.get(key)):
            self._written[key] = status

    async def _current_status(self, device: Obj) -> Obj:
        key = flow.key_of(device)
        cached = self.informers["devicestatuses"].cache.get(key)
        written = self._written.get(key)
        newest = cached if _rv(cached) >= _rv(written) else written
        if newest is None:
            return await self._create_status(device)
        return newest

    async def _patch_device_status(self, device: Obj, status: Obj) -> None:
        meta = device["metadata"]
        path = f"{API}/namespaces/{meta['namespace']}/devicestatuses/{meta['name']}"
        try:
            patched = await self._patch_status(path, {"status": status})
        except KubeError as error:
            if error.code != 404:
                raise
            await self._create_status(device)  # deleted meanwhile: made again, then patched
            patched = await self._patch_status(path, {"status": status})
        self._remember(patched)

    # -- upstream --------------------------------------------------------------------------
    async def _read_mailbox(self, ctx: Context) -> None:
        while True:
            message = await ctx.receive(self.name)
            try:
                self.reports.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("%d device reports waiting: %s dropped (the edge sends it again)", REPORT_QUEUE, message.describe())

    async def _work_reports(self) -> None:
        while True:
            message = await self.reports.get()
            try:
                reply = await self._report(message)
            except (KubeError, OSError) as error:
                # no answer: the edge keeps the report and sends it again (60 s)
                log.warning("device report %s not applied: %s", message.describe(), error)
                continue
            except Exception:  # noqa: BLE001 - one report's failure is logged; the worker goes on
                log.exception("device report %s failed", message.describe())
                continue
            if reply is not None:
                await self._send(reply)

    async def _report(self, message: Message) -> Message | None:
        try:
            node, resource = split_node_prefix(message.route.resource)
            parsed = parse(resource)
        except ResourceError as error:
            log.warning("ignored %s: %s", message.describe(), error)
            return None
        if str(parsed) == "membership/detail":
            return await self._membership_detail(node, message)
        if not isinstance(parsed, DeviceResource):
            log.debug("no handler for %s from node %s", message.describe(), node)
            return None
        if not self.ready.is_set():
            return None  # not an answer yet: the edge asks again
        try:
            await self._apply_report(node, parsed, message)
        except Refusal as refusal:
            return upstream.error_reply(message, node, refusal)
        return upstream.ok_reply(message, node)

    async def _membership_detail(self, node: str, message: Message) -> Message | None:
        if message.route.operation != "get" or not self.ready.is_set():
            return None  # before the first list an empty answer would make the edge drop its devices
        await self.resync(node)
        return upstream.detail_reply(message, node, self.flow.membership_detail(node, upstream.event_id_of(message.content)))

    async def _apply_report(self, node: str, resource: DeviceResource, message: Message) -> None:
        upstream.check_device_names(resource.namespace, resource.name)
        device = self.flow.devices.get(resource.device_id)
        if device is None:
            raise Refusal(404, f"device {resource.device_id} does not exist")
        if flow.node_of(device) != node:
            log.warning("node %s may not report device %s (bound to %r): refused", node, resource.device_id,
                        flow.node_of(device))
            raise Refusal(403, f"node {node} may not report device {resource.device_id}: it is not bound to this node")
        if message.route.operation != "update":
            raise Refusal(400, f"operation {message.route.operation!r} is not supported on {resource}")
        if (resource.kind, resource.action) == ("twin", "edge_updated"):
            reports = upstream.parse_twin_update(message.content)
            current = await self._current_status(device)
            twins = upstream.merged_twins((current.get("status") or {}).get("twins"), device, reports)
            await self._patch_device_status(device, {"twins": twins})
        elif (resource.kind, resource.action) == ("state", "update"):
            await self._current_status(device)
            await self._patch_device_status(device, upstream.parse_state_update(message.content))
        else:
            raise Refusal(400, f"{resource.kind}/{resource.action} is not a device report")
