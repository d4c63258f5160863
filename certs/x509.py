"""Keys, the CA, server and node certificates, node CSRs (``pkg/security/certs``, ``/edge.crt``).

Everything is ECDSA P-256 with SHA-256 signatures, as upstream. Keys travel as SEC1 DER
(``casecret``/``cakeydata``) or PEM ``EC PRIVATE KEY`` (files on the edge); certificates as
DER (``/ca.crt``, ``/edge.crt`` bodies, secrets) or PEM ``CERTIFICATE`` (files).

Names are encoded the way Go's ``crypto/x509`` does (PrintableString when the characters
allow it, UTF8String otherwise, attributes in Go's order) so that our CSRs and certificates
carry the same bytes as upstream's. Garbage input raises ``CertsError`` subclasses only.
"""

from __future__ import annotations

import datetime
import ipaddress
import random
import secrets
import string
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import (
    CertExpired,
    CertsError,
    CertNotYetValid,
    CertSignatureInvalid,
    CSRSignatureInvalid,
    CSRSubjectMismatch,
    InvalidAltName,
    InvalidExtKeyUsage,
    MalformedCertificate,
    MalformedCSR,
    MalformedKey,
    NotANodeCertificate,
    UnacceptableKey,
)

PrivateKey = ec.EllipticCurvePrivateKey
_IPAltName = (
    ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
)

CA_SERIAL = 1024
CA_COMMON_NAME = "KubeEdge"
DEFAULT_CA_VALID_DAYS = 100 * 364  # upstream's "year100" is 364-day years
DEFAULT_NODE_CERT_VALIDITY = datetime.timedelta(days=365)  # edgeCertSigningDuration
NODE_ORGANIZATION = "system:nodes"
NODE_CN_PREFIX = "system:node:"

# Go's x509.ExtKeyUsage numbers, as sent in the ExtKeyUsages header of /edge.crt.
GO_EXT_KEY_USAGES: dict[int, x509.ObjectIdentifier] = {
    0: ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    1: ExtendedKeyUsageOID.SERVER_AUTH,
    2: ExtendedKeyUsageOID.CLIENT_AUTH,
    3: ExtendedKeyUsageOID.CODE_SIGNING,
    4: ExtendedKeyUsageOID.EMAIL_PROTECTION,
    8: ExtendedKeyUsageOID.TIME_STAMPING,
    9: ExtendedKeyUsageOID.OCSP_SIGNING,
}
GO_EXT_KEY_USAGE_CLIENT_AUTH = 2

# Go's asn1 PrintableString alphabet for names ('*' and '&' are rejected there too).
_PRINTABLE = frozenset(string.ascii_letters + string.digits + " '()+,-./:=?")

# --- keys --------------------------------------------------------------------------------


def generate_key() -> PrivateKey:
    """Return a fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_sec1_der(key: PrivateKey) -> bytes:
    """Encode a key as SEC1 DER, the form of ``cakeydata`` and the token's HMAC key."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def key_from_der(der: bytes) -> PrivateKey:
    """Decode a SEC1 (or PKCS#8) DER ECDSA P-256 private key."""
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise MalformedKey(f"not a DER EC private key: {error}") from error
    return _require_p256(key)


def key_to_pem(key: PrivateKey) -> bytes:
    """Encode a key as PEM ``EC PRIVATE KEY``, as edgecore writes ``server.key``."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def key_from_pem(pem: bytes) -> PrivateKey:
    """Decode a PEM ECDSA P-256 private key (``EC PRIVATE KEY`` or ``PRIVATE KEY``)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise MalformedKey(f"not a PEM EC private key: {error}") from error
    return _require_p256(key)


def _require_p256(key: object) -> PrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise MalformedKey("the private key is not ECDSA P-256")
    return key


# --- certificates and CSRs as bytes -----------------------------------------------------


def cert_to_der(cert: x509.Certificate) -> bytes:
    """Encode a certificate as DER."""
    return cert.public_bytes(serialization.Encoding.DER)


def cert_from_der(der: bytes) -> x509.Certificate:
    """Decode a DER certificate."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as error:
        raise MalformedCertificate(f"not a DER certificate: {error}") from error


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """Encode a certificate as PEM ``CERTIFICATE``."""
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_from_pem(pem: bytes) -> x509.Certificate:
    """Decode the first PEM ``CERTIFICATE`` block."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as error:
        raise MalformedCertificate(f"not a PEM certificate: {error}") from error


