"""Hostile edges, class 4 (certificates beyond the node) and class 7 (revocation), the pure parts.

A node certificate is exactly ``CN=system:node:<name>``, ``O=system:nodes``, ``clientAuth``
whatever the CSR asks, from an acceptable key only, and can sign nothing; whatever bytes arrive
as a CSR, signing raises a ``CertsError`` and nothing else (CVE-2022-31076 class: a decoder that
crashes on a missing or broken field). Serials compare equal in the form ``ssl`` reports.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import x509
from certs.errors import CertsError, CSRSubjectMismatch, MalformedCSR, UnacceptableKey
from cores.cloud.revocation import _entries, serial_key
from tests.captures import UPSTREAM

CA = x509.create_ca()


def csr_for(key: object, subject: cx509.Name, extensions: list[cx509.ExtensionType] | None = None) -> bytes:
    builder = cx509.CertificateSigningRequestBuilder().subject_name(subject)
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return x509.csr_to_der(builder.sign(key, algorithm))  # type: ignore[arg-type]


def node_subject(node: str, *extra: cx509.NameAttribute[str]) -> cx509.Name:
    return cx509.Name([*extra, cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                       cx509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")])


def test_a_greedy_csr_gets_exactly_a_node_certificate() -> None:
    greedy = csr_for(x509.generate_key(), node_subject("edge-1", cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")), [
        cx509.SubjectAlternativeName([cx509.DNSName("kubernetes.default"), cx509.IPAddress(ipaddress.ip_address("10.0.0.1"))]),
        cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]),
        cx509.BasicConstraints(ca=True, path_length=None),
    ])
    cert = x509.sign_node_csr(greedy, CA[0], CA[1], "edge-1")
    assert cert.subject.rfc4514_string() == "CN=system:node:edge-1,O=system:nodes"
    assert list(cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = cert.extensions.get_extension_for_class(cx509.KeyUsage)
    assert usage.critical and not usage.value.key_cert_sign and not usage.value.crl_sign
    oids = {extension.oid for extension in cert.extensions}
    assert cx509.SubjectAlternativeName.oid not in oids
    basic = [e for e in cert.extensions if e.oid == cx509.BasicConstraints.oid]
    assert not basic or not basic[0].value.ca
    asked = x509.csr_extras(greedy)
    assert "organizationName 'system:masters'" in asked
    assert {"extension subjectAltName", "extension extendedKeyUsage", "extension basicConstraints"} <= set(asked)


def test_upstream_edgecore_csr_asks_for_nothing_more() -> None:
    """The captured CSR of upstream's edgecore (v1.23) still signs, and is not reported as greedy."""
    exchanges = json.loads((UPSTREAM / "bootstrap.json").read_text())["exchanges"]
    for join in (e for e in exchanges if e["path"] == "/edge.crt"):
        node = dict(join["request_headers"])["Nodename"]
        csr = base64.b64decode(join["request_body_b64"])
        assert x509.csr_extras(csr) == []
        assert x509.sign_node_csr(csr, CA[0], CA[1], node).subject.rfc4514_string() == f"CN=system:node:{node},O=system:nodes"
    assert x509.csr_extras(x509.csr_to_der(x509.create_node_csr("edge-1", x509.generate_key()))) == []


def test_a_csr_for_another_node_or_without_the_nodes_group_is_refused() -> None:
    with pytest.raises(CSRSubjectMismatch, match="system:node:edge-2"):
        x509.sign_node_csr(csr_for(x509.generate_key(), node_subject("edge-2")), CA[0], CA[1], "edge-1")
    masters = cx509.Name([cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                          cx509.NameAttribute(NameOID.COMMON_NAME, "system:node:edge-1")])
    with pytest.raises(CSRSubjectMismatch, match="system:nodes"):
        x509.sign_node_csr(csr_for(x509.generate_key(), masters), CA[0], CA[1], "edge-1")


@pytest.mark.parametrize("make_key, accepted", [
    (lambda: ec.generate_private_key(ec.SECP256R1()), True),
    (lambda: ec.generate_private_key(ec.SECP384R1()), True),
    (lambda: rsa.generate_private_key(65537, 2048), True),
    (lambda: rsa.generate_private_key(65537, 1024), False),
    (lambda: ec.generate_private_key(ec.SECP521R1()), False),
    (lambda: ec.generate_private_key(ec.SECP256K1()), False),
    (ed25519.Ed25519PrivateKey.generate, False),
], ids=["p256", "p384", "rsa2048", "rsa1024", "p521", "secp256k1", "ed25519"])
def test_only_acceptable_keys_are_certified(make_key: object, accepted: bool) -> None:
    csr = csr_for(make_key(), node_subject("edge-1"))  # type: ignore[operator]
    if accepted:
        assert x509.sign_node_csr(csr, CA[0], CA[1], "edge-1")
    else:
        with pytest.raises(UnacceptableKey, match="neither EC P-256/P-384 nor RSA"):
            x509.sign_node_csr(csr, CA[0], CA[1], "edge-1")


