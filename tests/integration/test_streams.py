"""kubectl logs and exec on an edge pod, through the stream tunnel, with nothing configured by hand.

Our control plane, CloudCore (CloudStream: tunnel and stream server) and EdgeCore (EdgeStream and
Edged's kubelet server) with a real containerd; kubectl 1.32 and Debian's 1.20 (SPDY only; 1.32
first tries WebSocket, is refused and falls back). The control plane calls the stream server
directly, which relays through the node's tunnel to Edged, which reads the CRI log file or proxies
the upgraded connection to containerd's streaming server.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.controlplane.launcher import ControlPlane, stop
from cores.runtime import BUSYBOX_IMAGE, Containerd
from tests.integration.conftest import free_port, start_controlplane
from tests.integration.edgecloud import Cloud, Core, start_cloud, start_edge
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_upstream_peers import running_containers
from tests.timeouts import scaled

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KUBECTL_120 = REPO / ".cache" / "kubectl-1.20" / "usr" / "bin" / "kubectl"
KUBECTLS = ["kubectl", str(KUBECTL_120)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, containerd: Containerd) -> Iterator[dict[str, Any]]:  # noqa: F811
    base = tmp_path_factory.mktemp("streams")
    stream_port = free_port()
    plane = start_controlplane(base / "plane", kubeletClient={"streamServer": f"127.0.0.1:{stream_port}"})
    cloud: Cloud | None = None
    edge: Core | None = None
    proxy: TcpProxy | None = None
    try:
        cloud = start_cloud(base / "cloud", plane, stream_port=stream_port)
        proxy = TcpProxy(cloud.tunnel_port).start()  # the tunnel runs through it, so a test can cut it
        node = f"streams-{uuid.uuid4().hex[:5]}"
        edge = start_edge(base / "edge", cloud, node, cloud.token(plane.kubeconfig), runtime_endpoint=containerd.endpoint,
                          modules={"edgeStream": {"server": f"127.0.0.1:{proxy.port}"}})
        wait(lambda: "stream tunnel of node" in cloud.log(), 30, "the edge's stream tunnel never came up")
        pod = f"{node}-app"
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "default"},
            "spec": {"nodeName": node, "restartPolicy": "Always", "containers": [{
                "name": "app", "image": BUSYBOX_IMAGE,
                "command": ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done"]}]}}))
        wait(lambda: kubectl(plane, "get", "pod", pod, "-o", "jsonpath={.status.phase}") == "Running", 90,
             "the pod never ran")
        yield {"plane": plane, "cloud": cloud, "edge": edge, "node": node, "pod": pod, "proxy": proxy,
               "runtime": containerd.endpoint}
    finally:
        for core in (edge, cloud):
            if core is not None:
                core.stop()
        if proxy is not None:
            proxy.stop()
        stop(plane)


def run_kubectl(binary: str, plane: ControlPlane, *args: str, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, f"--kubeconfig={plane.kubeconfig}", *args], input=stdin, capture_output=True,
                          text=True, timeout=scaled(timeout), check=False)


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    done = run_kubectl("kubectl", plane, *args, stdin=stdin)
    if done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(what)


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_logs(site: dict[str, Any], binary: str) -> None:
    plane, pod = site["plane"], site["pod"]
    wait(lambda: "line-5" in run_kubectl(binary, plane, "logs", pod).stdout, 20, "logs never showed line-5")
    lines = run_kubectl(binary, plane, "logs", pod).stdout.splitlines()
    assert lines[:3] == ["line-1", "line-2", "line-3"]
    tail = run_kubectl(binary, plane, "logs", pod, "--tail=2").stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith("line-") for line in tail)
    stamped = run_kubectl(binary, plane, "logs", pod, "--tail=1", "--timestamps").stdout.split()
    assert stamped[0].endswith("Z") and "T" in stamped[0] and stamped[1].startswith("line-")


    def since_is_a_recent_part() -> bool:  # under load a second may hold no line: asked again until one does
        everything = run_kubectl(binary, plane, "logs", pod).stdout.splitlines()
        recent = run_kubectl(binary, plane, "logs", pod, "--since=1s").stdout.splitlines()
        return 0 < len(recent) < len(everything)

    wait(since_is_a_recent_part, 20, "--since=1s never gave the last lines alone")


def test_logs_follow_is_live(site: dict[str, Any]) -> None:
    plane, pod = site["plane"], site["pod"]
    follow = subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "logs", "-f", "--tail=1", pod],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline().strip()
        started = time.monotonic()
        later = [follow.stdout.readline().strip() for _ in range(5)]
        # the container writes a line every 0.2 s: five more lines come in about a second, live
        assert time.monotonic() - started < scaled(5)
        numbers = [int(line.removeprefix("line-")) for line in [first, *later]]
        assert numbers == list(range(numbers[0], numbers[0] + 6))
    finally:
        follow.kill()
        follow.communicate()


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_exec_output_exit_code_and_stdin(site: dict[str, Any], binary: str) -> None:
    plane, pod = site["plane"], site["pod"]
    done = run_kubectl(binary, plane, "exec", pod, "--", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert (done.stdout, done.returncode) == ("hi\n", 3), done.stderr
    assert "oops" in done.stderr
    done = run_kubectl(binary, plane, "exec", "-i", pod, "--", "sh", "-c", "tr a-z A-Z", stdin="hello edge\n")
    assert (done.stdout, done.returncode) == ("HELLO EDGE\n", 0), done.stderr


def test_refusals(site: dict[str, Any]) -> None:
    plane, pod = site["plane"], site["pod"]
    done = run_kubectl("kubectl", plane, "logs", pod, "-c", "nope")
    assert done.returncode != 0 and "container nope is not valid for pod" in done.stderr
    done = run_kubectl("kubectl", plane, "logs", "no-such-pod")
    assert done.returncode != 0 and "not found" in done.stderr
    done = run_kubectl("kubectl", plane, "exec", pod, "-c", "nope", "--", "true")
    assert done.returncode != 0 and "container nope is not valid" in done.stderr


def test_many_concurrent_streams(site: dict[str, Any]) -> None:
    """20 logs -f and 5 exec at once on one node: each works, and the node stays Ready."""
    plane, pod, node = site["plane"], site["pod"], site["node"]
    env = {**os.environ}
    follows = [subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "logs", "-f", "--tail=1", pod],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env) for _ in range(20)]
    try:
        execs = [subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "exec", pod, "--", "sh", "-c",
                                   f"sleep 1; echo exec-{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(5)]
        for i, process in enumerate(execs):
            out, err = process.communicate(timeout=scaled(60))
            assert (out, process.returncode) == (f"exec-{i}\n", 0), err
        for process in follows:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(3)]
            assert all(line.startswith("line-") for line in lines)
        assert kubectl(plane, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") == "True"
    finally:
        for process in follows:
            process.kill()
            process.communicate()


def test_attach_and_port_forward(site: dict[str, Any]) -> None:
    """attach to the running container's output; port-forward to a hostNetwork busybox httpd."""
    import urllib.request

    plane, node = site["plane"], site["node"]
    attach = subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "attach", site["pod"]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert attach.stdout is not None
        assert [attach.stdout.readline().startswith("line-") for _ in range(3)] == [True, True, True]
    finally:
        attach.kill()
        attach.communicate()
    port, local = free_port(), free_port()
    server = f"{node}-httpd"
    kubectl(plane, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": server, "namespace": "default"},
        "spec": {"nodeName": node, "hostNetwork": True, "containers": [{
            "name": "httpd", "image": BUSYBOX_IMAGE,
            "command": ["sh", "-c", f"mkdir -p /www && echo edge-page > /www/index.html && httpd -f -p 127.0.0.1:{port} -h /www"]}]}}))
    wait(lambda: kubectl(plane, "get", "pod", server, "-o", "jsonpath={.status.phase}") == "Running", 60, "httpd never ran")
    forward = subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "port-forward", f"pod/{server}",
                                f"{local}:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert forward.stdout is not None
        assert "Forwarding from" in forward.stdout.readline()

        def page() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=5) as answer:
                    return str(answer.read().decode())
            except OSError:
                return ""

        assert wait(page, 20, "port-forward never served the page") == "edge-page\n"
    finally:
        forward.kill()
        forward.communicate()
        kubectl(plane, "delete", "pod", server, "--wait=false")


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_logs_previous_after_a_restart(site: dict[str, Any], binary: str) -> None:
    """--previous gives the run before the restart; without it, the current run."""
    plane, node = site["plane"], site["node"]
    pod = f"{node}-restarts-{binary.count('/')}"
    kubectl(plane, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "default"},
        "spec": {"nodeName": node, "restartPolicy": "Always", "containers": [{
            "name": "app", "image": BUSYBOX_IMAGE,
            "command": ["sh", "-c", "echo run-$(cat /proc/sys/kernel/random/uuid); sleep 1; exit 1"]}]}}))
    try:
        wait(lambda: int(kubectl(plane, "get", "pod", pod, "-o",
                                 "jsonpath={.status.containerStatuses[0].restartCount}") or 0) >= 1, 90,
             "the container never restarted")

        def runs() -> tuple[str, str] | None:
            previous = run_kubectl(binary, plane, "logs", pod, "--previous")
            current = run_kubectl(binary, plane, "logs", pod)
            if previous.returncode or current.returncode:
                return None
            return previous.stdout.strip(), current.stdout.strip()

        previous, current = wait(runs, 30, "logs --previous never answered")
        assert previous.startswith("run-") and current.startswith("run-"), (previous, current)
        assert previous != current and len(previous.splitlines()) == 1
        done = run_kubectl(binary, plane, "logs", site["pod"], "--previous")
        assert done.returncode != 0 and "previous terminated container" in done.stderr, done.stderr
    finally:
        kubectl(plane, "delete", "pod", pod, "--wait=false")


