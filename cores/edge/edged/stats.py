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
    node, pods = summary_document["node"], summary_document["pods"]
    # (labels, cpu or memory stats) per level; names and labels come from validated objects, no escaping needed
    levels: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {
        "node": [("", node["cpu"], node["memory"])],
        "pod": [(f'{{namespace="{p["podRef"]["namespace"]}",pod="{p["podRef"]["name"]}"}}', p["cpu"], p["memory"])
                for p in pods],
        "container": [(f'{{container="{c["name"]}",namespace="{p["podRef"]["namespace"]}",pod="{p["podRef"]["name"]}"}}',
                       c["cpu"], c["memory"]) for p in pods for c in p["containers"]],
    }
    out: list[str] = []
    for level, samples in levels.items():
        out += [f"# HELP {level}_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the {level} in core-seconds",
                f"# TYPE {level}_cpu_usage_seconds_total counter"]
        out += [f"{level}_cpu_usage_seconds_total{labels} {cpu['usageCoreNanoSeconds'] / 1e9} {millis}"
                for labels, cpu, _ in samples]
        out += [f"# HELP {level}_memory_working_set_bytes [STABLE] Current working set of the {level} in bytes",
                f"# TYPE {level}_memory_working_set_bytes gauge"]
        out += [f"{level}_memory_working_set_bytes{labels} {memory['workingSetBytes']} {millis}"
                for labels, _, memory in samples]
    return "\n".join(out) + "\n"
