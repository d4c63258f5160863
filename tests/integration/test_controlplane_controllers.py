"""The embedded control plane's controllers (scheduler, node lifecycle, ReplicaSets, Deployments) through
real HTTP, the kubernetes client and kubectl; a FakeKubelet stands in for each node."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from cores.controlplane import launcher
from tests.integration.conftest import start_controlplane
from tests.integration.fake_kubelet import FakeKubelet
from tests.timeouts import scaled, wait_for

KUBECTL = shutil.which("kubectl")
GRACE = 3.0  # nodeMonitorGracePeriodSeconds of this module's control plane


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.ControlPlane]:
    started = start_controlplane(tmp_path_factory.mktemp("controllers"),
                                 controllers={"nodeMonitorGracePeriodSeconds": GRACE, "nodeMonitorPeriodSeconds": 0.5})
    try:
        yield started
    finally:
        launcher.stop(started)


@pytest.fixture()
def api(plane: launcher.ControlPlane) -> Iterator[Any]:
    api_client = config.new_client_from_config(config_file=str(plane.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"



def kubectl(plane: launcher.ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "--kubeconfig", str(plane.kubeconfig), *args], capture_output=True, text=True,
                            timeout=scaled(90))
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


def deployment(name: str, replicas: int, image: str = "busybox:1.36", selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image, "command": ["sleep", "3600"]}]}
    if selector:
        spec["nodeSelector"] = selector
    return {"metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def running_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in pods if not p.metadata.deletion_timestamp and p.status.phase == "Running"]


def converged(apps: client.AppsV1Api, core: client.CoreV1Api, name: str, replicas: int) -> bool:
    status = apps.read_namespaced_deployment_status(name, "default").status
    return (status.ready_replicas == replicas and status.available_replicas == replicas and status.replicas == replicas
            and status.updated_replicas == replicas and len(running_pods(core, "default", name)) == replicas
            and len(core.list_namespaced_pod("default", label_selector=f"app={name}").items) == replicas)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is installed by scripts/test.sh")
def test_deployment_converges_heals_scales_and_rolls(plane: launcher.ControlPlane, api: Any, tmp_path: Path) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    name = unique("web")
    with FakeKubelet(plane.kubeconfig, unique("node")) as kubelet:
        apps.create_namespaced_deployment("default", deployment(name, 3))
        wait_for(lambda: converged(apps, core, name, 3), message="3 replicas")
        pods = core.list_namespaced_pod("default", label_selector=f"app={name}").items
        assert {p.spec.node_name for p in pods} == {kubelet.node_name}
        owner = pods[0].metadata.owner_references[0]
        assert owner.kind == "ReplicaSet" and owner.controller and owner.block_owner_deletion
        rs = apps.read_namespaced_replica_set(owner.name, "default")
        digest = rs.metadata.labels["pod-template-hash"]
        assert owner.name == f"{name}-{digest}" and pods[0].metadata.name.startswith(f"{owner.name}-")
        assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
        assert rs.spec.selector.match_labels == {"app": name, "pod-template-hash": digest}
        assert rs.status.fully_labeled_replicas == 3 and rs.status.observed_generation == 1
        conditions = {c.type: c for c in apps.read_namespaced_deployment(name, "default").status.conditions}
        assert (conditions["Available"].status, conditions["Available"].reason) == ("True", "MinimumReplicasAvailable")
        assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
        events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={pods[0].metadata.name}").items
        scheduled = [e for e in events if e.reason == "Scheduled"]
        assert scheduled and scheduled[0].source.component == "default-scheduler"
        assert scheduled[0].message == f"Successfully assigned default/{pods[0].metadata.name} to {kubelet.node_name}"

        # a deleted pod is replaced
        core.delete_namespaced_pod(pods[0].metadata.name, "default")
        wait_for(lambda: pods[0].metadata.name not in {p.metadata.name for p in running_pods(core, "default", name)}
                 and converged(apps, core, name, 3), message="replacement pod")

        # kubectl scale, up and back down (the scale subresource)
        kubectl(plane, "scale", f"deployment/{name}", "--replicas=5")
        assert apps.read_namespaced_deployment_scale(name, "default").spec.replicas == 5
        wait_for(lambda: converged(apps, core, name, 5), message="5 replicas")
        kubectl(plane, "scale", f"deployment/{name}", "--replicas=3")
        wait_for(lambda: converged(apps, core, name, 3), message="back to 3 replicas")

        # a rolling update to a new image; kubectl rollout status waits for it
        kubectl(plane, "set", "image", f"deployment/{name}", "app=busybox:1.37")
        status = kubectl(plane, "rollout", "status", f"deployment/{name}", "--timeout=60s")
        assert "successfully rolled out" in status.stdout
        wait_for(lambda: converged(apps, core, name, 3), message="rolled out")
        images = {p.spec.containers[0].image for p in core.list_namespaced_pod("default", label_selector=f"app={name}").items}
        assert images == {"busybox:1.37"}
        sets = apps.list_namespaced_replica_set("default", label_selector=f"app={name}").items
        revisions = sorted((rs.metadata.annotations["deployment.kubernetes.io/revision"], rs.spec.replicas) for rs in sets)
        assert revisions == [("1", 0), ("2", 3)]
        assert apps.read_namespaced_deployment(name, "default").metadata.annotations["deployment.kubernetes.io/revision"] == "2"
        scaled_events = [e.message for e in core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
                         if e.reason == "ScalingReplicaSet"]
        assert f"Scaled up replica set {owner.name} from 0 to 3" in scaled_events

        apps.delete_namespaced_deployment(name, "default")
        wait_for(lambda: not core.list_namespaced_pod("default", label_selector=f"app={name}").items, message="pods collected")


def test_unschedulable_pod_waits_for_a_matching_node(plane: launcher.ControlPlane, api: Any) -> None:
    core = client.CoreV1Api(api)
    zone = unique("zone")
    pod_name = unique("picky")
    with FakeKubelet(plane.kubeconfig, unique("other")):
        core.create_namespaced_pod("default", {"metadata": {"name": pod_name}, "spec": {
            "nodeSelector": {"zone": zone}, "containers": [{"name": "c", "image": "busybox"}]}})

        def unschedulable() -> Any:
            pod = core.read_namespaced_pod(pod_name, "default")
            found = [c for c in pod.status.conditions or [] if c.type == "PodScheduled"]
            return found[0] if found and found[0].status == "False" else None

        condition = wait_for(unschedulable, message="PodScheduled=False")
        assert condition.reason == "Unschedulable"
        assert "node(s) didn't match Pod's node affinity/selector" in condition.message
        assert condition.message.startswith("0/") and " nodes are available: " in condition.message
        events = wait_for(lambda: [e for e in core.list_namespaced_event("default", field_selector=f"involvedObject.name={pod_name}").items
                                   if e.reason == "FailedScheduling"], message="FailedScheduling event")
        assert events[0].type == "Warning" and events[0].message == condition.message
        assert events[0].source.component == "default-scheduler" and events[0].metadata.name.startswith(f"{pod_name}.")
        assert core.read_namespaced_pod(pod_name, "default").status.phase == "Pending"
        with FakeKubelet(plane.kubeconfig, unique("zoned"), labels={"zone": zone}) as kubelet:
            wait_for(lambda: core.read_namespaced_pod(pod_name, "default").spec.node_name == kubelet.node_name, message="bound")
            wait_for(lambda: core.read_namespaced_pod(pod_name, "default").status.phase == "Running", message="running")
            core.delete_namespaced_pod(pod_name, "default")
            wait_for(lambda: not core.list_namespaced_pod("default", field_selector=f"metadata.name={pod_name}").items)


def test_required_node_affinity_and_taints(plane: launcher.ControlPlane, api: Any) -> None:
    core = client.CoreV1Api(api)
    tier = unique("tier")
    with FakeKubelet(plane.kubeconfig, unique("tainted"), labels={"tier": tier}) as tainted, \
            FakeKubelet(plane.kubeconfig, unique("plain"), labels={"tier": tier, "rank": "7"}) as plain:
        core.patch_node(tainted.node_name, {"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})
        affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": [tier]}]}]}}}
        name = unique("aff")
        core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": {
            "affinity": affinity, "containers": [{"name": "c", "image": "busybox"}]}})
        wait_for(lambda: core.read_namespaced_pod(name, "default").spec.node_name == plain.node_name, message="bound to plain")
        # Gt on a label, and a toleration for the taint
        strict = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": [tier]},
                                  {"key": "rank", "operator": "Gt", "values": ["5"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [tainted.node_name]}]}]}}}
        tolerant = unique("tol")
        core.create_namespaced_pod("default", {"metadata": {"name": tolerant}, "spec": {
            "affinity": strict, "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            "containers": [{"name": "c", "image": "busybox"}]}})
        wait_for(lambda: core.read_namespaced_pod(tolerant, "default").spec.node_name in (tainted.node_name, plain.node_name))
        intolerant = unique("intol")
        core.create_namespaced_pod("default", {"metadata": {"name": intolerant}, "spec": {
            "nodeSelector": {"kubernetes.io/hostname": tainted.node_name}, "containers": [{"name": "c", "image": "busybox"}]}})

        def reason() -> str:
            pod = core.read_namespaced_pod(intolerant, "default")
            return "".join(c.message or "" for c in pod.status.conditions or [] if c.type == "PodScheduled" and c.status == "False")

        message = wait_for(reason, message="unschedulable")
        assert "1 node(s) had untolerated taint {dedicated: gpu}" in message
        for pod in (name, tolerant, intolerant):
            core.delete_namespaced_pod(pod, "default", grace_period_seconds=0)


def test_silent_node_goes_unknown_keeps_its_pods_and_comes_back(plane: launcher.ControlPlane, api: Any) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    name = unique("edgeapp")
    with FakeKubelet(plane.kubeconfig, unique("edge"), labels={"node-role.kubernetes.io/edge": ""}) as kubelet:
        node_name = kubelet.node_name
        apps.create_namespaced_deployment("default", deployment(name, 2, selector={"kubernetes.io/hostname": node_name}))
        wait_for(lambda: converged(apps, core, name, 2), message="2 replicas")
        before = {p.metadata.name for p in running_pods(core, "default", name)}

        kubelet.pause()
        paused_at = time.monotonic()

        def ready_status() -> str:
            node = core.read_node(node_name)
            return next(c.status for c in node.status.conditions if c.type == "Ready")

        wait_for(lambda: ready_status() == "Unknown", timeout=GRACE + 5, message="Unknown")
        assert time.monotonic() - paused_at >= GRACE - 0.5
        node = core.read_node(node_name)
        for item in node.status.conditions:
            assert (item.status, item.reason, item.message) == ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        taints = wait_for(lambda: {(t.key, t.effect) for t in core.read_node(node_name).spec.taints or []}, message="taints")
        assert taints == {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
        # pods stay bound (edge autonomy: nothing evicted), but are marked not ready
        wait_for(lambda: all(c.status == "False" for p in core.list_namespaced_pod("default", label_selector=f"app={name}").items
                             for c in p.status.conditions if c.type == "Ready"), message="pods not ready")
        pods = core.list_namespaced_pod("default", label_selector=f"app={name}").items
        assert {p.metadata.name for p in pods} == before and all(p.spec.node_name == node_name for p in pods)
        assert all(not p.metadata.deletion_timestamp for p in pods)

        kubelet.resume()
        wait_for(lambda: ready_status() == "True" and not core.read_node(node_name).spec.taints, message="Ready again")
        wait_for(lambda: converged(apps, core, name, 2), message="pods ready again")
        assert {p.metadata.name for p in core.list_namespaced_pod("default", label_selector=f"app={name}").items} == before
        apps.delete_namespaced_deployment(name, "default")
