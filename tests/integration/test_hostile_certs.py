"""Hostile edges, class 4: certificates beyond the node, through a real CloudCore and real TLS.

The bootstrap server signs only node certificates (exactly ``CN=system:node:<NodeName>``,
``O=system:nodes``, ``clientAuth``) whatever the CSR or the ``ExtKeyUsages`` header asks, and
EdgeHub (its WebSocket, the join and the renewal) accepts a server only when its certificate
names the address dialled, or the name pinned in ``modules.edgeHub.tlsServerName``. Each attack:
a clear refusal, logged with the node's name, and a bystander node's round trip stays short.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import http.client
import ipaddress
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import token as tokens
from certs import x509 as certs
from cores.common import config as configs
from cores.common import layout as layouts
from cores.controlplane.launcher import ControlPlane
from cores.edge.edgehub import EdgeHub, certificate
from tests.integration.edgecloud import Cloud, start_cloud
from tests.integration.hostile import PROJECT_ID, bystander_latency, node_credentials, session
from tests.timeouts import scaled, wait_for

BYSTANDER_LIMIT = 2.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


# ------------------------------------------------------------------------------------ helpers
def ca_der(cloud: Cloud) -> bytes:
    return certificate.fetch_ca(f"https://127.0.0.1:{cloud.https_port}")


def https(cloud: Cloud, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
          context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """One request to the bootstrap port, the server checked against the cluster CA."""
    context = context or certificate.client_context(cadata=ssl.DER_cert_to_PEM_cert(ca_der(cloud)))
    connection = http.client.HTTPSConnection("127.0.0.1", cloud.https_port, context=context, timeout=scaled(30))
    try:
        connection.request("GET", path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def join_headers(cloud: Cloud, kubeconfig: Path, node: str, **extra: str) -> dict[str, str]:
    jwt = tokens.verify_ca_hash(cloud.token(kubeconfig), ca_der(cloud))
    return {"Authorization": f"Bearer {jwt}", "NodeName": node, "Content-Type": "application/octet-stream", **extra}


def csr(key: Any, subject: list[tuple[Any, str]], extensions: list[cx509.ExtensionType] = ()) -> bytes:  # type: ignore[assignment]
    builder = cx509.CertificateSigningRequestBuilder().subject_name(
        cx509.Name([cx509.NameAttribute(oid, value) for oid, value in subject]))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return certs.csr_to_der(builder.sign(key, hashes.SHA256()))


def log_has(cloud: Cloud, *parts: str) -> bool:
    return any(all(part in line for part in parts) for line in cloud.log().splitlines())


@contextlib.asynccontextmanager
async def bystander(cloud: Cloud, token: str, base: Path) -> AsyncIterator[tuple[Any, str]]:
    name = unique("hc-calm")
    context = await asyncio.to_thread(node_credentials, cloud, token, base, name)
    async with session(cloud, name, context) as connection:
        yield connection, name


# ------------------------------------------------------------------------- what a CSR may ask
def test_a_greedy_csr_gets_only_a_node_certificate(cloud: Cloud, controlplane: ControlPlane, tmp_path: Path) -> None:
    token = cloud.token(controlplane.kubeconfig)
    node = unique("hc-greedy")

    async def scenario() -> tuple[list[float], dict[str, tuple[int, bytes]]]:
        async with bystander(cloud, token, tmp_path / "calm") as (calm, calm_name):
            latencies = [await bystander_latency(calm, calm_name)]
            key = certs.generate_key()
            greedy = csr(key, [(NameOID.ORGANIZATION_NAME, "system:masters"), (NameOID.ORGANIZATION_NAME, "system:nodes"),
                               (NameOID.COMMON_NAME, f"system:node:{node}")], [
                cx509.SubjectAlternativeName([cx509.DNSName("kubernetes.default"), cx509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                cx509.BasicConstraints(ca=True, path_length=None)])
            headers = join_headers(cloud, controlplane.kubeconfig, node, ExtKeyUsages="[1,2]")
            replies = {"greedy": await asyncio.to_thread(https, cloud, "/edge.crt", body=greedy, headers=headers)}
            latencies.append(await bystander_latency(calm, calm_name))
            other_cn = csr(certs.generate_key(), [(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                                  (NameOID.COMMON_NAME, f"system:node:{calm_name}")])
            replies["other-cn"] = await asyncio.to_thread(https, cloud, "/edge.crt", body=other_cn, headers=headers)
            masters = csr(certs.generate_key(), [(NameOID.ORGANIZATION_NAME, "system:masters"),
                                                 (NameOID.COMMON_NAME, f"system:node:{node}")])
            replies["masters-only"] = await asyncio.to_thread(https, cloud, "/edge.crt", body=masters, headers=headers)
            weak = csr(rsa.generate_private_key(65537, 1024), [(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                                               (NameOID.COMMON_NAME, f"system:node:{node}")])
            replies["weak-key"] = await asyncio.to_thread(https, cloud, "/edge.crt", body=weak, headers=headers)
            latencies.append(await bystander_latency(calm, calm_name))
            return latencies, replies

    latencies, replies = asyncio.run(scenario())
    status, der = replies["greedy"]
    assert status == 200, der
    cert = certs.cert_from_der(der)
    assert cert.subject.rfc4514_string() == f"CN=system:node:{node},O=system:nodes"
    assert list(cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(cx509.KeyUsage).value.key_cert_sign
    assert cx509.SubjectAlternativeName.oid not in {extension.oid for extension in cert.extensions}
    assert all(not e.value.ca for e in cert.extensions if e.oid == cx509.BasicConstraints.oid)
    assert wait_for(lambda: log_has(cloud, f"node {node} (from 127.0.0.1) asked for", "system:masters", "subjectAltName",
                                    "ExtKeyUsages [1,2]", "not granted"), 5, "the greedy CSR was not logged")

    for case, reason in (("other-cn", f"system:node:{node}"), ("masters-only", "system:nodes"), ("weak-key", "neither EC")):
        status, text = replies[case]
        assert status == 400 and reason in text.decode(), (case, status, text)
        assert log_has(cloud, f"for node '{node}' refused (400)", reason), case
    assert max(latencies) < scaled(BYSTANDER_LIMIT), latencies


# --------------------------------------------------------------------- the edge checks the cloud
@contextlib.asynccontextmanager
async def relay(listen_host: str, target_port: int) -> AsyncIterator[int]:
    """TCP from ``listen_host``:<port> to 127.0.0.1:``target_port`` (loopback 127.0.0.0/8 routes locally)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(client, listen_host, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


def edge_hub(tmp_path: Path, paths: certificate.CertificatePaths, node: str, host: str, websocket_port: int, https_port: int,
             pinned: str = "") -> EdgeHub:
    """EdgeHub as edgecore builds it, from a validated edgecore.yaml dialling ``host``."""
    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    document = layouts.edgecore_document(layout, node_name=node, cloud_host=host, token="", websocket_port=websocket_port,
                                         https_port=https_port, node_ip="127.0.0.1")
    hub = document["modules"]["edgeHub"]
    hub.update(tlsCaFile=str(paths.ca), tlsCertFile=str(paths.cert), tlsPrivateKeyFile=str(paths.key))
    if pinned:
        hub["tlsServerName"] = pinned  # our extension key: validated by the schema like any other
    config_file = layouts.write(layout.edgecore_config, document)
    return EdgeHub(configs.load(configs.EDGECORE, config_file))


def connect(hub: EdgeHub, url: str | None = None) -> Any:
    return websockets.connect(url or hub.url(), ssl=hub._tls(), **hub._server_hostname(), additional_headers=[
        ("Connectionuse", "msg"), ("Node_id", hub.node_name), ("Project_id", PROJECT_ID)],
        ping_interval=None, open_timeout=scaled(10))


async def refused_by_edge(hub: EdgeHub, url: str | None = None) -> str:
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        async with connect(hub, url):
            pass
    return str(refused.value.verify_message)


def test_edgehub_refuses_a_cloud_address_its_certificate_does_not_name(cloud: Cloud, controlplane: ControlPlane,
                                                                       tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """CloudCore's certificate names 127.0.0.1 (and localhost, the host name), not 127.0.0.2: reached
    there, the WebSocket, the renewal and a join are refused, unless the name is pinned."""
    token = cloud.token(controlplane.kubeconfig)
    node = unique("hc-dial")
    node_credentials(cloud, token, tmp_path / "node", node)
    paths = certificate.CertificatePaths(tmp_path / "node" / "rootCA.crt", tmp_path / "node" / "server.crt",
                                         tmp_path / "node" / "server.key")

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with relay("127.0.0.2", cloud.websocket_port) as ws_port, relay("127.0.0.2", cloud.https_port) as https_port, \
                bystander(cloud, token, tmp_path / "calm") as (calm, calm_name):
            seen["latency"] = [await bystander_latency(calm, calm_name)]
            wrong = edge_hub(tmp_path / "wrong", paths, node, "127.0.0.2", ws_port, https_port)
            seen["ws"] = await refused_by_edge(wrong)
            # the connect loop logs it, with the server it dialled
            with caplog.at_level(logging.WARNING, logger="kubeedge.edgehub"):
                loop_task = asyncio.create_task(wrong._connect_loop())
                for _ in range(100):
                    if "certificate verify failed" in caplog.text:
                        break
                    await asyncio.sleep(0.1)
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
            seen["ws_log"] = caplog.text
            with pytest.raises(certificate.CloudNotTrusted) as renewal:
                await asyncio.to_thread(certificate.renew, f"https://127.0.0.2:{https_port}", node, paths)
            seen["renew"] = str(renewal.value)
            fresh = certificate.CertificatePaths(tmp_path / "fresh" / "ca", tmp_path / "fresh" / "crt", tmp_path / "fresh" / "key")
            with pytest.raises(certificate.CloudNotTrusted):
                await asyncio.to_thread(certificate.bootstrap, f"https://127.0.0.2:{https_port}", token, unique("hc-fresh"), fresh)
            seen["fresh_written"] = any(path.exists() for path in (fresh.ca, fresh.cert, fresh.key))
            seen["latency"].append(await bystander_latency(calm, calm_name))

            pinned = edge_hub(tmp_path / "pinned", paths, node, "127.0.0.2", ws_port, https_port, pinned="127.0.0.1")
            async with connect(pinned) as connection:
                seen["pinned_latency"] = await bystander_latency(connection, node)
            await asyncio.to_thread(certificate.renew, f"https://127.0.0.2:{https_port}", node, paths, "127.0.0.1")
            seen["latency"].append(await bystander_latency(calm, calm_name))
        return seen

    seen = asyncio.run(scenario())
    assert "IP address mismatch" in seen["ws"]
    assert "connection to 127.0.0.2:" in seen["ws_log"] and "IP address mismatch" in seen["ws_log"]
    assert "is not the cloud this node trusts" in seen["renew"] and "tlsServerName" in seen["renew"]
    assert not seen["fresh_written"]
    assert seen["pinned_latency"] < scaled(BYSTANDER_LIMIT)
    assert max(seen["latency"]) < scaled(BYSTANDER_LIMIT), seen["latency"]


def _ca_of(controlplane: ControlPlane) -> tuple[Any, Any]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret("casecret", "kubeedge")
    finally:
        api.close()
    return (certs.cert_from_der(base64.b64decode(secret.data["cadata"])),
            certs.key_from_der(base64.b64decode(secret.data["cakeydata"])))


def test_edgehub_refuses_a_server_of_the_same_ca_that_is_not_the_cloud(cloud: Cloud, controlplane: ControlPlane,
                                                                       tmp_path: Path) -> None:
    """A server with a certificate from the cluster's own CA, but naming another host (or a stolen
    node certificate, which names none), is not CloudCore to EdgeHub."""
    token = cloud.token(controlplane.kubeconfig)
    node = unique("hc-fake")
    node_credentials(cloud, token, tmp_path / "node", node)
    paths = certificate.CertificatePaths(tmp_path / "node" / "rootCA.crt", tmp_path / "node" / "server.crt",
                                         tmp_path / "node" / "server.key")
    ca_cert, ca_key = _ca_of(controlplane)
    wrong_key = certs.generate_key()
    wrong = certs.create_server_cert(ca_cert, ca_key, wrong_key, ip_addresses=["192.0.2.10"], dns_names=["evil.example"])
    servers = {"wrong-san": (wrong, wrong_key),
               "node-cert": (certs.cert_from_pem(paths.cert.read_bytes()), certs.key_from_pem(paths.key.read_bytes()))}

    async def scenario() -> dict[str, str]:
        seen: dict[str, str] = {}
        hub = edge_hub(tmp_path / "edge", paths, node, "127.0.0.1", cloud.websocket_port, cloud.https_port)
        for case, (cert, key) in servers.items():
            (tmp_path / f"{case}.crt").write_bytes(certs.cert_to_pem(cert))
            (tmp_path / f"{case}.key").write_bytes(certs.key_to_pem(key))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tmp_path / f"{case}.crt", tmp_path / f"{case}.key")

            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.close()

            server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
            port = server.sockets[0].getsockname()[1]
            try:
                seen[case] = await refused_by_edge(hub, f"wss://127.0.0.1:{port}/{PROJECT_ID}/{node}/events")
                with pytest.raises(certificate.CloudNotTrusted):
                    await asyncio.to_thread(certificate.renew, f"https://127.0.0.1:{port}", node, paths)
            finally:
                server.close()
        async with connect(hub) as connection:  # the real CloudCore, dialled at an address it names, passes
            seen["real"] = str(await bystander_latency(connection, node))
        return seen

    seen = asyncio.run(scenario())
    assert "IP address mismatch" in seen["wrong-san"]
    assert "unsuitable certificate purpose" in seen["node-cert"]  # clientAuth only: it can never serve
    assert float(seen["real"]) < scaled(BYSTANDER_LIMIT)


def test_the_cloud_certificate_names_its_advertised_addresses(cloud: Cloud) -> None:
    """What EdgeHub checks against: CloudCore's certificate carries every advertiseAddress (and localhost)."""
    pem = Path(cloud.layout.certificate_paths()["cert"]).read_bytes()
    san = certs.cert_from_pem(pem).extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(cx509.IPAddress)}
    assert "localhost" in san.get_values_for_type(cx509.DNSName)
    assert datetime.datetime.now(datetime.UTC) < certs.cert_from_pem(pem).not_valid_after_utc
