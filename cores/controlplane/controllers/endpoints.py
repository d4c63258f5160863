"""Endpoints and EndpointSlices: which pods back each Service with a selector.

As kube-controller-manager's endpoints and endpointslice controllers, in small. For a Service
with a non-empty ``spec.selector``, its pods are the namespace's pods whose labels match, that
have a pod IP and are not finished. The Endpoints object of the same name gets one subset with
the ready pods as ``addresses`` and the others as ``notReadyAddresses`` (terminating pods left
out), and the ports of the Service with each ``targetPort`` resolved (a named port through the
pod's container ports). The EndpointSlice ``<service>-<hash>`` (label
``kubernetes.io/service-name``, owned by the Service) lists every pod with its ready, serving
and terminating conditions, node and target reference. A Service without a selector is left to
whoever manages its Endpoints; a Service gone takes its Endpoints along (its slice goes with the
garbage collector). This is what ``kubectl expose`` needs, and what MetaServer will serve to edge
applications.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from cores.controlplane import errors
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.objects import meta
from cores.controlplane.store import Event

log = logging.getLogger("kubeedge.controlplane.controllers")

COMPONENT = "endpoint-controller"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def target_port(service_port: dict[str, Any], pod: dict[str, Any]) -> int | None:
    """The pod's port for a Service port: a number as is, a name through the containers' ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == service_port.get("protocol", "TCP"):
                return int(port.get("containerPort") or 0) or None
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    return (base.condition(pod, "Ready") or {}).get("status") == "True"


def pod_address(pod: dict[str, Any]) -> dict[str, Any]:
    address: dict[str, Any] = {"ip": (pod.get("status") or {}).get("podIP"),
                               "targetRef": {"kind": "Pod", "namespace": meta(pod)["namespace"], "name": meta(pod)["name"],
                                             "uid": meta(pod)["uid"]}}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    return address


def endpoints_for(service: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The Endpoints object a Service's pods make (its subsets; no subsets without any pod)."""
    ports = (service.get("spec") or {}).get("ports") or []
    ready: list[dict[str, Any]] = []
    not_ready: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    for pod in sorted(pods, key=lambda p: ((p.get("status") or {}).get("podIP") or "", meta(p)["name"])):
        if meta(pod).get("deletionTimestamp"):
            continue  # publishNotReadyAddresses aside, terminating pods leave the Endpoints
        (ready if is_ready(pod) else not_ready).append(pod_address(pod))
        if not resolved:
            resolved = [_endpoint_port(port, pod) for port in ports]
    subset: dict[str, Any] = {}
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    if subset:
        subset["ports"] = [port for port in resolved if port["port"]]
    metadata = {"name": meta(service)["name"], "namespace": meta(service)["namespace"],
                "labels": dict(meta(service).get("labels") or {})}
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata, **({"subsets": [subset]} if subset else {})}


def _endpoint_port(port: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {"port": target_port(port, pod) or 0, "protocol": port.get("protocol", "TCP")}
    if port.get("name"):
        resolved["name"] = port["name"]
    return resolved


def slice_name(service: dict[str, Any]) -> str:
    digest = hashlib.sha256(meta(service)["uid"].encode()).hexdigest()[:5]
    return f"{meta(service)['name'][:57]}-{digest}"


def endpoint_slice_for(service: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    ports = (service.get("spec") or {}).get("ports") or []
    endpoints: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    for pod in sorted(pods, key=lambda p: ((p.get("status") or {}).get("podIP") or "", meta(p)["name"])):
        terminating = bool(meta(pod).get("deletionTimestamp"))
        ready = is_ready(pod)
        endpoint: dict[str, Any] = {"addresses": [(pod.get("status") or {}).get("podIP")],
                                    "conditions": {"ready": ready and not terminating, "serving": ready,
                                                   "terminating": terminating},
                                    "targetRef": pod_address(pod)["targetRef"]}
        if (pod.get("spec") or {}).get("nodeName"):
            endpoint["nodeName"] = pod["spec"]["nodeName"]
        endpoints.append(endpoint)
        if not resolved:
            resolved = [_endpoint_port(port, pod) for port in ports]
    labels = {**(meta(service).get("labels") or {}), SERVICE_NAME_LABEL: meta(service)["name"], MANAGED_BY_LABEL: SLICE_MANAGER}
    owner = {"apiVersion": "v1", "kind": "Service", "name": meta(service)["name"], "uid": meta(service)["uid"],
             "controller": True, "blockOwnerDeletion": True}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name(service), "namespace": meta(service)["namespace"], "labels": labels,
                         "ownerReferences": [owner]},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [port for port in resolved if port["port"]] if endpoints else []}


