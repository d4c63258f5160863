"""Autonomy and sharing: a killed EdgeCore adopts its running pods; edges sharing containerd stay apart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from cores.common import layout as layouts
from cores.common.supervision import ServiceSpec, start, stop
from cores.controlplane.launcher import keadm_argv
from cores.edge.cri import CriClient, api, labels_for_node
from cores.edge.metamanager import MetaStore
from cores.runtime import Containerd
from tests.integration.test_pods import Edge, container, exec_in, make_pod, node_containers, remove_node_pods
from tests.timeouts import scaled

pytestmark = pytest.mark.slow


def edgecore_without_cloud(base: Path, node: str, endpoint: str) -> ServiceSpec:
    """A real EdgeCore process whose cloud never answers (EdgeHub off): the autonomy path."""
    layout = layouts.Layout(base / "etc", base / "var", base / "log")
    document = layouts.edgecore_document(layout, node_name=node, cloud_host="127.0.0.1", token="", node_ip="127.0.0.1",
                                         runtime_endpoint=endpoint)
    document["modules"]["edgeHub"]["enable"] = False
    config = layouts.write(layout.edgecore_config, document)
    return ServiceSpec(component="edgecore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
                       argv=(*keadm_argv(), "run", "edge", "--config", str(config)), readiness_timeout=scaled(30))


async def running(endpoint: str, node: str, uid: str) -> dict[str, str]:
    """container name -> id of the running containers of pod ``uid``."""
    return {c.labels["io.kubernetes.container.name"]: c.id for c in await node_containers(endpoint, node, uid)
            if c.state == api.CONTAINER_RUNNING}


async def wait_running(endpoint: str, node: str, uid: str, names: set[str], timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        found = await running(endpoint, node, uid)
        if set(found) >= names:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"containers {names} of {uid} not running: {await running(endpoint, node, uid)}")


def wait_dead(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(") ")[1].startswith("Z"):
                return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still alive")


async def test_kill_9_then_restart_without_cloud_adopts_running_containers(tmp_path: Path, containerd: Containerd) -> None:
    node = f"auto-{uuid.uuid4().hex[:6]}"
    spec = edgecore_without_cloud(tmp_path, node, containerd.endpoint)
    pod = make_pod(node, "keeper", [
        {"name": "main", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]},
        {"name": "crash", "command": ["sh", "-c", "sleep 1; exit 1"]},
    ], volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}])
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cfg", "namespace": "default"}, "data": {"k": "stored"}}
    store = MetaStore(tmp_path / "var" / "edgecore.db")   # what MetaManager committed before, from a cloud now away
    store.put("default/pod/keeper", "pod", pod)
    store.put("default/configmap/cfg", "configmap", cm)
    store.close()
    uid = pod["metadata"]["uid"]
    pid = start(spec)
    try:
        before = await wait_running(containerd.endpoint, node, uid, {"main"})
        assert (await exec_in(containerd.endpoint, before["main"], "cat", "/etc/cfg/k")) == "stored"
        async with CriClient(containerd.endpoint) as cri:
            sandboxes = [s.id for s in await cri.list_pod_sandbox(labels=labels_for_node(node))]
        # the crashing container restarts per policy with no cloud at all
        deadline = time.monotonic() + scaled(20)
        while max((c.metadata.attempt for c in await node_containers(containerd.endpoint, node, uid)
                   if c.labels["io.kubernetes.container.name"] == "crash"), default=0) < 1:
            assert time.monotonic() < deadline, "crashing container never restarted"
            await asyncio.sleep(0.3)

        os.kill(pid, signal.SIGKILL)
        wait_dead(pid)
        assert (await running(containerd.endpoint, node, uid))["main"] == before["main"], "containers outlive EdgeCore"

        pid = start(spec)
        deadline = time.monotonic() + scaled(20)
        while "using sandbox" not in spec.log_file.read_text():
            assert time.monotonic() < deadline, "restarted EdgeCore never adopted the sandbox"
            await asyncio.sleep(0.2)
        await asyncio.sleep(scaled(3))
        after = await running(containerd.endpoint, node, uid)
        assert after["main"] == before["main"], "the running container was replaced instead of adopted"
        async with CriClient(containerd.endpoint) as cri:
            assert [s.id for s in await cri.list_pod_sandbox(labels=labels_for_node(node))] == sandboxes
        mains = [c for c in await node_containers(containerd.endpoint, node, uid) if c.labels["io.kubernetes.container.name"] == "main"]
        assert [c.id for c in mains] == [before["main"]]
    finally:
        stop(spec, grace=scaled(10))
        await remove_node_pods(containerd.endpoint, node)


async def test_two_edges_share_containerd_and_clean_up_only_their_own(tmp_path: Path, containerd: Containerd) -> None:
    from cores.edge.edged import pods as pod_module

    a, b = (Edge(tmp_path / name, f"{name}-{uuid.uuid4().hex[:6]}", containerd.endpoint) for name in ("a", "b"))
    try:
        await a.start()
        await b.start()
        pod_a, pod_b = make_pod(a.node, "same-name", [{"name": "main"}]), make_pod(b.node, "same-name", [{"name": "main"}])
        await a.push("insert", pod_a)
        await b.push("insert", pod_b)
        status_b = await b.wait_status(pod_b, lambda s: container(s)["ready"])
        await a.wait_status(pod_a, lambda s: container(s)["ready"])
        # a pod bound to another node is not run here
        await a.push("insert", make_pod(b.node, "not-mine", [{"name": "main"}]))

        await a.stop()  # containers stay, as with kubelet
        fresh = Edge(tmp_path / "a2", a.node, containerd.endpoint)  # node a again, but it knows no pods
        await fresh.start(connected=False)
        a = fresh
        await asyncio.sleep(0.5)
        assert a.edged.pods is not None
        removed = await a.edged.pods.remove_orphans()
        assert removed and not await node_containers(containerd.endpoint, a.node)
        still = await running(containerd.endpoint, b.node, pod_b["metadata"]["uid"])
        assert still == {"main": container(status_b)["containerID"].removeprefix("containerd://")}
        assert not [c for c in await node_containers(containerd.endpoint, b.node) if c.labels["io.kubernetes.pod.name"] == "not-mine"]
        assert pod_module.ORPHAN_GRACE_SECONDS >= 10  # housekeeping waits for MetaManager's replay first
    finally:
        for edge in (a, b):
            await edge.stop()
            await remove_node_pods(containerd.endpoint, edge.node)

