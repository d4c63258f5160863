"""MetaServer with ``requireAuthorization``: HTTPS, service-account tokens and RBAC, through real
processes (our control plane, CloudCore with its DynamicController, EdgeCore on containerd).

A hostNetwork pod runs kubectl with in-cluster config: Edged gives it ``KUBERNETES_SERVICE_HOST``
and ``_PORT`` (MetaServer) and a ``ca.crt`` that trusts MetaServer's CA, the control plane its
token. Its list of the namespace's ConfigMaps is refused (403) until a RoleBinding allows it, and
allowed after; kubectl at the edge with a token the cloud does not accept gets 401."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from cores.controlplane.launcher import ControlPlane, keadm_argv
from cores.runtime import BUSYBOX_IMAGE, Containerd
from tests.integration.conftest import free_port
from tests.integration.edgecloud import start_cloud, start_edge
from tests.integration.test_devicecontroller import kubectl
from tests.timeouts import scaled, wait_for

pytestmark = pytest.mark.slow


def test_an_in_cluster_kubectl_at_the_edge_is_held_to_rbac(controlplane: ControlPlane, containerd: Containerd,  # noqa: F811
                                                           tmp_path: Path) -> None:
    binary = Path(os.path.realpath(shutil.which("kubectl") or "/usr/bin/kubectl"))
    cloud = start_cloud(tmp_path / "cloud", controlplane, modules={"dynamicController": {"enable": True}})
    edge = None
    stamp = uuid.uuid4().hex[:6]
    namespace, node, port = f"incluster-{stamp}", f"rbac-{stamp}", free_port()
    out = tmp_path / "out"
    out.mkdir()
    try:
        edge = start_edge(tmp_path / "edge", cloud, node, cloud.token(controlplane.kubeconfig),
                          runtime_endpoint=containerd.endpoint, feature_gates={"requireAuthorization": True},
                          # no dummy interface on the host: the hostNetwork pod reaches MetaServer on 127.0.0.1
                          modules={"metaManager": {"metaServer": {"enable": True, "server": f"127.0.0.1:{port}", "dummyServer": ""}}})
        kubectl(controlplane, "create", "namespace", namespace)
        kubectl(controlplane, "create", "configmap", "visible", "-n", namespace, "--from-literal=a=b")
        kubectl(controlplane, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lister", "namespace": namespace},
            "spec": {"nodeName": node, "hostNetwork": True, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "kubectl", "image": BUSYBOX_IMAGE, "command": ["sh", "-c",
                         "trap 'exit 0' TERM; while true; do /tools/kubectl get configmaps -o name > /out/new 2>&1; "
                         "echo \"exit=$?\" >> /out/new; mv /out/new /out/result; sleep 1; done"],
                         "volumeMounts": [{"name": "tools", "mountPath": "/tools/kubectl", "readOnly": True},
                                          {"name": "out", "mountPath": "/out"}, {"name": "visible", "mountPath": "/cfg"}]}],
                     # the edge holds the ConfigMaps its pods use (NodeRestriction): this one is listed
                     "volumes": [{"name": "tools", "hostPath": {"path": str(binary), "type": "File"}},
                                 {"name": "visible", "configMap": {"name": "visible"}},
                                 {"name": "out", "hostPath": {"path": str(out)}}]}}))

        def result() -> str:
            try:
                return (out / "result").read_text()
            except OSError:
                return ""

        refused = wait_for(lambda: "exit=" in (text := result()) and text, 90,
                           lambda: f"the in-cluster kubectl never ran: {result()!r} {edge.log()[-2000:] if edge else ''}")
        assert "exit=1" in refused and "Forbidden" in refused, refused
        assert f'User "system:serviceaccount:{namespace}:default" cannot list resource "configmaps"' in refused, refused
        kubectl(controlplane, "create", "rolebinding", "read-config", "--clusterrole=view",
                f"--serviceaccount={namespace}:default", "-n", namespace)
        allowed = wait_for(lambda: "exit=0" in (text := result()) and text, 30,
                           lambda: f"the RoleBinding never allowed the list: {result()!r}")
        assert "configmap/visible" in allowed, allowed
        # kubectl at the edge with a token the cloud does not know: 401; the CA Edged gave the pod is MetaServer's
        ca = next((tmp_path / "edge").rglob("metaserver-ca.crt"))
        anonymous = subprocess.run(["kubectl", f"--server=https://127.0.0.1:{port}", f"--certificate-authority={ca}",
                                    "--token=not-a-service-account-token", "get", "configmaps", "-n", namespace], capture_output=True, text=True,
                                   timeout=scaled(30), env={**os.environ, "KUBECONFIG": "/nonexistent"})
        assert anonymous.returncode == 1 and "asked for the client to provide credentials" in anonymous.stderr, anonymous.stderr  # 401
        # keadm ctl as root: HTTPS with the node's own certificate, as upstream's
        def ctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*keadm_argv(), "ctl", *args, "--config", str(edge.config)], capture_output=True, text=True,
                                  timeout=scaled(60), check=False)

        listed = ctl("get", "pods", "-n", namespace)
        assert listed.returncode == 0 and "lister" in listed.stdout, listed.stderr
        confirmed = ctl("confirm")
        assert confirmed.returncode == 1 and "there are no valid upgrade tasks to execute" in confirmed.stderr, confirmed
    finally:
        kubectl(controlplane, "delete", "namespace", namespace, "--wait=false", check=False)
        if edge is not None:
            edge.stop()
        cloud.stop()
