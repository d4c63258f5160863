"""The CRI client against a real private containerd (cores.runtime + cores.edge.cri)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cores.edge.cri import NODE_NAME, CriClient, CriError, RuntimeUnavailable, api, labels_for_container, labels_for_node, labels_for_pod
from cores.runtime import BUSYBOX_IMAGE, PAUSE_IMAGE, Containerd
from tests.timeouts import scaled

REPO = Path(__file__).resolve().parents[2]
# busybox as PID 1 ignores SIGTERM: without the trap StopContainer waits out its whole grace period.
SERVE_FOREVER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


@pytest.fixture()
async def cri(containerd: Containerd) -> AsyncIterator[CriClient]:
    async with CriClient(containerd.endpoint, timeout=scaled(30)) as client:
        yield client


def sandbox_config(node: str, name: str, logs: Path, host_network: bool = True) -> api.PodSandboxConfig:
    uid = str(uuid.uuid4())
    network = api.NODE if host_network else api.POD
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace="default", uid=uid),
        hostname="" if host_network else name,
        log_directory=str(logs / f"default_{name}_{uid}"),
        labels=labels_for_pod(node, "default", name, uid),
        annotations={"kubeedge.io/test": "yes"},
        linux=api.LinuxPodSandboxConfig(security_context=api.LinuxSandboxSecurityContext(
            namespace_options=api.NamespaceOption(network=network, pid=api.CONTAINER, ipc=api.POD))),
    )


def container_config(sandbox: api.PodSandboxConfig, name: str) -> api.ContainerConfig:
    meta = sandbox.metadata
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name),
        image=api.ImageSpec(image=BUSYBOX_IMAGE),
        command=SERVE_FOREVER,
        envs=[api.KeyValue(key="GREETING", value="hi")],
        labels=labels_for_container(sandbox.labels[NODE_NAME], meta.namespace, meta.name, meta.uid, name),
        log_path=f"{name}/0.log",
        linux=api.LinuxContainerConfig(
            resources=api.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_period=100000, cpu_quota=50000),
            security_context=api.LinuxContainerSecurityContext(namespace_options=sandbox.linux.security_context.namespace_options),
        ),
    )


async def run_pod(cri: CriClient, config: api.PodSandboxConfig, container: str = "main") -> tuple[str, str]:
    sandbox_id = await cri.run_pod_sandbox(config)
    container_id = await cri.create_container(sandbox_id, container_config(config, container), config)
    await cri.start_container(container_id)
    return sandbox_id, container_id


async def remove_pod(cri: CriClient, sandbox_id: str) -> None:
    for container in await cri.list_containers(pod_sandbox_id=sandbox_id):
        await cri.stop_container(container.id, timeout=5)
        await cri.remove_container(container.id)
    await cri.stop_pod_sandbox(sandbox_id)
    await cri.remove_pod_sandbox(sandbox_id)


async def test_version_and_status(cri: CriClient) -> None:
    version = await cri.version()
    assert (version.runtime_name, version.runtime_api_version) == ("containerd", "v1")
    status = await cri.status()
    assert status.runtime_ready, status.conditions
    assert status.network_ready, status.conditions


async def test_local_images_are_there(cri: CriClient) -> None:
    tags = {tag for image in await cri.list_images() for tag in image.repo_tags}
    assert {BUSYBOX_IMAGE, PAUSE_IMAGE} <= tags
    busybox = await cri.image_status(BUSYBOX_IMAGE)
    assert busybox is not None and busybox.size > 0
    assert await cri.image_status("localhost/not-there:local") is None


@pytest.mark.slow
async def test_host_network_pod_runs_busybox_and_execs(cri: CriClient, tmp_path: Path) -> None:
    config = sandbox_config("edge-a", "hostnet", tmp_path)
    sandbox_id, container_id = await run_pod(cri, config)
    try:
        result = await cri.exec_sync(container_id, ["sh", "-c", "echo $GREETING"], timeout=10)
        assert (result.exit_code, result.stdout, result.stderr) == (0, b"hi\n", b"")
        failing = await cri.exec_sync(container_id, ["sh", "-c", "echo oops >&2; exit 3"], timeout=10)
        assert (failing.exit_code, failing.stderr) == (3, b"oops\n")

        status = (await cri.container_status(container_id)).status
        assert status.state == api.CONTAINER_RUNNING and status.started_at > 0
        assert status.labels == container_config(config, "main").labels
        assert status.image.image and status.image_ref.startswith("sha256:")
        assert status.log_path == f"{config.log_directory}/main/0.log"

        sandbox = (await cri.pod_sandbox_status(sandbox_id)).status
        assert sandbox.state == api.SANDBOX_READY
        assert sandbox.annotations["kubeedge.io/test"] == "yes"
        assert sandbox.linux.namespaces.options.network == api.NODE
    finally:
        await remove_pod(cri, sandbox_id)
    assert await cri.list_pod_sandbox(labels=labels_for_node("edge-a")) == []


@pytest.mark.slow
async def test_each_edge_lists_only_what_it_labelled(cri: CriClient, tmp_path: Path) -> None:
    pods = {node: await run_pod(cri, sandbox_config(node, f"web-{node}", tmp_path)) for node in ("edge-a", "edge-b")}
    try:
        for node, (sandbox_id, container_id) in pods.items():
            containers = await cri.list_containers(labels=labels_for_node(node))
            assert [c.id for c in containers] == [container_id]
            assert containers[0].labels[NODE_NAME] == node and containers[0].state == api.CONTAINER_RUNNING
            sandboxes = await cri.list_pod_sandbox(labels=labels_for_node(node), state=api.SANDBOX_READY)
            assert [s.id for s in sandboxes] == [sandbox_id]
        running = await cri.list_containers(labels={NODE_NAME: "edge-a"}, state=api.CONTAINER_RUNNING)
        assert len(running) == 1
    finally:
        for sandbox_id, _ in pods.values():
            await remove_pod(cri, sandbox_id)
    assert await cri.list_containers(labels={NODE_NAME: "edge-b"}) == []


@pytest.mark.slow
async def test_pod_network_gets_an_address_from_our_subnet(cri: CriClient, containerd: Containerd, tmp_path: Path) -> None:
    config = sandbox_config("edge-a", "podnet", tmp_path, host_network=False)
    sandbox_id, container_id = await run_pod(cri, config)
    try:
        address = (await cri.pod_sandbox_status(sandbox_id)).status.network.ip
        assert ipaddress.ip_address(address) in ipaddress.ip_network(containerd.layout.pod_subnet)
        hostname = await cri.exec_sync(container_id, ["hostname"], timeout=10)
        assert hostname.stdout == b"podnet\n"
    finally:
        await remove_pod(cri, sandbox_id)


async def test_errors_carry_the_grpc_code(cri: CriClient) -> None:
    with pytest.raises(CriError) as caught:
        await cri.container_status("no-such-container")
    assert caught.value.not_found and caught.value.method == "runtime.v1.RuntimeService/ContainerStatus"
    # Removing what is gone is not an error (CRI makes remove idempotent).
    await cri.remove_container("no-such-container")


async def test_missing_socket_is_runtime_unavailable(tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/containerd.sock"
    async with CriClient(endpoint, timeout=5) as client:
        with pytest.raises(RuntimeUnavailable) as caught:
            await client.version()
    assert str(caught.value).startswith(f"container runtime at {endpoint} is not answering: ")
    assert "is containerd running?" in str(caught.value)


def leftovers(base: Path, bridge: str) -> list[str]:
    """Processes, mounts and links a stopped containerd of ``base`` must not leave behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(base).encode() in b" ".join(argv):
                found.append(f"process {entry.name}: {b' '.join(argv)[:120]!r}")
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(base))]
    if Path("/sys/class/net", bridge).exists():
        found.append(f"link {bridge}")
    return found


