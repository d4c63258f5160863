"""MetaServer's HTTPS (``requireAuthorization``): a CA of its own and a serving certificate from it.

The node's link certificate (``metaServer.tlsCertFile`` by default, as upstream's config names it)
is a client certificate: TLS clients refuse it from a server. So MetaServer makes, once, a CA and
a serving certificate for the addresses it answers on (its own, 127.0.0.1, upstream's dummy
169.254.30.10, ``localhost`` and ``kubernetes.default.svc``), under the paths of
:func:`cores.common.layout.metaserver_serving_paths`; keys are written 0600. A serving
certificate that expires within 30 days, or does not name the address, is made again. Clients
may present the node's own certificate (verified against ``tlsCaFile``): that is the node itself.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Any

from certs import x509 as certs
from cores.common.layout import metaserver_serving_paths

RENEW_BEFORE = datetime.timedelta(days=30)
DNS_NAMES = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local"]


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _usable(cert_path: Path, ca_path: Path, addresses: list[str]) -> bool:
    try:
        cert = certs.cert_from_pem(cert_path.read_bytes())
        ca = certs.cert_from_pem(ca_path.read_bytes())
    except (OSError, ValueError):
        return False
    from cryptography import x509

    if cert.issuer != ca.subject:
        return False
    if cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) < RENEW_BEFORE:
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    return all(address in ips for address in addresses)


def serving_context(meta_server: Any, host: str) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for MetaServer on ``host``; the CA file clients should trust."""
    paths = metaserver_serving_paths(meta_server)
    dummy = str(meta_server.get("dummyServer") or "").rpartition(":")[0]
    addresses = sorted({"127.0.0.1", "169.254.30.10", *(a for a in (host, dummy) if _is_ip(a))})
    if not _usable(paths["cert"], paths["ca"], addresses):
        try:
            ca = certs.cert_from_pem(paths["ca"].read_bytes())
            ca_key = certs.key_from_pem(paths["ca_key"].read_bytes())
        except (OSError, ValueError):
            ca, ca_key = certs.create_ca("kubeedge-metaserver-ca")
            _write(paths["ca_key"], certs.key_to_pem(ca_key), private=True)
            _write(paths["ca"], certs.cert_to_pem(ca), private=False)
        key = certs.generate_key()
        cert = certs.create_server_cert(ca, ca_key, key, common_name="kubeedge-metaserver", organization="",
                                        ip_addresses=addresses, dns_names=DNS_NAMES)
        _write(paths["key"], certs.key_to_pem(key), private=True)
        _write(paths["cert"], certs.cert_to_pem(cert) + certs.cert_to_pem(ca), private=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(paths["cert"], paths["key"])
    # A client certificate is optional: the node's own (its link certificate, signed by the CA in
    # tlsCaFile) is how `keadm ctl` at the edge speaks, as upstream's does; pods use tokens.
    # The CA may come later (EdgeHub fetches it when the node joins): it is loaded by the first
    # handshake that finds it, before that handshake verifies anything.
    node_ca = Path(str(meta_server.get("tlsCaFile") or ""))
    loaded = False

    def load_node_ca(*_: Any) -> None:
        nonlocal loaded
        if not loaded and node_ca.is_file():
            try:
                context.load_verify_locations(str(node_ca))
                loaded = True
            except (OSError, ssl.SSLError):
                pass

    load_node_ca()
    context.verify_mode = ssl.CERT_OPTIONAL
    context.sni_callback = load_node_ca
    return context, paths["ca"]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
