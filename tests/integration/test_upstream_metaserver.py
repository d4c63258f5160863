"""Upstream's Applications both ways: upstream edgecore's MetaServer writes through our CloudCore's
DynamicController (which runs them as the node), and our MetaServer writes through upstream
cloudcore's DynamicController. kubectl at the edge is the client each time. Skipped, naming
``KEADM_UPSTREAM_BIN``, when the binaries are not unpacked (CI has them)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from cores.common import supervision
from cores.controlplane.launcher import ControlPlane
from cores.runtime import Containerd, upstream
from tests.integration.conftest import free_port
from tests.integration.edgecloud import start_cloud, start_edge
from tests.integration.test_upstream_peers import CLOUDCORE, EDGECORE, _quiet, kubectl, plane, run_cloudcore, wait  # noqa: F401
from tests.timeouts import scaled

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(EDGECORE is None or CLOUDCORE is None,
                                 reason=f"upstream binaries not found: set {upstream.BIN_ENV} to a directory of unpacked "
                                        "upstream binaries (scripts/test.sh does)")]


def at_edge(port: int, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", f"--server=http://127.0.0.1:{port}", *args], input=stdin, capture_output=True, text=True,
                          timeout=scaled(40), check=False, env={**os.environ, "KUBECONFIG": "/nonexistent"})


def test_upstream_metaserver_writes_through_our_dynamiccontroller(plane: ControlPlane, containerd: Containerd,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    assert EDGECORE is not None
    from cores.runtime import PAUSE_IMAGE

    cloud = start_cloud(tmp_path / "cloud", plane, modules={"dynamicController": {"enable": True}})
    node, port = f"upm-{uuid.uuid4().hex[:6]}", free_port()
    base = tmp_path / "upstream-edge"
    spec = upstream.edgecore_spec(EDGECORE, base, node=node, token=cloud.token(plane.kubeconfig),
                                  websocket_port=cloud.websocket_port, https_port=cloud.https_port,
                                  runtime_endpoint=containerd.endpoint, pause_image=PAUSE_IMAGE, metaserver_port=port)
    try:
        supervision.start(spec)
        ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        wait(lambda: _quiet(plane, "get", "node", node, "-o", ready) == "True", 90, f"upstream edgecore's node {node} never became Ready")
        wait(lambda: at_edge(port, "get", "node", node).returncode == 0, 30, "upstream's MetaServer never served its node")
        labeled = at_edge(port, "label", "node", node, "written-at=upstream-edge")
        assert labeled.returncode == 0, labeled.stderr + spec.log_dir.joinpath("edgecore.log").read_text()[-3000:]
        assert kubectl(plane, "get", "node", node, "-o", "jsonpath={.metadata.labels.written-at}") == "upstream-edge"
        # JSON (create -f): upstream's MetaServer refuses kubectl's protobuf body of `create configmap`
        made = at_edge(port, "create", "--validate=false", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": f"from-{node}", "namespace": "default"}, "data": {"a": "b"}}))
        assert made.returncode == 1 and "forbidden" in made.stderr.lower() and f"system:node:{node}" in made.stderr, made.stderr
        assert f"from-{node}" not in _quiet(plane, "get", "configmaps", "-n", "default", "-o", "name")
        listed = at_edge(port, "get", "services", "-n", "default", "-o", "name")  # a list Application, as the node
        assert listed.returncode == 0 and "service/kubernetes" in listed.stdout, listed.stderr
        assert "malformed" not in cloud.log()
    finally:
        supervision.stop(spec, grace=scaled(10))
        upstream.unmount_under(base)
        cloud.stop()


def test_our_metaserver_writes_through_upstream_dynamiccontroller(plane: ControlPlane, containerd: Containerd,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    assert CLOUDCORE is not None
    cloud = upstream.cloudcore_spec(CLOUDCORE, tmp_path / "cloudcore", plane.kubeconfig, dynamic_controller=True)
    run_cloudcore(cloud)
    node, port = f"ourm-{uuid.uuid4().hex[:6]}", free_port()
    edge = None
    try:
        token = base64.b64decode(kubectl(plane, "get", "secret", "tokensecret", "-n", "kubeedge", "-o",
                                         "jsonpath={.data.tokendata}")).decode()
        edge = start_edge(tmp_path / "edge", cloud, node, token, runtime_endpoint=containerd.endpoint,  # type: ignore[arg-type]
                          modules={"metaManager": {"metaServer": {"enable": True, "server": f"127.0.0.1:{port}"}}})
        wait(lambda: _quiet(plane, "get", "node", node, "-o", "name") == f"node/{node}", 60, "our node never registered")
        made = at_edge(port, "create", "configmap", f"from-{node}", "-n", "default", "--from-literal=a=b", "-o", "json")
        assert made.returncode == 0, made.stderr + edge.log()[-3000:]
        assert json.loads(made.stdout)["metadata"]["uid"]  # upstream's answer, the API server's object
        assert kubectl(plane, "get", "configmap", f"from-{node}", "-n", "default", "-o", "jsonpath={.data.a}") == "b"
        patched = at_edge(port, "label", "node", node, "written-at=our-edge")
        assert patched.returncode == 0, patched.stderr
        assert kubectl(plane, "get", "node", node, "-o", "jsonpath={.metadata.labels.written-at}") == "our-edge"
        deleted = at_edge(port, "delete", "configmap", f"from-{node}", "-n", "default")
        assert deleted.returncode == 0, deleted.stderr
        wait(lambda: f"from-{node}" not in _quiet(plane, "get", "configmaps", "-n", "default", "-o", "name"), 20,
             "the delete never reached the cloud")
        missing = at_edge(port, "delete", "configmap", "never-there", "-n", "default")
        assert missing.returncode == 1 and "NotFound" in missing.stderr, missing.stderr  # upstream's Rejected, its Status
    finally:
        if edge is not None:
            edge.stop()
        supervision.stop(cloud.spec, grace=scaled(10))
