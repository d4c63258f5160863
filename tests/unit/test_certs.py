"""Tests for ``certs``: join tokens, CA/server/node certificates, CSRs, with real crypto.

Upstream vectors come from ``bootstrap.json`` (a capture of edgecore joining a v1.23
cloudcore): the CA served on /ca.crt, the CSR sent to /edge.crt and the certificate returned.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import token, x509
from certs.errors import (
    CAHashMismatch,
    CertExpired,
    CertNotYetValid,
    CertSignatureInvalid,
    CertsError,
    CSRSignatureInvalid,
    CSRSubjectMismatch,
    InvalidAltName,
    InvalidExtKeyUsage,
    MalformedCertificate,
    MalformedCSR,
    MalformedKey,
    NotANodeCertificate,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenSignatureInvalid,
)
from tests.captures import UPSTREAM

REPO = Path(__file__).resolve().parents[2]
CAPTURED_NODE = "peer-edge-cap"
NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
SECOND = datetime.timedelta(seconds=1)

CAPair = tuple[cx509.Certificate, x509.PrivateKey]


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> CAPair:
    return x509.create_ca()


@pytest.fixture(scope="module")
def other_ca() -> CAPair:
    return x509.create_ca()


@pytest.fixture(scope="module")
def captured() -> dict[str, bytes]:
    """The first /ca.crt and /edge.crt exchange of the capture, as DER bytes."""
    exchanges = json.loads((UPSTREAM / "bootstrap.json").read_text())["exchanges"]
    ca_reply = next(e for e in exchanges if e["path"] == "/ca.crt")
    edge = next(e for e in exchanges if e["path"] == "/edge.crt")
    return {
        "ca": base64.b64decode(ca_reply["response_body_b64"]),
        "csr": base64.b64decode(edge["request_body_b64"]),
        "edge_cert": base64.b64decode(edge["response_body_b64"]),
        "node": dict(edge["request_headers"])["Nodename"].encode(),
    }


def der_of(ca_pair: CAPair) -> tuple[bytes, bytes]:
    cert, key = ca_pair
    return x509.cert_to_der(cert), x509.key_to_sec1_der(key)


def signed_node_cert(
    ca_pair: CAPair,
    node: str = "edge-1",
    validity: datetime.timedelta = datetime.timedelta(days=365),
) -> cx509.Certificate:
    csr = x509.create_node_csr(node, x509.generate_key())
    return x509.sign_node_csr(x509.csr_to_der(csr), ca_pair[0], ca_pair[1], node, validity=validity)


def tlv(data: bytes, offset: int) -> tuple[int, int]:
    """Return (start of content, end) of the DER TLV at ``offset``."""
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return start, start + length


def raw_csr_subject(csr_der: bytes) -> bytes:
    """The subject Name exactly as encoded in a CSR: CertificationRequestInfo's 2nd field."""
    info_start, _ = tlv(csr_der, 0)
    version_start, _ = tlv(csr_der, info_start)
    _, version_end = tlv(csr_der, version_start)
    _, subject_end = tlv(csr_der, version_end)
    return csr_der[version_end:subject_end]


def flip_signature_byte(full_token: str) -> str:
    head, signature = full_token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[5] ^= 0x01
    return head + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


# --- tokens -----------------------------------------------------------------------------


def test_token_module_does_not_import_cryptography() -> None:
    code = "import certs.token, sys; assert 'cryptography' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_created_token_verifies(ca: CAPair) -> None:
    ca_der, key_der = der_of(ca)
    full = token.create_token(ca_der, key_der, now=NOW)
    hash_part, jwt_part = token.split_token(full)
    assert hash_part == token.ca_hash(ca_der)
    assert len(full.split(".")) == 4
    assert token.verify_ca_hash(full, ca_der) == jwt_part
    expected = NOW + datetime.timedelta(hours=24)
    assert token.verify_token(full, key_der, now=NOW) == expected
    assert token.verify_token(jwt_part, key_der, now=NOW) == expected
    assert token.verify_token(f"  {full}\n", key_der, now=NOW) == expected


