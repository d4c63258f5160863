"""keadm init on a real cluster: the stream server's client CA is taken from the kubeconfig."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from certs import x509 as certs
from cores.install.cloud import cluster_ca


def kubeconfig(path: Path, clusters: list[dict[str, object]], current: str = "ctx-b") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current, "clusters": clusters,
        "contexts": [{"name": "ctx-a", "context": {"cluster": "a", "user": "u"}},
                     {"name": "ctx-b", "context": {"cluster": "b", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    return path


def test_the_current_contexts_ca_inline_or_by_relative_file(tmp_path: Path) -> None:
    pem_a = certs.cert_to_pem(certs.create_ca("a-ca")[0])
    pem_b = certs.cert_to_pem(certs.create_ca("b-ca")[0])
    (tmp_path / "b.crt").write_bytes(pem_b)
    inline = kubeconfig(tmp_path / "inline", [
        {"name": "a", "cluster": {"server": "https://a", "certificate-authority-data": base64.b64encode(pem_a).decode()}},
        {"name": "b", "cluster": {"server": "https://b", "certificate-authority-data": base64.b64encode(pem_b).decode()}}])
    assert cluster_ca(inline) == pem_b
    by_file = kubeconfig(tmp_path / "file", [{"name": "b", "cluster": {"server": "https://b", "certificate-authority": "b.crt"}}])
    assert cluster_ca(by_file) == pem_b


def test_no_ca_or_junk_is_none_never_an_exception(tmp_path: Path) -> None:
    assert cluster_ca(kubeconfig(tmp_path / "none", [{"name": "b", "cluster": {"server": "https://b"}}])) is None
    assert cluster_ca(kubeconfig(tmp_path / "junk", [{"name": "b", "cluster": {
        "certificate-authority-data": base64.b64encode(b"not a certificate").decode()}}])) is None
    assert cluster_ca(kubeconfig(tmp_path / "bad64", [{"name": "b", "cluster": {"certificate-authority-data": "%%%"}}])) is None
    assert cluster_ca(kubeconfig(tmp_path / "gone", [{"name": "b", "cluster": {"certificate-authority": "/nonexistent"}}])) is None
    (tmp_path / "list").write_text("- just\n- a list\n")
    assert cluster_ca(tmp_path / "list") is None
