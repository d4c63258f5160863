"""Streams: ``python -m benchmarks.streams [--megabytes 20]`` prints one JSON object.

It starts its own control plane, CloudCore, a private containerd and one EdgeCore, runs a pod that
writes ``--megabytes`` of log lines and then idles, and measures through the control plane's API
(the admin certificate, no kubectl start-up in the figures):

- ``logs_first_byte_seconds``: GET ``pods/<p>/log?tailLines=1`` to its first byte (median of 10);
- ``logs_throughput_mb_per_second``: the whole log read through the tunnel, MB/s;
- ``exec_seconds``: ``kubectl exec <p> -- true`` from start to exit (median of 5; includes
  kubectl's own start-up, about 0.1 s here).
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import free_port
from cores.common import layout as layouts
from cores.common.supervision import ServiceSpec, start, stop
from cores.controlplane import launcher
from cores.runtime import BUSYBOX_IMAGE, Containerd


def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError("timed out")


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True,
                          text=True, check=False, timeout=120).stdout


def _get_log(plane: launcher.ControlPlane, pod: str, query: str) -> tuple[float, float, int]:
    """(seconds to the first byte, seconds to the end, bytes) of one log request."""
    import http.client

    context = ssl.create_default_context(cafile=str(plane.ca_file))
    pki = plane.ca_file.parent
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    host, port = plane.url.removeprefix("https://").rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=120)
    started = time.monotonic()
    connection.request("GET", f"/api/v1/namespaces/default/pods/{pod}/log?{query}")
    response = connection.getresponse()
    first = response.read(1)
    first_at = time.monotonic()
    total = len(first)
    while chunk := response.read(1 << 16):
        total += len(chunk)
    ended = time.monotonic()
    connection.close()
    return first_at - started, ended - started, total


def measure(base: Path, megabytes: int) -> dict[str, Any]:
    stream_port = free_port()
    config = launcher.write_config(base / "cp" / "etc", base / "cp" / "var", port=free_port(), bind_address="127.0.0.1",
                                   advertise_address="127.0.0.1",
                                   overrides={"kubeletClient": {"streamServer": f"127.0.0.1:{stream_port}"}})
    plane = launcher.start(config, base / "cp" / "log", base / "cp" / "run")
    runtime = Containerd(base / "containerd")
    runtime.start()
    cloud_layout = layouts.Layout(base / "cloud" / "etc", base / "cloud" / "var", base / "cloud" / "log")
    ws, https, tunnel_port = free_port(), free_port(), free_port()
    cloud_config = layouts.write(cloud_layout.cloudcore_config, layouts.cloudcore_document(
        cloud_layout, kubeconfig=plane.kubeconfig, advertise_address="127.0.0.1", websocket_port=ws, https_port=https,
        bind_address="127.0.0.1", tunnel_port=tunnel_port, stream_port=stream_port, stream_ca=plane.ca_file))
    cloud = ServiceSpec(component="cloudcore", config_dir=cloud_layout.config_dir, log_dir=cloud_layout.log_dir,
                        run_dir=cloud_layout.run_dir, argv=(*launcher.keadm_argv(), "run", "cloud", "--config", str(cloud_config)))
    edge: ServiceSpec | None = None
    try:
        start(cloud, ready=lambda: cloud.log_file.exists() and "websocket server listening" in cloud.log_file.read_text())
        from cores.install.cloud import read_token

        node = "streams-bench"
        layout = layouts.Layout(base / node / "etc", base / node / "var", base / node / "log")
        edge_config = layouts.write(layout.edgecore_config, layouts.edgecore_document(
            layout, node_name=node, cloud_host="127.0.0.1", token=read_token(plane.kubeconfig), websocket_port=ws,
            https_port=https, node_ip="127.0.0.1", runtime_endpoint=runtime.endpoint, tunnel_port=tunnel_port,
            kubelet_port=free_port(), read_only_port=free_port()))
        edge = ServiceSpec(component="edgecore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
                           argv=(*launcher.keadm_argv(), "run", "edge", "--config", str(edge_config)), readiness_timeout=60)
        start(edge, ready=lambda: edge is not None and edge.log_file.exists() and "stream tunnel" in edge.log_file.read_text())
        lines = megabytes * 1024 * 1024 // 100
        pod = "streams-bench-writer"
        _kubectl(plane.kubeconfig, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "writer", "image": BUSYBOX_IMAGE, "command": [
                "sh", "-c", f"yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456 "
                            f"| head -n {lines}; echo written; sleep 100000"]}]}}))
        _wait(lambda: "written" in _kubectl(plane.kubeconfig, "logs", pod, "--tail=1"), 300)
        first_bytes = [_get_log(plane, pod, "tailLines=1")[0] for _ in range(10)]
        _first, whole, size = _get_log(plane, pod, "")
        execs = []
        for _ in range(5):
            started = time.monotonic()
            subprocess.run(["kubectl", "--kubeconfig", str(plane.kubeconfig), "exec", pod, "--", "true"],
                           capture_output=True, check=True, timeout=60)
            execs.append(time.monotonic() - started)
        return {"logs_first_byte_seconds": round(statistics.median(first_bytes), 4),
                "logs_bytes": size, "logs_throughput_mb_per_second": round(size / whole / 1e6, 2),
                "exec_seconds": round(statistics.median(execs), 3)}
    finally:
        if edge is not None:
            stop(edge)
        stop(cloud)
        launcher.stop(plane)
        runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=20, help="log the pod writes (MB)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="streams-bench-") as scratch:
        json.dump(measure(Path(scratch), options.megabytes), sys.stdout)
        print()


if __name__ == "__main__":
    main()
