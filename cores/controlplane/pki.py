"""The control plane's own PKI and the admin kubeconfig, made on first start.

Its CA is separate from the KubeEdge CA that signs edge nodes, as in a real cluster: the API
server's serving certificate and the admin's client certificate (``O=system:masters``) come from
it. Files, under ``pkiDir``: ``ca.crt``/``ca.key``, ``apiserver.crt``/``apiserver.key``,
``admin.crt``/``admin.key``, ``apiserver-kubelet-client.crt``/``.key`` (what the control plane
presents to CloudCore's stream server, kube-apiserver's ``--kubelet-client-certificate``: no
group, so it is nobody on the API itself), and ``sa.key``/``sa.pub`` (the key that signs
service-account tokens). Existing files are reused, so restarts keep every credential.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ipaddress
import os
from pathlib import Path

import yaml

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
CLUSTER_NAME = "kubeedge"
_CLUSTER_DNS = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")


@dataclasses.dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def kubelet_client_cert(self) -> Path:
        return self.directory / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.directory / "apiserver-kubelet-client.key"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.directory / "sa.pub"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def ensure_pki(directory: Path, ip_addresses: list[str], dns_names: list[str], service_ip: str) -> Pki:
    """Create whatever of the CA, serving and admin certificates is missing; keep what exists."""
    pki = Pki(directory)
    files = (pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key, pki.admin_cert, pki.admin_key,
             pki.kubelet_client_cert, pki.kubelet_client_key, pki.service_account_key, pki.service_account_public_key)
    if all(path.exists() for path in files):
        return pki  # restarts need no key material in memory (and not cryptography's ~10 MB)
    from certs import x509 as certs

    if pki.ca_cert.exists() and pki.ca_key.exists():
        ca_cert = certs.cert_from_pem(pki.ca_cert.read_bytes())
        ca_key = certs.key_from_pem(pki.ca_key.read_bytes())
    else:
        ca_cert, ca_key = certs.create_ca(common_name="kubeedge-controlplane-ca")
        _write_private(pki.ca_key, certs.key_to_pem(ca_key))
        _write_private(pki.ca_cert, certs.cert_to_pem(ca_cert))
    if not (pki.server_cert.exists() and pki.server_key.exists()):
        key = certs.generate_key()
        ips = sorted({"127.0.0.1", service_ip, *[ip for ip in ip_addresses if _is_ip(ip)]})
        server = certs.create_server_cert(
            ca_cert, ca_key, key, common_name="kube-apiserver", organization="",
            ip_addresses=ips, dns_names=sorted({*_CLUSTER_DNS, *dns_names}),
        )
        _write_private(pki.server_key, certs.key_to_pem(key))
        _write_private(pki.server_cert, certs.cert_to_pem(server))
    if not (pki.admin_cert.exists() and pki.admin_key.exists()):
        key = certs.generate_key()
        admin = certs.create_client_cert(
            ca_cert, ca_key, key, common_name=ADMIN_USER, organizations=[ADMIN_GROUP],
            validity=datetime.timedelta(days=3650),
        )
        _write_private(pki.admin_key, certs.key_to_pem(key))
        _write_private(pki.admin_cert, certs.cert_to_pem(admin))
    if not (pki.kubelet_client_cert.exists() and pki.kubelet_client_key.exists()):
        key = certs.generate_key()
        client = certs.create_client_cert(ca_cert, ca_key, key, common_name=KUBELET_CLIENT_USER, organizations=[],
                                          validity=datetime.timedelta(days=3650))
        _write_private(pki.kubelet_client_key, certs.key_to_pem(key))
        _write_private(pki.kubelet_client_cert, certs.cert_to_pem(client))
    if not (pki.service_account_key.exists() and pki.service_account_public_key.exists()):
        from cryptography.hazmat.primitives import serialization

        key = certs.generate_key()
        _write_private(pki.service_account_key, certs.key_to_pem(key))
        _write_private(pki.service_account_public_key, key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    """An admin kubeconfig with everything embedded, as kubeadm writes admin.conf."""
    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)}}],
        "users": [{"name": ADMIN_USER, "user": {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)}}],
        "contexts": [{"name": f"{ADMIN_USER}@{CLUSTER_NAME}", "context": {"cluster": CLUSTER_NAME, "user": ADMIN_USER}}],
        "current-context": f"{ADMIN_USER}@{CLUSTER_NAME}",
        "preferences": {},
    }
    _write_private(path, yaml.safe_dump(document, sort_keys=False).encode())
