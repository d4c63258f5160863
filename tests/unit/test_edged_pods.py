"""Edged's pure pod logic: spec -> CRI, status, back-off, atomic volume writes."""

from __future__ import annotations

import base64
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cores.edge.cri import api
from cores.edge.edged import podspec, status, volumes
from cores.edge.edged.backoff import Backoff
from cores.edge.edged.status import ContainerView, StatusTracker
from tests.captures import UPSTREAM


def recorded_pod() -> dict[str, Any]:
    for line in (UPSTREAM / "pod.jsonl").read_text().splitlines():
        frame = json.loads(line)["frame"]
        if frame["route"]["operation"] == "insert" and frame["route"]["resource"] == "default/pod/cap-pod":
            return frame["content"]  # type: ignore[no-any-return]
    raise AssertionError("no pod insert in pod.jsonl")


def recorded_patches() -> list[dict[str, Any]]:
    return [json.loads(json.loads(line)["frame"]["content"]) for line in (UPSTREAM / "pod.jsonl").read_text().splitlines()
            if json.loads(line)["frame"]["route"]["resource"] == "default/podpatch/cap-pod"
            and json.loads(line)["frame"]["route"]["operation"] == "patch"]


def test_quantities() -> None:
    assert podspec.quantity("500m") == Decimal("0.5")
    assert podspec.quantity("64Mi") == 64 * 2**20
    assert podspec.quantity("1G") == 10**9
    assert podspec.quantity("1e3") == 1000
    with pytest.raises(ValueError):
        podspec.quantity("lots")


