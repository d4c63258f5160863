"""Edged, a light kubelet: node presence, and the node's pods on containerd through CRI.

Pods: MetaManager hands Edged every pod, ConfigMap and Secret push it has committed
(``<ns>/pod/<name>`` insert/update/delete, content the object) and replays the stored pods at
start; :mod:`cores.edge.edged.pods` runs a worker per pod (:mod:`.worker`), which drives CRI,
writes volumes (:mod:`.volumes`), runs probes (:mod:`.probes`) and reports status as a
``<ns>/podpatch/<name>`` strategic merge patch (:mod:`.status`). Static pods come from the
manifests in ``staticPodPath``, read every ``fileCheckFrequency``; the cloud sees them as mirror
pods (:mod:`.static`).

Node presence:

Once EdgeHub says the cloud is connected, Edged registers its Node (``insert null/node/<n>``),
keeps its Lease in ``kube-node-lease`` renewed every 10 s, and patches the node status
(strategic merge, as the kubelet sends it) when it changes and at least every
``nodeStatusReportFrequency``. ``Ready`` follows the container runtime: a CRI ``Version`` and
``Status`` call to the configured endpoint; a runtime that does not answer makes the node
``Ready=False`` with the reason.

Every request to the cloud (node, lease, pod status, mirror pods, objects, tokens, events) goes
through one :class:`~cores.link.requests.CloudRequests`; a refusal is a
:class:`~cores.link.status.StatusError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from cores.beehive import Context
from cores.common.config import Config, host_address
from cores.common.layout import metaserver_serving_paths
from cores.edge.edged import node as nodes
from cores.edge.edged import static
from cores.edge.edged.pods import PodManager
from cores.edge.edged.runtime import probe_runtime
from cores.link.requests import CloudRequests
from cores.link.status import StatusError

log = logging.getLogger("kubeedge.edged")

LEASE_RENEW_SECONDS = 10.0
MIRROR_SYNC_SECONDS = 2.0  # how soon a mirror pod deleted in the cloud comes back
REQUEST_TIMEOUT = 30.0


UNHOLD_UPGRADE = "unhold-upgrade"  # upstream's model.UnholdUpgradeOperation, from MetaServer


def seconds(duration: str) -> float:
    """Go duration text ("10s", "5m0s", "1h2m") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|us|µs|ns|h|m|s)", str(duration))) or 0.0


