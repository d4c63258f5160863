"""Where Edged tells pods the API is (KUBERNETES_SERVICE_HOST/PORT): MetaServer's address, its dummy
address with requireAuthorization (a pod's 127.0.0.1 is its own), nothing when MetaServer is off;
and the variables kubelet sets, which a container's own env overrides."""

from __future__ import annotations

from pathlib import Path

from cores.common import layout as layouts
from cores.common.config import Config
from cores.edge.edged import Edged
from cores.edge.edged.podspec import environment


def edged(tmp_path: Path, meta: dict[str, object], gates: dict[str, bool] | None = None) -> Edged:
    layout = layouts.Layout(tmp_path / "etc", tmp_path / "var", tmp_path / "log")
    document = layouts.edgecore_document(layout, node_name="n1", cloud_host="127.0.0.1", token="", node_ip="127.0.0.1")
    document["modules"]["metaManager"]["metaServer"].update(meta)
    if gates:
        document["featureGates"] = gates
    return Edged(Config(document, str(layout.edgecore_config)))


def test_the_api_address_pods_get(tmp_path: Path) -> None:
    assert edged(tmp_path, {"enable": False}).api_service is None
    plain = edged(tmp_path, {"enable": True, "server": "127.0.0.1:10555"})
    assert (plain.api_service, plain.api_ca_file) == (("127.0.0.1", 10555), "")
    secure = edged(tmp_path, {"enable": True, "server": "127.0.0.1:10555", "dummyServer": "169.254.30.10:10550"},
                   {"requireAuthorization": True})
    assert secure.api_service == ("169.254.30.10", 10550) and secure.api_ca_file.endswith("metaserver-ca.crt")
    loopback = edged(tmp_path, {"enable": True, "server": "127.0.0.1:10555", "dummyServer": ""}, {"requireAuthorization": True})
    assert loopback.api_service == ("127.0.0.1", 10555)


def test_kubelets_variables_and_the_containers_own_win() -> None:
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {}}
    env = dict(environment(pod, {"env": [{"name": "KUBERNETES_SERVICE_PORT", "value": "1"}]}, lambda kind, name: None,
                           "10.0.0.1", "10.0.0.2", ("169.254.30.10", 10550)))
    assert env["KUBERNETES_SERVICE_HOST"] == "169.254.30.10" and env["KUBERNETES_PORT"] == "tcp://169.254.30.10:10550"
    assert env["KUBERNETES_SERVICE_PORT"] == "1"  # the container's own
    assert "KUBERNETES_SERVICE_HOST" not in dict(environment(pod, {}, lambda kind, name: None, "10.0.0.1", "10.0.0.2"))
