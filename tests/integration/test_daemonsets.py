"""DaemonSets on the embedded control plane, through real CloudCore and EdgeCore processes.

The usual way to put a mapper or an agent on every edge: ``kubectl apply`` of a DaemonSet with
``nodeSelector: node-role.kubernetes.io/edge`` puts one pod on each edge, a new edge gets its
own, a changed template rolls over the edges, and ``kubectl get ds`` / ``kubectl rollout status``
read what users expect. The edges are hollow EdgeCores (real EdgeHub and MetaManager, a stand-in
Edged that reports every pod Running and Ready and finishes deletions as a kubelet does).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.controlplane.launcher import ControlPlane, stop
from tests.integration.conftest import start_controlplane
from tests.integration.edgecloud import Cloud, Core, start_cloud, start_edge
from tests.timeouts import scaled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = start_controlplane(tmp_path_factory.mktemp("ds-plane"), controllers={"enable": True, "resyncPeriodSeconds": 5})
    try:
        yield started
    finally:
        stop(started)


@pytest.fixture(scope="module")
def cloud(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("ds-cloud"), plane)
    try:
        yield core
    finally:
        core.stop()


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", *args], input=stdin, capture_output=True,
                          text=True, timeout=scaled(60), check=False)
    if check and done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def daemon_pods(plane: ControlPlane, name: str) -> dict[str, dict[str, Any]]:
    """node -> the DaemonSet's live pod there."""
    listed = json.loads(kubectl(plane, "get", "pods", "-l", f"app={name}", "-o", "json"))["items"]
    return {pod["spec"].get("nodeName", ""): pod for pod in listed if not pod["metadata"].get("deletionTimestamp")}


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(what)


def daemon_set(name: str, image: str) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"selector": {"matchLabels": {"app": name}},
                                "template": {"metadata": {"labels": {"app": name}},
                                             "spec": {"nodeSelector": {"node-role.kubernetes.io/edge": ""},
                                                      "hostNetwork": True, "terminationGracePeriodSeconds": 1,
                                                      "containers": [{"name": "agent", "image": image}]}}}})


def test_a_daemonset_puts_one_pod_on_every_edge_and_rolls_over_them(plane: ControlPlane, cloud: Cloud, tmp_path: Path) -> None:
    prefix = f"ds-{uuid.uuid4().hex[:5]}"
    edges: list[Core] = []
    try:
        token = cloud.token(plane.kubeconfig)
        for index in range(2):
            edges.append(start_edge(tmp_path / f"e{index}", cloud, f"{prefix}-e{index}", token, hollow=True))
        # a node that is not an edge: no daemon there
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                             "metadata": {"name": f"{prefix}-cloud-node"}}))
        name = f"{prefix}-agent"
        started = time.monotonic()
        kubectl(plane, "apply", "-f", "-", stdin=daemon_set(name, "localhost/busybox:local"))
        wait(lambda: set(daemon_pods(plane, name)) == {f"{prefix}-e0", f"{prefix}-e1"}, 10,
             "the DaemonSet did not put a pod on each of the two edges within 10 s")
        first_placement = time.monotonic() - started
        wait(lambda: all(p["status"].get("phase") == "Running" for p in daemon_pods(plane, name).values()), 30,
             "the daemon pods never ran")

        edges.append(start_edge(tmp_path / "e2", cloud, f"{prefix}-e2", token, hollow=True))
        wait(lambda: f"{prefix}-e2" in daemon_pods(plane, name), 15, "the edge that joined later got no daemon pod")
        assert f"{prefix}-cloud-node" not in daemon_pods(plane, name)

        kubectl(plane, "rollout", "status", f"daemonset/{name}", "--timeout=60s")
        table = kubectl(plane, "get", "ds", name)
        header, row = table.splitlines()[:2]
        assert header.split()[:7] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE"]
        assert row.split()[:7] == [name, "3", "3", "3", "3", "3", "node-role.kubernetes.io/edge="]

        # a new template rolls over every edge, one at a time, and the rollout completes
        old = {node: pod["metadata"]["uid"] for node, pod in daemon_pods(plane, name).items()}
        kubectl(plane, "set", "image", f"daemonset/{name}", "agent=localhost/busybox:v2")
        kubectl(plane, "rollout", "status", f"daemonset/{name}", "--timeout=50s")
        now = daemon_pods(plane, name)
        assert set(now) == set(old)
        assert all(now[node]["metadata"]["uid"] != old[node] for node in old)
        assert all(pod["spec"]["containers"][0]["image"] == "localhost/busybox:v2" for pod in now.values())
        tolerations = {(t.get("key"), t.get("effect")) for t in next(iter(now.values()))["spec"]["tolerations"]}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerations  # as every daemon pod gets

        kubectl(plane, "delete", "daemonset", name)
        wait(lambda: not daemon_pods(plane, name), 30, "the DaemonSet's pods outlived it")
        print(f"first placement on two edges: {first_placement:.2f}s")
    finally:
        for edge in edges:
            edge.stop()


def test_a_statefulset_comes_up_in_order_and_gets_its_pod_back(plane: ControlPlane, cloud: Cloud, tmp_path: Path) -> None:
    node = f"sts-{uuid.uuid4().hex[:5]}"
    edge = start_edge(tmp_path / "edge", cloud, node, cloud.token(plane.kubeconfig), hollow=True)
    name = f"{node}-db"
    try:
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 2, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "db", "image": "localhost/busybox:local"}]}}}}))
        kubectl(plane, "rollout", "status", f"statefulset/{name}", "--timeout=60s")
        pods = {p["metadata"]["name"]: p for p in json.loads(kubectl(plane, "get", "pods", "-l", f"app={name}", "-o", "json"))["items"]}
        assert sorted(pods) == [f"{name}-0", f"{name}-1"]
        first_ready = next(c["lastTransitionTime"] for c in pods[f"{name}-0"]["status"]["conditions"] if c["type"] == "Ready")
        assert pods[f"{name}-1"]["metadata"]["creationTimestamp"] >= first_ready  # 1 only once 0 was Ready
        assert pods[f"{name}-0"]["spec"]["hostname"] == f"{name}-0" and pods[f"{name}-0"]["spec"]["subdomain"] == name
        assert kubectl(plane, "get", "sts", name).splitlines()[1].split()[:2] == [name, "2/2"]

        old_uid = pods[f"{name}-0"]["metadata"]["uid"]
        kubectl(plane, "delete", "pod", f"{name}-0")

        def recreated() -> bool:
            found = json.loads(kubectl(plane, "get", "pod", f"{name}-0", "-o", "json", "--ignore-not-found") or "{}")
            return bool(found) and found["metadata"]["uid"] != old_uid and found["status"].get("phase") == "Running"

        wait(recreated, 30, "the deleted pod was not made again under its name")
        kubectl(plane, "scale", f"statefulset/{name}", "--replicas=1")
        wait(lambda: set(daemon_pods_of(plane, name)) == {f"{name}-0"}, 30, "the scale-down did not remove the highest ordinal")
        kubectl(plane, "delete", "statefulset", name)
    finally:
        edge.stop()


def daemon_pods_of(plane: ControlPlane, app: str) -> list[str]:
    listed = json.loads(kubectl(plane, "get", "pods", "-l", f"app={app}", "-o", "json"))["items"]
    return [pod["metadata"]["name"] for pod in listed if not pod["metadata"].get("deletionTimestamp")]
