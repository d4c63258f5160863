"""Two kubectls against the embedded control plane: the machine's v1.32 and Debian's v1.20.

kubectl 1.20 knows no ``/openapi/v3`` and no server-side field validation: it validates manifests
and runs ``explain`` with ``/openapi/v2`` in protobuf, computes apply's patches from that
document's patch strategies, and prints the server's tables as they come. Each test runs with
both binaries; a version is skipped only when its binary is absent. A FakeKubelet stands in for
the node, in a namespace of this module's own.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from cores.controlplane.launcher import ControlPlane
from tests.integration.fake_kubelet import FakeKubelet
from tests.timeouts import scaled, wait_for

REPO = Path(__file__).resolve().parents[2]
KUBECTL_132 = shutil.which("kubectl")
KUBECTL_120 = os.environ.get("KUBECTL_120") or str(REPO / ".cache" / "kubectl-1.20" / "usr" / "bin" / "kubectl")
POD_IP, NODE_IP = "10.244.0.10", "10.0.0.1"  # what FakeKubelet reports, and the address set below
NODE_INFO = {"osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-28-amd64",
             "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.32.0", "kubeProxyVersion": "",
             "operatingSystem": "linux", "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": ""}


def _binary(path: str | None) -> str | None:
    return path if path and Path(path).is_file() and os.access(path, os.X_OK) else None


@pytest.fixture(params=[pytest.param(KUBECTL_132, id="kubectl-1.32"), pytest.param(KUBECTL_120, id="kubectl-1.20")])
def kubectl_bin(request: pytest.FixtureRequest) -> str:
    binary = _binary(request.param)
    if binary is None:
        pytest.skip(f"no kubectl binary at {request.param!r}")
    return binary


def run(binary: str, plane: ControlPlane, *args: str, stdin: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([binary, "--kubeconfig", str(plane.kubeconfig), *args], input=stdin,
                            capture_output=True, text=True, timeout=scaled(90))
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
    return result


def table(output: str) -> tuple[list[str], list[list[str]]]:
    """kubectl's printed table: header cells and rows, split where two or more spaces are."""
    lines = [line for line in output.splitlines() if line.strip()]
    return re.split(r"\s{2,}", lines[0].strip()), [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# fixtures: a node and a namespace ----------------------------------------------------------------

@pytest.fixture(scope="module")
def core(controlplane: ControlPlane) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


@pytest.fixture(scope="module")
def node(controlplane: ControlPlane) -> Iterator[str]:
    name = unique("kv-node")
    with FakeKubelet(controlplane.kubeconfig, name) as kubelet:
        kubelet.core.patch_node_status(name, {"status": {"nodeInfo": NODE_INFO, "addresses": [
            {"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": name}]}})
        yield name


@pytest.fixture(scope="module")
def namespace(core: client.CoreV1Api, node: str) -> Iterator[str]:
    """This module's namespace, emptied while the node still runs (its kubelet finishes the pods)."""
    name = unique("kv")
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        apps = client.AppsV1Api(core.api_client)
        for deployment in apps.list_namespaced_deployment(name).items:
            apps.delete_namespaced_deployment(deployment.metadata.name, name)
        for replica_set in apps.list_namespaced_replica_set(name).items:
            apps.delete_namespaced_replica_set(replica_set.metadata.name, name)
        for pod in core.list_namespaced_pod(name).items:
            try:
                core.delete_namespaced_pod(pod.metadata.name, name, grace_period_seconds=0)
            except client.ApiException as error:
                if error.status != 404:  # the garbage collector may have finished a ReplicaSet's pod first
                    raise
        wait_for(lambda: not core.list_namespaced_pod(name).items, 30, "pods of the test namespace stayed")
        core.delete_namespace(name)


def pod_manifest(name: str, namespace: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def running(core: client.CoreV1Api, name: str, namespace: str) -> bool:
    pod = core.read_namespaced_pod(name, namespace)
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return pod.status.phase == "Running" and ready


@pytest.fixture()
def pod(kubectl_bin: str, controlplane: ControlPlane, core: client.CoreV1Api, namespace: str, node: str,
        tmp_path: Path) -> str:
    """A running pod, applied by the kubectl under test (with its default validation)."""
    name = unique("web")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod_manifest(name, namespace, node)))
    applied = run(kubectl_bin, controlplane, "apply", "-f", str(manifest))
    assert f"pod/{name} created" in applied.stdout
    wait_for(lambda: running(core, name, namespace), 30, f"pod {name} did not run")
    return name


