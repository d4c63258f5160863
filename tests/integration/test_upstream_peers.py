"""Upstream KubeEdge's own binaries against ours: the final judge of wire compatibility.

Skipped, naming ``KEADM_UPSTREAM_BIN``, when the binaries are not unpacked (``scripts/test.sh``
unpacks them when ``../shared/upstream-v1.23`` is there; CI has them).

Upstream cloudcore is a client-go program that speaks protobuf to the API for built-in kinds:
at each start it creates or PUTs its Secrets, lists and watches every upstream CRD. On our
embedded control plane it must start, restart (the PUT path) and keep running with no error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cores.common import supervision
from cores.controlplane.launcher import ControlPlane, stop
from cores.runtime import BUSYBOX_IMAGE, Containerd, upstream
from tests.integration.conftest import free_port, start_controlplane
from tests.integration.edgecloud import start_edge
from tests.timeouts import scaled

CLOUDCORE = upstream.binary("cloudcore")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CLOUDCORE is None, reason=f"upstream cloudcore not found: set {upstream.BIN_ENV} "
                                                          "to a directory of unpacked upstream binaries (scripts/test.sh does)")]
REPO = Path(__file__).resolve().parents[2]
# What upstream cloudcore logs when the API refuses it (its klog error lines start with E or F).
FAILURES = ("Failed to watch", "failed to list", "couldn't get version/kind", "the server could not find the requested resource")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = start_controlplane(tmp_path_factory.mktemp("plane-for-upstream"))
    try:
        for crd in sorted((REPO / "templates" / "crds").glob("*.yaml")):  # as keadm init installs them
            subprocess.run(["kubectl", f"--kubeconfig={started.kubeconfig}", "apply", "-f", str(crd)],
                           check=True, capture_output=True, timeout=scaled(30))
        yield started
    finally:
        stop(started)


def kubectl(plane: ControlPlane, *args: str) -> str:
    return subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", *args], check=True, capture_output=True,
                          text=True, timeout=scaled(30)).stdout


def run_cloudcore(cloud: upstream.UpstreamCloud, log_from: int = 0) -> None:
    """Start it and wait until this start (the log from ``log_from`` on) serves the websocket."""
    supervision.start(cloud.spec, ready=lambda: "Starting cloudhub websocket server" in cloud.log()[log_from:])


def errors_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if line[:1] in ("E", "F") and any(f in line for f in FAILURES)]


def test_upstream_cloudcore_starts_and_restarts_on_the_embedded_control_plane(plane: ControlPlane, tmp_path: Path) -> None:
    assert CLOUDCORE is not None
    cloud = upstream.cloudcore_spec(CLOUDCORE, tmp_path / "cloudcore", plane.kubeconfig)
    run_cloudcore(cloud)  # first start: it creates its Secrets (protobuf POSTs)
    try:
        token = kubectl(plane, "get", "secret", "tokensecret", "-n", "kubeedge", "-o", "jsonpath={.data.tokendata}")
        assert base64.b64decode(token).decode().count(".") >= 1  # caHash.jwt
    finally:
        supervision.stop(cloud.spec, grace=scaled(10))
    first = cloud.log()

    run_cloudcore(cloud, len(first))  # second start: the Secrets exist, so it PUTs them in protobuf
    try:
        time.sleep(scaled(8))  # its informers list and watch everything meanwhile
        assert supervision.status(cloud.spec).running, cloud.log()[-3000:]
    finally:
        supervision.stop(cloud.spec, grace=scaled(10))
    second = cloud.log()[len(first):]
    assert "Starting cloudhub websocket server" in second
    assert errors_in(first + second) == []
    assert "failed to create ca to secrets" not in second and "failed to update the secret" not in second


def wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.3)
    pytest.fail(what)


def test_our_edgecore_runs_updates_and_deletes_a_pod_through_upstream_cloudcore(
        plane: ControlPlane, containerd: Containerd, tmp_path: Path) -> None:
    """Our EdgeCore joins upstream cloudcore (on our control plane) and runs a pod with a ConfigMap
    volume; the ConfigMap's change reaches the container; the pod's deletion honours its grace
    period: the container's TERM handler, which takes 3 s, runs to its end (it was SIGKILLed
    about 1 s after the delete before; exit 137)."""
    assert CLOUDCORE is not None
    cloud = upstream.cloudcore_spec(CLOUDCORE, tmp_path / "cloudcore", plane.kubeconfig)
    run_cloudcore(cloud)
    node = f"up-{uuid.uuid4().hex[:6]}"
    marker_dir = tmp_path / "marker"
    marker_dir.mkdir()
    edge = None
    try:
        token = base64.b64decode(kubectl(plane, "get", "secret", "tokensecret", "-n", "kubeedge", "-o",
                                         "jsonpath={.data.tokendata}")).decode()
        edge = start_edge(tmp_path / "edge", cloud, node, token, runtime_endpoint=containerd.endpoint)  # type: ignore[arg-type]
        wait(lambda: '"Ready"' in kubectl(plane, "get", "node", node, "-o", "json") and
             kubectl(plane, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") == "True",
             60, f"node {node} never became Ready through upstream cloudcore")
        manifest = {
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{node}-cfg", "namespace": "default"},
                 "data": {"greeting": "hello"}},
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": node, "namespace": "default"},
                 "spec": {"nodeName": node, "hostNetwork": True, "terminationGracePeriodSeconds": 30,
                          "containers": [{"name": "main", "image": BUSYBOX_IMAGE, "command": ["sh", "-c",
                              "trap 'echo term > /marker/state; sleep 3; echo done > /marker/state; exit 0' TERM; "
                              "while true; do sleep 0.2; done"],
                              "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "marker", "mountPath": "/marker"}]}],
                          "volumes": [{"name": "cfg", "configMap": {"name": f"{node}-cfg"}},
                                      {"name": "marker", "hostPath": {"path": str(marker_dir)}}]}}]}
        subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", "apply", "-f", "-"], input=json.dumps(manifest),
                       text=True, check=True, capture_output=True, timeout=scaled(30))
        wait(lambda: kubectl(plane, "get", "pod", node, "-o", "jsonpath={.status.phase}") == "Running", 60,
             "the pod never ran through upstream cloudcore")
        running = {c.split("@")[0]: i for c, i in running_containers(containerd.endpoint, node).items()}
        assert exec_in(containerd.endpoint, running["main"], "cat", "/cfg/greeting") == "hello"

        kubectl(plane, "patch", "configmap", f"{node}-cfg", "--type=merge", "-p", '{"data":{"greeting":"bonjour"}}')
        wait(lambda: exec_in(containerd.endpoint, running["main"], "cat", "/cfg/greeting") == "bonjour", 60,
             "the ConfigMap's change never reached the container")

        kubectl(plane, "delete", "pod", node, "--wait=false")
        wait(lambda: (marker_dir / "state").exists(), 20, "the container never got its TERM")
        wait(lambda: not running_containers(containerd.endpoint, node), 40, "the container never stopped")
        assert (marker_dir / "state").read_text().strip() == "done", \
            "the container was killed before its TERM handler finished, within a 30 s grace period"
        wait(lambda: node not in kubectl(plane, "get", "pods", "-o", "name"), 40, "the pod was never deleted")
    finally:
        if edge is not None:
            edge.stop()
        supervision.stop(cloud.spec, grace=scaled(10))


def running_containers(endpoint: str, pod: str) -> dict[str, str]:
    from cores.edge.cri import POD_NAME, CriClient

    async def listing() -> dict[str, str]:
        async with CriClient(endpoint) as client:
            found = await client.list_containers(labels={POD_NAME: pod})
            return {f"{c.metadata.name}@{pod}": c.id for c in found if c.state == 1}

    return asyncio.run(listing())


def exec_in(endpoint: str, container_id: str, *command: str) -> str:
    from tests.integration.test_pods import exec_in as exec_in_container

    return asyncio.run(exec_in_container(endpoint, container_id, *command))


EDGECORE = upstream.binary("edgecore")


@pytest.mark.skipif(EDGECORE is None, reason=f"upstream edgecore not found: set {upstream.BIN_ENV}")
def test_upstream_edgecore_runs_updates_and_deletes_a_pod_through_our_cloudcore(containerd: Containerd, tmp_path: Path) -> None:
    """Upstream edgecore joins our CloudCore on the embedded control plane (whose node lifecycle
    controller runs, with an 8 s grace here), runs a pod with a ConfigMap volume, gets the
    ConfigMap's change, deletes the pod; stopped, its node goes NotReady."""
    assert EDGECORE is not None
    from cores.runtime import PAUSE_IMAGE
    from tests.integration.edgecloud import start_cloud

    stream_port = free_port()
    plane = start_controlplane(tmp_path / "plane", controllers={"enable": True, "nodeMonitorGracePeriodSeconds": 8,
                                                                "nodeMonitorPeriodSeconds": 1},
                               kubeletClient={"streamServer": f"127.0.0.1:{stream_port}"})
    cloud = start_cloud(tmp_path / "cloud", plane, stream_port=stream_port)
    node = f"upe-{uuid.uuid4().hex[:6]}"
    base = tmp_path / "upstream-edge"
    spec = upstream.edgecore_spec(EDGECORE, base, node=node, token=cloud.token(plane.kubeconfig),
                                  websocket_port=cloud.websocket_port, https_port=cloud.https_port,
                                  runtime_endpoint=containerd.endpoint, pause_image=PAUSE_IMAGE,
                                  stream_server=f"127.0.0.1:{cloud.tunnel_port}")
    try:
        supervision.start(spec)
        ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        wait(lambda: _quiet(plane, "get", "node", node, "-o", ready) == "True", 90,
             f"upstream edgecore's node {node} never became Ready on our CloudCore")
        configmap = f"{node}-cfg"
        manifest = {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": "default"},
             "data": {"v": "1"}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": node, "namespace": "default"},
             "spec": {"nodeName": node, "hostNetwork": True, "terminationGracePeriodSeconds": 2,
                      "containers": [{"name": "main", "image": BUSYBOX_IMAGE, "command": [
                          "sh", "-c", "echo upstream-edge-started; trap 'exit 0' TERM; while true; do sleep 0.2; done"],
                          "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                      "volumes": [{"name": "cfg", "configMap": {"name": configmap}}]}}]}
        subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", "apply", "-f", "-"], input=json.dumps(manifest),
                       text=True, check=True, capture_output=True, timeout=scaled(30))
        wait(lambda: _quiet(plane, "get", "pod", node, "-o", "jsonpath={.status.phase}") == "Running", 90,
             "upstream edgecore never ran the pod")
        # kubectl logs and exec through our CloudStream and upstream's edgestream (body-only logs, raw exec)
        wait(lambda: "upstream-edge-started" in _quiet(plane, "logs", node), 60,
             "kubectl logs never came through upstream's edgestream")
        done = subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", "exec", node, "--", "sh", "-c",
                               "echo hi; exit 3"], capture_output=True, text=True, timeout=scaled(60), check=False)
        assert (done.stdout, done.returncode) == ("hi\n", 3), done.stderr
        container = next(iter(running_containers(containerd.endpoint, node).values()))
        assert exec_in(containerd.endpoint, container, "cat", "/cfg/v") == "1"
        kubectl(plane, "patch", "configmap", configmap, "--type=merge", "-p", '{"data":{"v":"2"}}')
        wait(lambda: exec_in(containerd.endpoint, container, "cat", "/cfg/v") == "2", 120,
             "the ConfigMap's change never reached upstream edgecore's pod")
        kubectl(plane, "delete", "pod", node, "--wait=false")
        wait(lambda: node not in _quiet(plane, "get", "pods", "-o", "name"), 60, "the pod was never deleted")
        wait(lambda: not running_containers(containerd.endpoint, node), 30, "the pod's container still runs")
        supervision.stop(spec, grace=scaled(10))
        wait(lambda: _quiet(plane, "get", "node", node, "-o", ready) == "Unknown", 60,
             "the stopped upstream edgecore's node never went NotReady (Unknown)")
    finally:
        supervision.stop(spec, grace=scaled(10))
        upstream.unmount_under(base)
        cloud.stop()
        stop(plane)


def _quiet(plane: ControlPlane, *args: str) -> str:
    done = subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", *args], capture_output=True, text=True,
                          timeout=scaled(30), check=False)
    return done.stdout.strip()
