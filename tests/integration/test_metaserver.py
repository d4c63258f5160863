"""MetaServer at the edge, through real processes: our control plane, CloudCore, and an EdgeCore
with Edged on containerd and ``metaManager.metaServer`` on.

kubectl (1.32 and Debian's 1.20) and the ``kubernetes`` client at the edge read the node's
objects from MetaServer, ``kubectl logs`` and ``kubectl exec`` reach its containers through CRI;
``kubectl get -w`` sees a change made in the cloud; ``keadm ctl`` works on it; and with the cloud
killed the same reads, logs and exec still answer, from the edge's SQLite and runtime. The last test kills the cloud, so it
stays last in this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cores.controlplane.launcher import ControlPlane, keadm_argv
from cores.runtime import BUSYBOX_IMAGE, Containerd
from tests.integration.conftest import free_port
from tests.integration.edgecloud import Cloud, Core, start_cloud, start_edge
from tests.integration.test_streams import KUBECTLS
from tests.timeouts import scaled, wait_for

pytestmark = pytest.mark.slow


class Site:
    def __init__(self, plane: ControlPlane, cloud: Cloud, edge: Core, node: str, port: int) -> None:
        self.plane, self.cloud, self.edge, self.node, self.port = plane, cloud, edge, node, port
        self.pod, self.configmap = f"{node}-app", f"{node}-cfg"

    def cloud_kubectl(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(["kubectl", f"--kubeconfig={self.plane.kubeconfig}", *args], input=stdin,
                              capture_output=True, text=True, timeout=scaled(30), check=False)
        if done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout.strip()

    def edge_argv(self, binary: str, *args: str) -> list[str]:
        return [binary, f"--server=http://127.0.0.1:{self.port}", *args]

    def edge_kubectl(self, binary: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": "/nonexistent"}  # no kubeconfig: the flags alone
        return subprocess.run(self.edge_argv(binary, *args), capture_output=True, text=True, timeout=scaled(30),
                              check=False, env=env)


@pytest.fixture(scope="module")
def site(controlplane: ControlPlane, containerd: Containerd, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
         ) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("metaserver")
    cloud = start_cloud(base / "cloud", controlplane, modules={"dynamicController": {"enable": True}})
    edge: Core | None = None
    try:
        node, port = f"meta-{uuid.uuid4().hex[:6]}", free_port()
        edge = start_edge(base / "edge", cloud, node, cloud.token(controlplane.kubeconfig),
                          runtime_endpoint=containerd.endpoint,
                          modules={"metaManager": {"metaServer": {"enable": True, "server": f"127.0.0.1:{port}"}}})
        here = Site(controlplane, cloud, edge, node, port)
        here.cloud_kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": here.configmap, "namespace": "default", "labels": {"app": "meta"}}, "data": {"v": "1"}}))
        here.cloud_kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": here.pod, "namespace": "default", "labels": {"app": "meta"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "app", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo meta-$i; sleep 0.5; done"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": here.configmap}}]}}))
        wait_for(lambda: here.cloud_kubectl("get", "pod", here.pod, "-o", "jsonpath={.status.phase}") == "Running", 90,
             "the pod never ran")
        yield here
    finally:
        if edge is not None:
            edge.stop()
        cloud.stop()


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_kubectl_at_the_edge_lists_the_nodes_objects(site: Site, binary: str) -> None:
    def listed() -> str:
        done = site.edge_kubectl(binary, "get", "pods,configmaps", "-n", "default")
        return done.stdout if site.pod in done.stdout and site.configmap in done.stdout else ""

    out = wait_for(listed, 30, lambda: f"MetaServer never listed the pod and its ConfigMap: "
                                   f"{site.edge_kubectl(binary, 'get', 'pods,configmaps', '-n', 'default')}")
    pod_line = next(line for line in out.splitlines() if site.pod in line)
    assert "Running" in pod_line and "1/1" in pod_line, out  # kube-apiserver's pod columns
    selected = site.edge_kubectl(binary, "get", "configmaps", "-n", "default", "-l", "app=meta", "-o", "name")
    assert selected.stdout.split() == [f"configmap/{site.configmap}"], selected.stderr
    none = site.edge_kubectl(binary, "get", "configmaps", "-n", "default", "-l", "app=nothing")
    assert none.returncode == 0 and "No resources found" in none.stderr
    missing = site.edge_kubectl(binary, "get", "configmap", "-n", "default", "not-here")  # the cloud is asked first:
    assert missing.returncode == 1 and "Forbidden" in missing.stderr  # no pod of this node uses it (NodeRestriction)
    gone = site.edge_kubectl(binary, "get", "pod", "-n", "default", "not-here")  # pods: the store alone
    assert gone.returncode == 1 and 'pods "not-here" not found' in gone.stderr
    node = site.edge_kubectl(binary, "get", "node", site.node, "-o", "jsonpath={.metadata.name}")
    assert node.stdout == site.node, node.stderr
    refused = site.edge_kubectl(binary, "delete", "configmap", "-n", "default", site.configmap)  # as the node, in the cloud:
    assert refused.returncode != 0 and "Forbidden" in refused.stderr and f"system:node:{site.node}" in refused.stderr


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_kubectl_logs_at_the_edge_through_metaserver(site: Site, binary: str) -> None:
    wait_for(lambda: "meta-2" in site.edge_kubectl(binary, "logs", site.pod, "-n", "default").stdout, 30,
         lambda: f"no log through MetaServer: {site.edge_kubectl(binary, 'logs', site.pod, '-n', 'default')}")
    done = site.edge_kubectl(binary, "logs", site.pod, "-n", "default", "--tail=1")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1 and done.stdout.startswith("meta-"), done
    stamped = site.edge_kubectl(binary, "logs", site.pod, "-n", "default", "--timestamps", "--tail=1")
    stamp, _, line = stamped.stdout.strip().partition(" ")
    assert stamp.startswith("20") and stamp.endswith("Z") and line.startswith("meta-"), stamped
    missing = site.edge_kubectl(binary, "logs", "no-such-pod", "-n", "default")
    assert missing.returncode == 1 and 'pods "no-such-pod" not found' in missing.stderr
    wrong = site.edge_kubectl(binary, "logs", site.pod, "-n", "default", "-c", "nope")
    assert wrong.returncode == 1 and "container nope is not valid" in wrong.stderr


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_kubectl_exec_at_the_edge_through_metaserver(site: Site, binary: str) -> None:
    done = site.edge_kubectl(binary, "exec", site.pod, "-n", "default", "--", "sh", "-c", "echo hi; exit 3")
    assert (done.stdout, done.returncode) == ("hi\n", 3), done.stderr
    env = {**os.environ, "KUBECONFIG": "/nonexistent"}
    fed = subprocess.run(site.edge_argv(binary, "exec", "-i", site.pod, "-n", "default", "--", "tr", "a-z", "A-Z"),
                         input="at the edge\n", capture_output=True, text=True, timeout=scaled(30), check=False, env=env)
    assert (fed.stdout, fed.returncode) == ("AT THE EDGE\n", 0), fed.stderr
    missing = site.edge_kubectl(binary, "exec", "no-such-pod", "-n", "default", "--", "true")
    assert missing.returncode == 1 and 'pods "no-such-pod" not found' in missing.stderr


def test_a_get_asks_the_cloud_first_which_applies_node_restriction(site: Site) -> None:
    other = f"{site.node}-not-for-this-node"
    site.cloud_kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": other, "namespace": "default"}, "data": {"v": "x"}}))
    try:
        refused = site.edge_kubectl("kubectl", "get", "configmap", other, "-n", "default")
        assert refused.returncode == 1 and "Forbidden" in refused.stderr, refused.stderr
        listed = site.edge_kubectl("kubectl", "get", "configmaps", "-n", "default", "-o", "name")
        assert f"configmap/{other}" not in listed.stdout.split()  # never sent to this node
        ours = site.edge_kubectl("kubectl", "get", "configmap", site.configmap, "-n", "default", "-o", "jsonpath={.data.v}")
        assert ours.returncode == 0 and ours.stdout == site.cloud_kubectl(
            "get", "configmap", site.configmap, "-o", "jsonpath={.data.v}"), ours.stderr
    finally:
        site.cloud_kubectl("delete", "configmap", other, "--wait=false")


def test_the_kubernetes_client_reads_through_metaserver(site: Site) -> None:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{site.port}"
    api = client.ApiClient(configuration)
    try:
        found = client.CoreV1Api(api).list_namespaced_config_map("default", label_selector="app=meta")
        assert [item.metadata.name for item in found.items] == [site.configmap]
        assert found.items[0].data == {"v": "1"} or found.items[0].data["v"]
        pod = client.CoreV1Api(api).read_namespaced_pod(site.pod, "default")
        assert pod.spec.node_name == site.node and pod.status.phase == "Running"
    finally:
        api.close()


def test_kubectl_get_watch_at_the_edge_sees_a_cloud_change_within_2s(site: Site) -> None:
    env = {**os.environ, "KUBECONFIG": "/nonexistent"}
    watcher = subprocess.Popen(site.edge_argv("kubectl", "get", "configmap", "-n", "default", site.configmap, "-w",
                                              "-o", "jsonpath={.data.v}{\"\\n\"}"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline().strip()
        assert first, watcher.stderr.read() if watcher.poll() is not None else "no first line"
        value = str(int(first) + 1)
        changed = time.monotonic()
        site.cloud_kubectl("patch", "configmap", site.configmap, "-n", "default", "--type=merge", "-p",
                           json.dumps({"data": {"v": value}}))
        assert watcher.stdout.readline().strip() == value
        seen = time.monotonic() - changed
        assert seen < scaled(2), f"the change took {seen:.2f}s to reach the edge's watch"
    finally:
        watcher.kill()
        watcher.communicate()


def keadm_ctl(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    words = list(args)
    at = words.index("--") if "--" in words else len(words)  # after `--` everything is exec's command
    words[at:at] = ["--config", str(site.edge.config)]
    return subprocess.run([*keadm_argv(), "ctl", *words], capture_output=True, text=True, timeout=scaled(60), check=False)


def test_keadm_ctl_get_describe_logs_and_exec(site: Site) -> None:
    listed = keadm_ctl(site, "get", "pods")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and row.split()[:3] == [site.pod, "1/1", "Running"]
    wide = keadm_ctl(site, "get", "pod", site.pod, "-o", "wide")
    assert "NODE" in wide.stdout and site.node in wide.stdout, wide.stderr
    as_json = json.loads(keadm_ctl(site, "get", "pod", site.pod, "-o", "json").stdout)
    assert as_json["spec"]["nodeName"] == site.node
    none = keadm_ctl(site, "get", "pods", "-l", "app=nothing")
    assert none.returncode == 0 and none.stdout.strip() == "No resources found in default namespace."
    missing = keadm_ctl(site, "get", "pod", "no-such-pod")
    assert missing.returncode == 1 and 'pods "no-such-pod" not found' in missing.stderr

    described = keadm_ctl(site, "describe", "pod", site.pod)
    assert described.returncode == 0, described.stderr
    text = described.stdout
    for expected in (f"Name:", site.pod, f"Node:", site.node, "Status:", "Running", "Image:", BUSYBOX_IMAGE,
                     "State:", "Ready", "Conditions:", "Volumes:", "cfg: configMap"):
        assert expected in text, text

    done = keadm_ctl(site, "exec", site.pod, "--", "sh", "-c", "test -f /cfg/v && echo out; echo to-stderr >&2; exit 4")
    assert (done.stdout, done.stderr.strip(), done.returncode) == ("out\n", "to-stderr", 4)
    keadm_ctl(site, "exec", site.pod, "--", "sh", "-c", "echo ctl-log-line > /proc/1/fd/1")
    logs = keadm_ctl(site, "logs", site.pod, "--tail", "20")
    assert logs.returncode == 0 and "ctl-log-line" in logs.stdout, logs.stderr
    gone = keadm_ctl(site, "logs", "no-such-pod")
    assert gone.returncode == 1 and "no container" in gone.stderr


def test_keadm_ctl_and_kubectl_see_the_nodes_devices(site: Site) -> None:
    from tests.integration.test_devicecontroller import manifests

    name, model = f"{site.node}-dev", f"{site.node}-model"
    site.cloud_kubectl("apply", "-f", "-", stdin=manifests(name, site.node, model))
    try:
        wait_for(lambda: name in keadm_ctl(site, "get", "device").stdout, 30,
             lambda: f"the device never reached MetaServer: {keadm_ctl(site, 'get', 'device')}")
        described = keadm_ctl(site, "describe", "device", name)
        assert described.returncode == 0, described.stderr
        for expected in (f"Name:", name, "Node:", site.node, "Model:", model, "Properties:"):
            assert expected in described.stdout, described.stdout
        listed = site.edge_kubectl("kubectl", "get", "devices.devices.kubeedge.io", "-n", "default", "-o", "name")
        assert f"device.devices.kubeedge.io/{name}" in listed.stdout.split(), listed.stderr
    finally:
        site.cloud_kubectl("delete", "device", name, "-n", "default", "--wait=false")


def test_keadm_ctl_says_what_to_do_when_metaserver_is_off(site: Site, tmp_path: Any) -> None:
    import yaml

    document = yaml.safe_load(site.edge.config.read_text())
    document["modules"]["metaManager"]["metaServer"].update(server=f"127.0.0.1:{free_port()}")
    elsewhere = tmp_path / "edgecore.yaml"
    elsewhere.write_text(yaml.safe_dump(document))
    done = subprocess.run([*keadm_argv(), "ctl", "get", "pods", "--config", str(elsewhere)], capture_output=True, text=True,
                          timeout=scaled(30), check=False)
    assert done.returncode == 1 and "metaManager.metaServer.enable: true" in done.stderr and "Traceback" not in done.stderr


def restarts(site: Site) -> int:
    text = site.cloud_kubectl("get", "pod", site.pod, "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
    return int(text or 0)


def test_keadm_ctl_restart_pod_restarts_its_containers(site: Site) -> None:
    before = restarts(site)
    done = keadm_ctl(site, "restart", "pod", site.pod, "not-on-this-node", "Bad_Name")
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == f'the pod "default/{site.pod}" restart successful'
    assert 'not found pod:"/default/not-on-this-node"' in done.stderr and "invalid pod name 'Bad_Name'" in done.stderr
    wait_for(lambda: restarts(site) > before, 60, "the restarted pod's restart count never moved")
    wait_for(lambda: site.cloud_kubectl("get", "pod", site.pod, "-o", "jsonpath={.status.containerStatuses[0].ready}") == "true",
         60, "the restarted pod never became ready again")


def held_pod(site: Site, name: str) -> None:
    site.cloud_kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                        "annotations": {"edge.kubeedge.io/hold-upgrade": "true"}},
        "spec": {"nodeName": site.node, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}]}}))


def condition(site: Site, pod: str) -> str:
    return site.cloud_kubectl("get", "pod", pod, "-o", "jsonpath={.status.conditions[?(@.type=='HeldUpgrade')].status}")


def test_a_pod_held_for_upgrade_waits_until_keadm_ctl_unholds_it(site: Site) -> None:
    first, second = f"{site.node}-held-a", f"{site.node}-held-b"
    held_pod(site, first)
    held_pod(site, second)
    try:
        for pod in (first, second):
            wait_for(lambda: condition(site, pod) == "True", 30, f"{pod} never got the HeldUpgrade condition")
        time.sleep(scaled(3))
        for pod in (first, second):
            assert site.cloud_kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}") == "Pending"
        refused = keadm_ctl(site, "unhold-upgrade", "pod", site.pod)
        assert refused.returncode == 1 and "not marked with hold-upgrade" in refused.stderr

        done = keadm_ctl(site, "unhold-upgrade", "pod", first)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: site.cloud_kubectl("get", "pod", first, "-o", "jsonpath={.status.phase}") == "Running", 60,
             "the unheld pod never ran")
        assert condition(site, first) == "False"
        assert site.cloud_kubectl("get", "pod", second, "-o", "jsonpath={.status.phase}") == "Pending"

        done = keadm_ctl(site, "unhold-upgrade", "node")
        assert done.returncode == 0, done.stderr
        wait_for(lambda: site.cloud_kubectl("get", "pod", second, "-o", "jsonpath={.status.phase}") == "Running", 60,
             "the pod unheld with its node never ran")
        other = keadm_ctl(site, "unhold-upgrade", "node", "some-other-node")
        assert other.returncode == 1 and 'nodes "some-other-node" not found' in other.stderr
    finally:
        site.cloud_kubectl("delete", "pod", first, second, "--wait=false")


def test_writes_go_to_the_cloud_as_the_node(site: Site) -> None:
    """Upstream's Applications to CloudCore's DynamicController, which runs them as the node: its
    own Node and pods it may change, a ConfigMap or another node's pod it may not."""
    stamp = uuid.uuid4().hex[:6]
    labeled = site.edge_kubectl("kubectl", "label", "node", site.node, f"meta-written={stamp}")
    assert labeled.returncode == 0, labeled.stderr
    assert site.cloud_kubectl("get", "node", site.node, "-o", "jsonpath={.metadata.labels.meta-written}") == stamp
    annotated = site.edge_kubectl("kubectl", "annotate", "node", site.node, f"meta/at={stamp}", "--overwrite")
    assert annotated.returncode == 0, annotated.stderr
    # kubectl apply validates against the cloud's OpenAPI (passed through), then patches as the node
    applied = subprocess.run(site.edge_argv("kubectl", "apply", "-f", "-"), input=json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": site.node, "labels": {"meta-applied": stamp}}}),
        capture_output=True, text=True, timeout=scaled(30), check=False, env={**os.environ, "KUBECONFIG": "/nonexistent"})
    assert applied.returncode == 0, applied.stderr
    assert site.cloud_kubectl("get", "node", site.node, "-o", "jsonpath={.metadata.labels.meta-applied}") == stamp
    resources = site.edge_kubectl("kubectl", "api-resources", "--api-group=apps", "-o", "name")
    assert "deployments.apps" in resources.stdout.split(), resources.stderr  # the cloud's discovery, passed through
    made = site.edge_kubectl("kubectl", "create", "configmap", f"from-edge-{stamp}", "-n", "default", "--from-literal=a=b")
    assert made.returncode == 1 and "is forbidden" in made.stderr and "cannot create" in made.stderr, made.stderr
    other = f"other-{stamp}"
    site.cloud_kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": other}}))
    try:
        foreign = site.edge_kubectl("kubectl", "label", "node", other, "taken=yes")
        assert foreign.returncode == 1 and "Forbidden" in foreign.stderr, foreign.stderr
        assert "taken" not in site.cloud_kubectl("get", "node", other, "-o", "jsonpath={.metadata.labels}")
    finally:
        site.cloud_kubectl("delete", "node", other, "--wait=false")
    # the kubernetes client, as an app at the edge would write: an Event about its own pod
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{site.port}"
    with client.ApiClient(configuration) as api_client:
        event = client.CoreV1Api(api_client).create_namespaced_event("default", {
            "metadata": {"name": f"{site.pod}.{stamp}"}, "involvedObject": {"kind": "Pod", "namespace": "default", "name": site.pod},
            "reason": "Written", "message": "from the edge", "type": "Normal"})
        assert event.metadata.resource_version  # the cloud's object
    assert site.cloud_kubectl("get", "event", f"{site.pod}.{stamp}", "-n", "default", "-o", "jsonpath={.reason}") == "Written"


