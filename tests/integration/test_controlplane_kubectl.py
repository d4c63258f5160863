"""kubectl (the machine's v1.32) against the embedded control plane, exactly as a user types it."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from cores.controlplane.launcher import ControlPlane
from tests.timeouts import scaled

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is installed by scripts/test.sh")


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "--kubeconfig", str(plane.kubeconfig), *args], input=stdin,
                            capture_output=True, text=True, timeout=scaled(60))
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
    return result


def test_apply_get_label_annotate_patch_delete(controlplane: ControlPlane, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"kc-{tag}", "namespace": "default"},
         "data": {"greeting": "hello"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"ks-{tag}", "namespace": "default"},
         "stringData": {"password": "s3cret"}},
    ]))
    applied = kubectl(controlplane, "apply", "--validate=false", "-f", str(manifest))
    assert f"configmap/kc-{tag} created" in applied.stdout and f"secret/ks-{tag} created" in applied.stdout
    again = kubectl(controlplane, "apply", "--validate=false", "-f", str(manifest))
    assert f"configmap/kc-{tag} unchanged" in again.stdout

    cm = json.loads(kubectl(controlplane, "get", "configmap", f"kc-{tag}", "-o", "json").stdout)
    assert cm["data"] == {"greeting": "hello"} and "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]
    secret = yaml.safe_load(kubectl(controlplane, "get", "secret", f"ks-{tag}", "-o", "yaml").stdout)
    assert secret["type"] == "Opaque" and secret["data"]["password"] == "czNjcmV0"

    kubectl(controlplane, "label", "configmap", f"kc-{tag}", "tier=edge")
    kubectl(controlplane, "annotate", "configmap", f"kc-{tag}", "note=first")
    kubectl(controlplane, "patch", "configmap", f"kc-{tag}", "--type", "merge", "-p", '{"data":{"merged":"yes"}}')
    kubectl(controlplane, "patch", "configmap", f"kc-{tag}", "--type", "json", "-p", '[{"op":"add","path":"/data/json","value":"yes"}]')
    kubectl(controlplane, "patch", "configmap", f"kc-{tag}", "--type", "strategic", "-p", '{"data":{"strategic":"yes"}}')
    cm = json.loads(kubectl(controlplane, "get", "configmap", f"kc-{tag}", "-o", "json").stdout)
    assert cm["metadata"]["labels"] == {"tier": "edge"} and cm["metadata"]["annotations"]["note"] == "first"
    assert cm["data"] == {"greeting": "hello", "merged": "yes", "json": "yes", "strategic": "yes"}
    listed = json.loads(kubectl(controlplane, "get", "configmaps", "-l", "tier=edge", "-o", "json").stdout)
    assert [item["metadata"]["name"] for item in listed["items"]] == [f"kc-{tag}"]

    deleted = kubectl(controlplane, "delete", "-f", str(manifest))
    assert f'configmap "kc-{tag}" deleted' in deleted.stdout
    missing = kubectl(controlplane, "get", "configmap", f"kc-{tag}", check=False)
    assert missing.returncode != 0 and f'configmaps "kc-{tag}" not found' in missing.stderr


def test_crd_with_an_instance(controlplane: ControlPlane, tmp_path: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.kubectl.kubeedge.io"},
        "spec": {"group": "kubectl.kubeedge.io", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
                 "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    instance = {"apiVersion": "kubectl.kubeedge.io/v1alpha1", "kind": "Gadget",
                "metadata": {"name": "g1", "namespace": "default"}, "spec": {"color": "blue"}}
    (tmp_path / "crd.yaml").write_text(yaml.safe_dump(crd))
    (tmp_path / "gadget.yaml").write_text(yaml.safe_dump(instance))
    kubectl(controlplane, "apply", "--validate=false", "-f", str(tmp_path / "crd.yaml"))
    kubectl(controlplane, "apply", "--validate=false", "-f", str(tmp_path / "gadget.yaml"))
    got: dict[str, Any] = json.loads(kubectl(controlplane, "get", "gd", "g1", "-o", "json").stdout)
    assert got["spec"] == {"color": "blue"} and got["kind"] == "Gadget"
    kubectl(controlplane, "patch", "gadget", "g1", "--type", "merge", "-p", '{"spec":{"color":"red"}}')
    strategic = kubectl(controlplane, "patch", "gadget", "g1", "--type", "strategic", "-p", '{"spec":{"color":"x"}}', check=False)
    assert strategic.returncode != 0
    assert "strategic merge patch is not supported" in strategic.stderr or "unknown format" in strategic.stderr
    kubectl(controlplane, "delete", "-f", str(tmp_path / "gadget.yaml"))
    kubectl(controlplane, "delete", "-f", str(tmp_path / "crd.yaml"))
    assert "gadgets" not in kubectl(controlplane, "api-resources", check=False).stdout
