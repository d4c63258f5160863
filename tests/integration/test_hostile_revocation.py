"""Hostile edges, class 7: a node that is gone keeps no key. Two real CloudCores on one control plane.

When a Node is deleted, every certificate issued to it is revoked in the list all CloudCores read
(``kubeedge/revoked-node-certificates``), its live session and its stream tunnel are closed, and
the same certificate can neither connect again (403 at the WebSocket admission and at the tunnel,
on either CloudCore) nor renew (403 at the bootstrap server). Each refusal is logged with the node's name, and a bystander node on
the same CloudCore is not disturbed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from kubernetes import client, config

from certs import x509 as certs
from cores.cloud import revocation
from cores.controlplane.launcher import ControlPlane
from cores.edge.edgehub import certificate
from cores.link import contracts
from cores.link import stream as tunnel_protocol
from tests.integration.edgecloud import Cloud, start_cloud
from tests.integration.hostile import ask, bystander_latency, node_credentials, session
from tests.integration.test_hostile_certs import BYSTANDER_LIMIT, log_has, unique
from tests.timeouts import scaled, wait_for


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


@pytest.fixture(scope="module")
def second_cloud(controlplane: ControlPlane, cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Another CloudCore on the same control plane, with its own ports (as in an HA pair)."""
    core = start_cloud(tmp_path_factory.mktemp("cloud-b"), controlplane)
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


