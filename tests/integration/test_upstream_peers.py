"""Upstream KubeEdge's own binaries against ours: the final judge of wire compatibility.

Skipped, naming ``KEADM_UPSTREAM_BIN``, when the binaries are not unpacked (``scripts/test.sh``
unpacks them when ``../shared/upstream-v1.23`` is there; CI has them).

Upstream cloudcore is a client-go program that speaks protobuf to the API for built-in kinds:
at each start it creates or PUTs its Secrets, lists and watches every upstream CRD. On our
embedded control plane it must start, restart (the PUT path) and keep running with no error.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cores.common import supervision
from cores.controlplane.launcher import ControlPlane, stop
from cores.runtime import upstream
from tests.integration.conftest import start_controlplane
from tests.timeouts import scaled

CLOUDCORE = upstream.binary("cloudcore")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CLOUDCORE is None, reason=f"upstream cloudcore not found: set {upstream.BIN_ENV} "
                                                          "to a directory of unpacked upstream binaries (scripts/test.sh does)")]
REPO = Path(__file__).resolve().parents[2]
# What upstream cloudcore logs when the API refuses it (its klog error lines start with E or F).
FAILURES = ("Failed to watch", "failed to list", "couldn't get version/kind", "the server could not find the requested resource")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = start_controlplane(tmp_path_factory.mktemp("plane-for-upstream"))
    try:
        for crd in sorted((REPO / "templates" / "crds").glob("*.yaml")):  # as keadm init installs them
            subprocess.run(["kubectl", f"--kubeconfig={started.kubeconfig}", "apply", "-f", str(crd)],
                           check=True, capture_output=True, timeout=scaled(30))
        yield started
    finally:
        stop(started)


def kubectl(plane: ControlPlane, *args: str) -> str:
    return subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", *args], check=True, capture_output=True,
                          text=True, timeout=scaled(30)).stdout


def run_cloudcore(cloud: upstream.UpstreamCloud) -> None:
    supervision.start(cloud.spec, ready=lambda: "Starting cloudhub websocket server" in cloud.log())


def errors_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if line[:1] in ("E", "F") and any(f in line for f in FAILURES)]


def test_upstream_cloudcore_starts_and_restarts_on_the_embedded_control_plane(plane: ControlPlane, tmp_path: Path) -> None:
    assert CLOUDCORE is not None
    cloud = upstream.cloudcore_spec(CLOUDCORE, tmp_path / "cloudcore", plane.kubeconfig)
    run_cloudcore(cloud)  # first start: it creates its Secrets (protobuf POSTs)
    try:
        token = kubectl(plane, "get", "secret", "tokensecret", "-n", "kubeedge", "-o", "jsonpath={.data.tokendata}")
        assert base64.b64decode(token).decode().count(".") >= 1  # caHash.jwt
    finally:
        supervision.stop(cloud.spec, grace=scaled(10))
    first = cloud.log()

    run_cloudcore(cloud)  # second start: the Secrets exist, so it PUTs them in protobuf
    try:
        time.sleep(scaled(8))  # its informers list and watch everything meanwhile
        assert supervision.status(cloud.spec).running, cloud.log()[-3000:]
    finally:
        supervision.stop(cloud.spec, grace=scaled(10))
    second = cloud.log()[len(first):]
    assert "Starting cloudhub websocket server" in second
    assert errors_in(first + second) == []
    assert "failed to create ca to secrets" not in second and "failed to update the secret" not in second