@pytest.mark.slow
async def test_command_line_start_and_stop_leave_nothing_behind(tmp_path: Path) -> None:
    base = tmp_path / "ctd"
    command = [sys.executable, "-m", "cores.runtime"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = subprocess.run([*command, "start", "--dir", str(base)], capture_output=True, text=True, env=env,
                             timeout=scaled(60))
    assert started.returncode == 0, started.stderr
    runtime = Containerd(base)
    assert runtime.pid is not None and runtime.endpoint in started.stdout
    assert subprocess.run([*command, "status", "--dir", str(base)], env=env, capture_output=True).returncode == 0
    again = subprocess.run([*command, "start", "--dir", str(base)], capture_output=True, text=True, env=env)
    assert again.returncode == 1 and "already runs" in again.stderr
    try:
        async with CriClient(runtime.endpoint, timeout=scaled(30)) as cri:
            # A pod with its own network (bridge, veth, netns mount) left running: stop must clean it all.
            await run_pod(cri, sandbox_config("edge-c", "leftover", tmp_path, host_network=False))
        assert leftovers(base, runtime.layout.bridge)  # the shim and the bridge are there now
    finally:
        stopped = subprocess.run([*command, "stop", "--dir", str(base)], capture_output=True, text=True, env=env,
                                 timeout=scaled(60))
    assert stopped.returncode == 0, stopped.stderr
    assert leftovers(base, runtime.layout.bridge) == []
    assert runtime.pid is None
    assert subprocess.run([*command, "stop", "--dir", str(base)], env=env, capture_output=True).returncode == 0
    assert subprocess.run([*command, "status", "--dir", str(base)], env=env, capture_output=True).returncode == 3