def csr_to_der(csr: x509.CertificateSigningRequest) -> bytes:
    """Encode a CSR as DER, the body of ``GET /edge.crt``."""
    return csr.public_bytes(serialization.Encoding.DER)


def csr_from_der(der: bytes) -> x509.CertificateSigningRequest:
    """Decode a DER PKCS#10 CSR."""
    try:
        return x509.load_der_x509_csr(der)
    except ValueError as error:
        raise MalformedCSR(f"not a DER certificate signing request: {error}") from error


# --- issuing ----------------------------------------------------------------------------


def create_ca(
    common_name: str = CA_COMMON_NAME, valid_days: int = DEFAULT_CA_VALID_DAYS
) -> tuple[x509.Certificate, PrivateKey]:
    """Return a new self-signed CA and its key, shaped like upstream's (``x509_ca.go``)."""
    key = generate_key()
    subject = _name([(NameOID.COMMON_NAME, [common_name])])
    not_before = _now_seconds()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(CA_SERIAL)
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=valid_days))
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Go adds a SubjectKeyIdentifier to every CA it creates; child certs then get a
        # matching AuthorityKeyIdentifier.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def create_server_cert(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    key: PrivateKey,
    *,
    common_name: str = CA_COMMON_NAME,
    organization: str = CA_COMMON_NAME,
    ip_addresses: list[str],
    dns_names: list[str],
    valid_days: int = DEFAULT_CA_VALID_DAYS,
) -> x509.Certificate:
    """Return cloudcore's serving certificate for ``key``, signed by the CA.

    Empty DNS names are dropped: upstream's default ``advertiseAddress``/``dnsNames`` is [""].
    """
    not_before = _now_seconds()
    builder = _leaf_builder(
        ca_cert,
        subject=_leaf_subject([organization] if organization else [], common_name),
        public_key=key.public_key(),
        not_before=not_before,
        not_after=not_before + datetime.timedelta(days=valid_days),
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    alt_names = _alt_names([name for name in dns_names if name], _parse_ips(ip_addresses))
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def create_client_cert(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    key: PrivateKey,
    *,
    common_name: str,
    organizations: list[str],
    validity: datetime.timedelta = DEFAULT_NODE_CERT_VALIDITY,
) -> x509.Certificate:
    """Return a client certificate (EKU clientAuth) for a user: CN is the user, O the groups."""
    not_before = _now_seconds()
    builder = _leaf_builder(
        ca_cert,
        subject=_leaf_subject(organizations, common_name),
        public_key=key.public_key(),
        not_before=not_before,
        not_after=not_before + validity,
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )  # the extensions of upstream's node certificates: key usage without keyCertSign, so it can sign nothing
    return builder.sign(ca_key, hashes.SHA256())


def create_node_csr(node_name: str, key: PrivateKey) -> x509.CertificateSigningRequest:
    """Return edgecore's CSR for ``node_name``, subject byte-for-byte as upstream's."""
    subject = _name(
        [
            (NameOID.COUNTRY_NAME, ["CN"]),
            (NameOID.STATE_OR_PROVINCE_NAME, ["Zhejiang"]),
            (NameOID.LOCALITY_NAME, ["Hangzhou"]),
            (NameOID.ORGANIZATION_NAME, [NODE_ORGANIZATION]),
            (NameOID.COMMON_NAME, [NODE_CN_PREFIX + node_name]),
        ]
    )
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def sign_node_csr(
    csr_der: bytes,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    node_name: str,
    *,
    validity: datetime.timedelta = DEFAULT_NODE_CERT_VALIDITY,
) -> x509.Certificate:
    """Issue a node's client certificate from its DER CSR, as ``GET /edge.crt`` does.

    Of the CSR only its public key is taken (after its signature and subject are checked): the
    certificate carries exactly ``CN=system:node:<node_name>``, ``O=system:nodes``, ``clientAuth``
    and no alternative names, whatever the CSR asks (``serverAuth``, ``O=system:masters``, SANs),
    so a node's certificate can speak only for that node, and only as a client.
    """
    csr = csr_from_der(csr_der)
    # The DER is parsed lazily: a field that cannot be decoded (an unknown key or signature
    # algorithm, a broken name) surfaces here, and is the CSR's fault, never a crash.
    try:
        signature_valid = csr.is_signature_valid
        public_key = csr.public_key()
        subject = csr.subject
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise MalformedCSR(f"the CSR cannot be decoded: {error}") from error
    if not signature_valid:
        raise CSRSignatureInvalid("the CSR's signature does not match the public key it carries")
    common_name, _ = _check_node_subject(subject, node_name)
    _check_node_key(public_key)
    not_before = _now_seconds()
    builder = _leaf_builder(
        ca_cert,
        subject=_leaf_subject([NODE_ORGANIZATION], common_name),
        public_key=public_key,
        not_before=not_before,
        not_after=_whole_seconds(not_before + validity),
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )  # the extensions of upstream's node certificates: key usage without keyCertSign, so it can sign nothing
    return builder.sign(ca_key, hashes.SHA256())


def _check_node_key(public_key: CertificatePublicKeyTypes) -> None:
    """A node key the cluster accepts: EC P-256/P-384 or RSA of at least 2048 bits."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in ("secp256r1", "secp384r1"):
        return
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 2048:
        return
    raise UnacceptableKey(
        f"the CSR's key ({_describe_key(public_key)}) is neither EC P-256/P-384 nor RSA of 2048 bits or more"
    )


def _describe_key(public_key: object) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    size = getattr(public_key, "key_size", None)
    return f"{type(public_key).__name__.removeprefix('_')}{f' {size} bits' if size else ''}"


# What upstream edgecore's CSR holds besides CN and O=system:nodes (create_node_csr).
_UPSTREAM_CSR_SUBJECT = {
    (NameOID.COUNTRY_NAME, "CN"),
    (NameOID.STATE_OR_PROVINCE_NAME, "Zhejiang"),
    (NameOID.LOCALITY_NAME, "Hangzhou"),
}


def csr_extras(csr_der: bytes) -> list[str]:
    """What a CSR asks for beyond a node certificate (and so does not get), to log it.

    Empty for upstream's CSR. Never raises: an undecodable part is listed as such.
    """
    try:
        csr = csr_from_der(csr_der)
        attributes = list(csr.subject)
        extensions = list(csr.extensions)
    except (CertsError, ValueError, TypeError, UnsupportedAlgorithm):
        return ["an undecodable subject or extension"]
    extras = [
        f"{attribute.oid._name} {attribute.value!r}"
        for attribute in attributes
        if attribute.oid != NameOID.COMMON_NAME
        and (attribute.oid, attribute.value) != (NameOID.ORGANIZATION_NAME, NODE_ORGANIZATION)
        and (attribute.oid, attribute.value) not in _UPSTREAM_CSR_SUBJECT
    ]
    return extras + [f"extension {extension.oid._name}" for extension in extensions]


def _check_node_subject(subject: x509.Name, node_name: str) -> tuple[str, list[str]]:
    common_names = _attribute_values(subject, NameOID.COMMON_NAME)
    organizations = _attribute_values(subject, NameOID.ORGANIZATION_NAME)
    common_name = common_names[0] if common_names else ""
    expected = NODE_CN_PREFIX + node_name
    if not node_name or common_name != expected:
        raise CSRSubjectMismatch(
            f"the CSR's CommonName {common_name!r} does not match the NodeName {node_name!r} "
            f"(expected {expected!r})"
        )
    if NODE_ORGANIZATION not in organizations:
        raise CSRSubjectMismatch(
            f"the CSR for CommonName {common_name!r} (NodeName {node_name!r}) does not have "
            f"Organization {NODE_ORGANIZATION!r}"
        )
    return common_name, organizations


def _leaf_builder(
    ca_cert: x509.Certificate,
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    usages: list[x509.ObjectIdentifier],
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        # Go draws serials below MaxInt64; zero is not a valid serial.
        .serial_number(secrets.randbelow(2**63 - 1) + 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    ca_key_id = _subject_key_identifier(ca_cert)
    if ca_key_id is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
    return builder


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_key_identifier(cert: x509.Certificate) -> x509.SubjectKeyIdentifier | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None


def _alt_names(dns_names: list[str], ips: Sequence[_IPAltName]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    return names + [x509.IPAddress(ip) for ip in ips]


def _parse_ips(addresses: list[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(address) for address in addresses]
    except ValueError as error:
        raise InvalidAltName(f"not an IP address for the certificate: {error}") from error


# --- names ------------------------------------------------------------------------------


def _name(attributes: list[tuple[x509.ObjectIdentifier, list[str]]]) -> x509.Name:
    """Build a Name with one RDN per attribute type, in the order given, as Go does."""
    rdns = [
        x509.RelativeDistinguishedName([_go_attribute(oid, value) for value in values])
        for oid, values in attributes
        if values
    ]
    return x509.Name(rdns)


def _leaf_subject(organizations: list[str], common_name: str) -> x509.Name:
    # Upstream issues leaf certificates with only O and CN, which Go writes in that order.
    return _name([(NameOID.ORGANIZATION_NAME, organizations), (NameOID.COMMON_NAME, [common_name])])


def _go_attribute(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute[str]:
    return x509.NameAttribute(oid, value, _type=_go_string_type(value))


def _go_string_type(value: str) -> _ASN1Type:
    return _ASN1Type.PrintableString if set(value) <= _PRINTABLE else _ASN1Type.UTF8String


def _attribute_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(oid)]


# --- verification -----------------------------------------------------------------------


def verify_node_certificate(
    cert: x509.Certificate, ca_cert: x509.Certificate, *, now: datetime.datetime | None = None
) -> str:
    """Check a node's client certificate against the CA; return the node name it names."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as error:
        raise CertSignatureInvalid(
            f"the certificate for {cert.subject.rfc4514_string()!r} was not issued by the CA "
            f"{ca_cert.subject.rfc4514_string()!r}"
        ) from error
    _check_validity(cert, _as_utc(now))
    return _check_node_identity(cert)


def _check_validity(cert: x509.Certificate, now: datetime.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertNotYetValid(
            f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} "
            "(check the clocks of cloud and edge)"
        )
    if now > cert.not_valid_after_utc:
        raise CertExpired(
            f"the certificate expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
        )


def _check_node_identity(cert: x509.Certificate) -> str:
    try:
        usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = []
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise NotANodeCertificate(
            "the certificate does not allow client authentication (no clientAuth EKU)"
        )
    if NODE_ORGANIZATION not in _attribute_values(cert.subject, NameOID.ORGANIZATION_NAME):
        raise NotANodeCertificate(
            f"the certificate's Organization does not include {NODE_ORGANIZATION!r}"
        )
    node_name = node_name_from_cert(cert)
    if not node_name:
        raise NotANodeCertificate(
            f"the certificate's CommonName does not have the form '{NODE_CN_PREFIX}<node name>'"
        )
    return node_name


def node_name_from_cert(cert: x509.Certificate) -> str | None:
    """Return ``<node>`` from a CommonName ``system:node:<node>``, else None."""
    common_names = _attribute_values(cert.subject, NameOID.COMMON_NAME)
    if not common_names or not common_names[0].startswith(NODE_CN_PREFIX):
        return None
    return common_names[0].removeprefix(NODE_CN_PREFIX) or None


def rotation_deadline(
    cert: x509.Certificate, rng: random.Random | None = None
) -> datetime.datetime:
    """Return when to renew: NotBefore + uniform(70%..90%) of the lifetime (``jitteryDuration``)."""
    not_before = cert.not_valid_before_utc
    lifetime = cert.not_valid_after_utc - not_before
    fraction = 0.7 + 0.2 * (rng or random.SystemRandom()).random()
    return not_before + lifetime * fraction


# --- time -------------------------------------------------------------------------------


def _now_seconds() -> datetime.datetime:
    return _whole_seconds(datetime.datetime.now(datetime.UTC))


def _whole_seconds(moment: datetime.datetime) -> datetime.datetime:
    # X.509 times have one-second resolution; truncating here keeps NotBefore and NotAfter
    # exactly validity apart in the encoded certificate.
    return moment.replace(microsecond=0)


def _as_utc(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    return now.replace(tzinfo=datetime.UTC) if now.tzinfo is None else now
