"""What DeviceController sends edges when Devices and DeviceModels change: pure, no I/O.

:class:`DeviceFlow` keeps the last Device and DeviceModel seen and, for every node, the models it
was sent; each watch event returns the messages to send, in order, in the cloud-internal form
(``node/<id>/`` in front of the resource; CloudHub strips it). Shapes as recorded between
upstream peers (tests/testdata/upstream-v1.23/device.jsonl) and upstream's
``devicecontroller/controller/downstream.go``:

- a Device bound to a node: ``membership`` update (``devicecontroller/twin``, content
  ``{event_id, timestamp, added_devices: [{id: "ns/name", name}], removed_devices: null}``,
  no ack), the DeviceModel ``insert`` when it is the node's first device of that model, then the
  Device ``insert`` (``devicecontroller/resource``, ``{ns}/devicemodel/{name}`` and
  ``{ns}/device/{name}``, the full object with kind and apiVersion, its resourceVersion in the
  header: CloudHub acks, resends and records these);
- a spec change on the same node: model and device ``update`` (CloudHub drops the model's when the
  node already has that version, as upstream's ObjectSync check does);
- a nodeName change: the removal from the old node, then the addition to the new one;
- a delete: ``removed_devices``, the model's ``delete`` when its last device on that node went,
  and the device's ``delete``.

Beyond upstream, which forgets a device whose model arrives after it and never deletes a model at
the edge: a model that appears later is sent to the nodes whose devices wait for it, a model change
goes to the nodes that have it, and a deleted model is deleted on them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from typing import Any

from cores.beehive import Message
from cores.beehive.message import now_ms
from cores.common.objects import ObjectView
from cores.link import contracts

SOURCE = "devicecontroller"
API_VERSION = "devices.kubeedge.io/v1beta1"
DEVICE, MODEL = "Device", "DeviceModel"
TYPES = {DEVICE: "device", MODEL: "devicemodel"}

Obj = dict[str, Any]


def key_of(obj: Obj) -> str:
    view = ObjectView(obj)
    return f"{view.namespace}/{view.name}"


def node_of(device: Obj | None) -> str:
    spec = (device or {}).get("spec") or {}
    node = spec.get("nodeName")
    return node if isinstance(node, str) else ""


def model_key_of(device: Obj) -> str:
    """``ns/model`` of the DeviceModel a Device names ("" when it names none)."""
    ref = ((device.get("spec") or {}).get("deviceModelRef") or {})
    name = ref.get("name") if isinstance(ref, dict) else None
    return f"{ObjectView(device).namespace}/{name}" if isinstance(name, str) and name else ""


def membership_device(device: Obj) -> Obj:
    """The edge's view of a device in a membership message (upstream ``createDevice``)."""
    view = ObjectView(device)
    entry: Obj = {"id": f"{view.namespace}/{view.name}", "name": view.name}
    description = (view.metadata.get("labels") or {}).get("description")
    if isinstance(description, str) and description:
        entry["description"] = description
    return entry


def membership(node: str, added: list[Obj] | None, removed: list[Obj] | None) -> Message:
    content = {"event_id": str(uuid.uuid4()), "timestamp": now_ms(), "added_devices": added, "removed_devices": removed}
    return Message.new(source=SOURCE, group="twin", operation="update", resource=f"node/{node}/membership", content=content)


def typed(obj: Obj, kind: str) -> Obj:
    """The object as upstream's Go types serialise it: kind and apiVersion first; a Device always has a status."""
    body: Obj = {"kind": kind, "apiVersion": API_VERSION, **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}}
    if kind == DEVICE:
        body.setdefault("status", {})
    return body


def push(node: str, operation: str, obj: Obj, kind: str, *, source: str = SOURCE) -> Message:
    view = ObjectView(obj)
    resource = f"node/{node}/{view.namespace}/{TYPES[kind]}/{view.name}"
    return contracts.push(operation, resource, typed(obj, kind), source=source, resource_version=view.resource_version)


def stub_delete(node: str, kind: str, namespace: str, name: str, uid: str) -> Message:
    """The delete of an object that is gone, as upstream's SyncController sends it (capture: source
    edgecontroller, content name/namespace/uid only, no resourceversion)."""
    content = {"metadata": {"name": name, "namespace": namespace, "uid": uid}}
    return contracts.push("delete", f"node/{node}/{namespace}/{TYPES[kind]}/{name}", content, source="edgecontroller")


