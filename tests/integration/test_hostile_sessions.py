"""Hostile sessions against CloudHub's WebSocket server (port 10000), in process: a real Hub on a real
TLS socket, real node certificates signed by a test CA, raw clients doing what an attacker would.

Each attack test checks three things: the attack fails with a clear refusal, the refusal is logged
with the node's name, and a bystander node's round trip (a ``ping`` answered with ``ack``) stays
small. The process-level version (a real CloudCore) is in test_hostile_names.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from certs import x509 as certs
from cores.beehive import Context, Message
from cores.cloud.cloudhub import bootstrap
from cores.cloud.cloudhub.hub import Hub, HubSettings
from cores.wire import encode
from tests.integration.conftest import free_port
from tests.integration.hostile import PROJECT_ID, ask
from tests.timeouts import scaled


# ------------------------------------------------------------------------------------ harness
@dataclasses.dataclass
class LocalHub:
    """A Hub serving on 127.0.0.1 with its own CA; ``client(node)`` gives a node's TLS context."""

    hub: Hub
    ctx: Context
    port: int
    base: Path
    ca: tuple[Any, certs.PrivateKey]
    serials: dict[str, str] = dataclasses.field(default_factory=dict)  # node -> its cert's serial (ssl's form)

    def client(self, node: str, common_name: str | None = None) -> ssl.SSLContext:
        key = certs.generate_key()
        cert = certs.create_client_cert(self.ca[0], self.ca[1], key, common_name=common_name or certs.NODE_CN_PREFIX + node,
                                        organizations=[certs.NODE_ORGANIZATION])
        cert_file, key_file = self.base / f"{node}.crt", self.base / f"{node}.key"
        cert_file.write_bytes(certs.cert_to_pem(cert))
        key_file.write_bytes(certs.key_to_pem(key))
        self.serials[node] = format(cert.serial_number, "X")
        context = ssl.create_default_context(cafile=str(self.base / "ca.crt"))
        context.check_hostname = False
        context.load_cert_chain(str(cert_file), str(key_file))
        return context

    def connect(self, node: str, context: ssl.SSLContext, *, header_node: str | None = None, **options: Any) -> Any:
        return websockets.connect(
            f"wss://127.0.0.1:{self.port}/{PROJECT_ID}/{node}/events", ssl=context,
            additional_headers=[("Connectionuse", "msg"), ("Node_id", node if header_node is None else header_node),
                                ("Project_id", PROJECT_ID)],
            ping_interval=None, open_timeout=scaled(10), max_size=16 * 1024 * 1024, **options,
        )


@dataclasses.dataclass
class Overrides:
    values: dict[str, Any] = dataclasses.field(default_factory=dict)


def overrides(**values: Any) -> Any:
    return pytest.mark.parametrize("hub_settings", [Overrides(values)], indirect=True)


@pytest.fixture()
def hub_settings(request: pytest.FixtureRequest) -> Overrides:
    return getattr(request, "param", Overrides())


@pytest.fixture()
async def local_hub(tmp_path: Path, hub_settings: Overrides) -> AsyncIterator[LocalHub]:
    ca_cert, ca_key = certs.create_ca()
    server_key = certs.generate_key()
    server_cert = certs.create_server_cert(ca_cert, ca_key, server_key, ip_addresses=["127.0.0.1"], dns_names=[])
    (tmp_path / "ca.crt").write_bytes(certs.cert_to_pem(ca_cert))
    (tmp_path / "server.crt").write_bytes(certs.cert_to_pem(server_cert))
    (tmp_path / "server.key").write_bytes(certs.key_to_pem(server_key))
    ctx = Context()
    ctx.register("cloudhub", "cloudhub")
    port = free_port()
    settings = HubSettings(host="127.0.0.1", port=port, keepalive_timeout=60, node_limit=100, authorization=True,
                           authorization_debug=False, **hub_settings.values)
    hub = Hub(ctx, settings)
    await hub.start(bootstrap.tls_context(str(tmp_path / "ca.crt"), str(tmp_path / "server.crt"), str(tmp_path / "server.key"),
                                          require_client=True))
    try:
        yield LocalHub(hub, ctx, port, tmp_path, (ca_cert, ca_key))
    finally:
        await hub.stop()


def ping() -> Message:
    return Message.new(source="edgehub", group="resource", operation="ping", resource="node")


async def round_trip(connection: Any) -> float:
    """Seconds for a bystander's ``ping`` to be answered by the hub."""
    started = time.monotonic()
    reply = await ask(connection, ping(), timeout=10)
    assert reply["content"] == "ack"
    return time.monotonic() - started


