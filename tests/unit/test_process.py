"""Running a core process: module selection from config, failing modules, crash reports."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cores.beehive import Context
from cores.common import config as configs
from cores.common.process import build_modules, run
from keadm import main as keadm_main


class Idle:
    def __init__(self, name: str) -> None:
        self.name, self.group = name, name

    async def start(self, ctx: Context) -> None:
        await ctx.receive(self.name)


class BrokenStart(Idle):
    async def start(self, ctx: Context) -> None:
        raise OSError("address already in use: 0.0.0.0:10000")


def _config() -> configs.Config:
    return configs.parse(configs.CLOUDCORE, "modules: {router: {enable: false}}")


def test_only_implemented_enabled_modules_are_built(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        modules = build_modules(_config(), {"cloudHub": lambda c: Idle("cloudhub"), "router": lambda c: Idle("router")})
    assert [m.name for m in modules] == ["cloudhub"]  # router is disabled
    assert "not implemented yet, so not running: deviceController, edgeController" in caplog.text


def test_failing_module_gives_exit_1_and_names_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        code = run("cloudcore", _config(), {"cloudHub": lambda c: BrokenStart("cloudhub")})
    assert code == 1
    assert "cloudcore: module cloudhub failed: address already in use: 0.0.0.0:10000" in caplog.text


def test_unexpected_error_says_where_the_trace_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEADM_LOG_DIR", str(tmp_path))
    code = keadm_main._report_crash(RuntimeError("boom"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: unexpected RuntimeError: boom (the full trace is in ")
    assert "Traceback" not in err
    assert "RuntimeError: boom" in (tmp_path / "keadm-error.log").read_text()