# tables ------------------------------------------------------------------------------------------

AGE = re.compile(r"^\d+(s|m\d*s?)$")


def test_get_pods_columns_and_values(kubectl_bin: str, controlplane: ControlPlane, namespace: str, node: str,
                                     pod: str) -> None:
    header, rows = table(run(kubectl_bin, controlplane, "get", "pods", pod, "-n", namespace).stdout)
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[0][:4] == [pod, "1/1", "Running", "0"] and AGE.match(rows[0][4]), rows

    header, rows = table(run(kubectl_bin, controlplane, "get", "pods", "-o", "wide", "-n", namespace).stdout)
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    row = next(r for r in rows if r[0] == pod)
    assert row[:4] == [pod, "1/1", "Running", "0"] and AGE.match(row[4])
    assert row[5:] == [POD_IP, node, "<none>", "<none>"]


def test_get_nodes_columns_and_values(kubectl_bin: str, controlplane: ControlPlane, node: str) -> None:
    header, rows = table(run(kubectl_bin, controlplane, "get", "nodes", node).stdout)
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows[0][:3] == [node, "Ready", "<none>"] and AGE.match(rows[0][3]) and rows[0][4] == "v1.32.0"

    header, rows = table(run(kubectl_bin, controlplane, "get", "nodes", node, "-o", "wide").stdout)
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                      "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert rows[0][4:] == ["v1.32.0", NODE_IP, "<none>", NODE_INFO["osImage"], NODE_INFO["kernelVersion"],
                           NODE_INFO["containerRuntimeVersion"]]


def test_api_resources(kubectl_bin: str, controlplane: ControlPlane) -> None:
    header, rows = table(run(kubectl_bin, controlplane, "api-resources").stdout)
    assert header == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["pods", "po", "v1", "true", "Pod"] in rows
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in rows
    assert ["nodes", "no", "v1", "false", "Node"] in rows


# describe and events -----------------------------------------------------------------------------

