"""The edge's certificate: bootstrap with a join token, load, and rotate (upstream ``certmanager.go``).

Bootstrap: fetch ``/ca.crt`` without verifying (trust on first use), check its sha256 against the
token's first part, send a P-256 CSR (``CN=system:node:<node>``) to ``/edge.crt`` with the
token's JWT, store CA, certificate and key as PEM. Rotation presents the current certificate
instead of a token. Once the CA is known, every call checks CloudCore's certificate against the
host dialled (an IP or DNS SAN), or against ``server_name`` (``modules.edgeHub.tlsServerName``)
when one is pinned: another certificate of the same CA, say a node's, never passes as the cloud. Used by EdgeHub at start and by ``keadm join`` (synchronously, so a bad
token or an unreachable cloud is reported by join itself). ``cryptography`` is imported only
here and only when a key or certificate must be made or read.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
import ssl
from pathlib import Path
from typing import Any

from certs import token as tokens

TIMEOUT = 30.0


class BootstrapError(Exception):
    """Joining failed; the message says why and what to do."""


class CloudUnreachable(BootstrapError):
    pass


class TokenRefused(BootstrapError):
    pass


class NameTaken(BootstrapError):
    pass


class CloudNotTrusted(BootstrapError):
    """The server's certificate is not the cloud's: wrong CA, or it does not name the host dialled."""


@dataclasses.dataclass(frozen=True)
class CertificatePaths:
    ca: Path
    cert: Path
    key: Path

    def exist(self) -> bool:
        return self.ca.exists() and self.cert.exists() and self.key.exists()


def paths_from(hub: Any) -> CertificatePaths:
    return CertificatePaths(Path(hub.tlsCaFile), Path(hub.tlsCertFile), Path(hub.tlsPrivateKeyFile))


def _request(url: str, context: ssl.SSLContext, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    # Imported here: urllib.request costs the edge ~3 MB and is needed only to join or rotate.
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="GET", headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=TIMEOUT) as reply:
            return bytes(reply.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace").strip()
        if error.code == 401:
            raise TokenRefused(f"the cloud refused the token: {text}") from None
        if error.code == 409:
            raise NameTaken(text) from None
        raise BootstrapError(f"{url} answered {error.code}: {text}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise CloudNotTrusted(f"the server at {url} is not the cloud this node trusts: {reason.verify_message}; "
                                  "its certificate must come from the cluster's CA and name the address dialled "
                                  "(CloudCore's advertiseAddress/dnsNames), or set modules.edgeHub.tlsServerName "
                                  "to a name it carries") from None
        raise CloudUnreachable(f"cannot reach the cloud at {url}: {reason}; check --cloudcore-ipport and that "
                               "CloudCore runs and its port 10002 is open") from None


def fetch_ca(http_server: str) -> bytes:
    """The cloud's CA as DER, fetched without verification: the token's hash is what vouches for it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return _request(http_server.rstrip("/") + "/ca.crt", context)


def node_exists(http_server: str, ca_der: bytes, node_name: str, server_name: str = "") -> bool:
    try:
        _request(f"{http_server.rstrip('/')}/node/{node_name}", _verifying_context(ca_der, server_name=server_name))
    except BootstrapError as error:
        if "answered 404" in str(error):
            return False
        raise
    return True


class PinnedNameContext(ssl.SSLContext):
    """A client context that checks the server against ``pinned`` instead of the host in the URL
    (urllib and asyncio pass that host as ``server_hostname``; this replaces it)."""

    pinned = ""

    def wrap_socket(self, sock: socket.socket, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | bytes | None = None,
                    session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                                   self.pinned or server_hostname, session)

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.pinned or server_hostname, session)


def client_context(*, cafile: str | None = None, cadata: str | None = None, client: CertificatePaths | None = None,
                   server_name: str = "") -> ssl.SSLContext:
    """TLS to CloudCore: its certificate must chain to the KubeEdge CA and name the host dialled
    (CloudCore's carries every advertiseAddress and dnsName), or ``server_name`` when pinned."""
    context: ssl.SSLContext = PinnedNameContext(ssl.PROTOCOL_TLS_CLIENT) if server_name else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if isinstance(context, PinnedNameContext):
        context.pinned = server_name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=cafile, cadata=cadata)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def _verifying_context(ca_der: bytes, client: CertificatePaths | None = None, server_name: str = "") -> ssl.SSLContext:
    return client_context(cadata=ssl.DER_cert_to_PEM_cert(ca_der), client=client, server_name=server_name)


