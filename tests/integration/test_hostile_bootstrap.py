"""Hostile clients of the bootstrap port (10002), through a real CloudCore and real sockets.

Anyone who can reach the port may talk to it before any identity, so:

- class 2, names used as paths: ``GET /node/<name>`` and the ``NodeName`` header are DNS-1123
  names before use; a path-shaped name or a smuggled ``?watch=true`` gets 400 and never reaches
  the API (it answers at once; a watch sent with CloudCore's identity would hold the request);
- CVE-2022-31076 class (a decoder that crashed on a missing field): missing headers, empty,
  garbage, truncated or mis-signed CSRs, a certificate where a CSR belongs, bad tokens, broken
  HTTP: each a 4xx with a reason, never a 500, and the server goes on serving;
- class 6, slowloris: idle sockets are closed (TLS handshake deadline, header deadline), one
  source gets a bounded number of connections, and a real join and a bystander's session go on.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs import x509 as certs
from cores.cloud.cloudhub import bootstrap
from cores.controlplane.launcher import ControlPlane
from cores.edge.edgehub import certificate
from tests.integration.edgecloud import Cloud, start_cloud
from tests.integration.hostile import bystander_latency, node_credentials, session
from tests.integration.test_hostile_certs import BYSTANDER_LIMIT, ca_der, https, join_headers, log_has, unique
from tests.timeouts import scaled, wait_for


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


def raw_request(cloud: Cloud, data: bytes) -> bytes:
    """Bytes as they are (no client library tidying them) over TLS; the reply's status line."""
    context = certificate.client_context(cadata=ssl.DER_cert_to_PEM_cert(ca_der(cloud)))
    with socket.create_connection(("127.0.0.1", cloud.https_port), timeout=scaled(30)) as plain, \
            context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:
        tls.sendall(data)
        return tls.recv(65536).split(b"\r\n", 1)[0]


# ------------------------------------------------------------------------ class 2: names as paths
@pytest.mark.parametrize("path", [
    "/node/edge-1%3Fwatch=true", "/node/edge-1?watch=true", "/node/..%2Fsecrets%2Ftokensecret", "/node/a/b",
    "/node/Edge-1", "/node/edge-1%0A", "/node/" + "a" * 254, "/node/", "/node/kube-system%2Fsecrets",
])
def test_path_shaped_node_names_are_refused_before_any_api_call(cloud: Cloud, path: str) -> None:
    started = time.monotonic()
    status, text = https(cloud, path)
    elapsed = time.monotonic() - started
    assert status == 400, (status, text)
    assert "DNS-1123 subdomain" in text.decode() or "takes no query" in text.decode()
    # a ?watch=true that reached the API with CloudCore's identity would hold this request open
    assert elapsed < scaled(2.0), elapsed
    assert wait_for(lambda: log_has(cloud, "bootstrap request GET", "refused (400)"), 5, "refusal not logged")


def test_a_valid_name_still_answers_found_or_not_found(cloud: Cloud) -> None:
    """keadm join's preflight, as upstream: 404 for a free name."""
    status, text = https(cloud, f"/node/{unique('hb-free')}")
    assert (status, text) == (404, b"Node not found")


def test_node_name_header_must_be_a_dns1123_name(cloud: Cloud, controlplane: ControlPlane) -> None:
    csr = certs.csr_to_der(certs.create_node_csr("edge-x", certs.generate_key()))
    for name in ("../../api/v1/nodes", "Edge-X", "edge-x?watch=true", "a" * 254):
        status, text = https(cloud, "/edge.crt", body=csr, headers=join_headers(cloud, controlplane.kubeconfig, name))
        assert status == 400 and b"DNS-1123 subdomain" in text, (name, status, text)
        assert log_has(cloud, f"for node {name[:253]!r} refused (400)")  # long names are cut in the log


