"""The one-file keadm (dist/keadm, from build.spec) on its own: help, default config, a real join.

scripts/test.sh builds it and sets $KEADM_FROZEN; run alone without it, these tests skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cores.controlplane.launcher import ControlPlane
from tests.integration.conftest import controlplane, free_port  # noqa: F401 - the shared fixtures
from tests.integration.edgecloud import start_cloud
from tests.timeouts import scaled

FROZEN = os.environ.get("KEADM_FROZEN", "")
pytestmark = pytest.mark.skipif(not FROZEN, reason="set KEADM_FROZEN to a built dist/keadm (scripts/test.sh does)")


def frozen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert Path(FROZEN).is_file(), f"KEADM_FROZEN={FROZEN} does not exist: build it with pyinstaller build.spec"
    return subprocess.run([FROZEN, *args], capture_output=True, text=True, timeout=scaled(120),
                          env={**os.environ, **(env or {})})


def test_help_and_default_config() -> None:
    assert "keadm join --cloudcore-ipport" in frozen("--help").stdout
    printed = frozen("run", "edge", "--defaultconfig")
    assert printed.returncode == 0 and "edgecore.config.kubeedge.io/v1alpha2" in printed.stdout
    assert Path(FROZEN).stat().st_size < 32 * 1024 * 1024  # 32.1 MB measured 2026-12-03 with amqtt (31.5 without)


def test_frozen_join_against_a_cloudcore(controlplane: ControlPlane, tmp_path: Path) -> None:  # noqa: F811
    cloud = start_cloud(tmp_path / "cloud", controlplane)
    edge_dirs = ["--config-dir", str(tmp_path / "edge" / "etc"), "--data-dir", str(tmp_path / "edge" / "var"),
                 "--log-dir", str(tmp_path / "edge" / "log")]
    try:
        token = cloud.token(controlplane.kubeconfig)
        joined = frozen("join", "-e", f"127.0.0.1:{cloud.websocket_port}", "-s", str(cloud.https_port), "-t", token,
                        "-i", "edge-frozen", "--skip-runtime-check", "--node-ip", "127.0.0.1", *edge_dirs)
        assert joined.returncode == 0, joined.stderr
        assert "Node edge-frozen joined and connected" in joined.stdout
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert f"{FROZEN} run edge" in processes  # EdgeCore runs from the one file, nothing downloaded
    finally:
        frozen("reset", "--force", *edge_dirs)
        cloud.stop()


def test_frozen_edge_runs_the_embedded_broker_and_the_twin(tmp_path: Path) -> None:
    """mqttMode 0 in the one file: amqtt's plugins load, and the twin answers over MQTT."""
    import json
    import queue

    import paho.mqtt.client as mqtt
    import yaml

    from cores.common import config as configs

    port = free_port()
    document = configs.default_document(configs.KINDS["edge"], "127.0.0.1", "frozen-mqtt")
    for module in ("edgeHub", "edged"):
        document["modules"][module]["enable"] = False  # no cloud here: the device modules alone
    document["modules"]["eventBus"].update(mqttMode=0, mqttServerInternal=f"tcp://127.0.0.1:{port}")
    document["database"]["dataSource"] = str(tmp_path / "edgecore.db")
    config = tmp_path / "edgecore.yaml"
    config.write_text(yaml.safe_dump(document))
    process = subprocess.Popen([FROZEN, "run", "edge", "--config", str(config)], stderr=subprocess.PIPE, text=True)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="frozen-test")
    answers: queue.Queue[dict[str, object]] = queue.Queue()
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "embedded MQTT broker listening" in line:
                break
        client.on_message = lambda _c, _u, m: answers.put(json.loads(m.payload))
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.subscribe("$hw/events/node/frozen-mqtt/membership/get/result", 1)
        deadline = scaled(10)
        while True:
            client.publish("$hw/events/node/frozen-mqtt/membership/get", json.dumps({"event_id": "e1"}), qos=1)
            try:
                answer = answers.get(timeout=1)
                break
            except queue.Empty:
                deadline -= 1
                assert deadline > 0, "no membership/get/result from the frozen edge"
        assert answer == {"event_id": "e1", "timestamp": answer["timestamp"], "devices": []}
    finally:
        client.loop_stop()
        process.terminate()
        process.wait(scaled(10))
        if process.stderr is not None:
            process.stderr.close()
