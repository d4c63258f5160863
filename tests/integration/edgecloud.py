"""Starting CloudCore and EdgeCore processes for tests, the way keadm init/join will (supervision)."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

from cores.common import layout as layouts
from cores.common.supervision import ServiceSpec, start, stop
from cores.controlplane.launcher import ControlPlane, keadm_argv
from tests.integration.conftest import free_port
from tests.timeouts import scaled


@dataclasses.dataclass
class Core:
    spec: ServiceSpec
    layout: layouts.Layout
    config: Path

    def log(self) -> str:
        return self.spec.log_file.read_text() if self.spec.log_file.exists() else ""

    def stop(self) -> None:
        stop(self.spec, grace=scaled(10))


@dataclasses.dataclass
class Cloud(Core):
    websocket_port: int
    https_port: int
    tunnel_port: int = 0
    stream_port: int = 0

    def token(self, kubeconfig: Path) -> str:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            secret = client.CoreV1Api(api).read_namespaced_secret("tokensecret", "kubeedge")
        finally:
            api.close()
        return base64.b64decode(secret.data["tokendata"]).decode()


def _spec(component: str, layout: layouts.Layout, config: Path) -> ServiceSpec:
    verbose = ("-v",) if os.environ.get("KUBEEDGE_TEST_VERBOSE") else ()
    return ServiceSpec(component=component, config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
                       argv=(*keadm_argv(), "run", component.removesuffix("core"), "--config", str(config), *verbose),
                       readiness_timeout=scaled(30))


def start_cloud(base: Path, plane: ControlPlane, *, modules: dict[str, dict[str, object]] | None = None,
                **settings: object) -> Cloud:
    """A CloudCore on ``plane``; ``settings`` are CloudHub's, ``modules`` overrides other modules' settings."""
    layout = layouts.Layout(base / "etc", base / "var", base / "log")
    ws_port, https_port, tunnel_port = free_port(), free_port(), free_port()
    stream_port = int(settings.pop("stream_port", 0) or free_port())  # type: ignore[call-overload]
    document = layouts.cloudcore_document(layout, kubeconfig=plane.kubeconfig, advertise_address="127.0.0.1",
                                          websocket_port=ws_port, https_port=https_port, bind_address="127.0.0.1",
                                          tunnel_port=tunnel_port, stream_port=stream_port, stream_ca=plane.ca_file)
    for key, value in settings.items():
        document["modules"]["cloudHub"][key] = value
    for module, overrides in (modules or {}).items():
        document["modules"][module].update(overrides)
    config = layouts.write(layout.cloudcore_config, document)
    spec = _spec("cloudcore", layout, config)
    start(spec, ready=lambda: "websocket server listening" in (spec.log_file.read_text() if spec.log_file.exists() else ""))
    return Cloud(spec, layout, config, ws_port, https_port, tunnel_port, stream_port)


def start_edge(base: Path, cloud: Cloud, node_name: str, token: str, *, runtime_endpoint: str = "unix:///nonexistent.sock",
               wait_connected: bool = True, websocket_port: int | None = None, heartbeat: int = 2,
               edged: bool = True, hollow: bool = False, modules: dict[str, dict[str, object]] | None = None,
               cloud_host: str = "127.0.0.1", node_ip: str = "127.0.0.1",
               feature_gates: dict[str, bool] | None = None) -> Core:
    """An EdgeCore joined to ``cloud``. ``modules`` overrides module settings; by default EventBus
    (on, as upstream) points at a port nobody listens on, so edges never share a broker by chance."""
    layout = layouts.Layout(base / "etc", base / "var", base / "log")
    tunnel_port = getattr(cloud, "tunnel_port", 0)
    document = layouts.edgecore_document(layout, node_name=node_name, cloud_host=cloud_host, token=token,
                                         websocket_port=websocket_port or cloud.websocket_port, https_port=cloud.https_port,
                                         node_ip=node_ip, runtime_endpoint=runtime_endpoint,
                                         tunnel_port=tunnel_port or 10004, kubelet_port=free_port(),
                                         read_only_port=free_port())
    # A cloud without a stream tunnel (upstream's cloudcore keeps cloudStream off by default) gets an
    # edge with EdgeStream off, rather than one dialling port 10004 of whatever listens there.
    document["modules"]["edgeStream"]["enable"] = bool(tunnel_port)
    document["modules"]["edgeHub"]["heartbeat"] = heartbeat  # tests run the cloud with a short keepalive timeout
    document["modules"]["edged"]["enable"] = edged
    document["modules"]["eventBus"]["mqttServerExternal"] = f"tcp://127.0.0.1:{free_port()}"
    for module, settings in (modules or {}).items():
        for key, value in settings.items():  # a nested section is merged, so its other defaults stay
            current = document["modules"][module].get(key)
            document["modules"][module][key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) \
                else value
    if feature_gates:
        document["featureGates"] = {**(document.get("featureGates") or {}), **feature_gates}
    config = layouts.write(layout.edgecore_config, document)
    spec = _spec("edgecore", layout, config)
    if hollow:
        spec = dataclasses.replace(spec, argv=(*spec.argv, "--hollow"))

    def connected() -> bool:
        return spec.log_file.exists() and f"connected to {cloud_host}" in spec.log_file.read_text()

    start(spec, ready=connected if wait_connected else None)
    return Core(spec, layout, config)