class EndpointsController:
    def __init__(self, api: Api, resync: float) -> None:
        self.api = api
        self.services = base.resource(api, "", "services")
        self.pods = base.resource(api, "", "pods")
        self.endpoints = base.resource(api, "", "endpoints")
        self.slices = base.resource(api, "discovery.k8s.io", "endpointslices")
        self.loop = base.KeyedLoop(api, COMPONENT, self.keys_of, self.reconcile, self.all_keys, resync)

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        group, plural, namespace, name = base.split_key(event.key)
        if group != "core" or plural not in ("services", "pods"):
            return ()
        if plural == "services":
            return (f"{namespace}/{name}",)
        return (f"{namespace}/",)  # a pod: every Service of its namespace looks again

    async def all_keys(self) -> list[str]:
        return [f"{meta(s)['namespace']}/{meta(s)['name']}" for s in await base.list_objects(self.api, self.services)]

    async def reconcile(self, key: object) -> float | None:
        namespace, _, name = str(key).partition("/")
        if not name:
            for service in await base.list_objects(self.api, self.services, namespace):
                await self._sync(namespace, meta(service)["name"], service)
            return None
        await self._sync(namespace, name, await base.get(self.api, self.services, namespace, name))
        return None

    async def _sync(self, namespace: str, name: str, service: dict[str, Any] | None) -> None:
        if service is None or meta(service).get("deletionTimestamp"):
            await self._delete(self.endpoints, namespace, name)
            return
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return  # endpoints managed by hand (or by whoever set the service up)
        pods = [pod for pod in await base.list_objects(self.api, self.pods, namespace)
                if selects(selector, meta(pod).get("labels") or {}) and (pod.get("status") or {}).get("podIP")
                and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        await self._write(self.endpoints, endpoints_for(service, pods), ("subsets",))
        await self._write(self.slices, endpoint_slice_for(service, pods), ("endpoints", "ports", "addressType"))

    async def _write(self, kind: Any, wanted: dict[str, Any], fields: tuple[str, ...]) -> None:
        namespace, name = wanted["metadata"]["namespace"], wanted["metadata"]["name"]
        current = await base.get(self.api, kind, namespace, name)
        if current is None:
            try:
                await self.api.create(kind, namespace, wanted)
            except errors.ApiError as error:
                if error.code != 409:
                    raise
            return
        labels_same = (meta(current).get("labels") or {}) == wanted["metadata"]["labels"]
        if labels_same and all(current.get(field) == wanted.get(field) for field in fields):
            return
        updated = {**current, **{field: wanted[field] for field in fields if field in wanted}}
        for field in fields:
            if field not in wanted:
                updated.pop(field, None)
        updated["metadata"] = {**meta(current), "labels": wanted["metadata"]["labels"]}
        try:
            await self.api.update(kind, namespace, name, updated)
        except errors.ApiError as error:
            if error.code not in (404, 409):  # changed meanwhile: the next event or resync writes it
                raise

    async def _delete(self, kind: Any, namespace: str, name: str) -> None:
        try:
            await self.api.delete(kind, namespace, name, {})
        except errors.ApiError as error:
            if error.code != 404:
                raise