def test_resources_follow_kubelet_arithmetic() -> None:
    limits = podspec.linux_resources({"resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}})
    assert (limits.cpu_shares, limits.cpu_period, limits.cpu_quota, limits.memory_limit_in_bytes) == (256, 100000, 50000, 64 << 20)
    assert podspec.linux_resources({}).cpu_shares == 2  # BestEffort
    assert podspec.linux_resources({"resources": {"limits": {"cpu": "1m"}}}).cpu_quota == 1000


def test_recorded_pod_sandbox_and_container_config() -> None:
    pod = recorded_pod()
    sandbox = podspec.sandbox_config(pod, "peer-edge-cap", "/var/log/pods")
    assert sandbox.linux.security_context.namespace_options.network == api.NODE  # hostNetwork
    assert sandbox.hostname == ""
    assert sandbox.labels["kubeedge.io/node-name"] == "peer-edge-cap" and sandbox.labels["app"] == "cap"
    assert sandbox.log_directory == f"/var/log/pods/default_cap-pod_{pod['metadata']['uid']}"
    spec = pod["spec"]["containers"][0]
    lookup = {("secret", "cap-secret"): {"data": {"password": base64.b64encode(b"pw").decode()}}}
    env = podspec.environment(pod, spec, lambda kind, name: lookup.get((kind, name)), "127.0.0.1", "127.0.0.1")
    assert env == [("PASSWORD", "pw")]
    config = podspec.container_config(pod, spec, "peer-edge-cap", 2, env, [], spec["image"])
    assert config.metadata.attempt == 2 and config.log_path == "main/2.log"
    assert config.labels["io.kubernetes.container.name"] == "main"
    assert list(config.command) == spec["command"]
    with pytest.raises(podspec.SpecError, match='secret "cap-secret" not found'):
        podspec.environment(pod, spec, lambda kind, name: None, "", "")


def test_env_expansion_and_field_refs() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}}, "spec": {"nodeName": "n"}}
    container = {"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$$(A)-$(NOPE)"},
                         {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}},
                         {"name": "H", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                         {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}
    env = dict(podspec.environment(pod, container, lambda k, n: None, "1.2.3.4", "5.6.7.8"))
    assert env == {"A": "x", "B": "x-$(A)-$(NOPE)", "L": "b", "H": "1.2.3.4", "N": "n"}


def test_pull_policy_defaults() -> None:
    assert podspec.pull_policy({"image": "busybox"}) == "Always"
    assert podspec.pull_policy({"image": "busybox:latest"}) == "Always"
    assert podspec.pull_policy({"image": "localhost:5000/busybox:1"}) == "IfNotPresent"
    assert podspec.pull_policy({"image": "x", "imagePullPolicy": "Never"}) == "Never"


def test_backoff_doubles_to_the_cap() -> None:
    backoff = Backoff()
    assert backoff.remaining("k", 0) == 0
    backoff.next("k", 0)  # first restart: at once, then 10 s armed
    assert backoff.remaining("k", 4) == 6
    delays = []
    now = 10.0
    for _ in range(7):
        backoff.next("k", now)
        delays.append(backoff.delay("k"))
        now += backoff.delay("k")
    assert delays == [20, 40, 80, 160, 300, 300, 300]
    assert backoff.remaining("k", now + 601) == 0


def view(name: str = "main", **fields: Any) -> ContainerView:
    return ContainerView(name=name, image="img", **fields)


def test_status_matches_the_recorded_podpatch_shape() -> None:
    pod = recorded_pod()
    recorded = recorded_patches()
    tracker = StatusTracker("2026-11-26T00:23:27Z")
    creating = tracker.build(pod, [], [view()], False, "127.0.0.1", "127.0.0.1")
    first = recorded[0]["status"]
    assert [(c["type"], c["status"], c.get("reason")) for c in creating["conditions"]] == \
        [(c["type"], c["status"], c.get("reason")) for c in first["conditions"]]
    assert creating["containerStatuses"][0]["state"] == first["containerStatuses"][0]["state"]
    assert creating["containerStatuses"][0]["volumeMounts"] == first["containerStatuses"][0]["volumeMounts"]
    for key in ("hostIP", "hostIPs", "podIP", "podIPs", "startTime"):
        assert creating[key] == first[key]
    running = tracker.build(pod, [], [view(state="running", container_id="c1", image_id="sha256:1", ready=True, started=True,
                                           started_at="2026-11-26T00:23:28Z")], True, "127.0.0.1", "127.0.0.1")
    second = recorded[1]["status"]
    assert running["phase"] == second["phase"] == "Running"
    assert running["$setElementOrder/conditions"] == second["$setElementOrder/conditions"]
    ours, theirs = running["containerStatuses"][0], second["containerStatuses"][0]
    assert set(ours) == set(theirs)
    assert ours["state"] == {"running": {"startedAt": "2026-11-26T00:23:28Z"}}
    assert json.loads(status.patch_text("u", running))["metadata"] == {"uid": "u"}


def test_phases() -> None:
    pod = {"spec": {"restartPolicy": "Never"}}
    assert status.phase(pod, [], [view(state="terminated", exit_code=1)], True) == "Failed"
    assert status.phase(pod, [], [view(state="terminated", exit_code=0)], True) == "Succeeded"
    assert status.phase(pod, [view("init", state="terminated", exit_code=2)], [view()], True) == "Failed"
    always = {"spec": {}}
    assert status.phase(always, [], [view(reason="CrashLoopBackOff", last_terminated={"exitCode": 1})], True) == "Running"
    assert status.phase(always, [], [view()], True) == "Pending"
    assert status.phase(always, [view("init", state="running")], [view()], True) == "Pending"
    assert status.terminal_phase([view(state="terminated", exit_code=0)]) == "Succeeded"


def test_conditions_name_the_unready_containers() -> None:
    found = status.conditions([], [view("a", ready=True), view("b")], True, "Running")
    assert found["Ready"] == ("False", "ContainersNotReady", "containers with unready status: [b]")
    found = status.conditions([view("i")], [view("a")], True, "Pending")
    assert found["Initialized"] == ("False", "ContainersNotInitialized", "containers with incomplete status: [i]")


def test_tracker_reports_only_changes() -> None:
    tracker = StatusTracker()
    built = tracker.build({"spec": {}}, [], [view()], True, "h", "")
    assert tracker.changed(built)
    tracker.reported(built)
    assert not tracker.changed(tracker.build({"spec": {}}, [], [view()], True, "h", ""))


def test_atomic_writer_swaps_data_and_prunes(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert volumes.write_atomically(target, {"a": (b"1", 0o644), "b": (b"2", 0o600)})
    assert (target / "a").read_text() == "1" and os.readlink(target / "a") == "..data/a"
    first = os.readlink(target / "..data")
    assert not volumes.write_atomically(target, {"a": (b"1", 0o644), "b": (b"2", 0o600)})  # unchanged
    assert volumes.write_atomically(target, {"a": (b"3", 0o644)})
    assert (target / "a").read_text() == "3" and not (target / "b").exists()
    assert not (target / first).exists() and ((target / "a").stat().st_mode & 0o777) == 0o644


def test_volume_payloads_and_references(tmp_path: Path) -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {
        "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s2"}}]}],
        "volumes": [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": "sub/file", "mode": 0o600}]}},
                    {"name": "o", "secret": {"secretName": "gone", "optional": True}},
                    {"name": "h", "hostPath": {"path": str(tmp_path / "made"), "type": "DirectoryOrCreate"}}]}}
    assert volumes.referenced_objects(pod) == {("configmap", "cm"), ("secret", "gone"), ("secret", "s2")}
    objects = {("configmap", "cm"): {"data": {"k": "v", "ignored": "x"}}}
    paths = volumes.prepare(str(tmp_path), pod, lambda kind, name: objects.get((kind, name)), "h", "p")
    assert (paths["v"] / "sub" / "file").read_text() == "v" and not (paths["v"] / "ignored").exists()
    assert paths["h"] == tmp_path / "made" and paths["h"].is_dir()
    assert paths["o"].is_dir() and not list(p for p in paths["o"].iterdir() if not p.name.startswith(".."))
    mounts = volumes.mounts({"volumeMounts": [{"name": "v", "mountPath": "/cfg"}, {"name": "h", "mountPath": "/h"}]}, pod, paths)
    assert [(m.container_path, m.readonly) for m in mounts] == [("/cfg", True), ("/h", False)]
    with pytest.raises(podspec.SpecError):
        volumes.prepare(str(tmp_path), pod, lambda kind, name: None, "h", "p")


