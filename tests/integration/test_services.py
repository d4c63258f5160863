"""Services on the embedded control plane: ``kubectl expose`` of a Deployment whose pods run on
edges gets a ClusterIP, Endpoints and an EndpointSlice that follow the pods (hollow EdgeCores:
real EdgeHub and MetaManager, pods reported Running and Ready with the node's IP)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from cores.controlplane.launcher import ControlPlane
from tests.integration.edgecloud import Cloud, start_edge
from tests.integration.test_daemonsets import cloud, kubectl, plane, wait  # noqa: F401 - shared fixtures

import pytest

pytestmark = pytest.mark.slow


def endpoint_refs(plane: ControlPlane, name: str) -> list[tuple[str, int]]:
    endpoints = json.loads(kubectl(plane, "get", "endpoints", name, "-o", "json", check=False) or "{}")
    return sorted((address["targetRef"]["name"], port["port"]) for subset in endpoints.get("subsets") or []
                  for address in subset.get("addresses") or [] for port in subset.get("ports") or [])


def test_expose_gives_endpoints_and_a_slice_that_follow_the_pods(plane: ControlPlane, cloud: Cloud, tmp_path: Path) -> None:
    node = f"svc-{uuid.uuid4().hex[:5]}"
    edge = start_edge(tmp_path / "edge", cloud, node, cloud.token(plane.kubeconfig), hollow=True)
    try:
        name = f"{node}-web"
        kubectl(plane, "create", "deployment", name, "--image=localhost/busybox:local", "--replicas=2", "--port=8080")
        kubectl(plane, "rollout", "status", f"deployment/{name}", "--timeout=60s")
        kubectl(plane, "expose", "deployment", name, "--port=80", "--target-port=8080")
        service = json.loads(kubectl(plane, "get", "service", name, "-o", "json"))
        assert service["spec"]["clusterIP"].startswith("10.")
        pods = sorted(p["metadata"]["name"] for p in json.loads(kubectl(plane, "get", "pods", "-l", f"app={name}", "-o", "json"))["items"])
        wait(lambda: endpoint_refs(plane, name) == [(pod, 8080) for pod in pods], 15, "the Endpoints never listed the pods")
        slices = json.loads(kubectl(plane, "get", "endpointslices", "-l", f"kubernetes.io/service-name={name}", "-o", "json"))["items"]
        assert len(slices) == 1 and slices[0]["addressType"] == "IPv4"
        assert sorted(e["targetRef"]["name"] for e in slices[0]["endpoints"]) == pods
        assert all(e["conditions"]["ready"] and e["nodeName"] == node for e in slices[0]["endpoints"])
        assert slices[0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
        assert "8080" in kubectl(plane, "get", "endpoints", name)

        kubectl(plane, "scale", f"deployment/{name}", "--replicas=1")
        wait(lambda: len(endpoint_refs(plane, name)) == 1, 30, "the Endpoints did not follow the scale-down")
        kubectl(plane, "delete", "service", name)
        wait(lambda: not kubectl(plane, "get", "endpoints", name, "--ignore-not-found"), 15, "the Endpoints outlived the Service")
        wait(lambda: not json.loads(kubectl(plane, "get", "endpointslices", "-l", f"kubernetes.io/service-name={name}",
                                            "-o", "json"))["items"], 30, "the EndpointSlice outlived the Service")
    finally:
        edge.stop()