def mutual_tls(tmp_path: Path, chain: list[cx509.Certificate], key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """One real TLS handshake (socketpair) where the client presents ``chain`` to a server that
    trusts only the CA; returns the server's view: the peer's serial, or the error."""
    server_key = x509.generate_key()
    server = x509.create_server_cert(CA[0], CA[1], server_key, ip_addresses=["127.0.0.1"], dns_names=[])
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = {name: tmp_path / name for name in ("ca", "s.crt", "s.key", "c.crt", "c.key")}
    files["ca"].write_bytes(x509.cert_to_pem(CA[0]))
    files["s.crt"].write_bytes(x509.cert_to_pem(server))
    files["s.key"].write_bytes(x509.key_to_pem(server_key))
    files["c.crt"].write_bytes(b"".join(x509.cert_to_pem(cert) for cert in chain))
    files["c.key"].write_bytes(x509.key_to_pem(key))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files["ca"]))
    server_context.load_cert_chain(files["s.crt"], files["s.key"])
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(files["ca"]))
    client_context.load_cert_chain(files["c.crt"], files["c.key"])
    left, right = socket.socketpair()
    seen: dict[str, str] = {}

    def serve() -> None:
        try:
            with server_context.wrap_socket(left, server_side=True) as tls:
                seen["serial"] = str(tls.getpeercert()["serialNumber"])  # type: ignore[index]
        except ssl.SSLError as error:
            seen["error"] = str(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(right, server_hostname="127.0.0.1") as tls:
            tls.do_handshake()
            tls.recv(1)  # TLS 1.3: the server's verdict on the client certificate arrives after the handshake
    except (ssl.SSLError, OSError):
        pass
    thread.join(10)
    left.close()
    right.close()
    return seen


def test_a_node_certificate_cannot_act_as_a_ca(tmp_path: Path) -> None:
    """OpenSSL (what CloudHub's TLS uses) refuses a chain CA -> node certificate -> forged leaf:
    the node certificate's KeyUsage has no keyCertSign."""
    node_key = x509.generate_key()
    node_cert = x509.sign_node_csr(x509.csr_to_der(x509.create_node_csr("edge-1", node_key)), CA[0], CA[1], "edge-1")
    assert "serial" in mutual_tls(tmp_path / "own", [node_cert], node_key)  # the node certificate itself is fine
    forged_key = x509.generate_key()
    now = datetime.datetime.now(datetime.UTC)
    forged = (cx509.CertificateBuilder().subject_name(node_subject("edge-2")).issuer_name(node_cert.subject)
              .public_key(forged_key.public_key()).serial_number(7).not_valid_before(now - datetime.timedelta(minutes=1))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
              .sign(node_key, hashes.SHA256()))
    seen = mutual_tls(tmp_path / "forged", [forged, node_cert], forged_key)
    assert "serial" not in seen and "invalid CA certificate" in seen.get("error", ""), seen


def _mutations(der: bytes) -> list[bytes]:
    cases = [b"", b"\x00", b"\x30", b"\x30\x00", b"\x30\x82\xff\xff", b"garbage" * 10, der[:-1], der[: len(der) // 2],
             der + b"\x00", b"-----BEGIN CERTIFICATE REQUEST-----\n", x509.cert_to_der(CA[0])]
    for position in range(len(der)):
        mutated = bytearray(der)
        mutated[position] ^= 0xFF
        cases.append(bytes(mutated))
    return cases


def test_no_bytes_make_the_signer_raise_anything_but_a_certs_error() -> None:
    """CVE-2022-31076 class: every byte of a real CSR flipped, truncations, garbage, a certificate."""
    der = x509.csr_to_der(x509.create_node_csr("edge-1", x509.generate_key()))
    refused = 0
    for case in _mutations(der):
        try:
            cert = x509.sign_node_csr(case, CA[0], CA[1], "edge-1")
        except CertsError:
            refused += 1
            continue
        # a flip the DER tolerates (say, in a string's content) must still yield only the node's certificate
        assert cert.subject.rfc4514_string() == "CN=system:node:edge-1,O=system:nodes"
        x509.csr_extras(case)  # never raises either
    assert refused > len(der) // 2
    with pytest.raises(MalformedCSR):
        x509.sign_node_csr(b"", CA[0], CA[1], "edge-1")


# --- serials -----------------------------------------------------------------------------------


@pytest.mark.parametrize("serial", [1, 0xABC, 0x80, 0xFF00, 0x0123456789ABCDEF, 2**62 + 5, 2**63 - 1])
def test_serial_key_equals_what_ssl_reports_for_a_peer(serial: int, tmp_path: Path) -> None:
    """``getpeercert()['serialNumber']`` pads to whole bytes ("0ABC"); serial_key maps both forms to one."""
    client_key = x509.generate_key()
    now = datetime.datetime.now(datetime.UTC)
    client = (cx509.CertificateBuilder().subject_name(node_subject("edge-1")).issuer_name(CA[0].subject)
              .public_key(client_key.public_key()).serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=1))
              .not_valid_after(now + datetime.timedelta(days=1)).sign(CA[1], hashes.SHA256()))
    reported = mutual_tls(tmp_path, [client], client_key)["serial"]
    assert serial_key(reported) == serial_key(serial) == format(serial, "X")
    assert serial_key(reported.lower()) == serial_key(serial)


