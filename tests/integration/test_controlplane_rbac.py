"""RBAC on the embedded control plane, through kubectl: a user with no binding may only discover and
ask who it is; a RoleBinding to ``view`` lets it read one namespace; a ClusterRole with
``resourceNames`` one object; ``kubectl auth can-i`` and SubjectAccessReviews give the same answers."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

from cores.controlplane.launcher import ControlPlane
from tests.integration.conftest import VIEWER_TOKEN
from tests.integration.test_devicecontroller import kubectl
from tests.timeouts import scaled, wait_for


def as_viewer(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    server = kubectl(plane, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
    return subprocess.run(["kubectl", f"--server={server}", "--insecure-skip-tls-verify", f"--token={VIEWER_TOKEN}", *args],
                          capture_output=True, text=True, timeout=scaled(30), env={**os.environ, "KUBECONFIG": "/nonexistent"})


def test_bindings_grant_what_their_roles_say(controlplane: ControlPlane) -> None:
    stamp = uuid.uuid4().hex[:6]
    namespace, other = f"rbac-{stamp}", f"rbac-other-{stamp}"
    for name in (namespace, other):
        kubectl(controlplane, "create", "namespace", name)
    kubectl(controlplane, "create", "configmap", "one", "-n", namespace)
    kubectl(controlplane, "create", "configmap", "two", "-n", other)
    try:
        refused = as_viewer(controlplane, "get", "configmaps", "-n", namespace)
        assert refused.returncode == 1 and 'User "viewer" cannot list resource "configmaps"' in refused.stderr, refused.stderr
        assert as_viewer(controlplane, "auth", "whoami").returncode == 0  # system:basic-user
        cannot = as_viewer(controlplane, "auth", "can-i", "list", "configmaps", "-n", namespace)
        assert cannot.stdout.strip() == "no", cannot.stderr

        kubectl(controlplane, "create", "rolebinding", "viewer-view", "--clusterrole=view", "--user=viewer", "-n", namespace)
        listed = as_viewer(controlplane, "get", "configmaps", "-n", namespace, "-o", "name")
        assert listed.returncode == 0 and "configmap/one" in listed.stdout.split(), listed.stderr
        assert as_viewer(controlplane, "get", "configmaps", "-n", other).returncode == 1  # the binding's namespace only
        assert as_viewer(controlplane, "delete", "configmap", "one", "-n", namespace).returncode == 1  # view reads only
        assert as_viewer(controlplane, "get", "secrets", "-n", namespace).returncode == 1  # view has no secrets
        assert as_viewer(controlplane, "auth", "can-i", "list", "configmaps", "-n", namespace).stdout.strip() == "yes"

        kubectl(controlplane, "create", "clusterrole", f"two-{stamp}", "--verb=get", "--resource=configmaps",
                "--resource-name=two")
        kubectl(controlplane, "create", "clusterrolebinding", f"two-{stamp}", f"--clusterrole=two-{stamp}", "--group=viewers")
        assert as_viewer(controlplane, "get", "configmap", "two", "-n", other).returncode == 0  # by its group
        assert as_viewer(controlplane, "get", "configmaps", "-n", other).returncode == 1      # a name, not a list

        review = json.loads(kubectl(controlplane, "create", "-o", "json", "-f", "-", stdin=json.dumps({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "viewer", "groups": ["viewers"], "resourceAttributes": {
                "namespace": namespace, "verb": "list", "resource": "configmaps"}}})))
        assert review["status"]["allowed"] is True
        kubectl(controlplane, "delete", "rolebinding", "viewer-view", "-n", namespace)
        wait_for(lambda: as_viewer(controlplane, "get", "configmaps", "-n", namespace).returncode == 1, 10,
                 "a deleted binding still granted")
    finally:
        kubectl(controlplane, "delete", "namespace", namespace, other, "--wait=false", check=False)
        kubectl(controlplane, "delete", "clusterrolebinding,clusterrole", f"two-{stamp}", check=False)


def test_no_escalation_through_roles_or_bindings(controlplane: ControlPlane) -> None:
    """A user who may write RoleBindings (the ``admin`` role) still cannot bind cluster-admin, nor
    write a Role with rules it does not hold; it may bind a role whose rules it holds."""
    stamp = uuid.uuid4().hex[:6]
    namespace = f"esc-{stamp}"
    kubectl(controlplane, "create", "namespace", namespace)
    try:
        kubectl(controlplane, "create", "rolebinding", "viewer-admin", "--clusterrole=admin", "--user=viewer", "-n", namespace)
        wait_for(lambda: as_viewer(controlplane, "get", "rolebindings", "-n", namespace).returncode == 0, 10, "admin never applied")
        escalate = as_viewer(controlplane, "create", "rolebinding", "take-all", "--clusterrole=cluster-admin", "--user=viewer",
                             "-n", namespace)
        assert escalate.returncode == 1 and "is attempting to bind the role" in escalate.stderr, escalate.stderr
        wide = as_viewer(controlplane, "create", "role", "nodes-too", "--verb=get", "--resource=nodes", "-n", namespace)
        assert wide.returncode == 1 and "is attempting to grant" in wide.stderr, wide.stderr
        held = as_viewer(controlplane, "create", "rolebinding", "view-for-me", "--clusterrole=view", "--user=viewer", "-n", namespace)
        assert held.returncode == 0, held.stderr  # admin holds every rule of view
        narrow = as_viewer(controlplane, "create", "role", "cm-reader", "--verb=get", "--resource=configmaps", "-n", namespace)
        assert narrow.returncode == 0, narrow.stderr
    finally:
        kubectl(controlplane, "delete", "namespace", namespace, "--wait=false", check=False)


def test_default_roles_exist(controlplane: ControlPlane) -> None:
    names = kubectl(controlplane, "get", "clusterroles", "-o", "name").split()
    for role in ("cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery"):
        assert f"clusterrole.rbac.authorization.k8s.io/{role}" in names
