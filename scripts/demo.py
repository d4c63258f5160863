"""The README's first command: the main job end to end on one machine, with the embedded defaults.

``keadm init`` (embedded control plane + CloudCore) -> ``keadm gettoken`` -> a private containerd
(Debian's containerd and runc, local busybox and pause images, no registry) -> ``keadm join`` ->
a pod applied with kubectl, running at the edge, its status printed -> ``keadm reset`` on both
sides (unless ``--keep``). Every command is printed as a user would type it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
KEADM = str(Path(sys.executable).with_name("keadm"))

POD = """apiVersion: v1
kind: Pod
metadata:
  name: hello-edge
spec:
  nodeSelector:
    node-role.kubernetes.io/edge: ""
  hostNetwork: true
  terminationGracePeriodSeconds: 5
  containers:
  - name: hello
    image: localhost/busybox:local
    command: ["sh", "-c", "trap 'exit 0' TERM; echo hello from the edge; while true; do sleep 1; done"]
"""


def run(argv: list[str], *, stdin: str | None = None, capture: bool = False) -> str:
    shown = " ".join(shlex.quote(a) if a != KEADM else "keadm" for a in argv)
    console.print(f"[bold cyan]$[/] {shown}")
    result = subprocess.run(argv, input=stdin, text=True, capture_output=capture, env={**os.environ})
    if result.returncode != 0:
        if capture:
            console.print(result.stdout + result.stderr)
        raise SystemExit(f"demo: `{shown}` failed (exit {result.returncode})")
    return result.stdout if capture else ""


def dirs(base: Path, name: str) -> list[str]:
    return ["--config-dir", str(base / name / "etc"), "--data-dir", str(base / name / "var"), "--log-dir", str(base / name / "log")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/keadm-demo"), help="where the demo keeps everything")
    parser.add_argument("--keep", action="store_true", help="leave the cloud, the edge and containerd running")
    args = parser.parse_args()
    base = args.dir.resolve()
    os.environ["HOME"] = str(base / "home")  # no ~/.kube/config: init brings its own control plane
    (base / "home").mkdir(parents=True, exist_ok=True)
    for side in ("edge", "cloud"):  # a previous demo's leftovers
        subprocess.run([KEADM, "reset", "--force", *dirs(base, side)], capture_output=True)
    subprocess.run([sys.executable, "-m", "cores.runtime", "stop", "--dir", str(base / "containerd")], capture_output=True)

    run([KEADM, "version"])
    run([KEADM, "init", "--advertise-address", "127.0.0.1", *dirs(base, "cloud")])
    token = run([KEADM, "gettoken", "--config-dir", str(base / "cloud" / "etc")], capture=True).strip()
    console.print(f"{token[:40]}...")
    run([sys.executable, "-m", "cores.runtime", "start", "--dir", str(base / "containerd")])
    endpoint = f"unix://{base / 'containerd' / 'containerd.sock'}"
    run([KEADM, "join", "--cloudcore-ipport", "127.0.0.1:10000", "--token", token, "--edgenode-name", "demo-edge",
         "--remote-runtime-endpoint", endpoint, "--node-ip", "127.0.0.1", *dirs(base, "edge")])
    kubectl = ["kubectl", "--kubeconfig", str(base / "cloud" / "etc" / "admin.kubeconfig")]
    wait_for(kubectl, ["get", "node", "demo-edge", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"], "True")
    run([*kubectl, "get", "nodes", "-o", "wide"])
    run([*kubectl, "apply", "-f", "-"], stdin=POD)
    wait_for(kubectl, ["get", "pod", "hello-edge", "-o", "jsonpath={.status.phase}"], "Running")
    run([*kubectl, "get", "pods", "-o", "wide"])
    run([*kubectl, "get", "pod", "hello-edge", "-o", "jsonpath={range .status.containerStatuses[*]}{.name}: ready={.ready} "
         "restarts={.restartCount} id={.containerID}{\"\\n\"}{end}"])
    run([*kubectl, "get", "events", "--field-selector", "involvedObject.name=hello-edge"])
    console.print("\n[bold green]The pod runs at the edge.[/]")
    if args.keep:
        console.print(f"Left running. kubectl: {' '.join(kubectl)}; undo with `keadm reset --force` and the directory flags above.")
        return 0
    run([*kubectl, "delete", "pod", "hello-edge", "--wait", "--timeout=60s"])
    run([KEADM, "reset", "--force", *dirs(base, "edge")])
    run([KEADM, "reset", "--force", *dirs(base, "cloud")])
    run([sys.executable, "-m", "cores.runtime", "stop", "--dir", str(base / "containerd")])
    return 0


def wait_for(kubectl: list[str], args: list[str], expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {' '.join(args[:3])} to be {expected}"):
        while time.monotonic() < deadline:
            result = subprocess.run([*kubectl, *args], capture_output=True, text=True)
            if result.stdout.strip() == expected:
                return
            time.sleep(0.5)
    raise SystemExit(f"demo: {' '.join(args)} did not become {expected} within {timeout:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
