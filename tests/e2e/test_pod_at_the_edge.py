"""A pod through the whole system, as a user drives it: init, join, kubectl apply, kubectl delete.

The pod asks for an edge node by nodeSelector, so the control plane's scheduler places it; it
must be Running and Ready in `kubectl get pods -o wide` within 10 s, and `kubectl delete` must
remove its containers from containerd within its grace period. Then, with CloudCore stopped,
EdgeCore is killed and restarted: the containers keep their IDs; CloudCore back, kubectl shows
the pod Running again, and a pod deleted in the cloud meanwhile is removed at the edge.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cores.common import supervision
from cores.common.layout import Layout
from cores.controlplane.launcher import keadm_argv
from cores.install.edge import edge_spec
from tests.e2e.test_install import Machine
from tests.integration.conftest import containerd, free_port  # noqa: F401 - the shared runtime fixture
from tests.integration.test_pods import exec_in as exec_in_container
from tests.timeouts import scaled
from tests.timeouts import wait_for as wait

pytestmark = pytest.mark.slow

POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "NAME", "namespace": "default"},
    "spec": {"nodeSelector": {"node-role.kubernetes.io/edge": ""}, "hostNetwork": True, "terminationGracePeriodSeconds": 3,
             "containers": [{"name": "main", "image": "localhost/busybox:local",
                             "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]},
}


def containers(endpoint: str, pod: str | None = None) -> dict[str, str]:
    """container name@pod -> id, for running containers (optionally of one pod)."""
    from cores.edge.cri import POD_NAME, CriClient

    async def listing() -> dict[str, str]:
        async with CriClient(endpoint) as client:
            found = await client.list_containers(labels={POD_NAME: pod} if pod else None)
            return {f"{c.metadata.name}@{c.labels.get(POD_NAME)}": c.id for c in found if c.state == 1}

    return asyncio.run(listing())



def exec_in(endpoint: str, container_id: str, *command: str) -> str:
    return asyncio.run(exec_in_container(endpoint, container_id, *command))


def init_and_join(tmp_path: Path, endpoint: str, node: str, *edge_settings: str) -> Machine:
    """keadm init on the embedded defaults, then keadm join of ``node`` (``--set`` each of ``edge_settings``)."""
    (tmp_path / "home").mkdir()
    machine = Machine(tmp_path, tmp_path / "home")
    ws, https = free_port(), free_port()
    machine.keadm("init", "--advertise-address", "127.0.0.1", "--controlplane-port", str(free_port()),
                  "--set", f"modules.cloudHub.websocket.port={ws}", "--set", f"modules.cloudHub.https.port={https}",
                  *machine.dirs("cloud"))
    token = machine.keadm("gettoken", "--config-dir", str(tmp_path / "cloud" / "etc")).stdout.strip()
    sets = [arg for setting in edge_settings for arg in ("--set", setting)]
    machine.keadm("join", "-e", f"127.0.0.1:{ws}", "-s", str(https), "-t", token, "-i", node, "-p", endpoint,
                  "--node-ip", "127.0.0.1", *sets, *machine.dirs("edge"))
    return machine


def check_service_account_token(machine: Machine, endpoint: str, container_id: str) -> None:
    """The kube-api-access volume the control plane added holds a token the server takes as the pod's account."""
    mounted = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = exec_in(endpoint, container_id, "cat", f"{mounted}/token")
    assert exec_in(endpoint, container_id, "cat", f"{mounted}/namespace") == "default"
    assert "BEGIN CERTIFICATE" in exec_in(endpoint, container_id, "cat", f"{mounted}/ca.crt")
    admin = yaml.safe_load((machine.base / "cloud" / "etc" / "admin.kubeconfig").read_text())
    admin["users"] = [{"name": "pod", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "pod"
    as_pod = machine.base / "pod.kubeconfig"
    as_pod.write_text(yaml.safe_dump(admin))
    whoami = subprocess.run(["kubectl", "--kubeconfig", str(as_pod), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
                            capture_output=True, text=True, timeout=scaled(30))
    assert whoami.stdout == "system:serviceaccount:default:default", whoami.stderr


def test_pod_lifecycle_and_autonomy(tmp_path: Path, containerd: Any) -> None:  # noqa: F811
    machine = init_and_join(tmp_path, containerd.endpoint, "edge-pods", "modules.edged.reportEvent=true")
    try:
        wait(lambda: "True" in machine.kubectl("get", "node", "edge-pods", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"),
             30, "edge not Ready")
        for name in ("keeper", "goner"):
            machine.kubectl("apply", "-f", "-", stdin=json.dumps(POD).replace("NAME", name))
        applied = time.monotonic()

        def both_running() -> bool:
            table = machine.kubectl("get", "pods", "-o", "wide")
            rows = [line.split() for line in table.splitlines()[1:]]
            return len(rows) == 2 and all(r[1] == "1/1" and r[2] == "Running" and r[6] == "edge-pods" for r in rows)

        wait(both_running, 10, "pods not Running and Ready within 10 s: " + machine.kubectl("get", "pods", "-o", "wide"))
        assert time.monotonic() - applied < scaled(10)
        before = containers(containerd.endpoint)
        assert set(before) == {"main@keeper", "main@goner"}
        check_service_account_token(machine, containerd.endpoint, before["main@keeper"])
        # reportEvent: kubelet's events from the edge in kubectl describe, beside the scheduler's
        wait(lambda: "Started container main" in machine.kubectl("describe", "pod", "keeper"), 15,
             lambda: "no kubelet events: " + machine.kubectl("describe", "pod", "keeper"))
        described = machine.kubectl("describe", "pod", "keeper")
        assert "Scheduled" in described and "Created container: main" in described and "kubelet" in described

        # cloud away, EdgeCore killed and restarted: same containers, pods keep running
        cloud = Layout(machine.base / "cloud" / "etc", machine.base / "cloud" / "var", machine.base / "cloud" / "log")
        cloudcore = supervision.ServiceSpec(component="cloudcore", config_dir=cloud.config_dir, log_dir=cloud.log_dir,
                                            run_dir=cloud.run_dir,
                                            argv=(*keadm_argv(), "run", "cloud", "--config", str(cloud.cloudcore_config)))
        assert supervision.stop(cloudcore)
        edge = edge_spec(Layout(machine.base / "edge" / "etc", machine.base / "edge" / "var", machine.base / "edge" / "log"))
        pid = supervision.status(edge).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait(lambda: not supervision.status(edge).running, 10, "edgecore survived SIGKILL")
        supervision.start(edge)
        time.sleep(scaled(5))
        assert containers(containerd.endpoint) == before, "containers were restarted after the edge restarted"

        # while the cloud is away, a pod is deleted there (it waits for its kubelet: Terminating)
        machine.kubectl("delete", "pod", "goner", "--wait=false")
        supervision.start(cloudcore)
        wait(lambda: "main@goner" not in containers(containerd.endpoint), 30, "the pod deleted meanwhile still runs at the edge")
        wait(lambda: "goner" not in machine.kubectl("get", "pods"), 30, "the deleted pod is still in the cloud")
        wait(lambda: "Running" in machine.kubectl("get", "pod", "keeper"), 30, "keeper not Running after the cloud came back")
        assert containers(containerd.endpoint)["main@keeper"] == before["main@keeper"]

        deleted = time.monotonic()
        machine.kubectl("delete", "pod", "keeper", "--wait", "--timeout=30s")
        wait(lambda: not containers(containerd.endpoint), 10, "containers outlived kubectl delete")
        assert time.monotonic() - deleted < scaled(3 + 5)  # within the 3 s grace period, plus the round trip
    finally:
        machine.keadm("reset", "--force", *machine.dirs("edge"), check=False)
        machine.keadm("reset", "--force", *machine.dirs("cloud"), check=False)


def test_static_pod_shows_in_kubectl_as_its_mirror(tmp_path: Path, containerd: Any) -> None:  # noqa: F811
    """A manifest in the edge's staticPodPath runs there and shows in kubectl as `<name>-<node>`;
    a mirror deleted with kubectl comes back; removing the manifest stops the pod and removes the mirror."""
    machine = init_and_join(tmp_path, containerd.endpoint, "edge-static", "modules.edged.tailoredKubeletConfig.fileCheckFrequency=1s")
    manifests = Layout(machine.base / "edge" / "etc", machine.base / "edge" / "var", machine.base / "edge" / "log").config_dir / "manifests"
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"hostNetwork": True, "terminationGracePeriodSeconds": 2,
                         "containers": [{"name": "main", "image": "localhost/busybox:local",
                                         "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}}
    try:
        manifests.mkdir(parents=True, exist_ok=True)
        (manifests / "web.yaml").write_text(yaml.safe_dump(manifest))

        def mirror_running() -> bool:
            row = machine.kubectl("get", "pod", "web-edge-static", "-o", "wide").splitlines()[-1].split()
            return row[:3] == ["web-edge-static", "1/1", "Running"] and row[6] == "edge-static"

        wait(mirror_running, 30, "mirror pod not Running: " + machine.kubectl("get", "pods", "-o", "wide"))
        mirror = json.loads(machine.kubectl("get", "pod", "web-edge-static", "-o", "json"))
        assert mirror["metadata"]["annotations"]["kubernetes.io/config.source"] == "file"
        assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
        assert not any(v.get("projected") for v in mirror["spec"].get("volumes") or []), "mirror pods get no token volume"
        running = containers(containerd.endpoint, "web-edge-static")
        assert list(running) == ["main@web-edge-static"]

        machine.kubectl("delete", "pod", "web-edge-static", "--wait=false")
        wait(lambda: json.loads(machine.kubectl("get", "pod", "web-edge-static", "-o", "json") or "{}").get("metadata", {}).get("uid")
             not in (None, mirror["metadata"]["uid"]) if "NotFound" not in machine.kubectl("get", "pod", "web-edge-static") else False,
             30, "the mirror pod deleted with kubectl did not come back")
        wait(mirror_running, 30, "recreated mirror not Running")
        assert containers(containerd.endpoint, "web-edge-static") == running, "deleting the mirror must not touch the static pod"

        (manifests / "web.yaml").unlink()
        wait(lambda: not containers(containerd.endpoint, "web-edge-static"), 30, "static pod outlived its manifest")
        wait(lambda: "NotFound" in machine.kubectl("get", "pod", "web-edge-static"), 30, "mirror pod outlived the static pod")
    finally:
        machine.keadm("reset", "--force", *machine.dirs("edge"), check=False)
        machine.keadm("reset", "--force", *machine.dirs("cloud"), check=False)
