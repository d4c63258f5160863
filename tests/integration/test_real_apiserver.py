"""Our CloudCore on a real kube-apiserver (v1.36, Debian's etcd): nothing may depend on the
embedded control plane's quirks.

Skipped, naming ``KEADM_UPSTREAM_BIN``, without upstream's binaries (scripts/test.sh unpacks them;
CI has them), or without Debian's ``etcd``. No controller-manager or scheduler runs there, so
pods name their node, and the test creates the ``default`` ServiceAccount and the ConfigMaps a
projected token volume needs, as the binaries' README says.

One scenario, as an operator lives it: CloudCore starts on the cluster (its CRDs, CA and token
Secrets), our EdgeCore joins and runs a pod with a ConfigMap volume; the link is cut while the
ConfigMap changes, a second pod is created and the first deleted; the link back, the edge
converges; CloudCore restarted, a change made after the restart still reaches the edge.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.common import supervision
from cores.runtime import BUSYBOX_IMAGE, Containerd, upstream
from tests.integration.edgecloud import start_cloud, start_edge
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_upstream_peers import exec_in, running_containers
from tests.timeouts import scaled

APISERVER = upstream.binary("kube-apiserver")
ETCD = shutil.which("etcd")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(APISERVER is None, reason=f"upstream kube-apiserver not found: set {upstream.BIN_ENV} "
                                                           "to a directory of unpacked upstream binaries (scripts/test.sh does)"),
              pytest.mark.skipif(ETCD is None, reason="Debian's etcd (package etcd-server) is not installed")]


class Plane:
    """What start_cloud needs of a cluster: its admin kubeconfig and the CA that signs its clients."""

    def __init__(self, kubeconfig: Path, ca_file: Path) -> None:
        self.kubeconfig = kubeconfig
        self.ca_file = ca_file


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[upstream.RealCluster]:
    assert APISERVER is not None and ETCD is not None
    real = upstream.real_cluster_specs(APISERVER, tmp_path_factory.mktemp("real-apiserver"), etcd=ETCD)
    supervision.start(real.etcd, ready=lambda: real.etcd.log_file.exists()
                      and "ready to serve client requests" in real.etcd.log_file.read_text(errors="replace"))
    try:
        supervision.start(real.apiserver, ready=lambda: run(real, "get", "--raw", "/readyz", check=False) == "ok")
        run(real, "create", "serviceaccount", "default", "-n", "default", check=False)
        ca = real.ca_file.read_text()
        for name in ("kube-root-ca.crt", "openshift-service-ca.crt"):
            apply(real, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
                         "data": {"ca.crt": ca, "service-ca.crt": ca}})
        yield real
    finally:
        supervision.stop(real.apiserver, grace=scaled(10))
        supervision.stop(real.etcd, grace=scaled(10))


def run(real: upstream.RealCluster, *args: str, check: bool = True) -> str:
    done = subprocess.run(["kubectl", f"--kubeconfig={real.kubeconfig}", *args], capture_output=True, text=True,
                          timeout=scaled(30), check=False)
    if check and done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def apply(real: upstream.RealCluster, obj: dict[str, Any]) -> None:
    done = subprocess.run(["kubectl", f"--kubeconfig={real.kubeconfig}", "apply", "--validate=false", "-f", "-"],
                          input=json.dumps(obj), capture_output=True, text=True, timeout=scaled(30), check=False)
    assert done.returncode == 0, done.stderr


def wait(check: Any, timeout: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(what() if callable(what) else what)


def tails(*cores: Any) -> str:
    """The end of each core's log, for a failure that only shows under load (CI)."""
    return "".join(f"\n--- {core.spec.component} log ---\n{core.log()[-4000:]}" for core in cores if core is not None)


