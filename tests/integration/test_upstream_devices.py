"""Devices across upstream KubeEdge's own binaries and ours, both ways, through MQTT.

- Our EdgeCore (DeviceTwin, EventBus on the embedded broker) through upstream cloudcore: the
  captured DeviceModel and Device reach our twin; an MQTT report reaches the DeviceStatus that
  upstream's DeviceController writes; a desired-value patch reaches the MQTT client as a delta.
- Upstream edgecore (its DeviceTwin and EventBus on mosquitto) through our CloudCore: the device
  reaches its ``device`` table; an MQTT report through upstream's twin reaches our DeviceStatus.

Skipped, naming ``KEADM_UPSTREAM_BIN``, when the binaries are not unpacked (CI has them).
"""

from __future__ import annotations

import base64
import sqlite3
import uuid
from pathlib import Path

import pytest

from cores.common import supervision
from cores.controlplane.launcher import ControlPlane, stop
from cores.runtime import Containerd, upstream
from cores.runtime.mosquitto import Mosquitto, binary
from tests.integration.conftest import free_port
from tests.integration.edgecloud import start_cloud, start_edge
from tests.integration.test_devicecontroller import kubectl, manifests
from tests.integration.test_devices_mqtt import App, device_rows, expected_in_twin, observed_desired, reported, wait_for
from tests.integration.test_upstream_peers import CLOUDCORE, EDGECORE, plane, run_cloudcore  # noqa: F401 - shared fixture
from tests.timeouts import scaled

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CLOUDCORE is None, reason=f"upstream binaries not found: set {upstream.BIN_ENV} "
                                                          "to a directory of unpacked upstream binaries (scripts/test.sh does)")]


def test_our_edgecore_twin_through_upstream_cloudcore(plane: ControlPlane, tmp_path: Path) -> None:  # noqa: F811
    assert CLOUDCORE is not None
    cloud = upstream.cloudcore_spec(CLOUDCORE, tmp_path / "cloudcore", plane.kubeconfig)
    run_cloudcore(cloud)
    node, name, model = f"upd-{uuid.uuid4().hex[:6]}", "up-thermo", "up-thermo-model"
    url = f"tcp://127.0.0.1:{free_port()}"
    edge = app = None
    try:
        token = base64.b64decode(kubectl(plane, "get", "secret", "tokensecret", "-n", "kubeedge", "-o",
                                         "jsonpath={.data.tokendata}")).decode()
        edge = start_edge(tmp_path / "edge", cloud, node, token, hollow=True,  # type: ignore[arg-type]
                          modules={"eventBus": {"mqttMode": 0, "mqttServerInternal": url}})
        wait_for(lambda: node in kubectl(plane, "get", "nodes", "-o", "name", check=False), 60, "node never registered")
        kubectl(plane, "apply", "-f", "-", stdin=manifests(name, node, model))
        wait_for(lambda: f"default/{name}" in device_rows(edge) and expected_in_twin(edge, f"default/{name}") == "25", 15,  # type: ignore[arg-type]
                 lambda: f"upstream cloudcore's device never reached our twin: {edge.log()[-2000:]}")  # type: ignore[union-attr]
        app = App(url, f"default/{name}", node)
        assert app.get()["twin"]["temperature"]["expected"]["value"] == "25"
        assert "code" not in app.report("21")
        wait_for(lambda: reported(plane, name) == "21", 15, lambda: f"upstream DeviceStatus: "
                 f"{kubectl(plane, 'get', 'devicestatus', name, '-o', 'yaml', check=False)}; cloudcore: "
                 + "\n".join(line for line in cloud.log().splitlines() if "evice" in line or "twin" in line)[-3000:])
        kubectl(plane, "patch", "device", name, "--type", "merge", "-p",
                '{"spec":{"properties":[{"name":"temperature","desired":{"value":"31"},"reportToCloud":true,'
                '"visitors":{"protocolName":"modbus","configData":{"data":{"register":"HoldingRegister","offset":2,"limit":1,"scale":1}}}}]}}')
        app.wait("/twin/update/delta", lambda p: p.get("delta", {}).get("temperature") == "31", timeout=15)
    finally:
        if app is not None:
            app.close()
        kubectl(plane, "delete", "device", name, "--ignore-not-found", check=False)
        kubectl(plane, "delete", "devicemodel", model, "--ignore-not-found", check=False)
        if edge is not None:
            edge.stop()
        supervision.stop(cloud.spec, grace=scaled(10))


@pytest.mark.skipif(EDGECORE is None, reason=f"upstream edgecore not found: set {upstream.BIN_ENV}")
def test_upstream_edgecore_twin_through_our_cloudcore(containerd: Containerd, tmp_path: Path) -> None:  # noqa: F811
    assert EDGECORE is not None
    try:
        binary()
    except RuntimeError as error:
        pytest.skip(str(error))
    from cores.runtime import PAUSE_IMAGE
    from tests.integration.conftest import start_controlplane

    own_plane = start_controlplane(tmp_path / "plane")
    cloud = start_cloud(tmp_path / "cloud", own_plane)
    broker = Mosquitto(tmp_path / "mosquitto").start()
    node, name, model = f"upe-{uuid.uuid4().hex[:6]}", "upe-thermo", "upe-thermo-model"
    base = tmp_path / "upstream-edge"
    spec = upstream.edgecore_spec(EDGECORE, base, node=node, token=cloud.token(own_plane.kubeconfig),
                                  websocket_port=cloud.websocket_port, https_port=cloud.https_port,
                                  runtime_endpoint=containerd.endpoint, pause_image=PAUSE_IMAGE, mqtt_server=broker.url)
    app = None
    try:
        supervision.start(spec)
        wait_for(lambda: node in kubectl(own_plane, "get", "nodes", "-o", "name", check=False), 90, "upstream node never registered")
        kubectl(own_plane, "apply", "-f", "-", stdin=manifests(name, node, model))

        def upstream_devices() -> list[str]:
            try:
                with sqlite3.connect(base / "data" / "edgecore.db") as db:
                    return [str(r[0]) for r in db.execute("SELECT id FROM device")]
            except sqlite3.Error:
                return []

        wait_for(lambda: f"default/{name}" in upstream_devices(), 15, "our CloudCore's device never reached upstream's twin")
        app = App(broker.url, f"default/{name}", node)
        result = app.report("21")
        assert "code" not in result, result
        wait_for(lambda: reported(own_plane, name) == "21", 15, lambda: f"DeviceStatus from upstream's twin: "
                 f"{kubectl(own_plane, 'get', 'devicestatus', name, '-o', 'yaml', check=False)}")
        assert observed_desired(own_plane, name) in (None, "25")
    finally:
        if app is not None:
            app.close()
        supervision.stop(spec, grace=scaled(10))
        upstream.unmount_under(base)
        broker.stop()
        cloud.stop()
        stop(own_plane)