def test_token_interoperates_with_pyjwt(ca: CAPair) -> None:
    ca_der, key_der = der_of(ca)
    ours = token.split_token(token.create_token(ca_der, key_der, now=NOW))[1]
    claims = pyjwt.decode(ours, key_der, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"exp": int((NOW + datetime.timedelta(hours=24)).timestamp())}
    assert pyjwt.get_unverified_header(ours) == {"alg": "HS256", "typ": "JWT"}
    theirs = pyjwt.encode({"exp": int(NOW.timestamp()) + 60}, key_der, algorithm="HS256")
    assert token.verify_token(theirs, key_der, now=NOW) == NOW + datetime.timedelta(seconds=60)


def test_tampered_signature_is_rejected(ca: CAPair) -> None:
    ca_der, key_der = der_of(ca)
    tampered = flip_signature_byte(token.create_token(ca_der, key_der, now=NOW))
    with pytest.raises(TokenSignatureInvalid, match="signature does not match"):
        token.verify_token(tampered, key_der, now=NOW)


def test_tampered_payload_is_rejected(ca: CAPair) -> None:
    ca_der, key_der = der_of(ca)
    hash_part, header, _, signature = token.create_token(ca_der, key_der, now=NOW).split(".")
    later = base64.urlsafe_b64encode(b'{"exp":9999999999}').rstrip(b"=").decode()
    with pytest.raises(TokenSignatureInvalid):
        token.verify_token(".".join([hash_part, header, later, signature]), key_der, now=NOW)


def test_expired_token_is_rejected(ca: CAPair) -> None:
    ca_der, key_der = der_of(ca)
    full = token.create_token(ca_der, key_der, lifetime=datetime.timedelta(hours=1), now=NOW)
    with pytest.raises(TokenExpired, match="expired at 2026-11-26T13:00:00Z.*keadm gettoken"):
        token.verify_token(full, key_der, now=NOW + datetime.timedelta(hours=2))
    # golang-jwt: expired from the exp second on.
    with pytest.raises(TokenExpired):
        token.verify_token(full, key_der, now=NOW + datetime.timedelta(hours=1))


def test_token_for_another_ca_fails_the_hash_check(
    ca: CAPair,
    other_ca: CAPair,
) -> None:
    full = token.create_token(*der_of(ca), now=NOW)
    served = x509.cert_to_der(other_ca[0])
    message = "served by the cloud.*does not match.*keadm gettoken"
    with pytest.raises(CAHashMismatch, match=message) as info:
        token.verify_ca_hash(full, served)
    assert info.value.served_hash == token.ca_hash(served)


def test_token_signed_with_another_ca_key_is_rejected(
    ca: CAPair,
    other_ca: CAPair,
) -> None:
    ca_der, key_der = der_of(ca)
    forged = token.create_token(ca_der, x509.key_to_sec1_der(other_ca[1]), now=NOW)
    assert token.verify_ca_hash(forged, ca_der)  # the hash alone proves nothing
    with pytest.raises(TokenSignatureInvalid, match="another CA"):
        token.verify_token(forged, key_der, now=NOW)


def test_unsigned_and_other_algorithm_tokens_are_rejected(
    ca: CAPair,
) -> None:
    _, key_der = der_of(ca)
    claims = {"exp": int(NOW.timestamp()) + 60}
    unsigned = pyjwt.encode(claims, None, algorithm="none")
    hs512 = pyjwt.encode(claims, key_der, algorithm="HS512")
    for candidate in (unsigned, hs512):
        with pytest.raises(TokenSignatureInvalid, match="only HS256"):
            token.verify_token(candidate, key_der, now=NOW)


@pytest.mark.parametrize(
    "bad",
    [
        "a.b.c",
        "a.b.c.d.e",
        "",
        "zz" * 32 + ".a.b.c",
        "ab" * 31 + ".a.b.c",
    ],
)
def test_malformed_tokens_fail_to_split(bad: str) -> None:
    with pytest.raises(TokenMalformed):
        token.split_token(bad)
    with pytest.raises(TokenMalformed):
        token.verify_ca_hash(bad, b"ca")