def test_a_cut_tunnel_ends_the_session_and_comes_back(site: dict[str, Any]) -> None:
    """The tunnel reset under a live logs -f: kubectl ends with an error, and logs works again within 10 s."""
    plane, pod, proxy, cloud = site["plane"], site["pod"], site["proxy"], site["cloud"]
    follow = subprocess.Popen(["kubectl", f"--kubeconfig={plane.kubeconfig}", "logs", "-f", "--tail=1", pod],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline().startswith("line-")
        downs = cloud.log().count(f"stream tunnel of node {site['node']} is down")
        proxy.reset_all(accept=True)
        cut = time.monotonic()
        _, err = follow.communicate(timeout=scaled(30))
        assert follow.returncode != 0, "kubectl logs -f ended as if the log had ended"
        assert "unexpected EOF" in err, err  # the body cut short, as kubectl reports a kubelet that broke
        assert time.monotonic() - cut < scaled(15)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    wait(lambda: cloud.log().count(f"stream tunnel of node {site['node']} is down") > downs, 10,
         "CloudStream never saw the tunnel go down")
    wait(lambda: "line-" in run_kubectl("kubectl", plane, "logs", pod, "--tail=1", timeout=10).stdout, 10,
         "kubectl logs did not work again within 10 s of the cut")


def _millicores(text: str) -> int:
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_top_node_and_pod(site: dict[str, Any], binary: str) -> None:
    """kubectl top reads metrics.k8s.io, which the control plane fills from the node's stats through the tunnel."""
    plane, node = site["plane"], site["node"]
    burner = f"{node}-burn-{binary.count('/')}"
    kubectl(plane, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": burner, "namespace": "default", "labels": {"top": burner}},
        # it must stop on TERM at once: a burner left running (sh as PID 1 ignores TERM, and the
        # module's edge may stop before the 30 s grace ends) eats the CPU of every later test
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "burn", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"]}]}}))
    try:
        wait(lambda: kubectl(plane, "get", "pod", burner, "-o", "jsonpath={.status.phase}") == "Running", 60,
             "the burner never ran")

        def top_pods() -> dict[str, tuple[int, str]] | None:
            done = run_kubectl(binary, plane, "top", "pod", "--no-headers")
            rows = {fields[0]: (_millicores(fields[1]), fields[2]) for fields in map(str.split, done.stdout.splitlines())
                    if len(fields) == 3}
            return rows if done.returncode == 0 and burner in rows and site["pod"] in rows else None

        def burning() -> dict[str, tuple[int, str]] | None:
            rows = top_pods()
            return rows if rows and rows[burner][0] >= 200 else None

        rows = wait(burning, 45, "kubectl top pod never showed the burner using CPU")
        assert rows[site["pod"]][0] < rows[burner][0], rows  # the quiet pod is quiet
        assert rows[burner][1].endswith("Mi"), rows
        selected = run_kubectl(binary, plane, "top", "pod", "-l", f"top={burner}", "--no-headers").stdout.split()
        assert selected[0] == burner, selected

        done = run_kubectl(binary, plane, "top", "node", node, "--no-headers")
        fields = done.stdout.split()
        assert done.returncode == 0 and fields[0] == node, done.stderr
        cpu, cpu_percent, memory, memory_percent = fields[1:5]
        assert _millicores(cpu) >= 200 and cpu_percent.endswith("%") and memory.endswith("Mi") \
            and memory_percent.endswith("%"), fields
    finally:
        kubectl(plane, "delete", "pod", burner, "--wait=false", "--grace-period=0", "--force")
        wait(lambda: not running_containers(site["runtime"], burner), 30, "the burner still runs after its pod was deleted")
    done = run_kubectl(binary, plane, "top", "pod", "no-such-pod")
    assert done.returncode != 0 and "not found" in done.stderr, done.stderr


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_a_cut_tunnel_ends_an_exec_session(site: dict[str, Any], binary: str) -> None:
    """The tunnel reset under a running exec: the session ends at once, and exec works again within 10 s.

    The exit code is the client's to choose: kubectl's SPDY client (1.32 and 1.20 alike) reports a
    connection that broke before the status as success (exit 0), whatever the server does; the
    control plane resets kubectl's connection (RST), so nothing looks like a clean end on the wire.
    """
    plane, pod, proxy = site["plane"], site["pod"], site["proxy"]
    session = subprocess.Popen([binary, f"--kubeconfig={plane.kubeconfig}", "exec", pod, "--", "sh", "-c",
                                "echo started; sleep 60; echo finished"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert session.stdout is not None
        assert session.stdout.readline().strip() == "started"
        proxy.reset_all(accept=True)
        cut = time.monotonic()
        out, err = session.communicate(timeout=scaled(30))
        assert "finished" not in out
        assert time.monotonic() - cut < scaled(15)
    finally:
        if session.poll() is None:
            session.kill()
            session.communicate()
    wait(lambda: run_kubectl(binary, plane, "exec", pod, "--", "echo", "again", timeout=10).stdout == "again\n", 10,
         "kubectl exec did not work again within 10 s of the cut")
