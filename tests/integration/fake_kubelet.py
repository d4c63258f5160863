"""A stand-in for a node's kubelet, for tests of the control plane's controllers.

Test code standing in for a node (no containers run): it registers a Node that reports Ready,
renews its Lease in ``kube-node-lease``, marks every pod bound to it Running and Ready, and
removes the pods being deleted (a kubelet's zero-grace delete once the containers stopped).
``pause()`` makes it go silent (no lease renewals, no pod work), as a node cut off; ``resume()``
brings it back, posting Ready again as a kubelet does when it reconnects.
"""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def now(micro: bool = False) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def ready_conditions() -> list[dict[str, Any]]:
    stamp = now()
    conditions = [{"type": kind, "status": "False", "reason": f"KubeletHas{reason}", "message": "ok",
                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                  for kind, reason in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                                       ("PIDPressure", "SufficientPID"))]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
    return conditions


class FakeKubelet(threading.Thread):
    def __init__(self, kubeconfig: Path, name: str, labels: dict[str, str] | None = None, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name=f"fake-kubelet-{name}")
        self.node_name, self.labels, self.interval = name, labels or {}, interval
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.leases = client.CoordinationV1Api(self.api_client)
        self.stopping = threading.Event()
        self.silent = threading.Event()

    # lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> FakeKubelet:
        self.register()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join(5)
        try:
            self.core.delete_node(self.node_name)
        except ApiException:
            pass
        self.api_client.close()

    def pause(self) -> None:
        self.silent.set()

    def resume(self) -> None:
        self.post_ready()
        self.silent.clear()

    # what a kubelet does ------------------------------------------------------------------------------
    def register(self) -> None:
        node = {"metadata": {"name": self.node_name, "labels": {"kubernetes.io/hostname": self.node_name, **self.labels}},
                "status": {"conditions": ready_conditions(), "allocatable": {"pods": "110", "cpu": "4", "memory": "8Gi"},
                           "capacity": {"pods": "110", "cpu": "4", "memory": "8Gi"}}}
        self.core.create_node(node)
        self.post_ready()
        lease = {"metadata": {"name": self.node_name}, "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": 40,
                                                                "renewTime": now(micro=True)}}
        self.leases.create_namespaced_lease("kube-node-lease", lease)

    def post_ready(self) -> None:
        self.core.patch_node_status(self.node_name, {"status": {"conditions": ready_conditions()}})

    def renew(self) -> None:
        self.leases.patch_namespaced_lease(self.node_name, "kube-node-lease", {"spec": {"renewTime": now(micro=True)}})

    def run_pods(self) -> None:
        pods = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.node_name}").items
        for pod in pods:
            name, namespace = pod.metadata.name, pod.metadata.namespace
            if pod.metadata.deletion_timestamp:
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
                continue
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            if pod.status.phase == "Running" and ready:
                continue
            stamp = now()
            conditions = [{"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
                          for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")]
            statuses = [{"name": c.name, "image": c.image, "imageID": "", "ready": True, "restartCount": 0, "started": True,
                         "state": {"running": {"startedAt": stamp}}} for c in pod.spec.containers]
            status = {"phase": "Running", "conditions": conditions, "containerStatuses": statuses, "hostIP": "10.0.0.1",
                      "podIP": "10.244.0.10", "startTime": stamp}
            self.core.patch_namespaced_pod_status(name, namespace, {"status": status})

    def run(self) -> None:
        last_renew = 0.0
        while not self.stopping.wait(self.interval):
            if self.silent.is_set():
                continue
            try:
                if time.monotonic() - last_renew >= 1.0:
                    self.renew()
                    last_renew = time.monotonic()
                self.run_pods()
            except ApiException:
                continue  # a conflict or a pod gone meanwhile: the next pass sees the new state