@pytest.mark.parametrize(
    "bad",
    [
        "a.b",
        "a.b.c.d.e",
        "ab" * 32 + ".@@.b.c",
        "bm90IGpzb24.e30.AAAA",  # header "not json"
        "ImEi.e30.AAAA",  # header is the JSON string "a"
    ],
)
def test_malformed_jwts_fail_verification(bad: str) -> None:
    with pytest.raises(TokenMalformed):
        token.verify_token(bad, b"key", now=NOW)


def test_token_without_exp_is_malformed() -> None:
    key = b"k" * 64
    no_exp = pyjwt.encode({"sub": "x"}, key, algorithm="HS256")
    with pytest.raises(TokenMalformed, match="exp"):
        token.verify_token(no_exp, key, now=NOW)


def test_token_errors_share_a_base() -> None:
    for error in (TokenMalformed, CAHashMismatch, TokenExpired, TokenSignatureInvalid):
        assert issubclass(error, TokenError)
        assert issubclass(error, CertsError)


# --- keys and encodings -----------------------------------------------------------------


def test_key_and_cert_round_trips(ca: CAPair) -> None:
    cert, key = ca
    der = x509.key_to_sec1_der(key)
    assert x509.key_to_sec1_der(x509.key_from_der(der)) == der
    pem = x509.key_to_pem(key)
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert x509.key_to_sec1_der(x509.key_from_pem(pem)) == der
    assert x509.cert_from_der(x509.cert_to_der(cert)) == cert
    assert x509.cert_to_pem(cert).startswith(b"-----BEGIN CERTIFICATE-----")
    assert x509.cert_from_pem(x509.cert_to_pem(cert)) == cert


@pytest.mark.parametrize(
    ("decode", "error"),
    [
        (x509.key_from_der, MalformedKey),
        (x509.key_from_pem, MalformedKey),
        (x509.cert_from_der, MalformedCertificate),
        (x509.cert_from_pem, MalformedCertificate),
        (x509.csr_from_der, MalformedCSR),
    ],
)
def test_garbage_raises_certs_errors(
    decode: Callable[[bytes], object], error: type[CertsError]
) -> None:
    with pytest.raises(error):
        decode(b"\x30\x03garbage")


# --- CA and server certificate ----------------------------------------------------------


def test_ca_matches_the_captured_ca(
    ca: CAPair, captured: dict[str, bytes]
) -> None:
    ours, key = ca
    theirs = x509.cert_from_der(captured["ca"])
    assert ours.subject.public_bytes() == theirs.subject.public_bytes()
    assert ours.issuer == ours.subject
    assert ours.serial_number == theirs.serial_number == 1024
    assert ours.signature_algorithm_oid == theirs.signature_algorithm_oid
    lifetime = theirs.not_valid_after_utc - theirs.not_valid_before_utc
    assert ours.not_valid_after_utc - ours.not_valid_before_utc == lifetime
    assert [e.oid for e in ours.extensions] == [e.oid for e in theirs.extensions]
    for mine, upstream in zip(ours.extensions, theirs.extensions, strict=True):
        assert mine.critical == upstream.critical
        if isinstance(mine.value, cx509.SubjectKeyIdentifier):
            assert mine.value == cx509.SubjectKeyIdentifier.from_public_key(key.public_key())
            assert upstream.value == cx509.SubjectKeyIdentifier.from_public_key(theirs.public_key())
        else:
            assert mine.value == upstream.value


def test_server_certificate(ca: CAPair) -> None:
    ca_cert, ca_key = ca
    cert = x509.create_server_cert(
        ca_cert,
        ca_key,
        x509.generate_key(),
        ip_addresses=["10.0.0.1", "::1"],
        dns_names=["", "cloud"],
    )
    cert.verify_directly_issued_by(ca_cert)
    eku = cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert san.get_values_for_type(cx509.DNSName) == ["cloud"]
    assert [str(ip) for ip in san.get_values_for_type(cx509.IPAddress)] == ["10.0.0.1", "::1"]
    assert cert.subject.rfc4514_string() == "CN=KubeEdge,O=KubeEdge"
    with pytest.raises(InvalidAltName):
        x509.create_server_cert(
            ca_cert, ca_key, x509.generate_key(), ip_addresses=["x"], dns_names=[]
        )


