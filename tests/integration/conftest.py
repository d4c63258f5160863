"""Real parts for integration tests, started once per session by the same library code keadm uses."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cores.controlplane import launcher
# The private containerd: a missing Debian package fails the session's runtime tests with the
# package's name (scripts/lib.sh installs them); it does not skip them silently.
from cores.runtime import Containerd, MissingBinary
from tests.timeouts import scaled

# A static bearer token that authenticates a non-admin user (403 until RBAC exists).
VIEWER_TOKEN = "viewer-token-for-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_controlplane(base: Path, **overrides: object) -> launcher.ControlPlane:
    path = launcher.write_config(
        base / "etc", base / "var", port=free_port(), bind_address="127.0.0.1", advertise_address="127.0.0.1",
        overrides={"authentication": {"tokens": [{"token": VIEWER_TOKEN, "user": "viewer", "groups": ["viewers"]}]},
                   **overrides},
    )
    return launcher.start(path, base / "log", base / "run", readiness_timeout=scaled(30))


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.ControlPlane]:
    plane = start_controlplane(tmp_path_factory.mktemp("controlplane"))
    try:
        yield plane
    finally:
        launcher.stop(plane)


@pytest.fixture()
def api_client(controlplane: launcher.ControlPlane) -> Iterator[object]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    try:
        yield client
    finally:
        client.close()



@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """One private containerd with the local busybox and pause images, shared by the session's tests
    (as several EdgeCores share one); stopped by PID, with every pod removed, at the end."""
    runtime = Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        runtime.start(timeout=scaled(30))
    except MissingBinary as missing:
        pytest.fail(str(missing))
    try:
        yield runtime
    finally:
        runtime.stop()
