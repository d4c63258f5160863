"""keadm as a user runs it: a subprocess of the installed console script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cores.common import config as configs
from cores.common.supervision import ServiceSpec, start, status, stop
from tests.timeouts import scaled

KEADM = str(Path(sys.executable).with_name("keadm"))


def keadm(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEADM, *args], input=stdin, capture_output=True, text=True, timeout=scaled(60),
        env={**os.environ, **(env or {})},
    )


def test_help_teaches_with_examples() -> None:
    result = keadm("--help")
    assert result.returncode == 0
    assert "keadm run cloud --defaultconfig" in result.stdout and "keadm run edge" in result.stdout
    sub = keadm("run", "edge", "--help")
    assert "--defaultconfig" in sub.stdout and "--check-config" in sub.stdout and "Examples" in sub.stdout


def test_version() -> None:
    result = keadm("version")
    assert result.returncode == 0 and "compatible with KubeEdge v1.23" in result.stdout
    assert keadm("version", "-o", "short").stdout.strip().count(".") == 2


@pytest.mark.parametrize("side", ["cloud", "edge"])
def test_defaultconfig_round_trips_through_stdin(side: str) -> None:
    printed = keadm("run", side, "--defaultconfig")
    assert printed.returncode == 0 and printed.stdout.startswith("# With --defaultconfig")
    checked = keadm("run", side, "--config", "/dev/stdin", "--check-config", stdin=printed.stdout)
    assert checked.returncode == 0, checked.stderr
    assert yaml.safe_load(checked.stdout) == yaml.safe_load(printed.stdout)
    minimal = keadm("run", side, "--minconfig")
    assert keadm("run", side, "--config", "-", "--check-config", stdin=minimal.stdout).returncode == 0


def test_unknown_key_fails_with_its_path_and_no_traceback() -> None:
    text = keadm("run", "cloud", "--defaultconfig").stdout.replace("keepaliveInterval", "keepaliveIntervall")
    result = keadm("run", "cloud", "--config", "/dev/stdin", stdin=text)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: /dev/stdin: unknown key modules.cloudHub.keepaliveIntervall (did you mean keepaliveInterval?)"
    )


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = keadm("run", "edge", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot read config file") and "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = keadm("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr and "Traceback" not in result.stderr


# Modules that need a cluster, a cloud or a runtime are off here: these tests are about `keadm run` itself.
IMPLEMENTED = {"cloud": ("cloudHub", "edgeController", "deviceController", "syncController", "router", "cloudStream",
                         "iptablesManager"),
               "edge": ("edgeHub", "metaManager", "edged", "eventBus", "deviceTwin", "serviceBus", "edgeStream")}


def _write_config(tmp_path: Path, side: str) -> Path:
    document = configs.default_document(configs.KINDS[side], "127.0.0.1", "e2e-node")
    for module in IMPLEMENTED[side]:
        document["modules"][module]["enable"] = False
    document["modules"]["taskManager"]["enable"] = True  # every default module exists now, on both sides
    path = tmp_path / f"{side}core.yaml"
    path.write_text(configs.dump(document))
    return path


@pytest.mark.parametrize("side", ["cloud", "edge"])
def test_run_warns_about_unimplemented_modules_and_stops_cleanly_on_sigterm(tmp_path: Path, side: str) -> None:
    config = _write_config(tmp_path, side)
    with subprocess.Popen([KEADM, "run", side, "--config", str(config)], stderr=subprocess.PIPE, text=True) as process:
        _expect_running_then_clean_stop(process, side)


def _expect_running_then_clean_stop(process: subprocess.Popen[str], side: str) -> None:
    try:
        lines: list[str] = []
        assert process.stderr is not None
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "is running" in line:
                break
        text = "".join(lines)
        assert "is running" in text, text
        assert "not implemented yet, so not running" in text
        assert " taskManager" in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(scaled(10)) == 0
        rest = process.stderr.read()
        assert "received SIGTERM, shutting down" in rest and "stopped" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_edge_never_imports_cloud_or_printing_libraries(tmp_path: Path) -> None:
    """The real edge process, with Python's import log: no kubernetes, no rich."""
    config = _write_config(tmp_path, "edge")
    argv = [sys.executable, "-X", "importtime", "-m", "keadm", "run", "edge", "--config", str(config)]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as process:
        _expect_light_imports(process)