# ----------------------------------------------------------------- CVE-2022-31076: never a crash
def test_broken_requests_get_a_4xx_with_a_reason_and_the_server_goes_on(cloud: Cloud, controlplane: ControlPlane,
                                                                       tmp_path: Path) -> None:
    node = unique("hb-broken")
    good = certs.csr_to_der(certs.create_node_csr(node, certs.generate_key()))
    headers = join_headers(cloud, controlplane.kubeconfig, node)
    tampered = bytearray(good)
    tampered[-10] ^= 0x01
    no_token = {k: v for k, v in headers.items() if k != "Authorization"}
    cases: dict[str, tuple[bytes | None, dict[str, str]]] = {
        "no NodeName": (good, {k: v for k, v in headers.items() if k != "NodeName"}),
        "empty NodeName": (good, {**headers, "NodeName": ""}),
        "no body": (None, headers),
        "garbage body": (b"\x00garbage" * 50, headers),
        "truncated CSR": (good[: len(good) // 2], headers),
        "bad CSR signature": (bytes(tampered), headers),
        "a certificate, not a CSR": (ca_der(cloud), headers),
        "PEM, not DER": (b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n", headers),
        "no token": (good, no_token),
        "garbage token": (good, {**headers, "Authorization": "Bearer a.b.c"}),
        "not base64 token": (good, {**headers, "Authorization": "Bearer !!!.@@@.###"}),
        "Basic auth": (good, {**headers, "Authorization": "Basic Zm9vOmJhcg=="}),
        "ExtKeyUsages not JSON": (b"\x00", {**headers, "ExtKeyUsages": "{{{"}),
        "too large": (b"\x30" * (bootstrap.MAX_CSR_BYTES + 1), headers),
    }
    for case, (body, case_headers) in cases.items():
        status, text = https(cloud, "/edge.crt", body=body, headers=case_headers)
        assert 400 <= status < 500 and text.strip(), (case, status, text)
    for data in (b"GARBAGE\r\n\r\n", b"GET /edge.crt HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                 b"GET /ca.crt HTTP/1.1\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"):
        status_line = raw_request(cloud, data)
        assert status_line.startswith(b"HTTP/1.1 4") or status_line.startswith(b"HTTP/1.0 4"), (data[:40], status_line)

    assert "Traceback" not in cloud.log() and "failed" not in "".join(
        line for line in cloud.log().splitlines() if "bootstrap request" in line)
    assert https(cloud, "/ca.crt")[0] == 200
    paths = certificate.CertificatePaths(tmp_path / "ca", tmp_path / "crt", tmp_path / "key")
    certificate.bootstrap(f"https://127.0.0.1:{cloud.https_port}", cloud.token(controlplane.kubeconfig), node, paths)
    assert log_has(cloud, f"signed a certificate for node {node} (join)")


# ------------------------------------------------------------------------------- class 6: slowloris
async def _open_idle(host: str, port: int, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    return [await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0)) for _ in range(count)]


async def _closed_within(connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], timeout: float) -> list[float]:
    started = time.monotonic()

    async def closed(reader: asyncio.StreamReader) -> float:
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        return time.monotonic() - started

    try:
        return list(await asyncio.wait_for(asyncio.gather(*(closed(reader) for reader, _ in connections)), timeout))
    finally:
        for _, writer in connections:
            writer.close()


def test_idle_and_slow_sockets_are_closed_while_joins_go_on(cloud: Cloud, controlplane: ControlPlane, tmp_path: Path) -> None:
    token = cloud.token(controlplane.kubeconfig)
    calm_name = unique("hb-calm")
    calm_context = node_credentials(cloud, token, tmp_path / "calm", calm_name)
    context = certificate.client_context(cadata=ssl.DER_cert_to_PEM_cert(ca_der(cloud)))
    port = cloud.https_port

    async def dribble() -> float:
        """Headers one line a second, never finished: cut at the header deadline."""
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1",
                                                       local_addr=("127.0.0.4", 0))
        try:
            writer.write(b"GET /ca.crt HTTP/1.1\r\nHost: x\r\n")
            for _ in range(int(bootstrap.HEADER_SECONDS * 3)):
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                if reader.at_eof():
                    break
                await asyncio.sleep(1)
            await reader.read()
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()
        return time.monotonic() - started

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        async with session(cloud, calm_name, calm_context) as calm:
            latencies = [await bystander_latency(calm, calm_name)]
            opened = time.monotonic()
            # 200 sockets that never start TLS, from one source: the cap admits CONNECTIONS_PER_SOURCE
            idle = await _open_idle("127.0.0.2", port, 200)
            # 20 that finish TLS and then say nothing, from another
            tls_idle = [await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1",
                                                      local_addr=("127.0.0.3", 0)) for _ in range(20)]
            dribbler = asyncio.create_task(dribble())
            latencies.append(await bystander_latency(calm, calm_name))
            # meanwhile, a real join from 127.0.0.1
            join_started = time.monotonic()
            paths = certificate.CertificatePaths(tmp_path / "j" / "ca", tmp_path / "j" / "crt", tmp_path / "j" / "key")
            await asyncio.to_thread(certificate.bootstrap, f"https://127.0.0.1:{port}", token, unique("hb-join"), paths)
            seen["join"] = time.monotonic() - join_started
            latencies.append(await bystander_latency(calm, calm_name))
            limit = bootstrap.HANDSHAKE_SECONDS + bootstrap.HEADER_SECONDS + scaled(10)
            closed_idle, closed_tls, dribbled = await asyncio.gather(
                _closed_within(idle, limit), _closed_within(tls_idle, limit), asyncio.wait_for(dribbler, limit))
            seen["idle"], seen["tls"], seen["dribble"] = closed_idle, closed_tls, dribbled
            seen["all_closed_after"] = time.monotonic() - opened
            latencies.append(await bystander_latency(calm, calm_name))
            seen["latencies"] = latencies
        return seen

    seen = asyncio.run(scenario())
    idle, tls = sorted(seen["idle"]), sorted(seen["tls"])  # type: ignore[type-var]
    refused_at_once = [t for t in idle if t < 2.0]
    assert len(refused_at_once) >= 200 - bootstrap.CONNECTIONS_PER_SOURCE - 2, idle  # over the cap: reset at once
    assert max(idle) < bootstrap.HANDSHAKE_SECONDS + scaled(5), idle                 # the rest: handshake deadline
    assert max(tls) < bootstrap.HEADER_SECONDS + scaled(5), tls                      # TLS done, no request: header deadline
    assert seen["dribble"] < bootstrap.HEADER_SECONDS + scaled(5), seen["dribble"]  # type: ignore[operator]
    assert seen["join"] < scaled(10), seen["join"]  # type: ignore[operator]
    assert max(seen["latencies"]) < scaled(BYSTANDER_LIMIT), seen["latencies"]  # type: ignore[type-var]
    assert log_has(cloud, "refusing connections from 127.0.0.2", f"cap {bootstrap.CONNECTIONS_PER_SOURCE}")
    assert log_has(cloud, "closing the connection from 127.0.0.3: no complete request within")
    assert log_has(cloud, "closing the connection from 127.0.0.4: no complete request within")
    # and the port serves again from the attacker's address once its sockets are gone
    status_line = raw_request(cloud, b"GET /node/hb-after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_line == b"HTTP/1.1 404 Not Found"
