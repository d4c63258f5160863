"""``metrics.k8s.io/v1beta1`` (``kubectl top``) for edge nodes, as metrics-server serves it.

On a real cluster metrics-server scrapes each kubelet's ``/metrics/resource`` and serves the
Metrics API through aggregation. Here the control plane does the scraping itself, on demand: it
reads an edge node's ``/stats/summary`` through CloudCore's stream server (the same path as
``kubectl logs``) and turns two samples into rates, as metrics-server turns two scrapes into
``usage.cpu``. The samples are kept per node, so a second ``kubectl top`` within
:data:`MAX_SAMPLE_AGE` costs one scrape; the first waits :data:`FIRST_GAP` for a second sample.

Only edge nodes are scraped (a node that is not, or whose tunnel is down, is left out, as
metrics-server leaves out a kubelet it cannot reach: ``kubectl top node`` prints ``<unknown>``).
Memory is the working set, as metrics-server reports it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cores.controlplane import errors
from cores.controlplane.registry import ResourceType

log = logging.getLogger("kubeedge.controlplane")

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
NODE_METRICS = ResourceType(GROUP, VERSION, "nodes", "NodeMetrics", False, verbs=("get", "list"))
POD_METRICS = ResourceType(GROUP, VERSION, "pods", "PodMetrics", True, verbs=("get", "list"))
RESOURCES = (NODE_METRICS, POD_METRICS)

FIRST_GAP = 1.0            # seconds between the two samples of a node seen for the first time
MIN_WINDOW = 0.5           # a previous sample closer than this gives no usable rate
MAX_SAMPLE_AGE = 300.0     # an older previous sample is dropped: the rate would hide recent load
REUSE_SECONDS = 1.0        # answers within this of the last computation reuse it
SCRAPE_TIMEOUT = 10.0
EDGE_LABEL = "node-role.kubernetes.io/edge"

Fetch = Callable[[str], Awaitable[dict[str, Any]]]  # node name -> its /stats/summary


@dataclass(frozen=True)
class Sample:
    at: float                 # monotonic seconds
    stamp: str                # RFC 3339, when it was taken
    summary: dict[str, Any]


@dataclass(frozen=True)
class NodeUsage:
    """One node's usage over ``window`` seconds ending at ``stamp``."""
    at: float
    stamp: str
    window: float
    node: dict[str, int]                               # {"cpu": nanocores, "memory": bytes}
    pods: dict[tuple[str, str], list[tuple[str, dict[str, int]]]]  # (ns, name) -> [(container, usage)]


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu_ns(stats: Any) -> int:
    return int(((stats or {}).get("cpu") or {}).get("usageCoreNanoSeconds") or 0)


def _working_set(stats: Any) -> int:
    return int(((stats or {}).get("memory") or {}).get("workingSetBytes") or 0)


def usage_between(previous: Sample, current: Sample) -> NodeUsage:
    """Rates from two summaries of one node: CPU as nanocores over the window, memory as now."""
    window = max(current.at - previous.at, 1e-9)

    def rate(now_ns: int, then_ns: int | None) -> int:
        if then_ns is None or now_ns < then_ns:  # a container that restarted begins a new counter
            return 0
        return int((now_ns - then_ns) / window)

    before_node = previous.summary.get("node") or {}
    now_node = current.summary.get("node") or {}
    before_containers = {
        ((p.get("podRef") or {}).get("namespace"), (p.get("podRef") or {}).get("name"), c.get("name")): _cpu_ns(c)
        for p in previous.summary.get("pods") or [] for c in p.get("containers") or []}
    pods: dict[tuple[str, str], list[tuple[str, dict[str, int]]]] = {}
    for pod in current.summary.get("pods") or []:
        ref = pod.get("podRef") or {}
        key = (str(ref.get("namespace") or ""), str(ref.get("name") or ""))
        pods[key] = [(str(c.get("name") or ""),
                      {"cpu": rate(_cpu_ns(c), before_containers.get((*key, c.get("name")))), "memory": _working_set(c)})
                     for c in pod.get("containers") or []]
    return NodeUsage(current.at, current.stamp, window,
                     {"cpu": rate(_cpu_ns(now_node), _cpu_ns(before_node)), "memory": _working_set(now_node)}, pods)


def quantities(usage: dict[str, int]) -> dict[str, str]:
    return {"cpu": f"{usage['cpu']}n", "memory": f"{usage['memory'] // 1024}Ki"}


def _window(seconds: float) -> str:
    return f"{seconds:.3f}s"  # a Go duration, as metav1.Duration parses it


