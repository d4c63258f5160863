"""A node that stops reading, against a real CloudCore (class 3 of the hostile-edge issue).

The attacker keeps a session open with a legitimate certificate, asks the cloud for a Lease that
does not exist as fast as it can, and never reads a reply. Every reply (a 404, not one of the
acknowledged pushes the reliable queue holds back one at a time) comes back through CloudHub's
mailbox, the one every node's traffic goes through: if a send to the attacker waited for it to
read, every other node would wait too; and every query read from it is one the cloud modules
answer before the bystander's, unless the cloud reads the attacker at its own rate only. The bystander's round trip (a Lease query through EdgeController and the
control plane) must stay short all along, and the attacker must be cut, by name, in the log.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cores.controlplane.launcher import ControlPlane
from cores.link import contracts
from cores.wire import encode
from tests.integration.edgecloud import Cloud, start_cloud
from tests.integration.hostile import ask, bystander_latency, node_credentials, session
from tests.timeouts import scaled, wait_for

SEND_BUFFER_BYTES = 16 * 1024  # ~50 replies: a node that reads nothing is found out in seconds


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("cloud"), controlplane, sendBufferBytes=SEND_BUFFER_BYTES, writeTimeout=2)
    try:
        yield core
    finally:
        core.stop()


def register(name: str) -> object:
    return contracts.edge_request("insert", f"null/node/{name}", {"metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "node-role.kubernetes.io/edge": ""}}})


def small_window_socket(port: int) -> socket.socket:
    """A socket whose tiny receive window makes a paused reader back the cloud up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def test_a_node_that_reads_nothing_is_cut_and_delays_no_other(cloud: Cloud, controlplane: ControlPlane,
                                                              tmp_path: Path) -> None:
    token = cloud.token(controlplane.kubeconfig)
    evil_tls = node_credentials(cloud, token, tmp_path / "evil", "evil-slow")
    calm_tls = node_credentials(cloud, token, tmp_path / "calm", "calm-slow")

    async def scenario() -> list[float]:
        async with session(cloud, "evil-slow", evil_tls, sock=small_window_socket(cloud.websocket_port),
                           server_hostname="127.0.0.1", close_timeout=1) as evil, \
                session(cloud, "calm-slow", calm_tls) as calm:
            await ask(calm, register("calm-slow"))
            await ask(evil, register("evil-slow"))
            latencies = [await bystander_latency(calm, "calm-slow")]
            evil.transport.pause_reading()
            query = encode(contracts.edge_request("query", "kube-node-lease/lease/evil-slow"))
            keepalive = encode(contracts.keepalive())

            async def flood() -> None:
                try:
                    for sent in range(3000):  # the cloud reads 60 a second of these
                        # with keepalives, as EdgeHub sends them: it is cut for not reading, nothing else
                        await asyncio.wait_for(evil.send(keepalive if sent % 100 == 0 else query), scaled(10))
                except Exception:  # noqa: BLE001 - the cloud cut it: that is the point
                    pass

            flooding = asyncio.create_task(flood())
            deadline = time.monotonic() + scaled(40)
            while time.monotonic() < deadline and "node evil-slow does not read" not in cloud.spec.log_file.read_text():
                latencies.append(await bystander_latency(calm, "calm-slow"))
                await calm.send(keepalive)  # a loaded machine may take longer than the 30 s keepalive timeout
                await asyncio.sleep(0.2)
            latencies.append(await bystander_latency(calm, "calm-slow"))
            flooding.cancel()
            return latencies

    latencies = asyncio.run(scenario())
    log = cloud.spec.log_file.read_text()
    assert "node evil-slow does not read what is sent to it" in log, "the node that reads nothing was never cut"
    assert "node evil-slow sends more than 60 messages a second (nodeMessageQPS): reading it slower" in log
    assert "calm-slow does not read" not in log and "calm-slow sends more" not in log
    assert max(latencies) < 2.0, f"the bystander waited {max(latencies):.2f}s while another node read nothing"
    wait_for(lambda: "node evil-slow disconnected" in cloud.spec.log_file.read_text(), scaled(10), "the cut session never ended")
