"""NodeRestriction and status types, attacked through real sockets with a legitimate node certificate.

Each attack checks three things: the write is refused with a clear error reply, the refusal is
logged with the attacking node's name, and a bystander node's round trip stays short. The
control plane behind CloudCore is the embedded one; nothing the attacker sends reaches it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from cores.controlplane.launcher import ControlPlane
from cores.link import contracts
from tests.integration.edgecloud import Cloud, start_cloud
from tests.integration.hostile import ask, bystander_latency, node_credentials, session
from tests.timeouts import scaled, wait_for


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


@pytest.fixture(scope="module")
def core_api(controlplane: ControlPlane) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


def register(name: str, labels: dict[str, str] | None = None) -> Any:
    return contracts.edge_request("insert", f"null/node/{name}", {"metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "node-role.kubernetes.io/edge": "", **(labels or {})}}})


def error_of(reply: dict[str, Any]) -> dict[str, Any]:
    content = reply["content"]
    status = (content.get("Err") or {}).get("ErrStatus") if "Err" in content else content.get("ErrStatus")
    assert status, f"expected a refusal, got {content}"
    return dict(status)


def test_nodes_reach_only_what_node_restriction_allows(cloud: Cloud, controlplane: ControlPlane, core_api: client.CoreV1Api,
                                                      tmp_path: Path) -> None:
    token = cloud.token(controlplane.kubeconfig)
    evil_tls = node_credentials(cloud, token, tmp_path / "evil", "evil-nr")
    calm_tls = node_credentials(cloud, token, tmp_path / "calm", "calm-nr")

    async def scenario() -> list[float]:
        async with session(cloud, "evil-nr", evil_tls) as evil, session(cloud, "calm-nr", calm_tls) as calm:
            await ask(calm, register("calm-nr"))
            latencies = [await bystander_latency(calm, "calm-nr")]

            # a label the node may not give itself: control-plane
            refused = error_of(await ask(evil, register("evil-nr", {"node-role.kubernetes.io/control-plane": ""})))
            assert (refused["code"], refused["reason"]) == (403, "Forbidden")
            assert "node-role.kubernetes.io/control-plane" in refused["message"]
            latencies.append(await bystander_latency(calm, "calm-nr"))

            assert "Err" in (await ask(evil, register("evil-nr")))["content"]  # registered, legitimately

            # another node's Lease under its own resource string
            lease = {"metadata": {"name": "calm-nr", "namespace": "kube-node-lease"},
                     "spec": {"holderIdentity": "calm-nr", "leaseDurationSeconds": 40}}
            refused = error_of(await ask(evil, contracts.edge_request("insert", "kube-node-lease/lease/evil-nr", lease)))
            assert refused["code"] == 403 and "the body names 'calm-nr'" in refused["message"]
            latencies.append(await bystander_latency(calm, "calm-nr"))

            # a label it may not keep, smuggled in through a status patch
            patch = json.dumps({"metadata": {"labels": {"node-restriction.kubernetes.io/x": "y"}}, "status": {}})
            refused = error_of(await ask(evil, contracts.edge_request("patch", "null/nodepatch/evil-nr", patch)))
            assert refused["code"] == 403

            # poisoned status: conditions as a string
            patch = json.dumps({"status": {"conditions": "Ready"}})
            refused = error_of(await ask(evil, contracts.edge_request("patch", "null/nodepatch/evil-nr", patch)))
            assert (refused["code"], refused["reason"]) == (400, "BadRequest")
            assert "status.conditions: expected a list" in refused["message"]
            latencies.append(await bystander_latency(calm, "calm-nr"))

            # a token bound to no pod, for ten years
            request = {"spec": {"audiences": ["x"], "expirationSeconds": 315360000}}
            refused = error_of(await ask(evil, contracts.edge_request("query", "default/serviceaccounttoken/default", request)))
            assert refused["code"] == 403
            latencies.append(await bystander_latency(calm, "calm-nr"))
            return latencies

    latencies = asyncio.run(scenario())
    assert max(latencies) < scaled(2.0), latencies
    log = cloud.log()
    for refusal in ("labels on itself: node-role.kubernetes.io/control-plane", "the body names 'calm-nr'",
                    "status.conditions: expected a list", "serviceaccounttoken/default"):
        assert any("node evil-nr" in line and refusal in line for line in log.splitlines()), refusal
    wait_for(lambda: any(n.metadata.name == "evil-nr" for n in core_api.list_node().items), message="evil-nr registered")
    nodes = {n.metadata.name: n for n in core_api.list_node().items}
    assert "node-role.kubernetes.io/control-plane" not in (nodes["evil-nr"].metadata.labels or {})
    assert not (nodes["evil-nr"].metadata.labels or {}).get("node-restriction.kubernetes.io/x")
    assert all(isinstance(c.type, str) for c in nodes["evil-nr"].status.conditions or [])
    leases = client.CoordinationV1Api(core_api.api_client).list_namespaced_lease("kube-node-lease").items
    assert "calm-nr" not in {lease.metadata.name for lease in leases}  # nobody made the bystander's lease for it
