"""Configs: upstream's structure and defaults, strict validation with key paths, overlay, --set."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cores.common import config as configs
from tests.captures import UPSTREAM

DEFAULTS = UPSTREAM / "defaultconfig"


def _upstream(name: str) -> dict:
    return yaml.safe_load((DEFAULTS / name).read_text())


@pytest.mark.parametrize("side,name", [("cloud", "cloudcore"), ("edge", "edgecore")])
def test_defaults_are_upstreams(side: str, name: str) -> None:
    kind = configs.KINDS[side]
    ours = configs.default_document(kind, address="192.0.2.2", hostname="vm")
    theirs = _upstream(f"{name}-defaultconfig.yaml")
    if side == "cloud":
        # our one deliberate difference: node authorization on by default
        assert ours["modules"]["cloudHub"]["authorization"] == {"debug": False, "enable": True, "modes": [{"node": {"enable": True}}]}
        ours["modules"]["cloudHub"]["authorization"] = theirs["modules"]["cloudHub"]["authorization"]
    assert ours == theirs
    assert configs.min_document(kind, address="192.0.2.2", hostname="vm") == _upstream(f"{name}-minconfig.yaml")


@pytest.mark.parametrize("side", ["cloud", "edge"])
def test_upstream_printed_configs_load(side: str) -> None:
    kind = configs.KINDS[side]
    name = {"cloud": "cloudcore", "edge": "edgecore"}[side]
    for variant in ("defaultconfig", "minconfig"):
        configs.parse(kind, (DEFAULTS / f"{name}-{variant}.yaml").read_text(), source=variant)
    # and the configs the captures ran with
    configs.load(kind, UPSTREAM / f"{name}.yaml")


def test_chart_api_version_accepted_and_kind_checked() -> None:
    cfg = configs.parse(configs.CLOUDCORE, "apiVersion: cloudcore.config.kubeedge.io/v1alpha2\nkind: CloudCore\n")
    assert cfg.apiVersion.endswith("v1alpha2")
    with pytest.raises(configs.ConfigError, match="is not CloudCore; is this the other side"):
        configs.parse(configs.CLOUDCORE, "kind: EdgeCore\n")
    with pytest.raises(configs.ConfigError, match="apiVersion 'edgecore.config.kubeedge.io/v1alpha1'"):
        configs.parse(configs.EDGECORE, "apiVersion: edgecore.config.kubeedge.io/v1alpha1\n")


@pytest.mark.parametrize(
    "side,text,message",
    [
        ("cloud", "modules:\n  cloudHub:\n    nodeLimt: 3\n", "unknown key modules.cloudHub.nodeLimt (did you mean nodeLimit?)"),
        ("cloud", "modules: {cloudHub: {websocket: {port: abc}}}", "modules.cloudHub.websocket.port must be an integer, not a string ('abc')"),
        ("cloud", "modules: {cloudHub: {enable: 'yes'}}", "modules.cloudHub.enable must be true or false"),
        ("cloud", "modules: {cloudHub: {advertiseAddress: 1.2.3.4}}", "modules.cloudHub.advertiseAddress must be a list of strings"),
        ("cloud", "modules: {cloudHub: {authorization: {modes: [{node: {enabled: true}}]}}}", "unknown key modules.cloudHub.authorization.modes[0].node.enabled"),
        ("cloud", "featureGates: {requireAuthorization: 1}", "featureGates.requireAuthorization must be true or false"),
        ("edge", "modules: {edged: {tailoredKubeletConfig: {syncFrequency: 10}}}", "modules.edged.tailoredKubeletConfig.syncFrequency must be a duration"),
        ("edge", "modules: {edged: {tailoredKubeletConfig: {bogus: 1}}}", "unknown key modules.edged.tailoredKubeletConfig.bogus"),
        ("edge", "modules: {edged: {nodeLabels: {a: 1}}}", "modules.edged.nodeLabels.a must be a string"),
        ("edge", "modules: [1]", "modules must be a mapping"),
        ("edge", "- 1", "YAML mapping at the top level"),
        ("edge", "a: [", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_key(side: str, text: str, message: str) -> None:
    with pytest.raises(configs.ConfigError) as caught:
        configs.parse(configs.KINDS[side], text, source="f.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("f.yaml")


def test_overlay_semantics() -> None:
    cfg = configs.parse(
        configs.EDGECORE,
        "modules:\n  edgeHub:\n    heartbeat: 5\n    websocket: {server: 127.0.0.1:20000}\n  edged:\n    nodeLabels: {zone: a}\n"
        "  metaManager: null\n",
    )
    hub = cfg.modules.edgeHub
    assert hub.heartbeat == 5 and hub.websocket.server == "127.0.0.1:20000"
    assert hub.websocket.handshakeTimeout == 30 and hub.messageQPS == 30  # defaults kept beside
    assert cfg.modules.edged.nodeLabels == {"zone": "a"}
    assert cfg.modules.metaManager.enable is True  # null keeps the default
    with pytest.raises(AttributeError, match="modules.edgeHub.nope"):
        _ = hub.nope


def test_enabled_modules_follow_config() -> None:
    cfg = configs.parse(configs.CLOUDCORE, "modules: {deviceController: {enable: false}, router: {enable: true}}")
    enabled = cfg.enabled_modules()
    assert "deviceController" not in enabled and "router" in enabled and "cloudHub" in enabled


def test_ignored_keys_are_listed(caplog: pytest.LogCaptureFixture) -> None:
    text = "modules:\n  edged:\n    tailoredKubeletConfig: {clusterDNS: [10.0.0.10], staticPodPath: /x}\n  edgeHub: {quic: {enable: false}}\n"
    with caplog.at_level("DEBUG", logger="kubeedge.config"):
        configs.parse(configs.EDGECORE, text)
    ignored = configs.ignored_keys(configs.EDGECORE, configs.yaml.safe_load(text))
    assert ignored == ["modules.edged.tailoredKubeletConfig.clusterDNS", "modules.edgeHub.quic.enable"]
    assert "modules.edgeHub.quic.enable is accepted for compatibility" in caplog.text


def test_set_path() -> None:
    doc: dict = {}
    configs.set_path(doc, "modules.cloudHub.nodeLimit", "2000", configs.CLOUDCORE.schema)
    configs.set_path(doc, "modules.cloudHub.dnsNames", "[a.example, b.example]", configs.CLOUDCORE.schema)
    configs.set_path(doc, "kubeAPIConfig.kubeConfig", "123", configs.CLOUDCORE.schema)
    assert doc == {"modules": {"cloudHub": {"nodeLimit": 2000, "dnsNames": ["a.example", "b.example"]}}, "kubeAPIConfig": {"kubeConfig": "123"}}
    with pytest.raises(configs.ConfigError, match="unknown key modules.cloudHub.nodeLimt"):
        configs.set_path(doc, "modules.cloudHub.nodeLimt", "1", configs.CLOUDCORE.schema)
    with pytest.raises(configs.ConfigError, match="must be an integer"):
        configs.set_path(doc, "modules.cloudHub.nodeLimit", "many", configs.CLOUDCORE.schema)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(configs.ConfigError, match="cannot read config file"):
        configs.load(configs.EDGECORE, tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(configs.ConfigError, match="not UTF-8"):
        configs.load(configs.EDGECORE, tmp_path / "bin.yaml")