def test_sidecars_gate_initialization_until_started_then_count_for_readiness() -> None:
    pod = {"spec": {"restartPolicy": "Never"}}
    waiting_sidecar = ContainerView(name="proxy", image="i", sidecar=True)
    started_sidecar = ContainerView(name="proxy", image="i", state="running", started=True, ready=False, sidecar=True)
    ready_sidecar = ContainerView(name="proxy", image="i", state="running", started=True, ready=True, sidecar=True)
    app_waiting = ContainerView(name="main", image="i")
    app_running = ContainerView(name="main", image="i", state="running", started=True, ready=True)
    app_done = ContainerView(name="main", image="i", state="terminated", exit_code=0)
    assert status.phase(pod, [waiting_sidecar], [app_waiting], True) == "Pending"
    assert status.incomplete_init([waiting_sidecar], [app_waiting]) == ["proxy"]
    assert status.incomplete_init([started_sidecar], [app_waiting]) == []
    # a restarting sidecar does not send a pod whose app has run back to Pending
    assert status.phase(pod, [waiting_sidecar], [app_running], True) == "Running"
    conditions = status.conditions([started_sidecar], [app_running], True, "Running")
    assert conditions["Initialized"][0] == "True" and conditions["Ready"][:2] == ("False", "ContainersNotReady")
    assert "proxy" in conditions["Ready"][2]
    assert status.conditions([ready_sidecar], [app_running], True, "Running")["Ready"][0] == "True"
    # the app is done: the pod succeeds whatever its sidecar is doing
    assert status.phase(pod, [ready_sidecar], [app_done], True) == "Succeeded"


def test_hold_upgrade_holds_only_annotated_pending_pods_not_being_deleted() -> None:
    from cores.edge.edged.pods import held_for_upgrade

    annotated = {"metadata": {"annotations": {"edge.kubeedge.io/hold-upgrade": "true"}}}
    assert held_for_upgrade(annotated)  # no status yet: Pending
    assert held_for_upgrade({**annotated, "status": {"phase": "Pending"}})
    assert not held_for_upgrade({**annotated, "status": {"phase": "Running"}})
    assert not held_for_upgrade({"metadata": {**annotated["metadata"], "deletionTimestamp": "2026-12-04T00:00:00Z"}})
    assert not held_for_upgrade({"metadata": {"annotations": {"edge.kubeedge.io/hold-upgrade": "True"}}})
    assert not held_for_upgrade({"metadata": "junk", "status": []})
