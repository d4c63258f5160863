"""CloudHub's credentials: the KubeEdge CA, CloudCore's server certificate and the join token.

Sources in upstream's order: the files named in cloudcore.yaml (``tlsCAFile``/``tlsCAKeyFile``,
``tlsCertFile``/``tlsPrivateKeyFile``) when they exist, then the Secrets ``kubeedge/casecret``
(``cadata`` DER, ``cakeydata`` SEC1 DER) and ``kubeedge/cloudcoresecret`` (``cloudcoredata``,
``cloudcorekeydata``), else newly made. The result is written back to the Secrets, so several
CloudCores against one cluster share one CA. The token (``kubeedge/tokensecret``, ``tokendata``)
lives twice ``tokenRefreshDuration`` and is remade every ``tokenRefreshDuration``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Any

from certs import token as tokens
from certs import x509 as certs
from cores.cloud.kube import Kube

log = logging.getLogger("kubeedge.cloudhub")

NAMESPACE = "kubeedge"
CA_SECRET, SERVER_SECRET, TOKEN_SECRET = "casecret", "cloudcoresecret", "tokensecret"


@dataclasses.dataclass
class Credentials:
    ca_cert: Any
    ca_key: Any
    server_cert: Any
    server_key: Any
    token: str = ""

    @property
    def ca_der(self) -> bytes:
        return certs.cert_to_der(self.ca_cert)

    @property
    def ca_key_der(self) -> bytes:
        return certs.key_to_sec1_der(self.ca_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(secret: dict[str, Any] | None, key: str) -> bytes | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value) if value else None


def server_addresses(hub: Any) -> tuple[list[str], list[str]]:
    """IPs and DNS names CloudCore's certificate must carry: advertiseAddress, dnsNames, this host."""
    ips, names = {"127.0.0.1"}, {"localhost", socket.gethostname().lower()}
    for value in [*hub.advertiseAddress, *hub.dnsNames]:
        if not value:
            continue
        try:
            ips.add(str(ipaddress.ip_address(value)))
        except ValueError:
            names.add(value)
    return sorted(ips), sorted(names)


async def _load_ca(kube: Kube, hub: Any) -> tuple[Any, Any]:
    ca_file, key_file = Path(hub.tlsCAFile), Path(hub.tlsCAKeyFile)
    if ca_file.exists() and key_file.exists():
        log.info("using the CA from %s", ca_file)
        return certs.cert_from_pem(ca_file.read_bytes()), certs.key_from_pem(key_file.read_bytes())
    secret = await kube.get_secret(NAMESPACE, CA_SECRET)
    ca_der, key_der = _unb64(secret, "cadata"), _unb64(secret, "cakeydata")
    if ca_der and key_der:
        log.info("using the CA from secret %s/%s", NAMESPACE, CA_SECRET)
        return certs.cert_from_der(ca_der), certs.key_from_der(key_der)
    log.info("creating the KubeEdge CA")
    return certs.create_ca()


def _covers(cert: Any, ips: list[str], names: list[str]) -> bool:
    """Whether the certificate names every address edges may dial: EdgeHub checks it against the
    host it dials (IP or DNS SAN), so a stored certificate missing one is made again."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    present_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    present_names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    return set(ips) <= present_ips and {name.lower() for name in names} <= present_names


async def _load_server(kube: Kube, hub: Any, ca_cert: Any, ca_key: Any) -> tuple[Any, Any]:
    cert_file, key_file = Path(hub.tlsCertFile), Path(hub.tlsPrivateKeyFile)
    if cert_file.exists() and key_file.exists():
        return certs.cert_from_pem(cert_file.read_bytes()), certs.key_from_pem(key_file.read_bytes())
    ips, names = server_addresses(hub)
    secret = await kube.get_secret(NAMESPACE, SERVER_SECRET)
    cert_der, key_der = _unb64(secret, "cloudcoredata"), _unb64(secret, "cloudcorekeydata")
    if cert_der and key_der:
        cert = certs.cert_from_der(cert_der)
        if _covers(cert, ips, names) and cert.issuer == ca_cert.subject:
            return cert, certs.key_from_der(key_der)
        log.info("the stored server certificate does not cover %s: making a new one", ", ".join(ips + names))
    key = certs.generate_key()
    cert = certs.create_server_cert(ca_cert, ca_key, key, ip_addresses=ips, dns_names=names)
    return cert, key


async def ensure(kube: Kube, hub: Any) -> Credentials:
    """Load or create the CA and server certificate, store them in their Secrets, issue a token."""
    await kube.ensure_namespace(NAMESPACE)
    ca_cert, ca_key = await _load_ca(kube, hub)
    await kube.put_secret(NAMESPACE, CA_SECRET, {"cadata": _b64(certs.cert_to_der(ca_cert)),
                                                 "cakeydata": _b64(certs.key_to_sec1_der(ca_key))})
    server_cert, server_key = await _load_server(kube, hub, ca_cert, ca_key)
    await kube.put_secret(NAMESPACE, SERVER_SECRET, {"cloudcoredata": _b64(certs.cert_to_der(server_cert)),
                                                     "cloudcorekeydata": _b64(certs.key_to_sec1_der(server_key))})
    credentials = Credentials(ca_cert, ca_key, server_cert, server_key)
    await refresh_token(kube, hub, credentials)
    return credentials


async def refresh_token(kube: Kube, hub: Any, credentials: Credentials) -> str:
    lifetime = datetime.timedelta(hours=2 * float(hub.tokenRefreshDuration))
    credentials.token = tokens.create_token(credentials.ca_der, credentials.ca_key_der, lifetime)
    await kube.put_secret(NAMESPACE, TOKEN_SECRET, {"tokendata": _b64(credentials.token.encode())})
    log.info("join token refreshed (valid %s)", lifetime)
    return credentials.token


def write_tls_files(credentials: Credentials, hub: Any) -> tuple[Path, Path, Path]:
    """The CA and server certificate and key at the configured paths (``ssl`` loads chains from files).

    The CA key is not written: it stays in its Secret, where only CloudCores read it.
    """
    paths = (Path(hub.tlsCAFile), Path(hub.tlsCertFile), Path(hub.tlsPrivateKeyFile))
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_bytes(certs.cert_to_pem(credentials.ca_cert))
    paths[1].write_bytes(certs.cert_to_pem(credentials.server_cert))
    paths[2].touch(mode=0o600)
    paths[2].write_bytes(certs.key_to_pem(credentials.server_key))
    return paths
