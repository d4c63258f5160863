"""Unit names, paths and the systemd unit text of cores.common.supervision (no processes run)."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cores.common.supervision import ServiceSpec, render_unit

SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"


def make_spec(config_dir: Path, tmp_path: Path, **changes: object) -> ServiceSpec:
    fields: dict[str, object] = {
        "component": "edgecore",
        "config_dir": config_dir,
        "log_dir": tmp_path / "log",
        "run_dir": tmp_path / "run",
        "argv": (sys.executable, "-m", "keadm", "run", "edge", "--config", str(config_dir)),
    }
    fields.update(changes)
    return ServiceSpec(**fields)  # type: ignore[arg-type]


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) pairs; keys may repeat (Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, separator, value = line.partition("=")
        assert separator, f"not a key=value line: {line!r}"
        current.append((key, value))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def unquote_systemd(value: str) -> list[str]:
    """systemd's splitting for the quoting render_unit uses, then its $$ and %% escapes."""
    return [word.replace("$$", "$").replace("%%", "%") for word in shlex.split(value)]


# ---------------------------------------------------------------- names and paths


def test_upstream_config_dir_gives_the_upstream_unit_name(tmp_path: Path) -> None:
    assert make_spec(Path("/etc/kubeedge"), tmp_path).unit_name == "edgecore.service"
    assert make_spec(Path("/etc/kubeedge/"), tmp_path, component="cloudcore").unit_name == (
        "cloudcore.service"
    )


def test_other_config_dir_gives_a_name_from_its_resolved_path(tmp_path: Path) -> None:
    config_dir = tmp_path / "edge-a"
    digest = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:8]
    name = make_spec(config_dir, tmp_path).unit_name
    assert name == f"edgecore-{digest}.service"
    assert re.fullmatch(r"edgecore-[0-9a-f]{8}\.service", name)


def test_two_config_dirs_give_two_unit_names(tmp_path: Path) -> None:
    first = make_spec(tmp_path / "edge-a", tmp_path).unit_name
    second = make_spec(tmp_path / "edge-b", tmp_path).unit_name
    assert first != second


def test_relative_and_absolute_config_dir_give_one_unit_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = make_spec(Path("edge-a"), tmp_path).unit_name
    assert relative == make_spec(tmp_path / "edge-a", tmp_path).unit_name


def test_pid_and_log_files_live_in_their_dirs(tmp_path: Path) -> None:
    spec = make_spec(tmp_path / "cfg", tmp_path, component="controlplane")
    assert spec.pid_file == tmp_path / "run" / "controlplane.pid"
    assert spec.log_file == tmp_path / "log" / "controlplane.log"
    assert dict(spec.env) == {}
    assert spec.readiness_timeout == 30


# ---------------------------------------------------------------- unit text


def test_unit_has_the_expected_settings(tmp_path: Path) -> None:
    spec = make_spec(tmp_path / "cfg", tmp_path, env={"KUBEEDGE_X": "1", "GREETING": "hi there"})
    unit = parse_unit(render_unit(spec))
    assert set(unit) == {"Unit", "Service", "Install"}
    assert values(unit["Unit"], "After") == ["network-online.target"]
    assert values(unit["Unit"], "Wants") == ["network-online.target"]
    assert "edgecore" in values(unit["Unit"], "Description")[0]
    service = unit["Service"]
    assert values(service, "Type") == ["simple"]
    assert values(service, "Restart") == ["always"]
    assert values(service, "RestartSec") == ["10"]
    assert values(service, "KillMode") == ["mixed"]
    assert values(service, "TimeoutStopSec")
    assert values(service, "StandardOutput") == [f"append:{spec.log_file}"]
    assert values(service, "StandardError") == ["inherit"]
    environment = [unquote_systemd(value) for value in values(service, "Environment")]
    assert environment == [["KUBEEDGE_X=1"], ["GREETING=hi there"]]
    assert unquote_systemd(values(service, "ExecStart")[0]) == list(spec.argv)
    assert values(unit["Install"], "WantedBy") == ["multi-user.target"]


def test_exec_start_quotes_awkward_arguments(tmp_path: Path) -> None:
    awkward = ("with space", 'a"quote', "back\\slash", "$HOME", "100%", "", "semi;colon")
    spec = make_spec(tmp_path / "cfg", tmp_path, argv=(sys.executable, *awkward))
    exec_start = values(parse_unit(render_unit(spec))["Service"], "ExecStart")[0]
    assert "$$HOME" in exec_start and "100%%" in exec_start
    assert unquote_systemd(exec_start) == [sys.executable, *awkward]


@pytest.mark.skipif(not Path(SYSTEMD_ANALYZE).exists(), reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    # What systemd-analyze 252 does here, where systemd is not PID 1: `verify` still loads
    # and checks the file offline. A valid unit gives exit 0 and no output. Setting
    # problems (unknown key, bad value, relative path) are printed as
    # "<file>:<line>: ..." yet still exit 0; unbalanced quoting or a missing ExecStart
    # binary exits 1 naming the unit. So any line naming the unit fails the test; a
    # non-zero exit that names nothing of ours is the environment refusing, and skips.
    spec = make_spec(tmp_path / "cfg dir", tmp_path, env={"GREETING": "hi there"})
    unit_file = tmp_path / spec.unit_name
    unit_file.write_text(render_unit(spec))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit_file)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    about_our_unit = [line for line in output.splitlines() if spec.unit_name in line]
    assert not about_our_unit, output
    if result.returncode != 0:
        pytest.skip(f"systemd-analyze refused for environmental reasons: {output.strip()}")
