"""Density: ``python -m benchmarks.density --nodes N --pods-per-node M [--qps Q]`` prints one JSON object.

It starts its own control plane and a CloudCore sized for N nodes (``nodeLimit``), then hollow
edges (:mod:`cores.edge.fleet`: real EdgeHub + MetaManager over mTLS WebSocket, acks, Lease every
10 s, node status, every pod reported Running) in several processes, waits for every node to be
Ready, creates N*M pods at Q per second (``spec.nodeName`` set round-robin), and times each from
create to ``Running`` as seen by a watch. Keys: ``nodes``, ``pods``, ``qps``,
``pod_startup_p50_s``/``p90``/``p99``, ``nodes_ready_min`` (fewest Ready nodes at any sample
once all were Ready), ``cloudcore_rss_max_bytes``, ``cloudcore_cpu_seconds``,
``controlplane_rss_max_bytes``, ``messages_per_second_down``/``up`` (CloudHub's counts over the
run), ``errors``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_seconds, free_port, rss_bytes
from cores.common import layout as layouts
from cores.common.supervision import ServiceSpec, start, status, stop
from cores.controlplane import launcher

NODES_PER_PROCESS = 250








class Api:
    """Keep-alive HTTPS to the control plane with the admin certificate (lighter than the client library)."""

    def __init__(self, plane: launcher.ControlPlane) -> None:
        import http.client
        import ssl

        pki = plane.ca_file.parent
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        self.connection = http.client.HTTPSConnection("127.0.0.1", plane.config.server.port, context=context, timeout=120)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.connection.request(method, path, body=None if body is None else json.dumps(body),
                                headers={"Content-Type": "application/json"})
        reply = self.connection.getresponse()
        data = reply.read()
        return reply.status, json.loads(data) if data else None


def ready_nodes(api: Api, prefix: str) -> int:
    _, nodes = api.request("GET", "/api/v1/nodes")
    count = 0
    for node in nodes["items"]:
        if node["metadata"]["name"].startswith(prefix):
            conditions = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
            count += conditions.get("Ready") == "True"
    return count


def watch_running(plane: launcher.ControlPlane, created: dict[str, float], running: dict[str, float], done: threading.Event) -> None:
    """Record when each pod is first seen Running; re-watch from the last version if the stream ends."""
    resource_version = ""
    while not done.is_set():
        api = Api(plane)
        api.connection.timeout = None  # a quiet watch is not a dead one
        try:
            api.connection.request("GET", "/api/v1/namespaces/density/pods?watch=1&timeoutSeconds=600"
                                   f"&resourceVersion={resource_version}")
            reply = api.connection.getresponse()
            while not done.is_set():
                line = reply.readline()
                if not line:
                    break
                event = json.loads(line)
                pod = event["object"]
                if event["type"] == "ERROR":  # e.g. 410 after compaction: list again from now
                    resource_version = ""
                    break
                resource_version = pod["metadata"].get("resourceVersion", resource_version)
                name = pod["metadata"]["name"]
                if (pod.get("status") or {}).get("phase") == "Running" and name not in running:
                    running[name] = time.monotonic()
        except (OSError, ValueError, KeyError) as error:
            print(f"density watch: {error!r}; watching again", file=sys.stderr)
            time.sleep(0.5)
        finally:
            api.connection.close()


def measure(nodes: int, pods_per_node: int, qps: float, base: Path) -> dict[str, Any]:
    errors = 0
    config_path = launcher.write_config(base / "cp" / "etc", base / "cp" / "var", port=free_port(), bind_address="127.0.0.1",
                                        advertise_address="127.0.0.1")
    plane = launcher.start(config_path, base / "cp" / "log", base / "cp" / "run", readiness_timeout=60)
    layout = layouts.Layout(base / "cloud" / "etc", base / "cloud" / "var", base / "cloud" / "log")
    ws, https = free_port(), free_port()
    document = layouts.cloudcore_document(layout, kubeconfig=plane.kubeconfig, advertise_address="127.0.0.1",
                                          websocket_port=ws, https_port=https, bind_address="127.0.0.1")
    document["modules"]["cloudHub"]["nodeLimit"] = max(nodes, 500)
    config = layouts.write(layout.cloudcore_config, document)
    cloud = ServiceSpec(component="cloudcore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
                        argv=(*launcher.keadm_argv(), "run", "cloud", "--config", str(config)), readiness_timeout=60)
    fleets: list[subprocess.Popen[bytes]] = []
    try:
        start(cloud, ready=lambda: cloud.log_file.exists() and "websocket server listening" in cloud.log_file.read_text())
        from cores.install.cloud import read_token

        token = read_token(plane.kubeconfig)
        cloud_pid, plane_pid = status(cloud).pid, status(plane.spec).pid
        assert cloud_pid and plane_pid
        cpu_start = cpu_seconds(cloud_pid)
        for index, first in enumerate(range(0, nodes, NODES_PER_PROCESS)):
            count = min(NODES_PER_PROCESS, nodes - first)
            log = open(base / f"fleet-{index}.log", "wb")
            fleets.append(subprocess.Popen(
                [sys.executable, "-m", "cores.edge.fleet", "--count", str(count), "--prefix", f"hollow-{index}",
                 "--dir", str(base / f"fleet-{index}"), "--websocket-port", str(ws), "--https-port", str(https),
                 "--token", token], stdout=log, stderr=subprocess.STDOUT))
        api = Api(plane)
        deadline = time.monotonic() + max(120, nodes / 10)
        while ready_nodes(api, "hollow-") < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {ready_nodes(api, 'hollow-')} of {nodes} nodes became Ready")
            time.sleep(2)
        api.request("POST", "/api/v1/namespaces", {"metadata": {"name": "density"}})
        peak = {"cloud": rss_bytes(cloud_pid), "plane": rss_bytes(plane_pid), "ready_min": nodes}
        sampling = threading.Event()

        def sample() -> None:
            sampler = Api(plane)
            while not sampling.is_set():
                peak["cloud"] = max(peak["cloud"], rss_bytes(cloud_pid))
                peak["plane"] = max(peak["plane"], rss_bytes(plane_pid))
                peak["ready_min"] = min(peak["ready_min"], ready_nodes(sampler, "hollow-"))
                sampling.wait(5)

        created: dict[str, float] = {}
        running: dict[str, float] = {}
        done = threading.Event()
        watcher = threading.Thread(target=watch_running, args=(plane, created, running, done), daemon=True)
        watcher.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        time.sleep(1)
        total = nodes * pods_per_node
        started = time.monotonic()
        for index in range(total):
            due = started + index / qps
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            name = f"density-{index}"
            body = {"metadata": {"name": name}, "spec": {
                "nodeName": f"hollow-{(index % nodes) // NODES_PER_PROCESS}-{(index % nodes) % NODES_PER_PROCESS}",
                "automountServiceAccountToken": False, "containers": [{"name": "c", "image": "localhost/busybox:local"}]}}
            created[name] = time.monotonic()
            code, reply = api.request("POST", "/api/v1/namespaces/density/pods", body)
            if code != 201:
                errors += 1
                print(f"create {name}: {code} {str(reply)[:200]}", file=sys.stderr)
        deadline = time.monotonic() + 120
        while len(running) < total and time.monotonic() < deadline:
            time.sleep(1)
        elapsed = time.monotonic() - started
        done.set()
        sampling.set()
        latencies = sorted(running[name] - created[name] for name in running if name in created)
        errors += total - len(latencies)
        _, listed = api.request("GET", "/api/v1/namespaces/density/pods")
        phases: dict[str, int] = {}
        for item in listed["items"]:
            phase = (item.get("status") or {}).get("phase", "?")
            phases[phase] = phases.get(phase, 0) + 1
        cpu = cpu_seconds(cloud_pid) - cpu_start

        def pct(q: float) -> float | None:
            return round(latencies[min(len(latencies) - 1, int(len(latencies) * q))], 3) if latencies else None

        result: dict[str, Any] = {
            "nodes": nodes, "pods": total, "qps": qps,
            "pod_startup_p50_s": pct(0.5), "pod_startup_p90_s": pct(0.9), "pod_startup_p99_s": pct(0.99),
            "nodes_ready_min": peak["ready_min"], "cloudcore_rss_max_bytes": peak["cloud"],
            "cloudcore_cpu_seconds": round(cpu, 1), "controlplane_rss_max_bytes": peak["plane"],
            "pod_phases_at_end": phases,
        }
    finally:
        for fleet in fleets:
            fleet.terminate()
        for fleet in fleets:
            try:
                fleet.wait(30)
            except subprocess.TimeoutExpired:
                fleet.kill()
                fleet.wait()
        stop(cloud)
        launcher.stop(plane)
    traffic = re.findall(r"cloudhub traffic: (\d+) messages sent to edges, (\d+) received", cloud.log_file.read_text())
    down, up = (int(traffic[-1][0]), int(traffic[-1][1])) if traffic else (0, 0)
    result["messages_per_second_down"] = round(down / elapsed, 1)
    result["messages_per_second_up"] = round(up / elapsed, 1)
    result["errors"] = errors
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--qps", type=float, default=100.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-density-") as base:
        print(json.dumps(measure(args.nodes, args.pods_per_node, args.qps, Path(base)), indent=2))


if __name__ == "__main__":
    main()
