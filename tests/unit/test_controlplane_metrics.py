"""metrics.k8s.io rates from two stats summaries (pure), as metrics-server computes them."""

from __future__ import annotations

from cores.controlplane.metrics import Sample, quantities, usage_between


def summary(node_ns: int, containers: dict[str, tuple[int, int]]) -> dict[str, object]:
    return {"node": {"cpu": {"usageCoreNanoSeconds": node_ns}, "memory": {"workingSetBytes": 4 << 30}},
            "pods": [{"podRef": {"namespace": "default", "name": "p"},
                      "containers": [{"name": name, "cpu": {"usageCoreNanoSeconds": cpu}, "memory": {"workingSetBytes": mem}}
                                     for name, (cpu, mem) in containers.items()]}]}


def test_cpu_is_the_counter_rate_over_the_window_and_memory_the_newest_working_set() -> None:
    before = Sample(10.0, "t0", summary(5_000_000_000, {"a": (1_000_000_000, 1 << 20)}))
    after = Sample(12.0, "t1", summary(7_000_000_000, {"a": (2_000_000_000, 3 << 20)}))
    usage = usage_between(before, after)
    assert usage.window == 2.0 and usage.stamp == "t1"
    assert usage.node == {"cpu": 1_000_000_000, "memory": 4 << 30}  # 2 s of CPU in 2 s: one core
    assert usage.pods[("default", "p")] == [("a", {"cpu": 500_000_000, "memory": 3 << 20})]
    assert quantities(usage.pods[("default", "p")][0][1]) == {"cpu": "500000000n", "memory": "3072Ki"}


def test_a_restarted_or_new_container_reads_zero_not_a_negative_or_a_lifetime_rate() -> None:
    before = Sample(0.0, "t0", summary(10, {"a": (9_000_000_000, 0)}))
    after = Sample(1.0, "t1", summary(20, {"a": (100, 0), "b": (5_000_000_000, 0)}))
    usage = usage_between(before, after)
    assert dict(usage.pods[("default", "p")]) == {"a": {"cpu": 0, "memory": 0}, "b": {"cpu": 0, "memory": 0}}
