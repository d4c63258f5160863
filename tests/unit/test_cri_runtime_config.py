"""The private containerd's config (cores.runtime.config) holds the settings these machines need."""

import json
from pathlib import Path

import pytest

from cores.runtime import config, containerd


def test_containerd_toml_has_the_lines_that_matter(tmp_path: Path) -> None:
    layout = config.Layout(tmp_path)
    text = config.containerd_toml(layout, Path("/usr/sbin/runc"))
    for line in [
        f'root = "{tmp_path}/root"', f'state = "{tmp_path}/state"', f'address = "{tmp_path}/containerd.sock"',
        'sandbox_image = "localhost/pause:local"', "restrict_oom_score_adj = true",
        "netns_mounts_under_state_dir = true", "enable_selinux = false", "disable_apparmor = true",
        'stream_server_address = "127.0.0.1"', 'stream_server_port = "0"', 'snapshotter = "overlayfs"',
        'runtime_type = "io.containerd.runc.v2"', "SystemdCgroup = false", 'bin_dir = "/usr/lib/cni"',
        f'conf_dir = "{tmp_path}/net.d"',
    ]:
        assert line in text
    tomllib = pytest.importorskip("tomllib")
    parsed = tomllib.loads(text)
    assert parsed["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["conf_dir"] == str(tmp_path / "net.d")


def test_cni_config_has_no_gateway_no_masquerade_and_private_ipam_dir(tmp_path: Path) -> None:
    layout = config.Layout(tmp_path)
    conf = json.loads(config.cni_conflist(layout))
    bridge, loopback = conf["plugins"]
    assert (bridge["type"], bridge["isGateway"], bridge["ipMasq"]) == ("bridge", False, False)
    assert bridge["ipam"]["type"] == "host-local" and bridge["ipam"]["dataDir"] == str(tmp_path / "cni-ipam")
    assert loopback == {"type": "loopback"}


def test_each_base_dir_gets_its_own_bridge(tmp_path: Path) -> None:
    first, second = config.Layout(tmp_path / "a"), config.Layout(tmp_path / "b")
    assert first.bridge != second.bridge and len(first.bridge) <= 15
    assert first.pod_subnet.endswith(".0/24")


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containerd.shutil, "which", lambda name, path=None: None)
    with pytest.raises(containerd.MissingBinary, match="apt-get install -y .*containerd.*runc"):
        containerd.find_binaries()


def test_stop_without_start_is_harmless(tmp_path: Path) -> None:
    runtime = containerd.Containerd(tmp_path)
    runtime.stop()
    runtime.stop()
    assert runtime.pid is None