@dataclasses.dataclass
class DeviceFlow:
    devices: dict[str, Obj] = dataclasses.field(default_factory=dict)        # "ns/name" -> Device
    models: dict[str, Obj] = dataclasses.field(default_factory=dict)         # "ns/name" -> DeviceModel
    sent_models: dict[str, dict[str, Obj]] = dataclasses.field(default_factory=dict)  # node -> model key -> model sent

    # -- queries ---------------------------------------------------------------------------
    def devices_on(self, node: str) -> list[Obj]:
        return [d for d in self.devices.values() if node_of(d) == node]

    def models_needed(self, node: str) -> set[str]:
        return {model_key_of(d) for d in self.devices_on(node)} - {""}

    def model_missing(self, device: Obj) -> bool:
        """A Device that names a model which does not exist (it is accepted all the same, as upstream)."""
        model = model_key_of(device)
        return bool(model) and model not in self.models

    def owns(self, node: str, namespace: str, name: str) -> bool:
        """NodeRestriction: the device ``namespace/name`` is bound to ``node``."""
        device = self.devices.get(f"{namespace}/{name}")
        return device is not None and node_of(device) == node

    def nodes(self) -> set[str]:
        return {node_of(d) for d in self.devices.values()} - {""} | set(self.sent_models)

    # -- devices ---------------------------------------------------------------------------
    def on_device(self, event: str, device: Obj) -> list[Message]:
        key = key_of(device)
        before = self.devices.get(key)
        if event == "DELETED":
            self.devices.pop(key, None)
            gone = before if before is not None else device
            return self._removed(node_of(gone), device) if node_of(gone) else []
        self.devices[key] = device
        if before is None:
            return self._added(node_of(device), device) if node_of(device) else []
        if (before.get("spec") or {}) == (device.get("spec") or {}):
            return []
        old_node, new_node = node_of(before), node_of(device)
        if old_node != new_node:
            messages = self._removed(old_node, before) if old_node else []
            return messages + (self._added(new_node, device) if new_node else [])
        if not new_node:
            return []
        had = set(self.sent_models.get(new_node, {}))
        messages = self._sync_models(new_node, first=[])
        model = self.models.get(model_key_of(device))
        if model is not None and model_key_of(device) in had:
            messages.append(push(new_node, "update", model, MODEL))
        messages.append(push(new_node, "update", device, DEVICE))
        return self._with_model_deletes(new_node, messages)

    def _added(self, node: str, device: Obj) -> list[Message]:
        messages = [membership(node, [membership_device(device)], None)]
        messages = self._sync_models(node, first=messages)
        messages.append(push(node, "insert", device, DEVICE))
        return self._with_model_deletes(node, messages)

    def _removed(self, node: str, device: Obj) -> list[Message]:
        messages = [membership(node, None, [membership_device(device)])]
        messages += self._model_deletes(node)
        messages.append(push(node, "delete", device, DEVICE))
        return messages

    def _sync_models(self, node: str, first: list[Message]) -> list[Message]:
        """``first``, then an insert for each model the node's devices need and it was not sent."""
        sent = self.sent_models.setdefault(node, {})
        for model_key in sorted(self.models_needed(node) - set(sent)):
            model = self.models.get(model_key)
            if model is not None:
                sent[model_key] = model
                first.append(push(node, "insert", model, MODEL))
        if not sent:
            self.sent_models.pop(node, None)
        return first

    def _model_deletes(self, node: str) -> list[Message]:
        """Deletes of the models the node was sent and none of its devices needs any more."""
        sent = self.sent_models.get(node, {})
        messages = []
        for model_key in sorted(set(sent) - self.models_needed(node)):
            model = sent.pop(model_key)
            current = self.models.get(model_key)
            if current is not None and ObjectView(current).uid == ObjectView(model).uid:
                model = current  # the newest version of the same model
            messages.append(push(node, "delete", model, MODEL))
        if not sent:
            self.sent_models.pop(node, None)
        return messages

    def _with_model_deletes(self, node: str, messages: list[Message]) -> list[Message]:
        return messages + self._model_deletes(node)

    # -- models ----------------------------------------------------------------------------
    def on_model(self, event: str, model: Obj) -> list[Message]:
        key = key_of(model)
        messages: list[Message] = []
        if event == "DELETED":
            self.models.pop(key, None)
            for node, sent in list(self.sent_models.items()):
                if key in sent:
                    del sent[key]
                    messages.append(push(node, "delete", model, MODEL))
                    if not sent:
                        del self.sent_models[node]
            return messages
        self.models[key] = model
        for node in sorted({node_of(d) for d in self.devices.values() if model_key_of(d) == key} - {""}):
            sent = self.sent_models.setdefault(node, {})
            operation = "update" if key in sent else "insert"
            sent[key] = model
            messages.append(push(node, operation, model, MODEL))
        return messages

    def waiting_for(self, model: Obj) -> list[Obj]:
        """The devices that name ``model``."""
        key = key_of(model)
        return [d for d in self.devices.values() if model_key_of(d) == key]

    # -- resync from ObjectSyncs -------------------------------------------------------------
    def resync(self, node: str, syncs: Iterable[Obj]) -> list[Message]:
        """What ``node`` lacks by its ObjectSyncs (Device and DeviceModel ones): newer versions, and
        deletes (with ``removed_devices``) for what is gone, was replaced or moved to another node."""
        messages: list[Message] = []
        for sync in syncs:
            spec = sync.get("spec") or {}
            kind = spec.get("objectKind")
            if kind not in TYPES:
                continue
            namespace = ObjectView(sync).namespace
            name = spec.get("objectName")
            if not isinstance(name, str) or not name:
                continue
            uid = ObjectView(sync).name.rsplit(".", 1)[-1]
            acked = _version((sync.get("status") or {}).get("objectResourceVersion"))
            key = f"{namespace}/{name}"
            current = (self.devices if kind == DEVICE else self.models).get(key)
            wanted = current is not None and ObjectView(current).uid == uid and (
                node_of(current) == node if kind == DEVICE else key in self.models_needed(node))
            if not wanted:
                if kind == DEVICE and not self.owns(node, namespace, name):
                    messages.append(membership(node, None, [{"id": key, "name": name}]))
                messages.append(stub_delete(node, kind, namespace, name, uid))
            elif current is not None and _version(ObjectView(current).resource_version) > acked:
                messages.append(push(node, "update" if acked else "insert", current, kind))
        return messages

    def membership_detail(self, node: str, event_id: str) -> Obj:
        """The answer to the edge's ``membership/detail`` get: every device bound to it."""
        devices = [membership_device(d) for d in sorted(self.devices_on(node), key=key_of)]
        return {"event_id": event_id or str(uuid.uuid4()), "timestamp": now_ms(), "devices": devices}


def _version(text: Any) -> int:
    try:
        return int(text or 0)
    except (TypeError, ValueError):
        return 0