def register(name: str) -> Any:
    """The Node as edged creates it through CloudHub (an edge node: EdgeController follows it)."""
    return contracts.edge_request("insert", f"null/node/{name}", {"metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "node-role.kubernetes.io/edge": ""}}})


def listed(api: client.CoreV1Api, name: str) -> dict[str, dict[str, Any]]:
    try:
        data = api.read_namespaced_config_map(name, revocation.NAMESPACE).data or {}
    except client.ApiException:
        return {}
    return {key: json.loads(value) for key, value in data.items()}


def serial_of(base: Path) -> str:
    return revocation.serial_key(certs.cert_from_pem((base / "server.crt").read_bytes()).serial_number)


def paths_in(base: Path) -> certificate.CertificatePaths:
    return certificate.CertificatePaths(base / "rootCA.crt", base / "server.crt", base / "server.key")


def tunnel(cloud: Cloud, node: str, context: Any) -> Any:
    """A raw stream tunnel to CloudStream as ``node`` (the headers upstream's EdgeStream sends)."""
    return websockets.connect(f"wss://127.0.0.1:{cloud.tunnel_port}{tunnel_protocol.TUNNEL_PATH}", ssl=context,
                              additional_headers=[(tunnel_protocol.HEADER_NODE, node),
                                                  (tunnel_protocol.HEADER_INTERNAL_IP, "127.0.0.1")],
                              ping_interval=None, open_timeout=scaled(10))


async def refused_status(cloud: Cloud, node: str, context: Any, opener: Any = session) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with opener(cloud, node, context):
            pass
    return int(refused.value.response.status_code)


def test_a_deleted_node_is_cut_off_on_every_cloudcore(cloud: Cloud, second_cloud: Cloud, controlplane: ControlPlane,
                                                      core_api: client.CoreV1Api, tmp_path: Path) -> None:
    token = cloud.token(controlplane.kubeconfig)
    gone, calm_name = unique("rv-gone"), unique("rv-calm")
    gone_tls = node_credentials(cloud, token, tmp_path / "gone", gone)
    calm_tls = node_credentials(cloud, token, tmp_path / "calm", calm_name)
    serial = serial_of(tmp_path / "gone")
    issued = listed(core_api, revocation.ISSUED)
    assert issued[serial]["node"] == gone  # recorded at signing, before the certificate left

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with session(cloud, gone, gone_tls) as victim, session(cloud, calm_name, calm_tls) as calm, \
                tunnel(cloud, gone, gone_tls) as victim_tunnel, tunnel(cloud, calm_name, calm_tls) as calm_tunnel:
            await ask(victim, register(gone))
            wait_for(lambda: listed(core_api, revocation.ISSUED).get(serial, {}).get("registered"), 15,
                     "the node's certificate was not marked registered")
            latencies = [await bystander_latency(calm, calm_name)]
            core_api.delete_node(gone)
            deleted = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(victim.recv(), scaled(15))
            seen["closed_after"] = time.monotonic() - deleted
            seen["close"] = (closed.value.rcvd.code, closed.value.rcvd.reason) if closed.value.rcvd else None
            # the stream tunnel goes too, by CloudStream's own read of the shared list
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(victim_tunnel.recv(), scaled(15))
            seen["tunnel_closed_after"] = time.monotonic() - deleted
            seen["tunnel_close"] = (closed.value.rcvd.code, closed.value.rcvd.reason) if closed.value.rcvd else None
            await calm_tunnel.ping()  # the bystander's tunnel stays up
            latencies.append(await bystander_latency(calm, calm_name))
            seen["again_a"] = await refused_status(cloud, gone, gone_tls)
            seen["tunnel_again"] = await refused_status(cloud, gone, gone_tls, opener=tunnel)
            latencies.append(await bystander_latency(calm, calm_name))
            seen["latencies"] = latencies
        # the other CloudCore: by its own EdgeController's forget or by reading the shared list
        deadline = time.monotonic() + scaled(15)
        while True:
            try:
                seen["again_b"] = await refused_status(second_cloud, gone, gone_tls)
                break
            except BaseException:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        return seen

    seen = asyncio.run(scenario())
    assert seen["close"] == (4003, "node deleted: certificate revoked")
    assert seen["closed_after"] < scaled(5), seen["closed_after"]
    assert seen["again_a"] == 403 and seen["again_b"] == 403
    assert seen["tunnel_close"] == (1008, "certificate revoked")
    assert seen["tunnel_closed_after"] < scaled(2 * revocation.POLL_SECONDS + 3), seen["tunnel_closed_after"]
    assert seen["tunnel_again"] == 403
    assert log_has(cloud, f"closing the stream tunnel of node {gone}", "is revoked")
    assert log_has(cloud, f"refused stream tunnel for node {gone}", "is revoked")
    assert max(seen["latencies"]) < scaled(BYSTANDER_LIMIT), seen["latencies"]

    revoked = listed(core_api, revocation.REVOKED)
    assert revoked[serial]["node"] == gone and revoked[serial]["expires"] and revoked[serial]["revoked"]
    assert serial not in listed(core_api, revocation.ISSUED)
    for core in (cloud, second_cloud):
        assert wait_for(lambda core=core: log_has(core, f"refused connection from node '{gone}'", "is revoked"), 5,
                        "the refused reconnection was not logged with the node's name")
    assert log_has(cloud, f"revoked 1 certificate(s) of node {gone}", serial)
    assert log_has(cloud, f"closing the session of node {gone}", "4003")

    # renewal with the revoked certificate: refused by both bootstrap servers
    for core in (cloud, second_cloud):
        with pytest.raises(certificate.BootstrapError, match="answered 403.*revoked"):
            certificate.renew(f"https://127.0.0.1:{core.https_port}", gone, paths_in(tmp_path / "gone"))
        assert log_has(core, f"for node '{gone}' refused (403)", "is revoked", "join again with a token")

    # the bystander's certificate still works on both
    async def still_fine() -> list[float]:
        latencies = []
        for core in (cloud, second_cloud):
            async with session(core, calm_name, calm_tls) as calm:
                latencies.append(await bystander_latency(calm, calm_name))
        return latencies

    assert max(asyncio.run(still_fine())) < scaled(BYSTANDER_LIMIT)


def test_a_renewed_certificate_is_revoked_too(cloud: Cloud, controlplane: ControlPlane, core_api: client.CoreV1Api,
                                              tmp_path: Path) -> None:
    """Every serial issued to the node, the join's and the renewal's, goes when the Node goes."""
    token = cloud.token(controlplane.kubeconfig)
    node = unique("rv-renew")
    context = node_credentials(cloud, token, tmp_path / "first", node)
    first = serial_of(tmp_path / "first")
    old = tmp_path / "old"
    old.mkdir()
    for name in ("rootCA.crt", "server.crt", "server.key"):
        (old / name).write_bytes((tmp_path / "first" / name).read_bytes())
    certificate.renew(f"https://127.0.0.1:{cloud.https_port}", node, paths_in(tmp_path / "first"))
    second = serial_of(tmp_path / "first")
    assert first != second and {first, second} <= set(listed(core_api, revocation.ISSUED))

    async def register_and_wait() -> None:
        async with session(cloud, node, context) as connection:
            await ask(connection, register(node))

    asyncio.run(register_and_wait())
    wait_for(lambda: all(listed(core_api, revocation.ISSUED).get(s, {}).get("registered") for s in (first, second)), 15,
             "not marked registered")
    core_api.delete_node(node)
    wait_for(lambda: {first, second} <= set(listed(core_api, revocation.REVOKED)), 10, "not all serials revoked")
    for base in (old, tmp_path / "first"):
        with pytest.raises(certificate.BootstrapError, match="answered 403"):
            certificate.renew(f"https://127.0.0.1:{cloud.https_port}", node, paths_in(base))