class Metrics:
    """The Metrics API's answers; ``fetch`` reads a node's summary through the stream server."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch
        self._samples: dict[str, Sample] = {}
        self._usage: dict[str, NodeUsage] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _sample(self, node: str) -> Sample:
        summary = await asyncio.wait_for(self.fetch(node), SCRAPE_TIMEOUT)
        return Sample(time.monotonic(), _stamp(), summary)

    async def node_usage(self, node: str) -> NodeUsage:
        lock = self._locks.setdefault(node, asyncio.Lock())
        async with lock:  # concurrent `kubectl top` calls share one scrape
            last = self._usage.get(node)
            if last is not None and time.monotonic() - last.at < REUSE_SECONDS:
                return last
            current = await self._sample(node)
            previous = self._samples.get(node)
            if previous is None or not MIN_WINDOW <= current.at - previous.at <= MAX_SAMPLE_AGE:
                await asyncio.sleep(FIRST_GAP)
                previous, current = current, await self._sample(node)
            self._samples[node] = current
            usage = self._usage[node] = usage_between(previous, current)
            return usage

    async def _usages(self, nodes: list[str]) -> dict[str, NodeUsage]:
        """The usage of each node that answers; one that does not is left out, and logged."""
        results = await asyncio.gather(*(self.node_usage(node) for node in nodes), return_exceptions=True)
        found: dict[str, NodeUsage] = {}
        for node, result in zip(nodes, results):
            if isinstance(result, NodeUsage):
                found[node] = result
            elif isinstance(result, Exception):
                log.info("metrics: node %s left out: %s", node, result or type(result).__name__)
                self._samples.pop(node, None)
            else:
                raise result
        return found

    # answers ------------------------------------------------------------------------------
    async def node_metrics(self, nodes: list[dict[str, Any]], name: str) -> dict[str, Any]:
        """NodeMetrics of ``name``, or the NodeMetricsList of ``nodes`` (already selected)."""
        edge = [n for n in nodes if EDGE_LABEL in ((n.get("metadata") or {}).get("labels") or {})]
        usages = await self._usages([n["metadata"]["name"] for n in edge])
        items = [{"metadata": {"name": n["metadata"]["name"], "creationTimestamp": usages[n["metadata"]["name"]].stamp,
                               "labels": (n.get("metadata") or {}).get("labels") or {}},
                  "timestamp": usages[n["metadata"]["name"]].stamp,
                  "window": _window(usages[n["metadata"]["name"]].window),
                  "usage": quantities(usages[n["metadata"]["name"]].node)}
                 for n in edge if n["metadata"]["name"] in usages]
        if name:
            if not items:
                raise errors.ApiError(404, "NotFound", f'nodemetrics.metrics.k8s.io "{name}" not found',
                                      {"name": name, "group": GROUP, "kind": "nodemetrics"})
            return {"kind": "NodeMetrics", "apiVersion": f"{GROUP}/{VERSION}", **items[0]}
        return {"kind": "NodeMetricsList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {},
                "items": [{"kind": "NodeMetrics", "apiVersion": f"{GROUP}/{VERSION}", **item} for item in items]}

    async def pod_metrics(self, pods: list[dict[str, Any]], edge_nodes: set[str], name: str) -> dict[str, Any]:
        """PodMetrics of the one pod named, or the PodMetricsList of ``pods`` on ``edge_nodes``."""
        placed = [p for p in pods if str((p.get("spec") or {}).get("nodeName") or "") in edge_nodes]
        usages = await self._usages(sorted({str(p["spec"]["nodeName"]) for p in placed}))
        items = []
        for pod in placed:
            meta = pod.get("metadata") or {}
            usage = usages.get(str(pod["spec"]["nodeName"]))
            containers = usage.pods.get((str(meta.get("namespace")), str(meta.get("name")))) if usage else None
            if usage is None or not containers:
                continue  # not running yet, or its node did not answer: metrics-server leaves it out too
            items.append({"kind": "PodMetrics", "apiVersion": f"{GROUP}/{VERSION}",
                          "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                                       "creationTimestamp": usage.stamp, "labels": meta.get("labels") or {}},
                          "timestamp": usage.stamp, "window": _window(usage.window),
                          "containers": [{"name": c, "usage": quantities(u)} for c, u in containers]})
        if name:
            if not items:
                namespace = str(((pods[0].get("metadata") or {}).get("namespace")) if pods else "")
                raise errors.ApiError(404, "NotFound", f'podmetrics.metrics.k8s.io "{namespace}/{name}" not found',
                                      {"name": name, "group": GROUP, "kind": "podmetrics"})
            return items[0]
        return {"kind": "PodMetricsList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {}, "items": items}


def parse_summary(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as error:
        raise errors.ApiError(502, "InternalError", f"the node's stats summary is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise errors.ApiError(502, "InternalError", "the node's stats summary is not an object")
    return document