def test_serial_key_refuses_what_is_no_serial() -> None:
    for bad in ("", "xyz", "-1", "0x"):
        with pytest.raises(ValueError):
            serial_key(bad)
    with pytest.raises(ValueError):
        serial_key(-5)


def test_list_entries_are_read_by_canonical_serial_and_survive_junk() -> None:
    config_map = {"data": {"0ABC": json.dumps({"node": "edge-1"}), "FF": "not json", "nothex": "{}"}}
    assert _entries(config_map) == {"ABC": {"node": "edge-1"}, "FF": {}}
    assert _entries(None) == {} and _entries({"data": None}) == {}


# --- the revocation store's rules, over an in-memory API -----------------------------------------


class MemoryKube:
    """Just enough of the API for two ConfigMaps: GET, JSON merge PATCH of data keys, POST."""

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, object]] = {}
        self.version = 0

    async def request(self, method: str, path: str, body: dict[str, object] | None = None, **_: object) -> dict[str, object]:
        from cores.cloud.kube import KubeError

        name = path.rsplit("/", 1)[-1]
        self.version += 1
        if method == "POST":
            assert body is not None
            name = body["metadata"]["name"]  # type: ignore[index]
            if name in self.maps:
                raise KubeError({"code": 409})
            self.maps[name] = {**body, "metadata": {"name": name, "resourceVersion": str(self.version)}}  # type: ignore[dict-item]
            return self.maps[name]
        if name not in self.maps:
            raise KubeError({"code": 404})
        if method == "PATCH":
            assert body is not None
            data = self.maps[name].setdefault("data", {})
            for key, value in body["data"].items():  # type: ignore[attr-defined]
                if value is None:
                    data.pop(key, None)  # type: ignore[attr-defined]
                else:
                    data[key] = value  # type: ignore[index]
            self.maps[name]["metadata"] = {"name": name, "resourceVersion": str(self.version)}
        return self.maps[name]


def test_revocation_rules_reconcile_and_prune() -> None:
    from cores.cloud.revocation import ISSUED, REVOKED, Revocations

    async def scenario() -> None:
        kube = MemoryKube()
        store = Revocations(kube)  # type: ignore[arg-type]
        await store.load()
        now = datetime.datetime.now(datetime.UTC)
        year = datetime.timedelta(days=365)
        await store.record_issued("kept", 0x0A, now + year)
        await store.record_issued("gone", 0x0B, now + year)
        await store.record_issued("joining", 0x0C, now + year)  # never registers
        await store.record_issued("old", 0x0D, now - datetime.timedelta(days=1))  # expired
        assert await store.reconcile({"kept", "gone"}) == []  # marks kept and gone registered
        assert await store.reconcile({"kept"}) == ["B"]       # gone is gone: revoked; joining is left alone
        assert store.is_revoked("0B") and store.is_revoked("b") and not store.is_revoked("0C")
        assert not store.is_revoked("") and not store.is_revoked("zz")
        assert set(kube.maps[ISSUED]["data"]) == {"A", "C", "D"}  # type: ignore[arg-type]
        assert json.loads(kube.maps[REVOKED]["data"]["B"])["node"] == "gone"  # type: ignore[index]
        await store.prune()
        assert set(kube.maps[ISSUED]["data"]) == {"A", "C"}  # type: ignore[arg-type]
        assert await store.revoke_node("kept") == ["A"]
        other = Revocations(kube)  # another CloudCore reads the shared list
        await other.load()
        assert other.is_revoked("0A") and other.is_revoked("0B")

    import asyncio

    asyncio.run(scenario())