class Edged:
    name = "edged"
    group = "edged"

    def __init__(self, config: Config) -> None:
        edged = config.modules.edged
        kubelet = edged.tailoredKubeletConfig
        self.node_name = str(edged.hostnameOverride)
        self.node_ip = str(edged.get("nodeIP") or host_address())
        self.labels = dict(edged.get("nodeLabels") or {})
        self.endpoint = str(kubelet.containerRuntimeEndpoint)
        self.max_pods = int(kubelet.maxPods)
        self.root_directory = str(edged.rootDirectory)
        self.lease_duration = int(kubelet.nodeLeaseDurationSeconds)
        self.update_every = seconds(kubelet.nodeStatusUpdateFrequency) or 10.0
        self.report_every = seconds(kubelet.nodeStatusReportFrequency) or 300.0
        self.tracker = nodes.NodeStatusTracker()
        self.node_uid = ""
        self.lease: dict[str, Any] | None = None
        self.logs_root = str(kubelet.get("podLogsDir") or "/var/log/pods")
        self.static_pod_path = str(kubelet.get("staticPodPath") or "")
        self.report_events = bool(edged.get("reportEvent"))
        self.file_check_every = seconds(kubelet.get("fileCheckFrequency") or "20s") or 20.0
        self.connected = asyncio.Event()
        address = str(kubelet.get("address") or "127.0.0.1")
        self.server_address = address
        self.server_port = int(kubelet.get("port") if kubelet.get("port") is not None else 10250)
        self.read_only_port = int(kubelet.get("readOnlyPort") or 0)
        hub = config.modules.edgeHub
        self.tls_files = (str(hub.tlsCaFile), str(hub.tlsCertFile), str(hub.tlsPrivateKeyFile))
        self.kubelet_server: Any = None
        # MetaServer on: pods' in-cluster clients reach it (upstream: KUBERNETES_SERVICE_HOST of edge pods)
        meta_server = (config.modules.get("metaManager") or {}).get("metaServer") or {}
        self.api_service: tuple[str, int] | None = None
        self.api_ca_file = ""
        if meta_server.get("enable"):
            secure = bool((config.get("featureGates") or {}).get("requireAuthorization"))
            # with HTTPS, pods reach MetaServer on upstream's dummy address (their 127.0.0.1 is their own)
            address = str((secure and meta_server.get("dummyServer")) or meta_server.get("server") or "127.0.0.1:10550")
            host, _, port = address.rpartition(":")
            self.api_service = (host or "127.0.0.1", int(port) if port.isdigit() else 10550)
            if secure:
                self.api_ca_file = str(metaserver_serving_paths(meta_server)["ca"])
        self.pods: PodManager | None = None
        self.cri: Any = None

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        from cores.edge.cri import CriClient

        self.requests = CloudRequests(ctx, source="edged", timeout=REQUEST_TIMEOUT)
        self.cri = CriClient(self.endpoint, timeout=REQUEST_TIMEOUT)
        self.pods = PodManager(self.requests, self.cri, node_name=self.node_name, node_ip=self.node_ip,
                               root_directory=self.root_directory, logs_root=self.logs_root, report_events=self.report_events,
                               api_service=self.api_service, api_ca_file=self.api_ca_file)
        tasks = [asyncio.create_task(self._presence()), asyncio.create_task(self._serve_kubelet(), name="edged-server")]
        if self.static_pod_path:
            tasks.append(asyncio.create_task(self._static_pods(), name="edged-static-pods"))
        try:
            while True:
                message = await ctx.receive(self.name)
                if message.route.resource == "node/connection":
                    if message.content == "cloud_connected":
                        self.connected.set()
                    else:
                        self.connected.clear()
                    self.pods.connection(self.connected.is_set())
                elif message.route.operation in ("insert", "update", "delete") and not message.parent_msg_id:
                    self.pods.handle(message)
                elif message.route.operation == UNHOLD_UPGRADE:
                    namespace, _, name = message.route.resource.partition("/pod/")
                    self.pods.unhold(namespace, name)
        finally:
            for task in tasks:
                task.cancel()
            await self.stop()

    async def _serve_kubelet(self) -> None:
        """The kubelet endpoints (:mod:`.server`): the read-only port at once, the TLS server port
        once EdgeHub has the node certificate. A port that is taken is logged, Edged goes on."""
        import ssl

        from cores.edge.edged.server import KubeletServer

        self.kubelet_server = server = KubeletServer(self.pods, self.cri, self.node_name, self.node_ip)
        if self.read_only_port:
            try:
                await server.start(self.server_address, self.read_only_port, None, read_only=True)
            except OSError as error:
                log.error("kubelet read-only port %s:%d: %s", self.server_address, self.read_only_port, error)
        if not self.server_port:
            return
        ca, cert, key = self.tls_files
        while not all(Path(path).exists() for path in self.tls_files):
            await asyncio.sleep(1)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED  # a certificate from the KubeEdge CA, checked for this node
        try:
            await server.start(self.server_address, self.server_port, context, read_only=False)
        except OSError as error:
            log.error("kubelet server port %s:%d: %s", self.server_address, self.server_port, error)

    async def stop(self) -> None:
        """Containers keep running when Edged stops (as with kubelet); only our tasks end."""
        if self.kubelet_server is not None:
            await self.kubelet_server.stop()
            self.kubelet_server = None
        if self.pods is not None:
            await self.pods.stop()
            self.pods = None
        if self.cri is not None:
            await self.cri.close()
            self.cri = None

    async def _static_pods(self) -> None:
        directory = Path(self.static_pod_path)
        reported: dict[str, str] = {}
        next_scan = 0.0
        while True:
            now = time.monotonic()
            try:
                if now >= next_scan and self.pods is not None:
                    next_scan = now + self.file_check_every
                    pods, errors = await asyncio.to_thread(static.read_manifests, directory, self.node_name)
                    for path, error in errors.items():
                        if reported.get(path) != error:
                            log.warning("static pod manifest %s ignored: %s", path, error)
                    reported = errors
                    self.pods.sync_static(pods)
                if self.pods is not None and self.connected.is_set() and self.node_uid:
                    await self.pods.sync_mirrors(self.node_uid)
            except Exception:  # noqa: BLE001 - static pods go on with the next scan
                log.exception("static pods: sync failed")
            await asyncio.sleep(min(MIRROR_SYNC_SECONDS, self.file_check_every))

    async def _presence(self) -> None:
        last_report = 0.0
        last_lease = 0.0
        while True:
            await self.connected.wait()
            try:
                if not self.node_uid:
                    await self._register()
                now = time.monotonic()
                if now - last_lease >= LEASE_RENEW_SECONDS:
                    await self._renew_lease()
                    last_lease = now
                runtime = await probe_runtime(self.endpoint)
                status = self.tracker.status(runtime, self.node_ip, self.node_name, self.max_pods, self.root_directory)
                if self.tracker.changed(status) or now - last_report >= self.report_every:
                    await self._patch_status(status)
                    last_report = now
            except RegistrationError as error:
                log.warning("%s", error)
            await asyncio.sleep(min(self.update_every, LEASE_RENEW_SECONDS))

    async def _register(self) -> None:
        body = nodes.initial_node(self.node_name, self.labels, self.node_ip)
        try:
            obj = await self.requests.insert(f"null/node/{self.node_name}", body)
        except StatusError as error:
            raise RegistrationError(f"node registration failed: {error}") from None
        if not isinstance(obj, dict):
            raise RegistrationError("node registration failed: the reply holds no Node")
        self.node_uid = obj.get("metadata", {}).get("uid", "")
        self.tracker.last_reported = ""
        log.info("node %s registered (uid %s)", self.node_name, self.node_uid)
        if self.pods is not None:
            self.pods.events.node("Normal", "Starting", "Starting kubelet.")

    async def _patch_status(self, status: dict[str, Any]) -> None:
        patch = json.dumps({"status": status}, separators=(",", ":"))
        try:
            await self.requests.patch(f"null/nodepatch/{self.node_name}", patch)
        except StatusError as error:
            self.tracker.last_reported = ""  # try again next round
            raise RegistrationError(f"node status patch failed: {error}") from None
        ready = [c["status"] for c in status["conditions"] if c["type"] == "Ready"]
        log.info("node status reported (Ready=%s)", ready[0] if ready else "?")

    async def _renew_lease(self) -> None:
        resource = f"kube-node-lease/lease/{self.node_name}"
        if self.lease is None:
            self.lease = await self._find_lease(resource)
        body = nodes.lease(self.node_name, self.node_uid, self.lease_duration, self.lease)
        renew = self.requests.update if self.lease else self.requests.insert
        try:
            obj = await renew(resource, body)
        except StatusError as error:
            self.lease = None  # query again next time: it may have been deleted or replaced
            raise RegistrationError(f"lease renewal failed: {error}") from None
        self.lease = obj if isinstance(obj, dict) else None

    async def _find_lease(self, resource: str) -> dict[str, Any] | None:
        """The node's Lease as the cloud has it; None when it has none (404: create it)."""
        try:
            found = await self.requests.query(resource)
        except StatusError as error:
            if error.code != 404:
                raise RegistrationError(f"lease query failed: {error}") from None
            return None
        return found if isinstance(found, dict) else None


class RegistrationError(Exception):
    pass
