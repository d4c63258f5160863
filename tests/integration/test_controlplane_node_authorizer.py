"""The embedded control plane decides for a node as kube-apiserver does: kubectl impersonates
``system:node:<name>`` (as CloudCore's DynamicController does for an edge's MetaServer), and the
Node authorizer gives it its own Node and Lease, its pods, and what they use, and nothing else.
Only ``system:masters`` may impersonate."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

from cores.controlplane.launcher import ControlPlane
from tests.integration.conftest import VIEWER_TOKEN
from tests.integration.test_devicecontroller import kubectl
from tests.timeouts import scaled


def as_node(plane: ControlPlane, node: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", f"--as=system:node:{node}", "--as-group=system:nodes", *args], input=stdin,
                          capture_output=True, text=True, timeout=scaled(30), env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)})


def test_a_node_reaches_its_own_objects_only(controlplane: ControlPlane) -> None:
    stamp = uuid.uuid4().hex[:6]
    node, other = f"authz-{stamp}", f"authz-other-{stamp}"
    used, unused = f"used-{stamp}", f"unused-{stamp}"
    for name in (node, other):
        kubectl(controlplane, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
    for name in (used, unused):
        kubectl(controlplane, "create", "configmap", name, "-n", "default", "--from-literal=a=b")
    kubectl(controlplane, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{stamp}", "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox", "envFrom": [{"configMapRef": {"name": used}}]}]}}))
    try:
        assert as_node(controlplane, node, "get", "configmap", used, "-n", "default").returncode == 0
        refused = as_node(controlplane, node, "get", "configmap", unused, "-n", "default")
        assert refused.returncode == 1 and "no relationship found between node" in refused.stderr, refused.stderr
        assert f'User "system:node:{node}" cannot get resource "configmaps"' in refused.stderr
        listed = as_node(controlplane, node, "get", "configmaps", "-n", "default")
        assert listed.returncode == 1 and "Forbidden" in listed.stderr
        one = as_node(controlplane, node, "get", "configmaps", "-n", "default", f"--field-selector=metadata.name={used}", "-o", "name")
        assert one.stdout.split() == [f"configmap/{used}"], one.stderr  # kubelet's single-object watch shape
        pods = as_node(controlplane, node, "get", "pods", "-A", f"--field-selector=spec.nodeName={node}", "-o", "name")
        assert pods.stdout.split() == [f"pod/p-{stamp}"], pods.stderr
        assert as_node(controlplane, node, "get", "pods", "-A").returncode == 1
        assert as_node(controlplane, other, "get", "pod", f"p-{stamp}", "-n", "default").returncode == 1
        assert as_node(controlplane, node, "get", "node", node).returncode == 0
        assert as_node(controlplane, node, "label", "node", node, "mine=yes").returncode == 0
        taken = as_node(controlplane, node, "label", "node", other, "mine=no")
        assert taken.returncode == 1 and "Forbidden" in taken.stderr
        made = as_node(controlplane, node, "create", "configmap", f"new-{stamp}", "-n", "default")
        assert made.returncode == 1 and "cannot create" in made.stderr
        plain = as_node(controlplane, node, "run", f"plain-{stamp}", "--image=busybox", "--overrides",
                        json.dumps({"spec": {"nodeName": node}}))
        assert plain.returncode == 1 and "can only create mirror pods" in plain.stderr, plain.stderr
        # tokens: only bound to one of its pods (by name and uid), for that pod's account (NodeRestriction)
        unbound = as_node(controlplane, node, "create", "token", "default", "-n", "default")
        assert unbound.returncode == 1 and "can only create tokens bound to a pod" in unbound.stderr, unbound.stderr
        uid = kubectl(controlplane, "get", "pod", f"p-{stamp}", "-n", "default", "-o", "jsonpath={.metadata.uid}")
        bound = as_node(controlplane, node, "create", "token", "default", "-n", "default", "--bound-object-kind=Pod",
                        f"--bound-object-name=p-{stamp}", f"--bound-object-uid={uid}")
        assert bound.returncode == 0 and bound.stdout.count(".") == 2, bound.stderr
        forever = as_node(controlplane, node, "create", "token", "default", "-n", "default", "--bound-object-kind=Pod",
                          f"--bound-object-name=p-{stamp}", f"--bound-object-uid={uid}", "--duration=1000h")
        assert forever.returncode == 1 and "at most" in forever.stderr, forever.stderr
        assert as_node(controlplane, node, "get", "--raw", "/api").returncode == 0  # discovery: anyone authenticated
        assert as_node(controlplane, node, "get", "services", "-A").returncode == 0  # system:node reads Services
    finally:
        kubectl(controlplane, "delete", "pod", f"p-{stamp}", "-n", "default", "--force", "--grace-period=0", check=False)
        kubectl(controlplane, "delete", "configmap", used, unused, "-n", "default", check=False)
        kubectl(controlplane, "delete", "node", node, other, check=False)


def test_only_masters_may_impersonate(controlplane: ControlPlane) -> None:
    server = kubectl(controlplane, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
    done = subprocess.run(["kubectl", f"--server={server}", "--insecure-skip-tls-verify", f"--token={VIEWER_TOKEN}",
                           "--as=system:node:x", "--as-group=system:nodes", "get", "node", "x"],
                          capture_output=True, text=True, timeout=scaled(30), env={**os.environ, "KUBECONFIG": "/nonexistent"})
    assert done.returncode == 1 and 'cannot impersonate resource "users"' in done.stderr, done.stderr
