"""Our EdgeStream serves upstream cloudcore's CloudStream: kubectl logs and exec on a pod of our
EdgeCore, through upstream's stream server (10003 role) and tunnel (10004 role).

The other direction, upstream's edgecore behind our CloudStream, is in ``test_upstream_peers.py``.
Our control plane plays kube-apiserver: ``kubeletClient.streamServer`` is upstream's stream
server, whose certificate (``stream.crt``, as upstream's certgen makes it) is from a CA of the
test's own (``kubeletClient.caFile``); upstream checks our admin client certificate against the
control plane's CA (``tlsStreamCAFile``). Port-forward is ours alone: upstream refuses it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certs import x509 as certs
from cores.common import supervision
from cores.controlplane.launcher import stop
from cores.runtime import BUSYBOX_IMAGE, Containerd, upstream
from tests.integration.conftest import free_port, start_controlplane
from tests.integration.edgecloud import Core, start_edge
from tests.integration.test_streams import KUBECTLS, kubectl, run_kubectl, wait
from tests.timeouts import scaled

CLOUDCORE = upstream.binary("cloudcore")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CLOUDCORE is None, reason=f"upstream cloudcore not found: set {upstream.BIN_ENV} "
                                                          "to a directory of unpacked upstream binaries (scripts/test.sh does)")]
REPO = Path(__file__).resolve().parents[2]


def stream_server_tls(base: Path) -> tuple[Path, Path, Path]:
    """A CA of its own, and the stream server's certificate for 127.0.0.1 from it: (CA, cert, key)."""
    base.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = certs.create_ca("stream-test-ca")
    key = certs.generate_key()
    cert = certs.create_server_cert(ca_cert, ca_key, key, common_name="kubeedge-stream", ip_addresses=["127.0.0.1"],
                                    dns_names=["localhost"])
    paths = base / "streamCA.crt", base / "stream.crt", base / "stream.key"
    paths[0].write_bytes(certs.cert_to_pem(ca_cert))
    paths[1].write_bytes(certs.cert_to_pem(cert))
    paths[2].write_bytes(certs.key_to_pem(key))
    return paths


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, containerd: Containerd) -> Iterator[dict[str, Any]]:  # noqa: F811
    assert CLOUDCORE is not None
    base = tmp_path_factory.mktemp("upstream-streams")
    stream_ca, stream_cert, stream_key = stream_server_tls(base / "stream-tls")
    stream_port = free_port()
    plane = start_controlplane(base / "plane", kubeletClient={"streamServer": f"127.0.0.1:{stream_port}",
                                                              "caFile": str(stream_ca)})
    cloud: upstream.UpstreamCloud | None = None
    edge: Core | None = None
    try:
        for crd in sorted((REPO / "templates" / "crds").glob("*.yaml")):  # as keadm init installs them
            kubectl(plane, "apply", "-f", str(crd))
        cloud = upstream.cloudcore_spec(CLOUDCORE, base / "cloudcore", plane.kubeconfig,
                                        stream_tls=(plane.ca_file, stream_cert, stream_key), stream_port=stream_port)
        supervision.start(cloud.spec, ready=lambda: "Starting cloudhub websocket server" in cloud.log())
        token = base64.b64decode(kubectl(plane, "get", "secret", "tokensecret", "-n", "kubeedge", "-o",
                                         "jsonpath={.data.tokendata}")).decode()
        node = f"ups-{uuid.uuid4().hex[:6]}"
        edge = start_edge(base / "edge", cloud, node, token, runtime_endpoint=containerd.endpoint)  # type: ignore[arg-type]
        pod = f"{node}-app"
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{
                "name": "app", "image": BUSYBOX_IMAGE,
                "command": ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done"]}]}}))
        wait(lambda: kubectl(plane, "get", "pod", pod, "-o", "jsonpath={.status.phase}") == "Running", 90,
             "the pod never ran through upstream cloudcore")
        # the pod may run before EdgeStream's tunnel is up (it waits for the node certificate): a
        # stream asked for before then gets upstream's "can not find <node> session"
        cloud_log = cloud.log
        wait(lambda: f"get a new tunnel agent hostname {node}" in cloud_log(), 30,
             "our EdgeStream never reached upstream's tunnel server")
        yield {"plane": plane, "cloud": cloud, "edge": edge, "node": node, "pod": pod}
    finally:
        if edge is not None:
            edge.stop()
        if cloud is not None:
            supervision.stop(cloud.spec, grace=scaled(10))
        stop(plane)


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_logs_through_upstream_cloudstream(site: dict[str, Any], binary: str) -> None:
    plane, pod = site["plane"], site["pod"]
    wait(lambda: "line-5" in run_kubectl(binary, plane, "logs", pod).stdout, 30,
         f"logs never came through upstream's stream server: {run_kubectl(binary, plane, 'logs', pod).stderr}")
    lines = run_kubectl(binary, plane, "logs", pod).stdout.splitlines()
    assert lines[:3] == ["line-1", "line-2", "line-3"]
    tail = run_kubectl(binary, plane, "logs", pod, "--tail=2").stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith("line-") for line in tail)


def test_logs_follow_through_upstream_cloudstream(site: dict[str, Any]) -> None:
    plane, pod = site["plane"], site["pod"]
    follow = subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "logs", "-f", "--tail=1", pod],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        numbers = [int(follow.stdout.readline().strip().removeprefix("line-")) for _ in range(6)]
        assert numbers == list(range(numbers[0], numbers[0] + 6))
    finally:
        follow.kill()
        follow.communicate()


def stream_logs(site: dict[str, Any]) -> str:
    """What both ends of the tunnel logged about streams: for a failure seen only under load."""
    edge = [line for line in site["edge"].log().splitlines() if "stream" in line.lower()]
    cloud = [line for line in site["cloud"].log().splitlines() if "stream" in line.lower() or "tunnel" in line.lower()]
    return "\nedge:\n" + "\n".join(edge[-20:]) + "\nupstream cloudcore:\n" + "\n".join(cloud[-20:])


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_exec_through_upstream_cloudstream(site: dict[str, Any], binary: str) -> None:
    plane, pod = site["plane"], site["pod"]
    done = run_kubectl(binary, plane, "exec", pod, "--", "sh", "-c", "echo hi; exit 3")
    assert (done.stdout, done.returncode) == ("hi\n", 3), done.stderr + stream_logs(site)
    done = run_kubectl(binary, plane, "exec", "-i", pod, "--", "sh", "-c", "tr a-z A-Z", stdin="hello upstream\n")
    assert (done.stdout, done.returncode) == ("HELLO UPSTREAM\n", 0), done.stderr + stream_logs(site)


def test_port_forward_is_refused_by_upstream_with_a_clear_error(site: dict[str, Any]) -> None:
    plane, pod = site["plane"], site["pod"]
    forward = subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "port-forward", f"pod/{pod}",
                                f"{free_port()}:80"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = forward.communicate(timeout=scaled(30))
    except subprocess.TimeoutExpired:
        forward.kill()
        _, err = forward.communicate()
        pytest.fail(f"port-forward through upstream's stream server did not fail: {err}")
    assert forward.returncode != 0 and "upstream KubeEdge's CloudStream has no port-forward" in err, err
