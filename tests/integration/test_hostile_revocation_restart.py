"""Hostile edges, class 7: a Node deleted while no CloudCore ran still loses its key.

No CloudCore saw the deletion, so no ``forget`` came; the next CloudCore to start revokes, before
it serves any edge, the certificates of nodes that had registered and are gone. A certificate
whose node never registered (joined, edgecore not started yet) is left alone. In a module of its
own: any other CloudCore running on the control plane would see the deletion itself.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import websockets
from kubernetes import client, config

from cores.cloud import revocation
from cores.controlplane.launcher import ControlPlane
from tests.integration.edgecloud import start_cloud
from tests.integration.hostile import ask, bystander_latency, node_credentials, session
from tests.integration.test_hostile_certs import BYSTANDER_LIMIT, log_has, unique
from tests.integration.test_hostile_revocation import register, serial_of
from tests.timeouts import scaled, wait_for


def test_a_node_deleted_while_cloudcore_was_down_is_revoked_at_start(controlplane: ControlPlane, tmp_path: Path) -> None:
    api = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    core_api = client.CoreV1Api(api)

    def issued() -> dict[str, Any]:
        try:
            data = core_api.read_namespaced_config_map(revocation.ISSUED, revocation.NAMESPACE).data or {}
        except client.ApiException:
            return {}
        return {key: json.loads(value) for key, value in data.items()}

    first = start_cloud(tmp_path / "first", controlplane)
    try:
        token = first.token(controlplane.kubeconfig)
        gone, waiting, calm_name = unique("rr-gone"), unique("rr-waiting"), unique("rr-calm")
        gone_tls = node_credentials(first, token, tmp_path / "gone", gone)
        waiting_tls = node_credentials(first, token, tmp_path / "waiting", waiting)  # joined, never registers
        calm_tls = node_credentials(first, token, tmp_path / "calm", calm_name)
        serial = serial_of(tmp_path / "gone")

        async def registered() -> None:
            async with session(first, gone, gone_tls) as connection:
                await ask(connection, register(gone))

        asyncio.run(registered())
        # the first CloudCore saw the Node (EdgeController's push) and marked the certificate registered
        wait_for(lambda: issued().get(serial, {}).get("registered"), 15, "not marked registered")
    finally:
        first.stop()

    core_api.delete_node(gone)  # nobody is watching
    second = start_cloud(tmp_path / "second", controlplane)
    try:
        assert log_has(second, f"node {gone} was deleted while CloudCore was down: its certificates are revoked")

        async def attempts() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            try:
                async with session(second, gone, gone_tls):
                    seen["gone"] = 101
            except websockets.InvalidStatus as refused:
                seen["gone"] = refused.response.status_code
            async with session(second, waiting, waiting_tls) as connection:
                seen["waiting"] = await bystander_latency(connection, waiting)
            async with session(second, calm_name, calm_tls) as connection:
                seen["calm"] = await bystander_latency(connection, calm_name)
            return seen

        seen = asyncio.run(attempts())
        assert seen["gone"] == 403
        assert seen["waiting"] < scaled(BYSTANDER_LIMIT) and seen["calm"] < scaled(BYSTANDER_LIMIT)
        assert wait_for(lambda: log_has(second, f"refused connection from node '{gone}'", "is revoked"), 5, "not logged")
    finally:
        second.stop()
        api.close()