def bootstrap(http_server: str, token: str, node_name: str, paths: CertificatePaths,
              server_name: str = "") -> datetime.datetime:
    """Join: check the CA against the token, get a node certificate, write all three files.

    Returns the certificate's expiry. Nothing is written unless every step succeeded.
    ``server_name``, when set, is the name CloudCore's certificate must carry (else the host dialled).
    """
    from certs import x509 as certs

    ca_der = fetch_ca(http_server)
    jwt = tokens.verify_ca_hash(token, ca_der)  # CAHashMismatch names both hashes
    key = certs.generate_key()
    csr = certs.csr_to_der(certs.create_node_csr(node_name, key))
    headers = {"Authorization": f"Bearer {jwt}", "NodeName": node_name, "Content-Type": "application/octet-stream"}
    der = _request(http_server.rstrip("/") + "/edge.crt", _verifying_context(ca_der, server_name=server_name), body=csr,
                   headers=headers)
    cert = certs.cert_from_der(der)
    _write(paths.ca, certs.cert_to_pem(certs.cert_from_der(ca_der)))
    _write(paths.key, certs.key_to_pem(key), private=True)
    _write(paths.cert, certs.cert_to_pem(cert))
    return _expiry(cert)


def renew(http_server: str, node_name: str, paths: CertificatePaths, server_name: str = "") -> datetime.datetime:
    """Rotation: a new key and certificate, authenticated by the current certificate."""
    from certs import x509 as certs

    ca_der = certs.cert_to_der(certs.cert_from_pem(paths.ca.read_bytes()))
    key = certs.generate_key()
    csr = certs.csr_to_der(certs.create_node_csr(node_name, key))
    der = _request(http_server.rstrip("/") + "/edge.crt", _verifying_context(ca_der, paths, server_name), body=csr,
                   headers={"NodeName": node_name, "Content-Type": "application/octet-stream"})
    cert = certs.cert_from_der(der)
    _write(paths.key, certs.key_to_pem(key), private=True)
    _write(paths.cert, certs.cert_to_pem(cert))
    return _expiry(cert)


def _decode(path: Path) -> dict[str, Any] | None:
    """A PEM certificate's subject, issuer and validity, read by the ssl module: no ``cryptography``
    import (about 10 MB of the edge's memory) on the path every restart takes."""
    try:
        return dict(ssl._ssl._test_decode_cert(str(path)))  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError, ValueError):
        return None


def _name(decoded: dict[str, Any], field: str, attribute: str) -> list[str]:
    return [value for rdn in decoded.get(field, ()) for key, value in rdn if key == attribute]


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(text), datetime.timezone.utc)


def valid_certificate(paths: CertificatePaths, node_name: str) -> datetime.datetime | None:
    """The expiry of the stored certificate if it is this node's, issued by the stored CA, and
    valid now; else None. (The signature is checked by every TLS handshake with the cloud.)"""
    if not paths.exist():
        return None
    cert, ca = _decode(paths.cert), _decode(paths.ca)
    if cert is None or ca is None:
        return None
    if _name(cert, "subject", "commonName") != [f"system:node:{node_name}"] or "system:nodes" not in _name(cert, "subject", "organizationName"):
        return None
    if cert.get("issuer") != ca.get("subject"):
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = _time(cert["notBefore"]), _time(cert["notAfter"])
    if not not_before <= now < not_after:
        return None
    try:
        ssl.create_default_context().load_cert_chain(paths.cert, paths.key)  # the key belongs to the certificate
    except (OSError, ssl.SSLError):
        return None
    return not_after


def rotation_deadline(paths: CertificatePaths) -> datetime.datetime:
    """Upstream's jitter: NotBefore + a uniform 70-90 % of the lifetime."""
    import random

    decoded = _decode(paths.cert)
    if decoded is None:
        raise BootstrapError(f"cannot read the node certificate {paths.cert}")
    not_before, not_after = _time(decoded["notBefore"]), _time(decoded["notAfter"])
    return not_before + (not_after - not_before) * random.uniform(0.7, 0.9)


def _expiry(cert: Any) -> datetime.datetime:
    return cert.not_valid_after_utc  # type: ignore[no-any-return]


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
