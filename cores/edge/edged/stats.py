"""Node and pod resource usage, as kubelet's ``/stats/summary`` (stats/v1alpha1) and
``/metrics/resource`` (what metrics-server scrapes) give it.

Containers' CPU and memory come from CRI ``ListContainerStats``; the node's from ``/proc``. CPU
rates (``usageNanoCores``) need two samples: the node's is taken against the previous call, and
containerd computes the containers' itself.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

from cores.edge.cri import labels as cri_labels

_last_cpu: tuple[float, int] | None = None  # (monotonic time, node CPU ns used) of the previous sample


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_cpu_ns() -> int:
    with open("/proc/stat", "rb") as handle:
        fields = handle.readline().split()[1:]
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) * 1_000_000_000 // ticks


def _node_memory() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/meminfo", "rb") as handle:
        for line in handle:
            name, _, rest = line.partition(b":")
            values[name.decode()] = int(rest.split()[0]) * 1024
    total, available = values.get("MemTotal", 0), values.get("MemAvailable", 0)
    usage = total - values.get("MemFree", 0)
    working_set = max(usage - values.get("Inactive(file)", 0), 0)
    return {"availableBytes": available, "usageBytes": usage, "workingSetBytes": working_set,
            "rssBytes": max(total - available, 0)}


def node_usage() -> dict[str, Any]:
    global _last_cpu
    now, used = time.monotonic(), _node_cpu_ns()
    rate = 0
    if _last_cpu is not None and now > _last_cpu[0]:
        rate = int((used - _last_cpu[1]) / (now - _last_cpu[0]))
    _last_cpu = (now, used)
    stamp = _now()
    return {"cpu": {"time": stamp, "usageNanoCores": max(rate, 0), "usageCoreNanoSeconds": used},
            "memory": {"time": stamp, **_node_memory()}}


def _value(message: Any, field: str) -> int:
    return int(getattr(message, field).value) if message.HasField(field) else 0


async def summary(cri: Any, node_name: str, pods: Any) -> dict[str, Any]:
    """stats/v1alpha1 Summary of the node and the pods this Edged runs."""
    stats = await cri.list_container_stats()
    by_uid: dict[str, list[Any]] = {}
    for item in stats:
        uid = item.attributes.labels.get(cri_labels.POD_UID, "")
        if item.attributes.labels.get(cri_labels.NODE_NAME) == node_name:
            by_uid.setdefault(uid, []).append(item)
    stamp = _now()
    pod_stats = []
    for worker in list(pods.workers.values()):
        containers = []
        cpu_rate = cpu_total = working = usage = rss = 0
        for item in by_uid.get(worker.uid, []):
            entry = {
                "name": item.attributes.labels.get(cri_labels.CONTAINER_NAME, item.attributes.metadata.name),
                "startTime": stamp,
                "cpu": {"time": stamp, "usageNanoCores": _value(item.cpu, "usage_nano_cores"),
                        "usageCoreNanoSeconds": _value(item.cpu, "usage_core_nano_seconds")},
                "memory": {"time": stamp, "workingSetBytes": _value(item.memory, "working_set_bytes"),
                           "usageBytes": _value(item.memory, "usage_bytes"), "rssBytes": _value(item.memory, "rss_bytes")},
            }
            containers.append(entry)
            cpu_rate += entry["cpu"]["usageNanoCores"]
            cpu_total += entry["cpu"]["usageCoreNanoSeconds"]
            working += entry["memory"]["workingSetBytes"]
            usage += entry["memory"]["usageBytes"]
            rss += entry["memory"]["rssBytes"]
        pod_stats.append({
            "podRef": {"name": worker.name, "namespace": worker.namespace, "uid": worker.uid},
            "startTime": (worker.pod.get("status") or {}).get("startTime") or stamp,
            "containers": containers,
            "cpu": {"time": stamp, "usageNanoCores": cpu_rate, "usageCoreNanoSeconds": cpu_total},
            "memory": {"time": stamp, "workingSetBytes": working, "usageBytes": usage, "rssBytes": rss},
        })
    return {"node": {"nodeName": node_name, **node_usage()}, "pods": pod_stats}


def resource_metrics(summary_document: dict[str, Any]) -> str:
    """The Prometheus text of kubelet's /metrics/resource, from a summary."""
    millis = int(time.time() * 1000)
    node = summary_document["node"]
    out = [
        "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds",
        "# TYPE node_cpu_usage_seconds_total counter",
        f"node_cpu_usage_seconds_total {node['cpu']['usageCoreNanoSeconds'] / 1e9} {millis}",
        "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes",
        "# TYPE node_memory_working_set_bytes gauge",
        f"node_memory_working_set_bytes {node['memory']['workingSetBytes']} {millis}",
        "# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        "# TYPE pod_cpu_usage_seconds_total counter",
    ]
    pods = summary_document["pods"]
    for pod in pods:
        ref = pod["podRef"]
        out.append(f'pod_cpu_usage_seconds_total{{namespace="{ref["namespace"]}",pod="{ref["name"]}"}} '
                   f'{pod["cpu"]["usageCoreNanoSeconds"] / 1e9} {millis}')
    out += ["# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes",
            "# TYPE pod_memory_working_set_bytes gauge"]
    for pod in pods:
        ref = pod["podRef"]
        out.append(f'pod_memory_working_set_bytes{{namespace="{ref["namespace"]}",pod="{ref["name"]}"}} '
                   f'{pod["memory"]["workingSetBytes"]} {millis}')
    out += ["# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds",
            "# TYPE container_cpu_usage_seconds_total counter"]
    for pod in pods:
        ref = pod["podRef"]
        for container in pod["containers"]:
            out.append(f'container_cpu_usage_seconds_total{{container="{container["name"]}",namespace="{ref["namespace"]}",'
                       f'pod="{ref["name"]}"}} {container["cpu"]["usageCoreNanoSeconds"] / 1e9} {millis}')
    out += ["# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes",
            "# TYPE container_memory_working_set_bytes gauge"]
    for pod in pods:
        ref = pod["podRef"]
        for container in pod["containers"]:
            out.append(f'container_memory_working_set_bytes{{container="{container["name"]}",namespace="{ref["namespace"]}",'
                       f'pod="{ref["name"]}"}} {container["memory"]["workingSetBytes"]} {millis}')
    return "\n".join(out) + "\n"