def pod(name: str, node: str, configmap: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "hostNetwork": True, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": BUSYBOX_IMAGE, "command": [
                         "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
                         "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                     "volumes": [{"name": "cfg", "configMap": {"name": configmap}}]}}


def test_cloudcore_on_a_real_apiserver_through_a_cut_and_a_restart(cluster: upstream.RealCluster, containerd: Containerd,
                                                                    tmp_path: Path) -> None:
    node = f"real-{uuid.uuid4().hex[:6]}"
    cloud = start_cloud(tmp_path / "cloud", Plane(cluster.kubeconfig, cluster.ca_file))  # type: ignore[arg-type]
    proxy = TcpProxy(cloud.websocket_port).start()
    edge = None
    try:
        assert "objectsyncs.reliablesyncs.kubeedge.io" in run(cluster, "get", "crd", "-o", "name")
        edge = start_edge(tmp_path / "edge", cloud, node, cloud.token(cluster.kubeconfig),  # type: ignore[arg-type]
                          runtime_endpoint=containerd.endpoint, websocket_port=proxy.port)
        wait(lambda: run(cluster, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                         check=False) == "True", 60, "the node never became Ready on the real apiserver")
        configmap = f"{node}-cfg"
        apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": "default"},
                        "data": {"v": "1"}})
        first, second = f"{node}-a", f"{node}-b"
        apply(cluster, pod(first, node, configmap))
        wait(lambda: run(cluster, "get", "pod", first, "-o", "jsonpath={.status.phase}", check=False) == "Running", 60,
             "the pod never ran")
        container = running_containers(containerd.endpoint, first)[f"main@{first}"]
        assert exec_in(containerd.endpoint, container, "cat", "/cfg/v") == "1"

        # the link cut; meanwhile the ConfigMap changes, a pod comes and another goes
        proxy.reset_all()
        apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": "default"},
                        "data": {"v": "2"}})
        apply(cluster, pod(second, node, configmap))
        run(cluster, "delete", "pod", first, "--wait=false")
        time.sleep(scaled(5))
        assert running_containers(containerd.endpoint, first)  # nothing reached the edge yet
        proxy.restore()
        wait(lambda: not running_containers(containerd.endpoint, first), 60, "the pod deleted meanwhile still runs")
        wait(lambda: running_containers(containerd.endpoint, second), 60, "the pod created meanwhile never ran")
        wait(lambda: first not in run(cluster, "get", "pods", "-o", "name"), 60, "the deleted pod never went")
        second_container = running_containers(containerd.endpoint, second)[f"main@{second}"]
        assert exec_in(containerd.endpoint, second_container, "cat", "/cfg/v") == "2"

        # CloudCore restarted: what changes afterwards still reaches the edge
        cloud.stop()
        supervision.start(cloud.spec, ready=lambda: cloud.log().count("websocket server listening") >= 2)
        apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": "default"},
                        "data": {"v": "3"}})
        wait(lambda: exec_in(containerd.endpoint, second_container, "cat", "/cfg/v") == "3", 90,
             lambda: "a change after CloudCore's restart never reached the edge" + tails(cloud, edge))
        run(cluster, "delete", "pod", second, "--wait=false")
        wait(lambda: not running_containers(containerd.endpoint, second), 60, "the last pod was never stopped")
    finally:
        if edge is not None:
            edge.stop()
        proxy.stop()
        cloud.stop()


EDGECORE = upstream.binary("edgecore")


@pytest.mark.skipif(EDGECORE is None, reason=f"upstream edgecore not found: set {upstream.BIN_ENV}")
def test_upstream_edgecore_through_our_cloudcore_on_a_real_apiserver(cluster: upstream.RealCluster, containerd: Containerd,
                                                                     tmp_path: Path) -> None:
    """Upstream edgecore joins our CloudCore on the real kube-apiserver, runs a pod with a
    ConfigMap volume, gets its change, and deletes it."""
    assert EDGECORE is not None
    from cores.runtime import PAUSE_IMAGE

    node = f"realup-{uuid.uuid4().hex[:6]}"
    cloud = start_cloud(tmp_path / "cloud", Plane(cluster.kubeconfig, cluster.ca_file))  # type: ignore[arg-type]
    base = tmp_path / "upstream-edge"
    spec = upstream.edgecore_spec(EDGECORE, base, node=node, token=cloud.token(cluster.kubeconfig),
                                  websocket_port=cloud.websocket_port, https_port=cloud.https_port,
                                  runtime_endpoint=containerd.endpoint, pause_image=PAUSE_IMAGE)
    try:
        supervision.start(spec)
        wait(lambda: run(cluster, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                         check=False) == "True", 90, "upstream edgecore's node never became Ready")
        configmap = f"{node}-cfg"
        apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": "default"},
                        "data": {"v": "1"}})
        apply(cluster, pod(node, node, configmap))
        wait(lambda: run(cluster, "get", "pod", node, "-o", "jsonpath={.status.phase}", check=False) == "Running", 90,
             "upstream edgecore never ran the pod")
        container = running_containers(containerd.endpoint, node)[f"main@{node}"]
        assert exec_in(containerd.endpoint, container, "cat", "/cfg/v") == "1"
        apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": "default"},
                        "data": {"v": "2"}})
        wait(lambda: exec_in(containerd.endpoint, container, "cat", "/cfg/v") == "2", 120,
             "the ConfigMap's change never reached upstream edgecore's pod")
        run(cluster, "delete", "pod", node, "--wait=false")
        wait(lambda: node not in run(cluster, "get", "pods", "-o", "name"), 60, "the pod was never deleted")
    finally:
        supervision.stop(spec, grace=scaled(10))
        upstream.unmount_under(base)
        cloud.stop()
