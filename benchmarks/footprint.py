"""Edge and cloud footprint: ``python -m benchmarks.footprint`` prints one JSON object.

It starts what it needs itself (control plane, CloudCore, a private containerd through the
runtime helper) in a temporary directory on free ports, measures, and stops it all. Keys:
``edgecore_rss_idle_bytes`` (a joined EdgeCore with Edged on containerd, no pods, after it
settled), ``edgecore_rss_10pods_bytes`` (with 10 running pods), ``edgecore_cpu_percent_idle`` and
``edgecore_cpu_percent_10pods`` (its CPU use over 30 s, percent of one core), ``edgecore_rss_idle_nodevices_bytes``,
``edgecore_rss_idle_mqtt2_bytes``, ``edgecore_rss_idle_mqtt0_bytes``, ``edgecore_rss_idle_servicebus_bytes`` and
``edgecore_rss_idle_metaserver_bytes`` (the same idle EdgeCore with EventBus and DeviceTwin off, on mosquitto
with mqttMode 2, on the embedded broker with mqttMode 0, on mosquitto with ServiceBus on, and on mosquitto
with MetaServer on;
the default ``edgecore_rss_idle_bytes`` runs mode 2 with no broker there), ``edge_connect_seconds`` (from
``keadm run edge`` to connected, venv), ``cloudcore_rss_idle_bytes``, ``controlplane_rss_idle_bytes``.
The frozen-binary keys (``binary_bytes``, ``edgecore_frozen_pss_idle_bytes``,
``edge_connect_seconds_frozen``) are measured when ``dist/keadm`` exists, else null.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import free_port, rss_bytes
from cores.common import layout as layouts
from cores.common.supervision import ServiceSpec, start, status, stop
from cores.controlplane import launcher
from cores.runtime import Containerd

REPO = Path(__file__).resolve().parents[1]






def pss_bytes(pid: int) -> int:
    """Proportional set size of a process and its children (a frozen binary forks a child)."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def wait(check: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise TimeoutError("timed out")


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True,
                          text=True, check=True).stdout


def token_of(kubeconfig: Path) -> str:
    from cores.install.cloud import read_token

    return read_token(kubeconfig)


def edge_spec(layout: layouts.Layout, argv_prefix: tuple[str, ...], config: Path) -> ServiceSpec:
    return ServiceSpec(component="edgecore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
                       argv=(*argv_prefix, "run", "edge", "--config", str(config)), readiness_timeout=60)


def measure(base: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"binary_bytes": None, "edgecore_frozen_pss_idle_bytes": None, "edge_connect_seconds_frozen": None}
    cp_config = launcher.write_config(base / "cp" / "etc", base / "cp" / "var", port=free_port(), bind_address="127.0.0.1",
                                      advertise_address="127.0.0.1")
    plane = launcher.start(cp_config, base / "cp" / "log", base / "cp" / "run")
    runtime = Containerd(base / "containerd")
    runtime.start()
    cloud_layout = layouts.Layout(base / "cloud" / "etc", base / "cloud" / "var", base / "cloud" / "log")
    ws, https = free_port(), free_port()
    cloud_config = layouts.write(cloud_layout.cloudcore_config, layouts.cloudcore_document(
        cloud_layout, kubeconfig=plane.kubeconfig, advertise_address="127.0.0.1", websocket_port=ws, https_port=https,
        bind_address="127.0.0.1"))
    cloud = ServiceSpec(component="cloudcore", config_dir=cloud_layout.config_dir, log_dir=cloud_layout.log_dir,
                        run_dir=cloud_layout.run_dir, argv=(*launcher.keadm_argv(), "run", "cloud", "--config", str(cloud_config)))
    edges: list[ServiceSpec] = []
    try:
        start(cloud, ready=lambda: cloud.log_file.exists() and "websocket server listening" in cloud.log_file.read_text())
        token = token_of(plane.kubeconfig)
        variants = [("", launcher.keadm_argv())]
        frozen = REPO / "dist" / "keadm"
        if frozen.exists():
            result["binary_bytes"] = frozen.stat().st_size
            variants.append(("_frozen", (str(frozen),)))
        for suffix, argv in variants:
            node = f"footprint{suffix.replace('_', '-')}"
            layout = layouts.Layout(base / node / "etc", base / node / "var", base / node / "log")
            config = layouts.write(layout.edgecore_config, layouts.edgecore_document(
                layout, node_name=node, cloud_host="127.0.0.1", token=token, websocket_port=ws, https_port=https,
                node_ip="127.0.0.1", runtime_endpoint=runtime.endpoint))
            # bootstrap once first, so the connect time below is a restart's, not a first join's
            spec = edge_spec(layout, argv, config)
            edges.append(spec)

            def joined(spec: ServiceSpec = spec) -> bool:
                return spec.log_file.exists() and "connected to" in spec.log_file.read_text()

            def reconnected(spec: ServiceSpec = spec) -> bool:
                return "connected to" in spec.log_file.read_text()

            start(spec, ready=joined)
            stop(spec)
            spec.log_file.write_text("")
            started = time.monotonic()
            start(spec, ready=reconnected)
            result[f"edge_connect_seconds{suffix}"] = round(time.monotonic() - started, 3)
            time.sleep(15)  # registration, status and lease settle
            pid = status(spec).pid
            assert pid is not None
            if suffix:
                result["edgecore_frozen_pss_idle_bytes"] = pss_bytes(pid)
            else:
                result["edgecore_rss_idle_bytes"] = rss_bytes(pid)
                result["edgecore_cpu_percent_idle"] = cpu_percent(pid, 30)
                result["edgecore_rss_10pods_bytes"], result["edgecore_cpu_percent_10pods"] = with_pods(plane.kubeconfig, node, pid)
        result.update(device_variants(base, runtime, token, ws, https, edges))
        cloud_pid = status(cloud).pid
        plane_pid = status(plane.spec).pid
        result["cloudcore_rss_idle_bytes"] = rss_bytes(cloud_pid) if cloud_pid else None
        result["controlplane_rss_idle_bytes"] = rss_bytes(plane_pid) if plane_pid else None
        return result
    finally:
        for spec in edges:
            stop(spec)
        stop(cloud)
        launcher.stop(plane)
        runtime.stop()


