"""A hollow Edged: the real EdgeHub and MetaManager, with a stand-in that runs nothing.

It registers its Node, keeps the Lease renewed and reports the node Ready (it has no runtime to
be down), reports every pod it is sent as Running and Ready, and finishes a pod's deletion as a
kubelet would (``delete`` with ``gracePeriodSeconds: 0`` and the uid precondition). Library code:
``keadm run edge --hollow`` uses it for scale tests, and the density benchmark runs many. Its
requests go through :class:`~cores.link.requests.CloudRequests`, as the real Edged's do.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from typing import Any

from cores.beehive import Context
from cores.common.config import Config
from cores.link.requests import CloudRequests
from cores.link.status import RequestTimeout, StatusError

log = logging.getLogger("kubeedge.hollow")

LEASE_SECONDS = 10.0
TIMEOUT = 30.0


def _now(micro: bool = False) -> str:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.now(datetime.timezone.utc).strftime(fmt)


def running_status(pod: dict[str, Any], node_ip: str) -> dict[str, Any]:
    """The status patch a kubelet sends once every container runs and is ready."""
    now = _now()
    spec = pod.get("spec") or {}
    conditions = [{"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                  for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")]
    statuses = [{
        "name": c["name"], "image": c.get("image", ""), "imageID": "", "containerID": f"hollow://{pod['metadata']['uid']}-{c['name']}",
        "ready": True, "started": True, "restartCount": 0, "state": {"running": {"startedAt": now}}, "lastState": {},
    } for c in spec.get("containers") or []]
    return {
        "metadata": {"uid": pod["metadata"]["uid"]},
        "status": {
            "$setElementOrder/conditions": [{"type": c["type"]} for c in conditions],
            "conditions": conditions, "phase": "Running", "hostIP": node_ip,
            "podIP": node_ip, "podIPs": [{"ip": node_ip}], "hostIPs": [{"ip": node_ip}], "startTime": now,
            "containerStatuses": statuses,
        },
    }


class HollowEdged:
    name = "edged"
    group = "edged"

    def __init__(self, config: Config) -> None:
        edged = config.modules.edged
        self.node_name = str(edged.hostnameOverride)
        self.node_ip = str(edged.get("nodeIP") or "127.0.0.1")
        self.labels = dict(edged.get("nodeLabels") or {})
        self.connected = asyncio.Event()
        self.reported: set[str] = set()  # uids reported Running
        self.deleted: set[str] = set()  # uids the cloud deleted
        self.node_uid = ""
        self.lease: dict[str, Any] | None = None

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.requests = CloudRequests(ctx, source="edged", timeout=TIMEOUT)
        presence = asyncio.create_task(self._presence())
        try:
            while True:
                message = await ctx.receive(self.name)
                if message.route.resource == "node/connection":
                    (self.connected.set if message.content == "cloud_connected" else self.connected.clear)()
                elif "/pod/" in message.route.resource and isinstance(message.content, dict):
                    asyncio.create_task(self._pod(message.route.operation, message.content))
        finally:
            presence.cancel()

    async def _pod(self, operation: str, pod: dict[str, Any]) -> None:
        metadata = pod.get("metadata") or {}
        uid, namespace, name = metadata.get("uid", ""), metadata.get("namespace", ""), metadata.get("name", "")
        if operation == "delete":
            self.reported.discard(uid)
            self.deleted.add(uid)
            return
        # Like a kubelet, keep trying until the cloud has the status: a reply lost with the
        # link (or a CloudCore that died mid-request) must not leave the pod Pending. A pod being
        # deleted is finished whether or not its status was reported before.
        terminating = bool(metadata.get("deletionTimestamp"))
        while uid not in self.deleted and (terminating or uid not in self.reported):
            await self.connected.wait()
            try:
                if terminating:
                    reply = await self.requests.delete(f"{namespace}/pod/{name}",
                                                       {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
                    if reply == "OK":
                        self.deleted.add(uid)
                        return
                else:
                    patch = json.dumps(running_status(pod, self.node_ip), separators=(",", ":"))
                    await self.requests.patch(f"{namespace}/podpatch/{name}", patch)
                    self.reported.add(uid)
                    return
            except RequestTimeout as error:
                log.warning("pod %s/%s: %s", namespace, name, error)
            except StatusError as error:  # refused: asked again in a second, as before
                log.debug("pod %s/%s: %s", namespace, name, error)
            await asyncio.sleep(1)

    async def _presence(self) -> None:
        last_lease = 0.0
        while True:
            await self.connected.wait()
            try:
                if not self.node_uid:
                    await self._register()
                if time.monotonic() - last_lease >= LEASE_SECONDS:
                    await self._renew()
                    last_lease = time.monotonic()
            except StatusError as error:
                log.warning("%s", error)
            await asyncio.sleep(1)

    async def _register(self) -> None:
        labels = {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                  "node-role.kubernetes.io/edge": "", "node-role.kubernetes.io/agent": "", **self.labels}
        obj = await self.requests.insert(f"null/node/{self.node_name}", {"metadata": {"name": self.node_name, "labels": labels}})
        if not isinstance(obj, dict):
            return
        self.node_uid = obj["metadata"].get("uid", "")
        now = _now()
        ready = {"type": "Ready", "status": "True", "reason": "EdgeReady", "message": "edge is posting ready status",
                 "lastHeartbeatTime": now, "lastTransitionTime": now}
        status = {"$setElementOrder/conditions": [{"type": "Ready"}], "conditions": [ready],
                  "addresses": [{"type": "InternalIP", "address": self.node_ip}, {"type": "Hostname", "address": self.node_name}],
                  "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"}, "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                  "nodeInfo": {"kubeletVersion": "v1.32.10-kubeedge-hollow", "containerRuntimeVersion": "hollow://0",
                               "operatingSystem": "linux", "architecture": "amd64", "osImage": "hollow", "kernelVersion": "",
                               "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""}}
        try:
            await self.requests.patch(f"null/nodepatch/{self.node_name}", json.dumps({"status": status}))
        except StatusError as error:  # registered all the same: the lease keeps the node alive
            log.warning("node status patch failed: %s", error)

    async def _renew(self) -> None:
        resource = f"kube-node-lease/lease/{self.node_name}"
        renew = _now(micro=True)
        if self.lease is None:
            body: dict[str, Any] = {"metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                                    "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": 40, "renewTime": renew}}
            try:
                obj = await self.requests.insert(resource, body)
            except StatusError:  # there already (this node ran before): renew that one
                obj = await self.requests.query(resource)
        else:
            body = {k: v for k, v in self.lease.items() if k not in ("kind", "apiVersion")}
            body["spec"] = {**(body.get("spec") or {}), "renewTime": renew}
            try:
                obj = await self.requests.update(resource, body)
            except StatusError:  # gone or changed: create or fetch it afresh next time
                obj = None
        self.lease = obj if isinstance(obj, dict) else None