# --- node CSR and certificate -----------------------------------------------------------


def test_captured_csr_subject_equals_ours(captured: dict[str, bytes]) -> None:
    assert captured["node"].decode() == CAPTURED_NODE
    theirs = x509.csr_from_der(captured["csr"])
    assert theirs.is_signature_valid
    ours = x509.csr_to_der(x509.create_node_csr(CAPTURED_NODE, x509.generate_key()))
    assert raw_csr_subject(ours) == raw_csr_subject(captured["csr"])
    assert raw_csr_subject(ours) == theirs.subject.public_bytes()


def test_node_csr_is_signed_and_verified(ca: CAPair) -> None:
    cert = signed_node_cert(ca, "edge-1")
    assert x509.verify_node_certificate(cert, ca[0]) == "edge-1"
    assert x509.node_name_from_cert(cert) == "edge-1"
    assert cert.subject.rfc4514_string() == "CN=system:node:edge-1,O=system:nodes"
    assert cert.issuer == ca[0].subject


def test_node_cert_has_the_captured_shape(
    ca: CAPair, captured: dict[str, bytes]
) -> None:
    theirs = x509.cert_from_der(captured["edge_cert"])
    ours = x509.sign_node_csr(captured["csr"], ca[0], ca[1], CAPTURED_NODE)
    assert ours.subject.public_bytes() == theirs.subject.public_bytes()
    assert ours.public_key() == theirs.public_key()
    assert ours.not_valid_after_utc - ours.not_valid_before_utc == datetime.timedelta(days=365)
    assert [e.oid for e in ours.extensions] == [e.oid for e in theirs.extensions]
    for mine, upstream in zip(ours.extensions, theirs.extensions, strict=True):
        assert mine.critical == upstream.critical
        if not isinstance(mine.value, cx509.AuthorityKeyIdentifier):
            assert mine.value == upstream.value


def test_captured_edge_certificate_verifies(captured: dict[str, bytes]) -> None:
    ca_cert = x509.cert_from_der(captured["ca"])
    edge_cert = x509.cert_from_der(captured["edge_cert"])
    inside = edge_cert.not_valid_before_utc + datetime.timedelta(days=1)
    assert x509.verify_node_certificate(edge_cert, ca_cert, now=inside) == CAPTURED_NODE


def test_every_captured_join_matches_ours(captured: dict[str, bytes]) -> None:
    """The capture holds two joins (two node names) against one CA; check both."""
    exchanges = json.loads((UPSTREAM / "bootstrap.json").read_text())["exchanges"]
    joins = [e for e in exchanges if e["path"] == "/edge.crt"]
    assert len(joins) == 2
    ca_cert = x509.cert_from_der(captured["ca"])
    for join in joins:
        node = dict(join["request_headers"])["Nodename"]
        csr = base64.b64decode(join["request_body_b64"])
        ours = x509.csr_to_der(x509.create_node_csr(node, x509.generate_key()))
        assert raw_csr_subject(ours) == raw_csr_subject(csr)
        cert = x509.cert_from_der(base64.b64decode(join["response_body_b64"]))
        inside = cert.not_valid_before_utc + datetime.timedelta(hours=1)
        assert x509.verify_node_certificate(cert, ca_cert, now=inside) == node
        assert cert.public_key() == x509.csr_from_der(csr).public_key()


def test_captured_ca_hash_pins_the_captured_ca(captured: dict[str, bytes]) -> None:
    jwt_part = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3OTUwMDAwMDB9.c2ln"
    full = hashlib.sha256(captured["ca"]).hexdigest() + "." + jwt_part
    assert token.verify_ca_hash(full, captured["ca"]) == jwt_part
    with pytest.raises(CAHashMismatch):
        token.verify_ca_hash(full, captured["edge_cert"])


