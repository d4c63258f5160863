"""keadm init, gettoken, join and reset exactly as a user types them, cloud and two edges on one machine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import containerd, free_port  # noqa: F401 - the shared runtime fixture
from tests.timeouts import scaled

KEADM = str(Path(sys.executable).with_name("keadm"))
pytestmark = pytest.mark.slow


class Machine:
    """One machine's worth of keadm invocations, with its own directories."""

    def __init__(self, base: Path, home: Path) -> None:
        self.base = base
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": ""}

    def dirs(self, name: str) -> list[str]:
        root = self.base / name
        return ["--config-dir", str(root / "etc"), "--data-dir", str(root / "var"), "--log-dir", str(root / "log")]

    def keadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([KEADM, *args], capture_output=True, text=True, env=self.env, timeout=scaled(120))
        if check:
            assert result.returncode == 0, f"keadm {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        kubeconfig = self.base / "cloud" / "etc" / "admin.kubeconfig"
        result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                                timeout=scaled(30), input=stdin)
        return result.stdout + result.stderr


def our_processes(base: Path) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if str(base) in line and "keadm" in line]


def sandboxes(endpoint: str, node: str | None = None) -> int:
    from cores.edge.cri import CriClient, labels_for_node

    async def count() -> int:
        async with CriClient(endpoint) as client:
            return len(await client.list_pod_sandbox(labels=labels_for_node(node) if node else None))

    return asyncio.run(count())


def make_labelled_sandbox(endpoint: str, node: str, name: str) -> None:
    from cores.edge.cri import CriClient, api, labels_for_pod

    async def run() -> None:
        async with CriClient(endpoint) as client:
            config = api.PodSandboxConfig(
                metadata=api.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
                labels=labels_for_pod(node, "default", name, f"uid-{name}"),
                linux=api.LinuxPodSandboxConfig(security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=api.NamespaceOption(network=api.NODE))),
            )
            await client.run_pod_sandbox(config)

    asyncio.run(run())


def test_init_join_two_edges_fail_cleanly_and_reset(tmp_path: Path, containerd: Any) -> None:  # noqa: F811
    machine = Machine(tmp_path, tmp_path / "home")
    (tmp_path / "home").mkdir()
    ws, https = free_port(), free_port()
    init = machine.keadm("init", "--advertise-address", "127.0.0.1", "--controlplane-port", str(free_port()),
                         "--set", f"modules.cloudHub.websocket.port={ws}", "--set", f"modules.cloudHub.https.port={https}",
                         *machine.dirs("cloud"))
    assert "KubeEdge cloud is up." in init.stdout and "keadm join --cloudcore-ipport=127.0.0.1:" in init.stdout
    token = machine.keadm("gettoken", "--config-dir", str(tmp_path / "cloud" / "etc")).stdout
    assert token.count("\n") == 1 and token.strip().count(".") == 3  # the token alone on one line
    token = token.strip()

    again = machine.keadm("init", *machine.dirs("cloud"), check=False)
    assert again.returncode != 0 and "already installed" in again.stderr

    join = ["join", "-e", f"127.0.0.1:{ws}", "-s", str(https), "-p", containerd.endpoint, "--node-ip", "127.0.0.1"]
    for name in ("edge-a", "edge-b"):
        machine.keadm(*join, "-t", token, "-i", name, *machine.dirs(name))
    deadline = time.monotonic() + scaled(30)
    while time.monotonic() < deadline:
        nodes = machine.kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status};{end}")
        if "edge-a=True" in nodes and "edge-b=True" in nodes:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"nodes not Ready within 30 s: {nodes}")
    roles = machine.kubectl("get", "nodes", "-l", "node-role.kubernetes.io/edge", "-o", "name")
    assert "node/edge-a" in roles and "node/edge-b" in roles

    # each failure: its own message, nothing left behind (no files, no process, no node)
    failures = {
        "taken": (["-t", token, "-i", "edge-a"], "already taken"),
        "tampered": (["-t", token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:], "-i", "edge-x"], "signature"),
        "mismatch": (["-t", "0" * 64 + token[64:], "-i", "edge-x"], "does not match the token"),
        "unreachable": (["-t", token, "-i", "edge-x", "-s", str(free_port())], "cannot reach the cloud"),
    }
    for case, (args, message) in failures.items():
        result = machine.keadm(*join, *args, *machine.dirs(f"fail-{case}"), check=False)
        assert result.returncode == 1 and message in result.stderr, f"{case}: {result.stderr}"
        assert not (tmp_path / f"fail-{case}").exists(), f"{case} left files"
    assert "edge-x" not in machine.kubectl("get", "nodes", "-o", "name")

    # reset one edge: only its containers go
    make_labelled_sandbox(containerd.endpoint, "edge-a", "test-a")
    make_labelled_sandbox(containerd.endpoint, "edge-b", "test-b")
    reset = machine.keadm("reset", "edge", "--force", *machine.dirs("edge-a"))
    assert "removed 1 containers and sandboxes of node edge-a" in reset.stdout
    assert sandboxes(containerd.endpoint, "edge-a") == 0 and sandboxes(containerd.endpoint, "edge-b") == 1
    assert not (tmp_path / "edge-a").exists()
    for name in ("edge-b", "cloud"):
        machine.keadm("reset", "--force", *machine.dirs(name))
    assert sandboxes(containerd.endpoint, "edge-b") == 0
    assert our_processes(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    second = machine.keadm("reset", "--force", *machine.dirs("cloud"))
    assert second.returncode == 0 and "Nothing to reset" in second.stdout
