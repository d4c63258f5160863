"""The committed CRI stubs match api.proto, carry upstream's field numbers, and the client maps errors."""

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from cores.edge.cri import CriClient, RuntimeUnavailable, api
from cores.edge.cri.client import socket_path

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (test extra) is not installed")
def test_committed_stubs_match_the_proto() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_cri.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("message", "field", "number"), [
    # Spot checks against k8s.io/cri-api pkg/apis/runtime/v1/api.proto.
    ("PodSandboxConfig", "linux", 8),
    ("PodSandboxConfig", "port_mappings", 5),
    ("LinuxSandboxSecurityContext", "run_as_group", 8),
    ("LinuxSandboxSecurityContext", "privileged", 6),
    ("LinuxContainerSecurityContext", "run_as_group", 12),
    ("LinuxContainerSecurityContext", "readonly_rootfs", 7),
    ("LinuxContainerResources", "memory_limit_in_bytes", 4),
    ("ContainerConfig", "log_path", 11),
    ("ContainerConfig", "linux", 15),
    ("ContainerStatus", "log_path", 15),
    ("ContainerStatus", "mounts", 14),
    ("ContainerFilter", "label_selector", 4),
    ("ExecSyncRequest", "timeout", 3),
    ("StatusResponse", "info", 2),
])
def test_field_numbers_are_upstreams(message: str, field: str, number: int) -> None:
    assert api.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number


def test_services_live_in_runtime_v1() -> None:
    assert api.DESCRIPTOR.package == "runtime.v1"
    runtime = api.DESCRIPTOR.services_by_name["RuntimeService"]
    assert {"Version", "Status", "RunPodSandbox", "ExecSync", "ListContainers"} <= set(runtime.methods_by_name)
    assert set(api.DESCRIPTOR.services_by_name["ImageService"].methods_by_name) == {
        "ListImages", "ImageStatus", "PullImage", "RemoveImage"}


def test_endpoints() -> None:
    assert socket_path("unix:///run/containerd/containerd.sock") == "/run/containerd/containerd.sock"
    assert socket_path("/run/x.sock") == "/run/x.sock"
    with pytest.raises(ValueError, match="unix://"):
        socket_path("tcp://127.0.0.1:1234")


def test_missing_socket_is_runtime_unavailable(tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/nothing.sock"

    async def call() -> None:
        async with CriClient(endpoint, timeout=5) as cri:
            await cri.version()

    with pytest.raises(RuntimeUnavailable) as caught:
        asyncio.run(call())
    assert str(caught.value).startswith(f"container runtime at {endpoint} is not answering: ")
    assert str(caught.value).endswith("is containerd running?")
    assert caught.value.code == "UNAVAILABLE" and caught.value.method == "runtime.v1.RuntimeService/Version"


def test_refused_socket_is_runtime_unavailable(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))  # bound but never listening: connect() is refused

        async def call() -> None:
            async with CriClient(f"unix://{path}", timeout=5) as cri:
                await cri.status()

        with pytest.raises(RuntimeUnavailable, match="connection refused"):
            asyncio.run(call())
