"""Jobs and CronJobs on the embedded control plane, their pods run to completion at a real edge.

Our CloudCore and EdgeCore with a real containerd: ``kubectl create job`` (a protobuf create of
a batch/v1 Job) gets a pod that the scheduler puts on the edge, where it exits 0, and the Job is
``Complete`` for ``kubectl wait``; a CronJob every minute makes Jobs whose pods complete there,
``kubectl create job --from=cronjob/...`` makes one at once, and ``kubectl get`` prints both
kinds as kubectl does against kube-apiserver.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.controlplane.launcher import ControlPlane, stop
from cores.runtime import BUSYBOX_IMAGE, Containerd
from tests.integration.conftest import start_controlplane
from tests.integration.edgecloud import start_cloud, start_edge
from tests.timeouts import scaled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = start_controlplane(tmp_path_factory.mktemp("jobs-plane"), controllers={"enable": True, "resyncPeriodSeconds": 5})
    try:
        yield started
    finally:
        stop(started)


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kubectl", f"--kubeconfig={plane.kubeconfig}", *args], input=stdin, capture_output=True,
                          text=True, timeout=scaled(120), check=False)
    if done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(what)


def test_jobs_and_cronjobs_complete_at_the_edge(plane: ControlPlane, containerd: Containerd, tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path / "cloud", plane)
    node = f"jobs-{uuid.uuid4().hex[:5]}"
    edge = None
    try:
        edge = start_edge(tmp_path / "edge", cloud, node, cloud.token(plane.kubeconfig), runtime_endpoint=containerd.endpoint)
        wait(lambda: kubectl(plane, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
             == "True", 60, "the edge never became Ready")

        job = f"{node}-once"
        kubectl(plane, "create", "job", job, f"--image={BUSYBOX_IMAGE}", "--", "sh", "-c", "echo done")
        kubectl(plane, "wait", "--for=condition=complete", f"job/{job}", f"--timeout={int(scaled(90))}s")
        header, row = kubectl(plane, "get", "job", job).splitlines()[:2]
        assert header.split()[:4] == ["NAME", "STATUS", "COMPLETIONS", "DURATION"]
        assert row.split()[:3] == [job, "Complete", "1/1"]
        pods = json.loads(kubectl(plane, "get", "pods", "-l", f"job-name={job}", "-o", "json"))["items"]
        assert [(p["spec"]["nodeName"], p["status"]["phase"]) for p in pods] == [(node, "Succeeded")]

        cron_job = f"{node}-tick"
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": cron_job, "namespace": "default"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "tick", "image": BUSYBOX_IMAGE,
                                                          "command": ["sh", "-c", "date"]}]}}}}}}))
        manual = f"{cron_job}-manual"
        kubectl(plane, "create", "job", manual, f"--from=cronjob/{cron_job}")
        kubectl(plane, "wait", "--for=condition=complete", f"job/{manual}", f"--timeout={int(scaled(90))}s")

        def scheduled_and_complete() -> bool:
            jobs = json.loads(kubectl(plane, "get", "jobs", "-o", "json"))["items"]
            made = [j for j in jobs if (j["metadata"].get("ownerReferences") or [{}])[0].get("name") == cron_job
                    and j["metadata"]["name"] != manual]
            return any(any(c["type"] == "Complete" and c["status"] == "True" for c in j["status"].get("conditions") or [])
                       for j in made)

        wait(scheduled_and_complete, 130, "the CronJob made no Job that completed at the edge within two minutes")
        header, row = kubectl(plane, "get", "cronjob", cron_job).splitlines()[:2]
        assert header.split()[:7] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE"]
        assert row.startswith(f"{cron_job}   */1 * * * *") and " False " in row
        assert kubectl(plane, "get", "cronjob", cron_job, "-o", "jsonpath={.status.lastScheduleTime}")
        kubectl(plane, "delete", "cronjob", cron_job)
    finally:
        if edge is not None:
            edge.stop()
        cloud.stop()