async def refused_status(local: LocalHub, node: str, context: ssl.SSLContext, **options: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with local.connect(node, context, **options):
            pass
    return int(refused.value.response.status_code)


async def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    pytest.fail(what)


# ------------------------------------------------------------------------ revocation interface
async def test_admission_passes_the_peer_serial_to_is_revoked(local_hub: LocalHub) -> None:
    seen: list[str] = []
    local_hub.hub.settings.is_revoked = lambda serial: seen.append(serial) is not None  # records, revokes nothing
    context = local_hub.client("edge-a")
    async with local_hub.connect("edge-a", context) as edge:
        assert (await ask(edge, ping()))["content"] == "ack"
    assert seen and int(seen[0], 16) == int(local_hub.serials["edge-a"], 16)


async def test_revoked_certificate_is_refused_with_403_and_logged(local_hub: LocalHub, caplog: pytest.LogCaptureFixture) -> None:
    revoked: set[int] = set()
    local_hub.hub.settings.is_revoked = lambda serial: int(serial, 16) in revoked
    evil, calm = local_hub.client("edge-evil"), local_hub.client("edge-calm")
    revoked.add(int(local_hub.serials["edge-evil"], 16))
    async with local_hub.connect("edge-calm", calm) as bystander:
        with caplog.at_level(logging.WARNING, "kubeedge.cloudhub"):
            assert await refused_status(local_hub, "edge-evil", evil) == 403
        assert await round_trip(bystander) < 2.0
    assert "refused connection from node 'edge-evil'" in caplog.text and "is revoked" in caplog.text
    assert "edge-evil" not in local_hub.hub.sessions


async def test_revocation_is_enforced_in_authorization_debug_mode(local_hub: LocalHub) -> None:
    local_hub.hub.settings.authorization_debug = True
    local_hub.hub.settings.is_revoked = lambda serial: True
    assert await refused_status(local_hub, "edge-a", local_hub.client("edge-a")) == 403


async def test_broken_revocation_check_admits_nobody(local_hub: LocalHub, caplog: pytest.LogCaptureFixture) -> None:
    def broken(serial: str) -> bool:
        raise RuntimeError("revocation list unreadable")

    local_hub.hub.settings.is_revoked = broken
    with caplog.at_level(logging.WARNING, "kubeedge.cloudhub"):
        assert await refused_status(local_hub, "edge-a", local_hub.client("edge-a")) == 503
    assert "revocation list unreadable" in caplog.text and "'edge-a'" in caplog.text


async def test_close_node_closes_that_session_only_and_does_not_wait(local_hub: LocalHub, caplog: pytest.LogCaptureFixture) -> None:
    async with local_hub.connect("edge-evil", local_hub.client("edge-evil")) as evil, \
            local_hub.connect("edge-calm", local_hub.client("edge-calm")) as calm:
        await wait_until(lambda: {"edge-evil", "edge-calm"} <= set(local_hub.hub.sessions), 5, "sessions not registered")
        with caplog.at_level(logging.WARNING, "kubeedge.cloudhub"):
            started = time.monotonic()
            result = local_hub.hub.close_node("edge-evil", 4004, "certificate revoked")
            assert result is None and time.monotonic() - started < 0.05  # returns at once
            local_hub.hub.close_node("edge-unknown", 4004, "certificate revoked")  # no session: nothing happens
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(evil.recv(), scaled(5))
        assert evil.close_code == 4004 and evil.close_reason == "certificate revoked"
        assert await round_trip(calm) < 2.0
        await wait_until(lambda: "edge-evil" not in local_hub.hub.sessions, 5, "closed session still registered")
    assert "closing the session of node edge-evil (4004 certificate revoked)" in caplog.text


async def test_close_node_of_a_peer_that_never_reads_does_not_wait(local_hub: LocalHub) -> None:
    async with local_hub.connect("edge-stuck", local_hub.client("edge-stuck"), close_timeout=1) as stuck:
        await wait_until(lambda: "edge-stuck" in local_hub.hub.sessions, 5, "session not registered")
        stuck.transport.pause_reading()
        started = time.monotonic()
        local_hub.hub.close_node("edge-stuck", 4004, "certificate revoked")
        assert time.monotonic() - started < 0.05


# --------------------------------------------------------------------- nodes that stop reading
def small_window_socket(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer, so a peer that stops reading backs the server up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # set before connect: it bounds the window
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def big_message(size: int) -> Message:
    return Message.new(source="edgecontroller", group="resource", operation="update",
                       resource="default/configmap/big", content={"data": {"blob": "x" * size}})


async def send_until_refused(local: LocalHub, node: str, size: int, limit: int) -> tuple[int, float]:
    """Send ``size``-byte messages to ``node`` until the hub refuses one; (sent, slowest call in s)."""
    slowest = 0.0
    for sent in range(limit):
        started = time.monotonic()
        accepted = await local.hub.send_to_node(node, big_message(size))
        slowest = max(slowest, time.monotonic() - started)
        if not accepted:
            return sent, slowest
        await asyncio.sleep(0)  # let the writers run, as the mailbox would between messages
    pytest.fail(f"the hub took {limit} messages of {size} bytes for a node that reads nothing")


@overrides(send_buffer_bytes=512 * 1024, write_timeout=60.0)
async def test_node_that_stops_reading_is_cut_when_its_backlog_is_full(local_hub: LocalHub,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    stuck_tls, calm_tls = local_hub.client("edge-stuck"), local_hub.client("edge-calm")
    async with local_hub.connect("edge-stuck", stuck_tls, sock=small_window_socket(local_hub.port),
                                 server_hostname="127.0.0.1", close_timeout=1) as stuck, \
            local_hub.connect("edge-calm", calm_tls) as calm:
        await wait_until(lambda: {"edge-stuck", "edge-calm"} <= set(local_hub.hub.sessions), 5, "sessions not registered")
        stuck.transport.pause_reading()
        with caplog.at_level(logging.WARNING, "kubeedge.cloudhub"):
            sent, slowest = await send_until_refused(local_hub, "edge-stuck", 64 * 1024, 2000)
            latency = await round_trip(calm)
        assert slowest < 0.1, f"a send to the stuck node took {slowest:.3f}s: the sender waited on it"
        assert sent * 64 * 1024 < 8 * 1024 * 1024  # the backlog bound, not memory, stopped it
        assert latency < 2.0
        await wait_until(lambda: "edge-stuck" not in local_hub.hub.sessions, 10, "the stuck session was not ended")
        assert await local_hub.hub.send_to_node("edge-stuck", big_message(10)) is False
        assert await round_trip(calm) < 2.0  # and the bystander's session is untouched
    assert "node edge-stuck does not read what is sent to it" in caplog.text and "sendBufferBytes" in caplog.text
    assert "edge-calm does not read" not in caplog.text


@overrides(send_buffer_bytes=64 * 1024 * 1024, write_timeout=1.0)
async def test_node_that_stops_reading_is_cut_after_write_timeout(local_hub: LocalHub,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    stuck_tls, calm_tls = local_hub.client("edge-stuck"), local_hub.client("edge-calm")
    async with local_hub.connect("edge-stuck", stuck_tls, sock=small_window_socket(local_hub.port),
                                 server_hostname="127.0.0.1", close_timeout=1) as stuck, \
            local_hub.connect("edge-calm", calm_tls) as calm:
        await wait_until(lambda: {"edge-stuck", "edge-calm"} <= set(local_hub.hub.sessions), 5, "sessions not registered")
        stuck.transport.pause_reading()
        with caplog.at_level(logging.WARNING, "kubeedge.cloudhub"):
            started = time.monotonic()
            for _ in range(40):  # 10 MiB: more than the socket buffers take, less than the backlog bound
                assert await local_hub.hub.send_to_node("edge-stuck", big_message(256 * 1024))
            assert time.monotonic() - started < 2.0
            assert await round_trip(calm) < 2.0
            await wait_until(lambda: "edge-stuck" not in local_hub.hub.sessions, 10, "the stuck session was not cut")
        assert await round_trip(calm) < 2.0
    assert "a write did not finish within 1s (writeTimeout)" in caplog.text


@overrides(send_buffer_bytes=256 * 1024, node_message_qps=0)  # unthrottled: the outbox alone must hold
async def test_pings_from_a_node_that_reads_nothing_do_not_stall_its_reader(local_hub: LocalHub) -> None:
    """The hub answers pings through the outbox: a flood of them from a node that never reads the
    answers ends with that node cut, not with the hub's reader blocked on it."""
    stuck_tls = local_hub.client("edge-stuck")
    async with local_hub.connect("edge-stuck", stuck_tls, sock=small_window_socket(local_hub.port),
                                 server_hostname="127.0.0.1", close_timeout=1) as stuck:
        await wait_until(lambda: "edge-stuck" in local_hub.hub.sessions, 5, "session not registered")
        stuck.transport.pause_reading()
        frame = encode(ping())
        with pytest.raises((websockets.ConnectionClosed, OSError, TimeoutError)):
            for _ in range(100_000):
                await asyncio.wait_for(stuck.send(frame), scaled(10))
    assert "edge-stuck" not in local_hub.hub.sessions


@overrides(node_message_qps=20, node_message_burst=10)
async def test_a_flooding_node_is_read_at_its_rate_and_others_are_not(local_hub: LocalHub,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    async with local_hub.connect("edge-flood", local_hub.client("edge-flood")) as flood, \
            local_hub.connect("edge-calm", local_hub.client("edge-calm")) as calm:
        await wait_until(lambda: {"edge-flood", "edge-calm"} <= set(local_hub.hub.sessions), 5, "sessions not registered")
        with caplog.at_level(logging.WARNING, "kubeedge.cloudhub"):
            for _ in range(50):
                await flood.send(encode(ping()))
            started = time.monotonic()
            answered = 0
            while answered < 50:
                frame = await asyncio.wait_for(flood.recv(), scaled(10))
                answered += '"ack"' in str(frame)
            elapsed = time.monotonic() - started
            assert await round_trip(calm) < 0.5  # the bystander is read at once meanwhile
        assert elapsed > 1.5  # 10 at once, then 20 a second: about 2 s for 50
    assert "node edge-flood sends more than 20 messages a second (nodeMessageQPS)" in caplog.text
    assert "edge-calm sends more" not in caplog.text
