"""The Node as this machine's kubelet reports it: labels, addresses, capacity, info, conditions.

Pure functions over facts read from the machine (``/proc``, ``os``, ``platform``), so the status
patch is built the same way every time and can be compared with the last one sent.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

KUBELET_VERSION = "v1.32.10-kubeedge-v1.23.0-py"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}
CONDITION_ORDER = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def memory_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def disk_bytes(path: str) -> int:
    try:
        stats = os.statvfs(path if Path(path).exists() else "/")
    except OSError:
        return 0
    return stats.f_blocks * stats.f_frsize


@dataclasses.dataclass(frozen=True)
class RuntimeState:
    ready: bool
    version: str  # e.g. "containerd://1.6.20"
    message: str = ""


def initial_node(name: str, labels: dict[str, str], node_ip: str) -> dict[str, Any]:
    """What ``insert null/node/<name>`` carries (kubelet ``initialNode``, KubeEdge's edge labels)."""
    all_labels = {
        "beta.kubernetes.io/arch": arch(), "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch(), "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/agent": "", "node-role.kubernetes.io/edge": "",
        **labels,
    }
    return {
        "metadata": {"name": name, "creationTimestamp": None, "labels": all_labels,
                     "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {},
        "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}}, "nodeInfo": {"kubeletVersion": KUBELET_VERSION}},
    }


def resources(max_pods: int, root_directory: str) -> dict[str, str]:
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib()}Ki",
        "pods": str(max_pods),
        "ephemeral-storage": f"{disk_bytes(root_directory) // 1024}Ki",
        "hugepages-2Mi": "0",
        "hugepages-1Gi": "0",
    }


def node_info(runtime: RuntimeState) -> dict[str, str]:
    return {
        "machineID": _read("/etc/machine-id"),
        "systemUUID": _read("/sys/class/dmi/id/product_uuid", _read("/etc/machine-id")),
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": runtime.version,
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": arch(),
    }


def conditions(runtime: RuntimeState) -> dict[str, tuple[str, str, str]]:
    """type -> (status, reason, message), as the kubelet (with KubeEdge's Ready reason) reports them."""
    ready = ("True", "EdgeReady", "edge is posting ready status") if runtime.ready else (
        "False", "KubeletNotReady", f"container runtime is down: {runtime.message}")
    return {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        "Ready": ready,
    }


class NodeStatusTracker:
    """Builds status patches and remembers when each condition last changed."""

    def __init__(self) -> None:
        self.transitions: dict[str, tuple[str, str]] = {}  # type -> (status, lastTransitionTime)
        self.last_reported: str = ""

    def status(self, runtime: RuntimeState, node_ip: str, hostname: str, max_pods: int, root_directory: str) -> dict[str, Any]:
        now = now_rfc3339()
        entries = []
        for kind, (status, reason, message) in conditions(runtime).items():
            previous = self.transitions.get(kind)
            if previous is None or previous[0] != status:
                self.transitions[kind] = (status, now)
            entries.append({"type": kind, "status": status, "lastHeartbeatTime": now,
                            "lastTransitionTime": self.transitions[kind][1], "reason": reason, "message": message})
        capacity = resources(max_pods, root_directory)
        addresses = [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": hostname}]
        return {
            "$setElementOrder/conditions": [{"type": kind} for kind in CONDITION_ORDER],
            "conditions": entries,
            "addresses": addresses,
            "capacity": capacity,
            "allocatable": capacity,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}},
            "nodeInfo": node_info(runtime),
        }

    def changed(self, status: dict[str, Any]) -> bool:
        """True when the status differs from the last one reported, heartbeat times aside."""
        significant = json.dumps({**status, "conditions": [
            {k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status["conditions"]]}, sort_keys=True)
        if significant == self.last_reported:
            return False
        self.last_reported = significant
        return True


def lease(name: str, node_uid: str, duration: int, existing: dict[str, Any] | None) -> dict[str, Any]:
    """The node's Lease in kube-node-lease, renewed now (``MicroTime`` with microseconds)."""
    renew = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if existing:
        body = {k: v for k, v in existing.items() if k not in ("kind", "apiVersion")}
        body.setdefault("spec", {})["renewTime"] = renew
        return body
    return {
        "metadata": {"name": name, "namespace": "kube-node-lease", "creationTimestamp": None,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": renew},
    }
