"""Embedded control plane numbers: ``python -m benchmarks.controlplane [--pods N]`` prints one JSON object.

It starts its own control plane (the same launcher ``keadm init`` uses) in a temporary directory
on a free port, drives it over HTTPS with keep-alive connections from a few client threads, and
stops it after. Keys: ``creates_per_second``, ``status_patches_per_second``,
``list_latency_seconds`` (all pods, median of 5), ``watch_event_latency_p50_seconds`` and
``_p99_seconds`` (10 watchers), ``rss_idle_bytes``, ``rss_loaded_bytes`` (with all pods stored),
``pods``, ``revision``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import free_port, rss_bytes
from cores.common.supervision import status
from cores.controlplane import launcher






class Client:
    """One keep-alive HTTPS connection with the admin certificate."""

    def __init__(self, plane: launcher.ControlPlane) -> None:
        pki = plane.ca_file.parent
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        self.connection = http.client.HTTPSConnection("127.0.0.1", plane.config.server.port, context=context)

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        self.connection.request(method, path, body=data, headers=headers)
        reply = self.connection.getresponse()
        return reply.status, reply.read()


def pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "bench", "node": node}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }


def status_patch(index: int) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"status": {"phase": "Running", "podIP": f"10.0.{index // 250}.{index % 250}",
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                       "$setElementOrder/conditions": [{"type": "Ready"}]}}


def run_parallel(plane: launcher.ControlPlane, jobs: list[Any], work: Any, threads: int = 8) -> float:
    """Run ``work(client, job)`` over ``jobs`` on ``threads`` connections; the elapsed seconds."""
    chunks = [jobs[i::threads] for i in range(threads)]

    def worker(chunk: list[Any]) -> None:
        client = Client(plane)
        for job in chunk:
            work(client, job)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, chunks))
    return time.perf_counter() - start


def create(client: Client, index: int) -> None:
    code, body = client.request("POST", "/api/v1/namespaces/default/pods", pod(f"bench-{index}", f"edge-{index % 100}"))
    if code != 201:
        raise RuntimeError(f"create failed: {code} {body[:200]!r}")


def patch_status(client: Client, index: int) -> None:
    code, body = client.request("PATCH", f"/api/v1/namespaces/default/pods/bench-{index}/status", status_patch(index),
                                "application/strategic-merge-patch+json")
    if code != 200:
        raise RuntimeError(f"status patch failed: {code} {body[:200]!r}")


def watch_latency(plane: launcher.ControlPlane, watchers: int = 10, events: int = 200) -> list[float]:
    sent: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(watchers + 1)

    def watch() -> None:
        client = Client(plane)
        client.connection.request("GET", "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=bench%3Dwatch&timeoutSeconds=120")
        reply = client.connection.getresponse()
        ready.wait()
        seen = 0
        while seen < events:
            line = reply.readline()
            if not line:
                break
            received = time.perf_counter()
            name = json.loads(line)["object"]["metadata"]["name"]
            with lock:
                latencies.append(received - sent[name])
            seen += 1
        client.connection.close()

    threads = [threading.Thread(target=watch) for _ in range(watchers)]
    for thread in threads:
        thread.start()
    ready.wait()
    writer = Client(plane)
    for index in range(events):
        name = f"watch-{index}"
        with lock:
            sent[name] = time.perf_counter()
        writer.request("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": name, "labels": {"bench": "watch"}}})
        time.sleep(0.005)
    for thread in threads:
        thread.join(60)
    return sorted(latencies)


def measure(pods: int, base: Path) -> dict[str, Any]:
    path = launcher.write_config(base / "etc", base / "var", port=free_port(), bind_address="127.0.0.1",
                                 advertise_address="127.0.0.1")
    plane = launcher.start(path, base / "log", base / "run")
    try:
        pid = status(plane.spec).pid
        assert pid is not None
        time.sleep(1)
        result: dict[str, Any] = {"pods": pods, "rss_idle_bytes": rss_bytes(pid)}
        elapsed = run_parallel(plane, list(range(pods)), create)
        result["creates_per_second"] = round(pods / elapsed, 1)
        patches = min(pods, 2000)
        elapsed = run_parallel(plane, list(range(patches)), patch_status)
        result["status_patches_per_second"] = round(patches / elapsed, 1)
        client = Client(plane)
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            code, body = client.request("GET", "/api/v1/pods")
            timings.append(time.perf_counter() - start)
            assert code == 200 and len(json.loads(body)["items"]) == pods
        result["list_latency_seconds"] = round(statistics.median(timings), 4)
        latencies = watch_latency(plane)
        result["watch_event_latency_p50_seconds"] = round(latencies[len(latencies) // 2], 5)
        result["watch_event_latency_p99_seconds"] = round(latencies[int(len(latencies) * 0.99) - 1], 5)
        result["rss_loaded_bytes"] = rss_bytes(pid)
        code, body = client.request("GET", "/api/v1/namespaces/default/pods?limit=1")
        result["revision"] = int(json.loads(body)["metadata"]["resourceVersion"])
        return result
    finally:
        launcher.stop(plane)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-controlplane-") as base:
        print(json.dumps(measure(args.pods, Path(base)), indent=2))


if __name__ == "__main__":
    main()
