"""``keadm debug`` at a real edge (control plane, CloudCore, a hollow EdgeCore, containerd), as a user runs it.

Each diagnose finding here is caused for real: a cloud that is stopped, a CA that is not the
cloud's, a certificate that expired (a 20 s signing duration), a runtime socket that is wrong, a
broker nobody runs, a full tmpfs under the database, EdgeCore stopped, a pod whose ConfigMap is
not on the node, a containerd killed, a cgroup driver that is not the runtime's, a pod whose image
cannot be pulled (a real Edged). ``get`` prints the edge's objects as kubectl does; ``collect`` holds no key or token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cores.controlplane.launcher import ControlPlane
from cores.runtime import Containerd
from tests.integration.conftest import free_port
from tests.integration.edgecloud import Cloud, Core, start_cloud, start_edge
from tests.integration.test_devicecontroller import kubectl
from tests.timeouts import scaled

KEADM = str(Path(sys.executable).with_name("keadm"))


def keadm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEADM, *args], capture_output=True, text=True, timeout=scaled(90))


def diagnose(edge: Core, *args: str) -> tuple[int, dict[str, Any]]:
    done = keadm("debug", "diagnose", *(args or ("node",)), "-o", "json", "-c", str(edge.config), "--log-dir", str(edge.layout.log_dir))
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def failing(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in report["findings"] if not f["ok"]}


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(what)


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("debug-cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


@pytest.fixture()
def edge(controlplane: ControlPlane, cloud: Cloud, containerd: Containerd, tmp_path: Path) -> Iterator[Core]:
    node = f"debug-{uuid.uuid4().hex[:6]}"
    core = start_edge(tmp_path / "edge", cloud, node, cloud.token(controlplane.kubeconfig), hollow=True,
                      runtime_endpoint=containerd.endpoint,
                      modules={"eventBus": {"mqttMode": 0, "mqttServerInternal": f"tcp://127.0.0.1:{free_port()}"}})
    try:
        yield core
    finally:
        core.stop()


def node_of(edge: Core) -> str:
    return str(yaml.safe_load(edge.config.read_text())["modules"]["edged"]["hostnameOverride"])


def test_a_healthy_edge_then_get_and_a_pod_missing_its_configmap(controlplane: ControlPlane, edge: Core) -> None:
    code, report = diagnose(edge)
    assert code == 0 and report["ok"], failing(report)
    checks = {f["check"] for f in report["findings"]}
    assert {"edgecore", "certificate", "disk", "database", "runtime", "cloud", "cloud CA", "clock"} <= checks

    node = node_of(edge)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "conf", "configMap": {"name": "not-there"}}]}}
    name = f"web-{uuid.uuid4().hex[:4]}"
    pod["metadata"]["name"] = name
    kubectl(controlplane, "apply", "-f", "-", stdin=json.dumps(pod))
    try:
        wait_for(lambda: name in keadm("debug", "get", "pods", "-c", str(edge.config)).stdout, 15, "pod never in the edge database")
        table = keadm("debug", "get", "pods", "-l", "app=web", "-c", str(edge.config)).stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], table
        assert any(line.split()[0] == name for line in table[1:]), table
        wide = keadm("debug", "get", "pods", "-A", "-o", "wide", "-c", str(edge.config)).stdout.splitlines()
        assert wide[0].split()[:2] == ["NAMESPACE", "NAME"] and "NODE" in wide[0], wide
        as_yaml = yaml.safe_load(keadm("debug", "get", "pod", name, "-o", "yaml", "-c", str(edge.config)).stdout)
        assert as_yaml["spec"]["nodeName"] == node
        nodes = keadm("debug", "get", "nodes", "-c", str(edge.config)).stdout
        assert node in nodes
        missing = keadm("debug", "get", "pod", "nobody", "-c", str(edge.config))
        assert missing.returncode != 0 and 'pod "nobody" not found' in missing.stderr

        code, report = diagnose(edge, "pod", name)
        assert code != 0
        assert "ConfigMap default/not-there" in failing(report)["pod"]["summary"]
        assert "kubectl create configmap not-there" in failing(report)["pod"]["fix"]
    finally:
        kubectl(controlplane, "delete", "pod", name, "--force", "--grace-period=0", check=False)


def test_findings_caused_for_real(controlplane: ControlPlane, cloud: Cloud, edge: Core, tmp_path: Path) -> None:
    document = yaml.safe_load(edge.config.read_text())

    # a runtime socket that is wrong, a broker nobody runs
    broken = dict(document)
    broken["modules"] = {**document["modules"],
                         "edged": {**document["modules"]["edged"], "tailoredKubeletConfig": {
                             **document["modules"]["edged"]["tailoredKubeletConfig"],
                             "containerRuntimeEndpoint": f"unix://{tmp_path}/no-containerd.sock"}},
                         "eventBus": {**document["modules"]["eventBus"], "mqttMode": 2,
                                      "mqttServerExternal": f"tcp://127.0.0.1:{free_port()}"}}
    other = tmp_path / "broken" / "config" / "edgecore.yaml"
    other.parent.mkdir(parents=True)
    other.write_text(yaml.safe_dump(broken))
    done = keadm("debug", "diagnose", "node", "-o", "json", "-c", str(other), "--log-dir", str(edge.layout.log_dir))
    found = failing(json.loads(done.stdout))
    assert done.returncode != 0
    assert "does not exist" in found["runtime"]["summary"] and "containerd" in found["runtime"]["fix"]
    assert "unreachable" in found["mqtt"]["summary"] and "mqttMode: 0" in found["mqtt"]["fix"]

    # a CA that is not the cloud's
    from certs import x509 as certs

    ca_file = Path(document["modules"]["edgeHub"]["tlsCaFile"])
    original = ca_file.read_bytes()
    ca_file.write_bytes(certs.cert_to_pem(certs.create_ca()[0]))
    try:
        code, report = diagnose(edge)
        found = failing(report)
        assert "CA changed" in found["cloud CA"]["summary"] and "keadm join" in found["cloud CA"]["fix"]
        assert "not signed by this node's CA" in found["cloud"]["summary"]
    finally:
        ca_file.write_bytes(original)

    # EdgeCore stopped: said, with how to start it
    edge.stop()
    code, report = diagnose(edge)
    assert code != 0 and "is not running" in failing(report)["edgecore"]["summary"]

    # a full disk under the database (a 4 MiB tmpfs, filled)
    mount = tmp_path / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mount / "edgecore.db").write_bytes(Path(document["database"]["dataSource"]).read_bytes())
        subprocess.run(["dd", "if=/dev/zero", f"of={mount}/filler", "bs=64k"], capture_output=True)
        full = {**document, "database": {**document["database"], "dataSource": str(mount / "edgecore.db")}}
        other.write_text(yaml.safe_dump(full))
        done = keadm("debug", "diagnose", "node", "-o", "json", "-c", str(other), "--log-dir", str(edge.layout.log_dir))
        assert "is full" in failing(json.loads(done.stdout))["disk"]["summary"]
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_stopped_cloud_and_an_expired_certificate(controlplane: ControlPlane, tmp_path: Path) -> None:
    short = start_cloud(tmp_path / "cloud", controlplane, edgeCertSigningSeconds=20)
    edge = start_edge(tmp_path / "edge", short, f"debug-exp-{uuid.uuid4().hex[:5]}", short.token(controlplane.kubeconfig),
                      edged=False, modules={"eventBus": {"enable": False}})
    try:
        edge.stop()
        short.stop()
        code, report = diagnose(edge)
        found = failing(report)
        assert "refuses connections" in found["cloud"]["summary"] and "keadm init" in found["cloud"]["fix"]
        time.sleep(21)
        code, report = diagnose(edge)
        assert "expired" in failing(report)["certificate"]["summary"], report
    finally:
        edge.stop()
        short.stop()


def test_collect_holds_no_key_and_no_token(edge: Core, tmp_path: Path) -> None:
    done = keadm("debug", "collect", "-o", str(tmp_path / "out"), "-c", str(edge.config), "--log-dir", str(edge.layout.log_dir))
    assert done.returncode == 0, done.stderr
    archive = Path(done.stdout.strip())
    document = yaml.safe_load(edge.config.read_text())
    secrets = [b"PRIVATE KEY"]
    token = str(document["modules"]["edgeHub"].get("token") or "")
    if token:
        secrets.append(token.encode())
    names = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            names.append(member.name.split("/", 1)[1])
            data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            assert not any(secret in data for secret in secrets), member.name
    assert {"edgecore/edgecore.yaml", "edgecore/edgecore.db", "system/facts.yaml", "edgecore/version.txt"} <= set(names)
    assert any(name.startswith("edgecore/certs/") for name in names)
    assert any(name.startswith("edgecore/logs/") for name in names)


def test_without_an_edgecore_and_the_machine_checks(tmp_path: Path) -> None:
    for args in (("get", "pods"), ("diagnose", "node"), ("collect",)):
        done = keadm("debug", *args, "-c", str(tmp_path / "none.yaml"))
        assert done.returncode != 0 and done.stderr.count("\n") == 1 and "no EdgeCore is installed here" in done.stderr, done.stderr
    for item in ("cpu", "mem", "pid"):
        done = keadm("debug", "check", item)
        assert done.returncode == 0 and f"{item} check succeed" in done.stdout, done.stdout + done.stderr
    done = keadm("debug", "check", "dns", "-d", "localhost")
    assert done.returncode == 0 and "localhost ->" in done.stdout
    done = keadm("debug", "check", "runtime", "--runtime-endpoint", f"unix://{tmp_path}/none.sock")
    assert done.returncode == 1 and "runtime check failed" in done.stdout


def test_a_runtime_killed_a_cgroup_driver_mismatch_and_a_pod_on_a_missing_image(
        controlplane: ControlPlane, cloud: Cloud, containerd: Containerd, tmp_path: Path) -> None:
    """Three findings caused for real: EdgeCore configured for systemd cgroups against a containerd
    on cgroupfs, a containerd killed (its socket left behind), and a pod whose image cannot be
    pulled, run by a real Edged on containerd."""
    import os
    import signal

    private = Containerd(tmp_path / "ctrd")
    private.start(timeout=scaled(30), with_images=False)
    node = f"debug-{uuid.uuid4().hex[:6]}"
    edge = start_edge(tmp_path / "edge", cloud, node, cloud.token(controlplane.kubeconfig), runtime_endpoint=containerd.endpoint,
                      modules={"eventBus": {"mqttMode": 0, "mqttServerInternal": f"tcp://127.0.0.1:{free_port()}"}})
    name = f"pull-{uuid.uuid4().hex[:4]}"
    try:
        document = yaml.safe_load(edge.config.read_text())
        kubelet = document["modules"]["edged"]["tailoredKubeletConfig"]
        other = tmp_path / "other" / "config" / "edgecore.yaml"
        other.parent.mkdir(parents=True)
        kubelet.update(cgroupDriver="systemd", containerRuntimeEndpoint=private.endpoint, imageServiceEndpoint=private.endpoint)
        other.write_text(yaml.safe_dump(document))

        def other_findings() -> dict[str, dict[str, Any]]:
            done = keadm("debug", "diagnose", "node", "-o", "json", "-c", str(other), "--log-dir", str(edge.layout.log_dir))
            return failing(json.loads(done.stdout))

        mismatch = other_findings()["cgroup driver"]
        assert "EdgeCore uses systemd but the runtime uses cgroupfs" in mismatch["summary"]
        assert "cgroupDriver: cgroupfs" in mismatch["fix"]
        assert private.pid is not None
        os.kill(private.pid, signal.SIGKILL)
        wait_for(lambda: private.pid is None, 10, "containerd did not die")
        down = other_findings()["runtime"]
        assert "does not answer" in down["summary"] and "restart containerd" in down["fix"], down

        kubectl(controlplane, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "127.0.0.1:1/not-here:1"}]}}))

        def stuck() -> dict[str, Any] | None:
            return failing(diagnose(edge, "pod", name)[1]).get("pod")

        wait_for(lambda: (found := stuck()) is not None and "ImagePull" in found["summary"], 90,
                 "the pod's image pull failure never reached diagnose")
        found = stuck()
        assert found is not None and "cannot be pulled" in found["fix"], found
    finally:
        kubectl(controlplane, "delete", "pod", name, "--force", "--grace-period=0", check=False)
        edge.stop()
        private.stop()