def fields(output: str) -> dict[str, str]:
    """The top-level ``Key:  value`` lines of ``kubectl describe``."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"^([A-Z][\w -]*):\s+(.*)$", line)
        if match:
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def events_section(output: str) -> tuple[list[str], list[list[str]]]:
    lines = output.split("\nEvents:", 1)[1].splitlines()[1:]
    return table("\n".join(line for line in lines if not line.strip().startswith("---")))


def test_describe_pod_shows_its_events(kubectl_bin: str, controlplane: ControlPlane, namespace: str, node: str,
                                       pod: str) -> None:
    out = run(kubectl_bin, controlplane, "describe", "pod", pod, "-n", namespace).stdout
    described = fields(out)
    assert described["Name"] == pod and described["Namespace"] == namespace
    assert described["Node"] == f"{node}/{NODE_IP}" and described["Status"] == "Running"
    assert described["IP"] == POD_IP
    assert re.search(rf"^IPs:\s*\n\s+IP:\s+{re.escape(POD_IP)}\s*$", out, re.M), "podIPs follow podIP (v1 conversion)"
    assert re.search(r"^\s+Ready\s+True\s*$", out, re.M)
    header, rows = events_section(out)
    assert header == ["Type", "Reason", "Age", "From", "Message"]
    assert any(r[0] == "Normal" and r[1] == "Scheduled" and r[3] == "default-scheduler"
               and r[4] == f"Successfully assigned {namespace}/{pod} to {node}" for r in rows), rows


def test_describe_node_shows_its_events(kubectl_bin: str, controlplane: ControlPlane, namespace: str, node: str,
                                        tmp_path: Path) -> None:
    reason = unique("Rebooted").replace("-", "")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # a kubelet's node event: the node's name stands in for its uid (kubectl searches by it)
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{node}.{reason.lower()}", "namespace": namespace},
             "involvedObject": {"kind": "Node", "name": node, "uid": node}, "reason": reason, "type": "Warning",
             "message": "node rebooted", "source": {"component": "kubelet", "host": node},
             "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1}
    (tmp_path / "event.yaml").write_text(yaml.safe_dump(event))
    run(kubectl_bin, controlplane, "apply", "-f", str(tmp_path / "event.yaml"))
    out = run(kubectl_bin, controlplane, "describe", "node", node).stdout
    described = fields(out)
    assert described["Name"] == node and described["Roles"] == "<none>" and described["Unschedulable"] == "false"
    assert re.search(rf"^\s+InternalIP:\s+{re.escape(NODE_IP)}$", out, re.M)
    assert re.search(rf"^\s+Kernel Version:\s+{re.escape(NODE_INFO['kernelVersion'])}$", out, re.M)
    assert re.search(r"^\s+Ready\s+True\s", out, re.M)
    header, rows = events_section(out)
    assert header == ["Type", "Reason", "Age", "From", "Message"]
    assert any(r[:2] == ["Warning", reason] and r[3:] == ["kubelet", "node rebooted"] for r in rows), rows


def test_get_events(kubectl_bin: str, controlplane: ControlPlane, namespace: str, node: str, pod: str) -> None:
    header, rows = table(run(kubectl_bin, controlplane, "get", "events", "-n", namespace).stdout)
    assert header == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(r[1:] == ["Normal", "Scheduled", f"pod/{pod}", f"Successfully assigned {namespace}/{pod} to {node}"]
               and AGE.match(r[0]) for r in rows), rows


# apply, explain ----------------------------------------------------------------------------------

def test_apply_validates_by_default(kubectl_bin: str, controlplane: ControlPlane, core: client.CoreV1Api,
                                    namespace: str, tmp_path: Path) -> None:
    name = unique("cm")
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"greeting": "hello"}}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    applied = run(kubectl_bin, controlplane, "apply", "-f", str(tmp_path / "good.yaml"))
    assert f"configmap/{name} created" in applied.stdout
    assert core.read_namespaced_config_map(name, namespace).data == {"greeting": "hello"}

    bad = {**good, "metadata": {"name": name + "-bad", "namespace": namespace}, "bogus": 1}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    refused = run(kubectl_bin, controlplane, "apply", "-f", str(tmp_path / "bad.yaml"), check=False)
    assert refused.returncode != 0 and 'unknown field "bogus"' in refused.stderr, refused.stderr
    if kubectl_bin != KUBECTL_132:  # 1.20 validates client-side, against /openapi/v2
        assert ('error validating data: ValidationError(ConfigMap): unknown field "bogus" in '
                "io.k8s.api.core.v1.ConfigMap; if you choose to ignore these errors, turn validation off with "
                "--validate=false") in refused.stderr
    listed = core.list_namespaced_config_map(namespace).items
    assert name + "-bad" not in [c.metadata.name for c in listed]

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"containers": [{"name": "app", "image": "busybox", "colour": "red"}]}}
    (tmp_path / "nested.yaml").write_text(yaml.safe_dump(pod))
    refused = run(kubectl_bin, controlplane, "apply", "-f", str(tmp_path / "nested.yaml"), check=False)
    expected = ('ValidationError(Pod.spec.containers[0]): unknown field "colour" in io.k8s.api.core.v1.Container'
                if kubectl_bin != KUBECTL_132 else 'unknown field "spec.containers[0].colour"')
    assert refused.returncode != 0 and expected in refused.stderr, refused.stderr
    assert name not in [p.metadata.name for p in core.list_namespaced_pod(namespace).items]


def test_reapply_removes_a_container(kubectl_bin: str, controlplane: ControlPlane, namespace: str, node: str,
                                     tmp_path: Path) -> None:
    """Strategic merge by container name: a container taken out of the manifest goes away."""
    name = unique("two")
    template = pod_manifest(name, namespace, node)["spec"]
    two = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {**template, "containers": [*template["containers"],
                                                                     {"name": "side", "image": "busybox:1.36"}]}}}}
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(two))
    run(kubectl_bin, controlplane, "apply", "-f", str(tmp_path / "two.yaml"))
    two["spec"]["template"]["spec"]["containers"] = template["containers"]
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(two))
    applied = run(kubectl_bin, controlplane, "apply", "-f", str(tmp_path / "two.yaml"))
    assert f"deployment.apps/{name} configured" in applied.stdout
    live = json.loads(run(kubectl_bin, controlplane, "get", "deployment", name, "-n", namespace, "-o", "json").stdout)
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_explain(kubectl_bin: str, controlplane: ControlPlane) -> None:
    out = run(kubectl_bin, controlplane, "explain", "pod.spec.containers").stdout
    assert re.search(r"^KIND:\s+Pod$", out, re.M) and re.search(r"^VERSION:\s+v1$", out, re.M)
    assert "List of containers belonging to the pod." in " ".join(out.split())
    assert re.search(r"^\s+name\t<string> -required-$", out, re.M)
    assert re.search(r"^\s+image\t<string>$", out, re.M)
    assert re.search(r"^\s+ports\t<\[\](Object|ContainerPort)>$", out, re.M)  # 1.32 names the type


# watch, delete, rollout --------------------------------------------------------------------------

def test_get_watch_prints_a_change(kubectl_bin: str, controlplane: ControlPlane, core: client.CoreV1Api,
                                   namespace: str, pod: str) -> None:
    watcher = subprocess.Popen([kubectl_bin, "--kubeconfig", str(controlplane.kubeconfig), "get", "pods", pod,
                                "-n", namespace, "-w", "-o", "wide"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout or []], daemon=True)
    reader.start()
    try:
        header = lines.get(timeout=scaled(30))
        assert header.split()[:3] == ["NAME", "READY", "STATUS"]
        assert lines.get(timeout=scaled(30)).split()[:3] == [pod, "1/1", "Running"]
        core.delete_namespaced_pod(pod, namespace, grace_period_seconds=30)  # the kubelet finishes it
        change = lines.get(timeout=scaled(30)).split()
        assert change[:3] == [pod, "1/1", "Terminating"], change
    finally:
        watcher.terminate()
        watcher.wait(timeout=scaled(10))
        reader.join(timeout=scaled(10))
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()


def test_delete_waits_until_gone(kubectl_bin: str, controlplane: ControlPlane, namespace: str, pod: str) -> None:
    deleted = run(kubectl_bin, controlplane, "delete", "pod", pod, "-n", namespace, "--wait", "--timeout=60s")
    assert deleted.stdout.strip() == f'pod "{pod}" deleted'
    missing = run(kubectl_bin, controlplane, "get", "pod", pod, "-n", namespace, check=False)
    assert missing.returncode != 0 and f'pods "{pod}" not found' in missing.stderr


def test_rollout_status(kubectl_bin: str, controlplane: ControlPlane, namespace: str, node: str,
                        tmp_path: Path) -> None:
    name = unique("app")
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                           "template": {"metadata": {"labels": {"app": name}},
                                        "spec": pod_manifest(name, namespace, node)["spec"]}}}
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    run(kubectl_bin, controlplane, "apply", "-f", str(tmp_path / "deployment.yaml"))
    status = run(kubectl_bin, controlplane, "rollout", "status", f"deployment/{name}", "-n", namespace,
                 f"--timeout={int(scaled(60))}s")
    assert status.stdout.strip().endswith(f'deployment "{name}" successfully rolled out'), status.stdout
    header, rows = table(run(kubectl_bin, controlplane, "get", "deployment", name, "-n", namespace).stdout)
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] and rows[0][:4] == [name, "2/2", "2", "2"]
