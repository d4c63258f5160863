"""DeviceTwin: the edge's copy of its devices and their twins, kept in SQLite and shared over MQTT.

Module ``twin``, group ``twin``, as upstream. What comes in:

- **from the cloud**: the ``membership`` update (devices added to and removed from this node),
  the Device and DeviceModel pushes MetaManager stored and forwards (a Device's
  ``spec.properties[].desired`` values become the twins' expected values), ``twin/cloud_updated``
  with version vectors, and the answers to what the twin sent (matched by ``parent_msg_id``);
- **from apps and mappers** through EventBus (``source bus``, the topic base64url-encoded in the
  resource, as upstream): ``twin/update``, ``twin/get``, ``state/update``, ``state/get`` of a
  device, and ``membership/get`` of the node. Each gets its ``/result`` topic; a refusal is an
  error result (400, 404, 409, 500 and a reason) and changes nothing.

What goes out: results, deltas (``twin/update/delta`` when an expected value differs from the
actual one) and documents are published through EventBus; twin and state reports go to the cloud
(``device/{ns}/{name}/twin/edge_updated``, ``.../state/update``). Reports are written to the
``twin_outbox`` table in the same transaction as the twin, sent while the cloud is there, and
deleted when the cloud answers; on every connection what is left is sent again, oldest first, so
a value reported while the cloud was away, or before a crash, reaches DeviceStatus, newest last.
Upstream keeps them in memory and resends every 60 s; this keeps them on disk and resends on
reconnect and every ``RESEND_SECONDS``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cores.beehive import Context, Message
from cores.beehive.context import BeehiveError
from cores.beehive.message import OP_DELETE, OP_RESPONSE, now_ms
from cores.common.config import Config
from cores.common.names import is_dns1123_label, is_dns1123_subdomain
from cores.common.tasks import TaskSupervisor
from cores.edge.devicetwin import twin as rules
from cores.edge.devicetwin.store import TwinStore
from cores.link import routing

log = logging.getLogger("kubeedge.devicetwin")

HUB_MODULE = "websocket"
BUS_MODULE = "eventbus"
META_SOURCE = "metamanager"  # Device and DeviceModel pushes, forwarded after MetaManager's commit
RESEND_SECONDS = 30.0
SENT_IN_FLIGHT = 256  # reports sent and not yet answered, before the rest waits for the next round
T = TypeVar("T")
Obj = dict[str, Any]


class DeviceTwin:
    name = "twin"
    group = "twin"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.node_name = str(config.modules.edged.hostnameOverride)
        self.store = TwinStore(Path(config.database.dataSource))
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="twinstore")
        self.devices: dict[str, Obj] = {}
        self.models: dict[str, Obj] = {}
        self.device_objects: dict[str, Obj] = {}   # ns/name -> the v1beta1 Device last pushed
        self.connected = False
        self.detail_event_id = ""
        self.tasks = TaskSupervisor(self.name)

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.devices = await self._db(self.store.load)
        self.models = await self._db(self.store.models)
        log.info("device twin ready with %d devices", len(self.devices))
        self.tasks.keep(self._resend_periodically, "resend")
        while True:
            message = await ctx.receive(self.name)
            try:
                await self._handle(message)
            except Exception:  # noqa: BLE001 - one bad message never stops the twin
                log.exception("could not handle %s", message.describe())

    async def stop(self) -> None:
        await self.tasks.close()
        await self._db(self.store.close)
        self._executor.shutdown(wait=True)

    async def _db(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(call, *args))

    # -- dispatch ------------------------------------------------------------------------------
    async def _handle(self, message: Message) -> None:
        route = message.route
        if routing.is_connection_event(message):
            self.connected = routing.connected_in(message)
            if self.connected:
                await self._on_connected()
        elif message.parent_msg_id:
            await self._on_answer(message)
        elif route.source == "bus":
            await self._from_bus(message)
        elif route.source == META_SOURCE:
            await self._from_meta(message)
        elif route.resource == "membership" or route.resource.endswith("/membership"):
            await self._membership_update(message.content)
        elif route.resource.startswith("device/") and route.resource.endswith(rules.TWIN_CLOUD_UPDATED):
            await self._cloud_updated(route.resource[len("device/"):-len(rules.TWIN_CLOUD_UPDATED)], message.content)
        else:
            log.debug("no twin action for %s", message.describe())

    # -- the cloud -----------------------------------------------------------------------------
    async def _on_connected(self) -> None:
        """Ask for this node's devices (upstream's ``membership/detail`` get), then send what waits."""
        self.detail_event_id = rules.new_event_id()
        content = json.dumps({"event_type": "group_membership_event", "event_id": self.detail_event_id,
                              "group_id": self.node_name, "operation": "detail", "timestamp": now_ms()},
                             separators=(",", ":"))
        self._to_cloud(Message.new(source="twin", group="resource", operation="get", resource="membership/detail", content=content))
        await self._resend()

    async def _on_answer(self, message: Message) -> None:
        if message.route.resource.endswith("membership/detail") and isinstance(message.content, dict):
            await self._membership_detail(message.content)
            return
        confirmed = await self._db(self.store.confirm, message.parent_msg_id)
        if confirmed and message.content not in ("OK", None):
            log.info("the cloud answered a twin report with %s", str(message.content)[:200])

    def _to_cloud(self, message: Message) -> bool:
        if not self.connected:
            return False
        try:
            self.ctx.send_nowait(HUB_MODULE, message)
            return True
        except BeehiveError as error:
            log.warning("cannot hand %s to EdgeHub: %s", message.describe(), error)
            return False

    async def _report(self, device_id: str, suffix: str, content: Any, *, twins_to_write: list[str] | None = None) -> None:
        """Queue a report on disk (with the twins it reports, in one transaction), then send it."""
        message = Message.new(source="twin", group="resource", operation="update", resource=f"device/{device_id}{suffix}",
                              content=content)
        report = (message.msg_id, message.route.resource, {"content": content})
        if twins_to_write is not None:
            await self._db(self.store.put_twins, device_id, self.devices[device_id]["twin"], twins_to_write, report)
        else:
            await self._db(self.store.queue, *report)
        self._to_cloud(message)

    async def _resend(self) -> None:
        for msg_id, resource, body in (await self._db(self.store.outbox))[:SENT_IN_FLIGHT * 4]:
            message = Message.new(source="twin", group="resource", operation="update", resource=resource,
                                  content=body.get("content")).with_header(msg_id=msg_id)
            if not self._to_cloud(message):
                return

    async def _resend_periodically(self) -> None:
        while True:
            await asyncio.sleep(RESEND_SECONDS)
            if self.connected:
                await self._resend()

    async def _membership_update(self, content: Any) -> None:
        update = _json_object(content)
        for device in update.get("added_devices") or []:
            if isinstance(device, dict):
                await self._add_device(device)
        for device in update.get("removed_devices") or []:
            if isinstance(device, dict) and isinstance(device.get("id"), str):
                await self._remove_device(device["id"])

    async def _membership_detail(self, detail: Obj) -> None:
        """The cloud's list of this node's devices (our CloudCore answers the detail get): add what
        is missing, remove what the cloud no longer binds here."""
        listed = [d for d in detail.get("devices") or [] if isinstance(d, dict) and isinstance(d.get("id"), str)]
        for device in listed:
            if device["id"] not in self.devices:
                await self._add_device(device)
        for device_id in set(self.devices) - {d["id"] for d in listed}:
            await self._remove_device(device_id)

    async def _add_device(self, device: Obj) -> None:
        device_id = str(device.get("id") or "")
        if not _valid_device_id(device_id):
            log.warning("ignored a device with an invalid id %r", device_id[:300])
            return
        known = self.devices.get(device_id)
        if known is None:
            known = {"id": device_id, "name": str(device.get("name") or device_id.split("/")[1]),
                     "description": str(device.get("description") or ""), "state": str(device.get("state") or ""),
                     "last_online": "", "attributes": {}, "twin": {}}
            self.devices[device_id] = known
            await self._db(self.store.put_device, known)
            self._publish(rules.node_topic(self.node_name, rules.MEMBERSHIP_UPDATED),
                          {**rules.base("", now_ms()), "added_devices": [_summary(known)], "removed_devices": None})
        if isinstance(device.get("twin"), dict) and device["twin"]:
            change, _ = rules.apply_cloud_sync(known["twin"], device["twin"], now_ms())
            await self._keep(device_id, change)

    async def _remove_device(self, device_id: str) -> None:
        known = self.devices.pop(device_id, None)
        self.device_objects.pop(device_id, None)
        if known is None:
            return
        await self._db(self.store.delete_device, device_id)
        self._publish(rules.node_topic(self.node_name, rules.MEMBERSHIP_UPDATED),
                      {**rules.base("", now_ms()), "added_devices": None, "removed_devices": [_summary(known)]})

    async def _from_meta(self, message: Message) -> None:
        """A Device or DeviceModel push MetaManager committed: desired values to the twins."""
        namespace, _, rest = message.route.resource.partition("/")
        kind, _, name = rest.partition("/")
        key = f"{namespace}/{name}"
        obj = message.content if isinstance(message.content, dict) else {}
        if kind == "devicemodel":
            if message.route.operation == OP_DELETE:
                self.models.pop(key, None)
            else:
                self.models[key] = obj
            return
        if kind != "device" or not _valid_device_id(key):
            return
        if message.route.operation == OP_DELETE:
            await self._remove_device(key)
            return
        self.device_objects[key] = obj
        if key not in self.devices:
            await self._add_device({"id": key, "name": name})
        spec = obj.get("spec") or {}
        model_name = ((spec.get("deviceModelRef") or {}).get("name")) if isinstance(spec, dict) else None
        model = self.models.get(f"{namespace}/{model_name}") if model_name else None
        change = rules.apply_desired(self.devices[key]["twin"], rules.desired_of(obj, model), now_ms())
        if not change.changed:
            return
        self.devices[key]["twin"] = change.twins
        report = {**rules.base(rules.new_event_id(), now_ms()), "twin": change.sync} if change.sync else None
        if report is not None:
            await self._report(key, rules.TWIN_EDGE_UPDATED, report, twins_to_write=change.changed)
        else:
            await self._db(self.store.put_twins, key, change.twins, change.changed)
        self._publish_changes(key, "", change)

    async def _cloud_updated(self, device_id: str, content: Any) -> None:
        if device_id not in self.devices:
            return
        try:
            update = _json_object(content)
            _, twins = rules.parse_update(update)
            change, refused = rules.apply_cloud_sync(self.devices[device_id]["twin"], twins, now_ms())
        except rules.TwinError as error:
            log.warning("refused twin/cloud_updated of %s: %s", device_id, error.reason)
            return
        await self._keep(device_id, change)
        if refused:
            # upstream answers a version conflict with the edge's own state for those twins
            await self._report(device_id, rules.TWIN_EDGE_UPDATED,
                               {**rules.base(rules.new_event_id(), now_ms()), "twin": change.sync})

    async def _keep(self, device_id: str, change: rules.Change) -> None:
        if not change.changed:
            return
        self.devices[device_id]["twin"] = change.twins
        await self._db(self.store.put_twins, device_id, change.twins, change.changed)
        self._publish_changes(device_id, "", change)

    # -- apps and mappers ----------------------------------------------------------------------
    async def _from_bus(self, message: Message) -> None:
        try:
            topic = rules.decode_topic(message.route.resource)
        except rules.TwinError:
            return
        target = rules.classify(topic)
        if target is None:
            return
        result_suffix = {rules.TWIN_UPDATE: rules.TWIN_UPDATE_RESULT, rules.TWIN_GET: rules.TWIN_GET_RESULT,
                         rules.STATE_UPDATE: rules.STATE_UPDATE_RESULT, rules.STATE_GET: rules.STATE_GET_RESULT,
                         rules.MEMBERSHIP_GET: rules.MEMBERSHIP_GET_RESULT, rules.TWIN_CLOUD_UPDATED: ""}[target.action]
        result_topic = (rules.device_topic(target.subject, result_suffix) if target.about_device
                        else rules.node_topic(target.subject, result_suffix))
        event_id = ""
        try:
            payload = _payload(message.content)
            event_id = _event_id(payload)
            if target.action == rules.TWIN_CLOUD_UPDATED:
                return  # the cloud's topic: an app may not pose as the cloud
            if not target.about_device:
                if target.subject != self.node_name:
                    raise rules.TwinError(rules.NOT_FOUND, f"node {target.subject} is not this node")
                self._publish(result_topic, {**rules.base(event_id, now_ms()),
                                             "devices": [_summary(d) for d in self.devices.values()]})
                return
            device = self.devices.get(target.subject)
            if device is None:
                raise rules.TwinError(rules.NOT_FOUND, f"device {target.subject} is not a member of node {self.node_name}")
            if target.action == rules.TWIN_GET:
                self._publish(result_topic, {**rules.base(event_id, now_ms()), "twin": rules.without_versions(device["twin"])})
            elif target.action == rules.TWIN_UPDATE:
                await self._twin_update(target.subject, payload, result_topic)
            elif target.action == rules.STATE_UPDATE:
                await self._state_update(target.subject, payload, result_topic)
            elif target.action == rules.STATE_GET:
                self._publish(result_topic, {**rules.base(event_id, now_ms()),
                                             "device": {"name": device["name"], "state": device["state"],
                                                        "lastOnlineTime": device["last_online"]}})
        except rules.TwinError as error:
            log.info("refused %s: %s %s", topic, error.code, error.reason)
            if result_topic and result_suffix:
                self._publish(result_topic, rules.error_result(event_id, now_ms(), error))

    async def _twin_update(self, device_id: str, payload: Obj, result_topic: str) -> None:
        event_id, twins = rules.parse_update(payload)
        device = self.devices[device_id]
        now = now_ms()
        change = rules.apply_edge_update(device["twin"], twins, now)
        if change.changed:
            device["twin"] = change.twins
            await self._report(device_id, rules.TWIN_EDGE_UPDATED, {**rules.base(rules.new_event_id(), now), "twin": change.sync},
                               twins_to_write=change.changed)
        self._publish(result_topic, {**rules.base(event_id, now), "twin": change.result})
        self._publish_changes(device_id, event_id, change)

    async def _state_update(self, device_id: str, payload: Obj, result_topic: str) -> None:
        state = payload.get("state")
        if not isinstance(state, str) or not state or len(state) > 64 or not state.replace("-", "").replace("_", "").isalnum():
            raise rules.TwinError(rules.BAD_REQUEST, "state must be a word of at most 64 characters (online, offline, ...)")
        device = self.devices[device_id]
        device["state"] = state
        device["last_online"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        await self._db(self.store.put_device, device)
        event_id = _event_id(payload)
        body = {**rules.base(event_id, now_ms()),
                "device": {"name": device["name"], "state": state, "lastOnlineTime": device["last_online"]}}
        # upstream sends the state report as JSON text
        await self._report(device_id, rules.STATE_UPDATE, json.dumps(body, separators=(",", ":")))
        self._publish(result_topic, body)

    def _publish_changes(self, device_id: str, event_id: str, change: rules.Change) -> None:
        now = now_ms()
        if change.document:
            self._publish(rules.device_topic(device_id, rules.TWIN_DOCUMENT),
                          {**rules.base(event_id, now), "twin": change.document})
        pending = rules.delta(rules.new_event_id(), now, self.devices[device_id]["twin"])
        if pending is not None:
            self._publish(rules.device_topic(device_id, rules.TWIN_DELTA), pending)

    def _publish(self, topic: str, payload: Obj) -> None:
        if BUS_MODULE not in self.ctx.modules():
            return
        message = Message.new(source="twin", group="bus", operation="publish", resource=topic,
                              content=json.dumps(payload, separators=(",", ":")))
        try:
            self.ctx.send_nowait(BUS_MODULE, message)
        except BeehiveError as error:
            log.warning("cannot publish %s: %s", topic, error)


def _json_object(content: Any) -> Obj:
    if isinstance(content, (bytes, str)):
        try:
            content = json.loads(content)
        except ValueError:
            return {}
    return content if isinstance(content, dict) else {}


def _payload(content: Any) -> Obj:
    if isinstance(content, str):
        content = content.encode()
    if not isinstance(content, (bytes, bytearray)):
        raise rules.TwinError(rules.BAD_REQUEST, "the payload is not JSON text")
    if len(content) > rules.MAX_PAYLOAD:
        raise rules.TwinError(rules.BAD_REQUEST, f"the payload is larger than {rules.MAX_PAYLOAD} bytes")
    try:
        payload = json.loads(content)
    except ValueError:
        raise rules.TwinError(rules.BAD_REQUEST, "the payload is not JSON") from None
    if not isinstance(payload, dict):
        raise rules.TwinError(rules.BAD_REQUEST, "the payload is not a JSON object")
    return payload


def _event_id(payload: Obj) -> str:
    event_id = payload.get("event_id")
    return event_id if isinstance(event_id, str) and len(event_id) <= 64 else ""


def _valid_device_id(device_id: str) -> bool:
    namespace, _, name = device_id.partition("/")
    return is_dns1123_label(namespace) and is_dns1123_subdomain(name)


def _summary(device: Obj) -> Obj:
    """A device as membership results show it (upstream: no twins, attributes kept)."""
    shown = {k: device[k] for k in ("id", "name", "description", "state", "last_online") if device.get(k)}
    if device.get("attributes"):
        shown["attributes"] = device["attributes"]
    return shown