def _expect_light_imports(process: subprocess.Popen[str]) -> None:
    try:
        assert process.stderr is not None
        imported = []
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if line.startswith("import time:"):
                imported.append(line.rsplit("|", 1)[-1].strip())
            if "is running" in line:
                break
        # importlib.import_module() bypasses -X importtime, so the lazily loaded command and app
        # modules do not show; what they import with plain import statements does.
        assert "cores.beehive" in imported and "cores.common.process" in imported
        forbidden = [m for m in imported if m.split(".")[0] in {"kubernetes", "rich", "cryptography", "cores.cloud"}]
        assert not [m for m in imported if m.startswith("cores.cloud")]
        assert forbidden == []
    finally:
        process.terminate()
        process.wait(scaled(10))


def test_supervised_cloudcore_runs_in_background_and_stops(tmp_path: Path) -> None:
    """The supervision library (used by init/join) with the real `keadm run cloud`."""
    config = _write_config(tmp_path, "cloud")
    spec = ServiceSpec(
        component="cloudcore", config_dir=tmp_path, log_dir=tmp_path / "log", run_dir=tmp_path / "run",
        argv=(KEADM, "run", "cloud", "--config", str(config)), readiness_timeout=scaled(20),
    )
    pid = start(spec, ready=lambda: spec.log_file.exists() and "is running" in spec.log_file.read_text())
    try:
        assert status(spec).running and status(spec).pid == pid
    finally:
        assert stop(spec, grace=scaled(10)) is True
    assert not status(spec).running and not Path(f"/proc/{pid}").exists()
    log = spec.log_file.read_text()
    assert "received SIGTERM" in log and "cloudcore stopped" in log


def test_cloudcore_without_a_kubeconfig_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cloudcore.yaml"
    path.write_text(configs.dump(configs.default_document(configs.CLOUDCORE, "127.0.0.1", "e2e-node")))
    result = keadm("run", "cloud", "--config", str(path))
    assert result.returncode == 1
    assert "kubeAPIConfig.kubeConfig is empty: CloudCore needs a kubeconfig for its cluster" in result.stderr
    assert "Traceback" not in result.stderr


def test_edgecore_without_certificate_or_token_says_so(tmp_path: Path) -> None:
    document = configs.default_document(configs.EDGECORE, "127.0.0.1", "e2e-node")
    hub = document["modules"]["edgeHub"]
    hub.update(tlsCaFile=str(tmp_path / "ca.crt"), tlsCertFile=str(tmp_path / "s.crt"), tlsPrivateKeyFile=str(tmp_path / "s.key"))
    document["database"]["dataSource"] = str(tmp_path / "edge.db")
    document["modules"]["edged"]["enable"] = False
    path = tmp_path / "edgecore.yaml"
    path.write_text(configs.dump(document))
    result = keadm("run", "edge", "--config", str(path))
    assert result.returncode == 1
    assert "no valid certificate for node e2e-node" in result.stderr and "keadm join --token" in result.stderr


@pytest.mark.parametrize("flags, refusal", [
    (["--edgenode-name", "edge;touch {mark}"], "--edgenode-name: node name"),
    (["--edgenode-name", "$(touch {mark})"], "--edgenode-name: node name"),
    (["--edgenode-name", "../../etc/x"], "--edgenode-name: node name"),
    (["--edgenode-name", "edge-1", "-l", "zone=$(touch {mark})"], "label value"),
    (["--edgenode-name", "edge-1", "-l", "a`touch {mark}`=b"], "label"),
])
def test_cve_2026_62371_join_refuses_shell_shaped_names_before_doing_anything(tmp_path: Path, flags: list[str], refusal: str) -> None:
    """CVE-2026-62371/62182 (command injection through job fields): keadm join takes a node name and
    labels from its flags; shell-shaped ones are refused with a clear message, nothing runs, nothing is written."""
    mark = tmp_path / "pwned"
    dirs = ["--config-dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "var"), "--log-dir", str(tmp_path / "log")]
    result = keadm("join", "--cloudcore-ipport", "127.0.0.1:1", "--token", "x.y.z", *[f.format(mark=mark) for f in flags], *dirs)
    assert result.returncode != 0
    assert refusal in result.stderr and "Traceback" not in result.stderr
    assert not mark.exists()
    assert not (tmp_path / "etc").exists() or not any((tmp_path / "etc").rglob("*"))