def device_variants(base: Path, runtime: Containerd, token: str, ws: int, https: int, edges: list[ServiceSpec]) -> dict[str, Any]:
    """Idle RSS of the same joined EdgeCore (venv) with the device modules off, with EventBus on
    mosquitto (mqttMode 2, the default: the paho client only) and on the embedded broker (mode 0)."""
    from cores.runtime.mosquitto import Mosquitto

    found: dict[str, Any] = {}
    broker = Mosquitto(base / "mosquitto")
    broker.start()
    try:
        variants: list[tuple[str, dict[str, Any]]] = [
            ("nodevices", {"eventBus": {"enable": False}, "deviceTwin": {"enable": False}}),
            ("mqtt2", {"eventBus": {"mqttMode": 2, "mqttServerExternal": broker.url}}),
            ("mqtt0", {"eventBus": {"mqttMode": 0, "mqttServerInternal": f"tcp://127.0.0.1:{free_port()}"}}),
            ("servicebus", {"eventBus": {"mqttMode": 2, "mqttServerExternal": broker.url},
                            "serviceBus": {"enable": True, "port": free_port()}}),
            ("metaserver", {"eventBus": {"mqttMode": 2, "mqttServerExternal": broker.url},
                            "metaManager": {"metaServer": {"enable": True, "server": f"127.0.0.1:{free_port()}"}}}),
        ]
        for name, modules in variants:
            node = f"footprint-{name}"
            layout = layouts.Layout(base / node / "etc", base / node / "var", base / node / "log")
            document = layouts.edgecore_document(layout, node_name=node, cloud_host="127.0.0.1", token=token, websocket_port=ws,
                                                 https_port=https, node_ip="127.0.0.1", runtime_endpoint=runtime.endpoint)
            for module, settings in modules.items():
                document["modules"][module].update(settings)
            spec = edge_spec(layout, launcher.keadm_argv(), layouts.write(layout.edgecore_config, document))
            edges.append(spec)
            def connected(spec: ServiceSpec = spec) -> bool:
                return spec.log_file.exists() and "connected to" in spec.log_file.read_text()

            # bootstrap first, then measure a restart: the bootstrap's crypto imports stay out
            start(spec, ready=connected)
            stop(spec)
            spec.log_file.write_text("")
            start(spec, ready=connected)
            time.sleep(15)
            pid = status(spec).pid
            assert pid is not None
            found[f"edgecore_rss_idle_{name}_bytes"] = rss_bytes(pid)
            stop(spec)
    finally:
        broker.stop()
    return found


def cpu_percent(pid: int, seconds: float) -> float:
    """User + system CPU time of the process over ``seconds``, in percent of one core."""
    def used() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = used()
    time.sleep(seconds)
    return round(100 * (used() - before) / seconds, 2)


def with_pods(kubeconfig: Path, node: str, pid: int) -> tuple[int, float]:
    for index in range(10):
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"fp-{index}"},
            "spec": {"nodeName": node, "hostNetwork": True, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "localhost/busybox:local",
                                     "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}}))
    wait(lambda: kubectl(kubeconfig, "get", "pods", "-o", "jsonpath={.items[*].status.phase}").split().count("Running") == 10, 120)
    time.sleep(10)
    rss = rss_bytes(pid)
    cpu = cpu_percent(pid, 30)
    kubectl(kubeconfig, "delete", "pods", "--all", "--wait", "--timeout=60s")
    return rss, cpu


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as base:
        print(json.dumps(measure(Path(base)), indent=2))


if __name__ == "__main__":
    main()