def test_csr_with_wrong_common_name_is_rejected(ca: CAPair) -> None:
    csr = x509.csr_to_der(x509.create_node_csr("edge-2", x509.generate_key()))
    with pytest.raises(CSRSubjectMismatch, match="'system:node:edge-2'.*NodeName 'edge-1'"):
        x509.sign_node_csr(csr, ca[0], ca[1], "edge-1")


def test_csr_without_nodes_organization_is_rejected(ca: CAPair) -> None:
    subject = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "system:node:edge-1")])
    csr = cx509.CertificateSigningRequestBuilder().subject_name(subject).sign(
        x509.generate_key(), hashes.SHA256()
    )
    with pytest.raises(CSRSubjectMismatch, match="system:nodes"):
        x509.sign_node_csr(x509.csr_to_der(csr), ca[0], ca[1], "edge-1")


def test_garbage_csr_is_rejected(ca: CAPair) -> None:
    with pytest.raises(MalformedCSR):
        x509.sign_node_csr(b"not a csr", ca[0], ca[1], "edge-1")


def test_csr_with_bad_signature_is_rejected(
    ca: CAPair, captured: dict[str, bytes]
) -> None:
    tampered = bytearray(captured["csr"])
    tampered[-10] ^= 0x01  # inside the ECDSA signature's integers
    with pytest.raises(CSRSignatureInvalid):
        x509.sign_node_csr(bytes(tampered), ca[0], ca[1], CAPTURED_NODE)


def test_a_node_certificate_is_exactly_the_node_whatever_the_csr_asks(ca: CAPair) -> None:
    """Hostile edges: a CSR asking for serverAuth, O=system:masters or SANs still gets
    CN=system:node:<name>, O=system:nodes, clientAuth and nothing else."""
    key = x509.generate_key()
    subject = cx509.Name([cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                          cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                          cx509.NameAttribute(NameOID.COMMON_NAME, "system:node:edge-1")])
    csr = (
        cx509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(cx509.SubjectAlternativeName([cx509.DNSName("cloudcore"), cx509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert = x509.sign_node_csr(x509.csr_to_der(csr), ca[0], ca[1], "edge-1")
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    assert len(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)) == 1
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:edge-1"
    assert list(cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(cx509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName)
    assert not cert.extensions.get_extension_for_class(cx509.KeyUsage).value.key_cert_sign


def test_expired_and_future_node_certs_are_rejected(
    ca: CAPair,
) -> None:
    cert = signed_node_cert(ca, validity=datetime.timedelta(seconds=5))
    with pytest.raises(CertExpired, match="expired at"):
        x509.verify_node_certificate(cert, ca[0], now=cert.not_valid_after_utc + SECOND)
    with pytest.raises(CertNotYetValid, match="not valid before"):
        x509.verify_node_certificate(cert, ca[0], now=cert.not_valid_before_utc - SECOND)


def test_cert_from_another_ca_is_rejected(
    ca: CAPair,
    other_ca: CAPair,
) -> None:
    # Both CAs are named CN=KubeEdge, so only the signature tells them apart.
    cert = signed_node_cert(other_ca)
    with pytest.raises(CertSignatureInvalid, match="not issued by the CA"):
        x509.verify_node_certificate(cert, ca[0])


def test_server_cert_is_not_a_node_certificate(ca: CAPair) -> None:
    key = x509.generate_key()
    server = x509.create_server_cert(ca[0], ca[1], key, ip_addresses=[], dns_names=[])
    with pytest.raises(NotANodeCertificate):
        x509.verify_node_certificate(server, ca[0])
    assert x509.node_name_from_cert(server) is None


def test_rotation_deadline_is_between_70_and_90_percent(
    ca: CAPair,
) -> None:
    cert = signed_node_cert(ca, validity=datetime.timedelta(seconds=100))
    start = cert.not_valid_before_utc
    rng = random.Random(7)
    offsets = [(x509.rotation_deadline(cert, rng) - start).total_seconds() for _ in range(200)]
    assert all(70 <= offset <= 90 for offset in offsets)
    assert min(offsets) < 72 and max(offsets) > 88
