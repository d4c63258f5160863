"""The embedded control plane's port (6443) under attack, through real TLS sockets.

A control plane with short limits (1 s for headers and bodies, 6 connections per source) is
attacked from 127.0.0.2 while a bystander on 127.0.0.1 keeps asking ``/readyz`` and listing
nodes: each attack must be refused, the right way (a closed socket, a 4xx ``Status``), and the
bystander must stay fast. Then poisoned writes: whatever an attacker sends, ``kubectl get nodes``
and ``kubectl get pods -A`` keep answering.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.controlplane.launcher import ControlPlane, stop
from tests.integration.conftest import start_controlplane
from tests.timeouts import scaled

ATTACKER, BYSTANDER = "127.0.0.2", "127.0.0.1"
CAP = 6


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = start_controlplane(tmp_path_factory.mktemp("hostile-plane"), server={
        "requestHeaderTimeoutSeconds": 1, "requestBodyTimeoutSeconds": 1, "idleTimeoutSeconds": 5,
        "maxConnectionsPerSource": CAP, "maxJSONDepth": 50})
    try:
        yield started
    finally:
        stop(started)


def tls(plane: ControlPlane) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    pki = plane.ca_file.parent
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return context


def port_of(plane: ControlPlane) -> int:
    return int(plane.config.server.port)


def raw_socket(plane: ControlPlane, source: str = ATTACKER) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(scaled(10))
    sock.connect(("127.0.0.1", port_of(plane)))
    return sock


def tls_socket(plane: ControlPlane, source: str = ATTACKER) -> ssl.SSLSocket:
    return tls(plane).wrap_socket(raw_socket(plane, source), server_hostname="127.0.0.1")


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes ``sock`` (EOF or reset); fails past ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        pass
    except TimeoutError:
        pytest.fail(f"the server kept a connection open past {seconds}s")
    return time.monotonic() - started


def bystander(plane: ControlPlane) -> float:
    """Seconds for the bystander's ``GET /api/v1/nodes`` on a new connection from 127.0.0.1."""
    started = time.monotonic()
    status, _ = request(plane, "GET", "/api/v1/nodes", source=BYSTANDER)
    assert status == 200
    return time.monotonic() - started


