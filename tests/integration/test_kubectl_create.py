"""kubectl's typed ``create`` commands, which post protobuf, store what kubectl itself renders.

Each command runs twice: with ``--dry-run=client -o json`` (kubectl's own rendering of the object
it would send) and for real against the control plane; every field of the rendering must then be
on the stored object with the same value (the server may add its defaults and bookkeeping).
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cores.controlplane.launcher import ControlPlane
from tests.integration.test_controlplane_kubectl import KUBECTL, kubectl

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is installed by scripts/test.sh")


def _protobuf_posted(plane: ControlPlane, *args: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run a create command with -v=8: its result, and whether its body went as protobuf."""
    result = kubectl(plane, "-v=8", *args)
    posted = [line for line in result.stderr.splitlines() if "Request Headers" in line or "Content-Type:" in line]
    return result, any("application/vnd.kubernetes.protobuf" in line and "Content-Type" in line for line in posted)


def _client_fields(rendered: Any) -> Any:
    """kubectl's rendering without what Go writes for unset fields: nulls and empty objects."""
    if isinstance(rendered, dict):
        kept = {key: _client_fields(value) for key, value in rendered.items() if value is not None}
        return {key: value for key, value in kept.items() if value != {}}
    if isinstance(rendered, list):
        return [_client_fields(item) for item in rendered]
    return rendered


def _missing(expected: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``expected`` is not contained in ``stored`` (dicts by key, lists item by item)."""
    if isinstance(expected, dict) and isinstance(stored, dict):
        return [miss for key, value in expected.items() for miss in
                (_missing(value, stored[key], f"{path}.{key}") if key in stored else [f"{path}.{key} absent"])]
    if isinstance(expected, list) and isinstance(stored, list) and len(expected) == len(stored):
        return [miss for index, (a, b) in enumerate(zip(expected, stored))
                for miss in _missing(a, b, f"{path}[{index}]")]
    return [] if expected == stored else [f"{path}: {expected!r} != {stored!r}"]


def _tls_pair(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "create.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _commands(tag: str, files: Path) -> list[tuple[str, str, list[str]]]:
    """(resource, name, create arguments) for each command under test."""
    binary = files / "blob.bin"
    binary.write_bytes(bytes(range(256)) + b"\x00\xff\xfe")
    cert, key = _tls_pair(files)
    namespace = ["--namespace", "default"]
    return [
        ("configmap", f"cm-{tag}", ["configmap", f"cm-{tag}", "--from-literal=x=y", "--from-literal=empty=",
                                    f"--from-file=blob={binary}", *namespace]),
        ("secret", f"generic-{tag}", ["secret", "generic", f"generic-{tag}", "--from-literal=password=s3cret",
                                      f"--from-file=blob={binary}", "--type=example.com/custom", *namespace]),
        ("secret", f"tls-{tag}", ["secret", "tls", f"tls-{tag}", f"--cert={cert}", f"--key={key}", *namespace]),
        ("secret", f"registry-{tag}", ["secret", "docker-registry", f"registry-{tag}", "--docker-server=r.example",
                                       "--docker-username=u", "--docker-password=p", *namespace]),
        ("deployment", f"deploy-{tag}", ["deployment", f"deploy-{tag}", "--image=busybox", "--replicas=2",
                                         "--port=80", *namespace, "--", "sleep", "3600"]),
        ("serviceaccount", f"sa-{tag}", ["serviceaccount", f"sa-{tag}", *namespace]),
        ("namespace", f"ns-{tag}", ["namespace", f"ns-{tag}"]),
        ("service", f"cip-{tag}", ["service", "clusterip", f"cip-{tag}", "--tcp=80:8080", "--tcp=443:8443",
                                   *namespace]),
        ("service", f"np-{tag}", ["service", "nodeport", f"np-{tag}", "--tcp=8080:80", *namespace]),
        ("service", f"ext-{tag}", ["service", "externalname", f"ext-{tag}", "--external-name=db.example.com",
                                   *namespace]),
    ]


def test_typed_creates_store_what_kubectl_renders(controlplane: ControlPlane, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    failures = []
    for resource, name, args in _commands(tag, tmp_path):
        rendered = json.loads(kubectl(controlplane, "create", "--dry-run=client", "-o", "json", *args).stdout)
        created, protobuf = _protobuf_posted(controlplane, "create", *args)
        assert protobuf, f"kubectl create {' '.join(args)} did not post protobuf; this test would prove nothing"
        assert f"{name} created" in created.stdout, created.stdout
        where = [] if resource == "namespace" else ["--namespace", "default"]
        stored = json.loads(kubectl(controlplane, "get", resource, name, *where, "-o", "json").stdout)
        expected = _client_fields(rendered)
        expected["metadata"].pop("creationTimestamp", None)
        failures += [f"{resource}/{name}: {miss}" for miss in _missing(expected, stored)]
    assert not failures, "\n".join(failures)


def test_binary_data_survives_protobuf(controlplane: ControlPlane, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01\xfe\xff" * 10)
    kubectl(controlplane, "create", "secret", "generic", f"bin-{tag}", f"--from-file=b={blob}", "-n", "default")
    kubectl(controlplane, "create", "configmap", f"bin-{tag}", f"--from-file=b={blob}", "-n", "default")
    secret = json.loads(kubectl(controlplane, "get", "secret", f"bin-{tag}", "-n", "default", "-o", "json").stdout)
    cm = json.loads(kubectl(controlplane, "get", "configmap", f"bin-{tag}", "-n", "default", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["b"]) == blob.read_bytes()
    assert base64.b64decode(cm["binaryData"]["b"]) == blob.read_bytes()


def test_scale_deployment(controlplane: ControlPlane) -> None:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    kubectl(controlplane, "create", "deployment", name, "--image=busybox", "-n", "default")
    scaled_up = kubectl(controlplane, "scale", "deployment", name, "--replicas=3", "-n", "default")
    assert f"deployment.apps/{name} scaled" in scaled_up.stdout
    stored = json.loads(kubectl(controlplane, "get", "deployment", name, "-n", "default", "-o", "json").stdout)
    assert stored["spec"]["replicas"] == 3
    kubectl(controlplane, "scale", "deployment", name, "--replicas=0", "-n", "default")
    stored = json.loads(kubectl(controlplane, "get", "deployment", name, "-n", "default", "-o", "json").stdout)
    assert stored["spec"]["replicas"] == 0