def test_lists_ask_the_cloud_first(site: Site) -> None:
    stamp = uuid.uuid4().hex[:6]
    site.cloud_kubectl("create", "service", "clusterip", f"svc-{stamp}", "--tcp=80:80", "-n", "default")
    try:  # no push brings Services to this edge: the list asks the cloud, as the node (system:node may list them)
        listed = wait_for(lambda: f"svc-{stamp}" in (done := site.edge_kubectl("kubectl", "get", "services", "-n", "default")).stdout
                          and done, 30, "the cloud's new Service never appeared in a list at the edge")
        assert listed.returncode == 0
    finally:
        site.cloud_kubectl("delete", "service", f"svc-{stamp}", "-n", "default")


def test_with_the_cloud_killed_the_edge_still_answers(site: Site) -> None:
    site.cloud.stop()
    wait_for(lambda: "connection lost" in site.edge.log() or "disconnected from" in site.edge.log(), 30,
         "the edge never noticed the cloud went away")
    for binary in KUBECTLS:
        done = site.edge_kubectl(binary, "get", "pods,configmaps", "-n", "default")
        assert site.pod in done.stdout and site.configmap in done.stdout, done.stderr
        assert "Running" in done.stdout
    listed = keadm_ctl(site, "get", "pods")
    assert listed.returncode == 0 and site.pod in listed.stdout, listed.stderr
    one = site.edge_kubectl("kubectl", "get", "configmap", site.configmap, "-n", "default", "-o", "name")
    assert one.stdout.strip() == f"configmap/{site.configmap}", one.stderr  # the cloud is not asked: the store answers
    done = site.edge_kubectl("kubectl", "exec", site.pod, "-n", "default", "--", "sh", "-c", "echo offline")
    assert (done.stdout, done.returncode) == ("offline\n", 0), done.stderr
    logged = site.edge_kubectl("kubectl", "logs", site.pod, "-n", "default", "--tail=1")
    assert logged.stdout.startswith("meta-"), logged.stderr
    offline = site.edge_kubectl("kubectl", "label", "node", site.node, "offline=yes")
    assert offline.returncode == 1 and "offline" in offline.stderr, offline.stderr  # 503 with the reason, at once