def request(plane: ControlPlane, method: str, path: str, body: bytes | None = None, source: str = ATTACKER,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPSConnection("127.0.0.1", port_of(plane), context=tls(plane), timeout=scaled(10),
                                             source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        reply = connection.getresponse()
        data = reply.read()
        is_json = reply.getheader("Content-Type", "").startswith("application/json")
        return reply.status, json.loads(data) if data and is_json else {}
    finally:
        connection.close()


# ------------------------------------------------------------------------------- connections
def test_connections_past_the_cap_per_source_are_closed_at_accept(plane: ControlPlane) -> None:
    held = [tls_socket(plane) for _ in range(CAP)]
    try:
        extra = raw_socket(plane)
        assert closed_within(extra, scaled(5)) < scaled(5)  # closed before any TLS work
        extra.close()
        assert bystander(plane) < 1.0  # another source is not affected
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert request(plane, "GET", "/readyz")[0] == 200  # released: the source may connect again


def test_a_silent_connection_is_closed_after_the_header_timeout(plane: ControlPlane) -> None:
    with raw_socket(plane) as silent:  # no TLS handshake at all
        assert closed_within(silent, scaled(6)) < scaled(6)
    with tls_socket(plane) as after_handshake:  # a handshake, then nothing
        assert closed_within(after_handshake, scaled(6)) < scaled(6)


def test_header_dribbling_is_cut_and_does_not_delay_others(plane: ControlPlane) -> None:
    sock = tls_socket(plane)
    started = time.monotonic()
    latencies = []
    try:
        for byte in b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
            sock.sendall(bytes([byte]))
            latencies.append(bystander(plane))
            time.sleep(0.1)
            if time.monotonic() - started > scaled(6):
                break
        pytest.fail("the server kept reading a request head for more than 6 s")
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        pass
    finally:
        sock.close()
    assert time.monotonic() - started < scaled(6)
    assert max(latencies) < 1.0


def test_a_body_that_trickles_gets_408_and_the_connection_closed(plane: ControlPlane) -> None:
    sock = tls_socket(plane)
    sock.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    started = time.monotonic()
    sock.settimeout(scaled(6))
    reply = b""
    try:
        while chunk := sock.recv(4096):
            reply += chunk
            sock.sendall(b" ")  # one byte now and then: never the whole body
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        pass
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"reason":"Timeout"' in reply
    assert time.monotonic() - started < scaled(6)


# ------------------------------------------------------------------------------------ bodies
def test_bodies_that_cost_more_than_they_say_are_4xx(plane: ControlPlane) -> None:
    name = f"h-{uuid.uuid4().hex[:8]}"
    deep = b'{"metadata":{"name":"' + name.encode() + b'"},"data":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}"
    status, reply = request(plane, "POST", "/api/v1/namespaces/default/configmaps", deep)
    assert (status, reply["reason"]) == (400, "BadRequest") and "max depth" in reply["message"]
    status, reply = request(plane, "POST", "/api/v1/namespaces/default/configmaps",
                            b'{"metadata":{"name":"\xff\xfe"}}')
    assert status == 400 and "invalid UTF-8" in reply["message"]
    status, reply = request(plane, "POST", "/api/v1/namespaces/default/configmaps",
                            b'{"metadata":{"name":"x"},"data":{"n":NaN}}')
    assert status == 400
    status, reply = request(plane, "POST", "/api/v1/namespaces/default/configmaps", b"\x1f\x8b\x08\x00",
                            headers={"Content-Encoding": "gzip"})
    assert (status, reply["reason"]) == (415, "UnsupportedMediaType")
    status, reply = request(plane, "GET", "/api/v1/nodes?resourceVersion=" + "9" * 40)
    assert status == 400 and "resourceVersion" in reply["message"]
    status, reply = request(plane, "GET", "/api/v1/nodes?limit=abc")
    assert status == 400 and "limit" in reply["message"]
    body = json.dumps({"metadata": {"name": name, "resourceVersion": "1" * 30}}).encode()
    status, reply = request(plane, "PUT", f"/api/v1/namespaces/default/configmaps/{name}", body)
    assert status in (404, 422)  # never a 500, whatever comes first
    assert bystander(plane) < 1.0


def kubectl(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", *args], capture_output=True, text=True,
                          timeout=scaled(30), check=False)


def test_poisoned_status_is_refused_and_the_cluster_keeps_answering(plane: ControlPlane, tmp_path: Path) -> None:
    node = f"poison-{uuid.uuid4().hex[:6]}"
    status, _ = request(plane, "POST", "/api/v1/nodes", json.dumps({"metadata": {"name": node}}).encode())
    assert status == 201
    for poison in ({"status": {"conditions": "Ready"}}, {"status": {"capacity": ["cpu"]}},
                   {"status": {"conditions": [{"type": 5, "status": "True"}]}}, {"status": "up"},
                   {"status": {"addresses": [{"type": "InternalIP", "address": {"ip": 1}}]}}):
        status, reply = request(plane, "PATCH", f"/api/v1/nodes/{node}/status", json.dumps(poison).encode(),
                                headers={"Content-Type": "application/merge-patch+json"})
        assert (status, reply.get("reason")) == (400, "BadRequest"), (poison, reply)
    pod = {"metadata": {"name": node}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert request(plane, "POST", "/api/v1/namespaces/default/pods", json.dumps(pod).encode())[0] == 201
    status, reply = request(plane, "PATCH", f"/api/v1/namespaces/default/pods/{node}/status",
                            json.dumps({"status": {"containerStatuses": {"name": "c"}}}).encode(),
                            headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert status == 400, reply
    for args in (("get", "nodes"), ("get", "pods", "-A"), ("get", "nodes", "-o", "wide")):
        done = kubectl(plane, *args)
        assert done.returncode == 0, done.stderr
        assert node in done.stdout
