"""Edged's /metrics/resource text, as kubelet writes it, from a summary document."""

from __future__ import annotations

from cores.edge.edged.stats import resource_metrics


def test_resource_metrics_has_each_family_once_with_its_samples() -> None:
    summary = {
        "node": {"cpu": {"usageCoreNanoSeconds": 2_500_000_000}, "memory": {"workingSetBytes": 1000}},
        "pods": [{"podRef": {"namespace": "default", "name": "web"},
                  "cpu": {"usageCoreNanoSeconds": 1_000_000_000}, "memory": {"workingSetBytes": 300},
                  "containers": [{"name": "app", "cpu": {"usageCoreNanoSeconds": 500_000_000},
                                  "memory": {"workingSetBytes": 200}}]}],
    }
    lines = resource_metrics(summary).splitlines()
    samples = {line.rsplit(" ", 2)[0]: float(line.rsplit(" ", 2)[1]) for line in lines if not line.startswith("#")}
    assert samples == {
        "node_cpu_usage_seconds_total": 2.5,
        "node_memory_working_set_bytes": 1000,
        'pod_cpu_usage_seconds_total{namespace="default",pod="web"}': 1.0,
        'pod_memory_working_set_bytes{namespace="default",pod="web"}': 300,
        'container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"}': 0.5,
        'container_memory_working_set_bytes{container="app",namespace="default",pod="web"}': 200,
    }
    types = [line for line in lines if line.startswith("# TYPE")]
    assert types == ["# TYPE node_cpu_usage_seconds_total counter", "# TYPE node_memory_working_set_bytes gauge",
                     "# TYPE pod_cpu_usage_seconds_total counter", "# TYPE pod_memory_working_set_bytes gauge",
                     "# TYPE container_cpu_usage_seconds_total counter",
                     "# TYPE container_memory_working_set_bytes gauge"]
