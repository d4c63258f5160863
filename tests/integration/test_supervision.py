"""cores.common.supervision with real background processes (systemd is not PID 1 here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.timeouts import TIMEOUT_FACTOR
from cores.common.supervision import (
    AlreadyRunning,
    ServiceSpec,
    StartFailed,
    start,
    status,
    stop,
    systemd_is_running,
)


# Writes the ready file given as argv[1], then sleeps; SIGTERM makes it exit 0.
READY_THEN_SLEEP = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("core starting", flush=True)
pathlib.Path(sys.argv[1]).write_text("ready")
while True:
    time.sleep(1)
"""

IGNORE_TERM = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text("ready")
while True:
    time.sleep(1)
"""

# Starts a grandchild in the same process group and writes its pid to the ready file.
WITH_GRANDCHILD = """
import pathlib, subprocess, sys, time
grandchild = subprocess.Popen(["sleep", "600"])
pathlib.Path(sys.argv[1]).write_text(str(grandchild.pid))
while True:
    time.sleep(1)
"""

EXIT_THREE = """
print("cannot read config: boom", flush=True)
raise SystemExit(3)
"""

READY_THEN_EXIT = """
import pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(0.3)
"""

pytestmark = pytest.mark.skipif(systemd_is_running(), reason="would install systemd units")


def process_alive(pid: int) -> bool:
    """True if /proc shows ``pid`` and it is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return text[text.rindex(")") + 2] != "Z"


def process_start_time(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[19])


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Cores:
    """Makes specs under tmp_path and remembers every spec and pid so all get stopped."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.specs: list[ServiceSpec] = []
        self.pids: list[int] = []

    def spec(self, name: str, script: str, readiness_timeout: float = 10.0) -> ServiceSpec:
        ready_file = self.tmp_path / name / "ready"
        spec = ServiceSpec(
            component="edgecore",
            config_dir=self.tmp_path / name / "config",
            log_dir=self.tmp_path / name / "log",
            run_dir=self.tmp_path / name / "run",
            argv=(sys.executable, "-c", script, str(ready_file)),
            readiness_timeout=readiness_timeout * TIMEOUT_FACTOR,
        )
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        self.specs.append(spec)
        return spec

    def start(self, spec: ServiceSpec) -> int:
        pid = start(spec, ready=lambda: self.ready_file(spec).exists())
        self.pids.append(pid)
        return pid

    def ready_file(self, spec: ServiceSpec) -> Path:
        return Path(spec.argv[-1])

    def stop_everything(self) -> None:
        for spec in self.specs:
            try:
                stop(spec, grace=1.0)
            except Exception:  # still SIGKILL by pid below
                pass
        for pid in self.pids:
            if process_alive(pid):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def cores(tmp_path: Path) -> Iterator[Cores]:
    started = Cores(tmp_path)
    try:
        yield started
    finally:
        started.stop_everything()


def test_start_status_stop(cores: Cores) -> None:
    spec = cores.spec("edge-a", READY_THEN_SLEEP)
    pid = cores.start(spec)
    assert process_alive(pid)
    assert status(spec).running and status(spec).pid == pid
    assert status(spec).manager == "process" and not status(spec).stale_pid_file
    record = json.loads(spec.pid_file.read_text())
    assert record["pid"] == pid and record["start_time"] == process_start_time(pid)
    assert record["argv"] == list(spec.argv) and record["config_dir"] == str(spec.config_dir)
    assert "core starting" in spec.log_file.read_text()

    assert stop(spec) is True
    assert not process_alive(pid)
    assert not spec.pid_file.exists()
    assert status(spec).running is False and status(spec).pid is None
    assert stop(spec) is False


def test_second_start_of_one_spec_is_refused(cores: Cores) -> None:
    spec = cores.spec("edge-a", READY_THEN_SLEEP)
    pid = cores.start(spec)
    with pytest.raises(AlreadyRunning) as refused:
        cores.start(spec)
    assert str(pid) in str(refused.value) and str(spec.config_dir) in str(refused.value)
    assert status(spec).pid == pid


def test_two_config_dirs_run_side_by_side(cores: Cores) -> None:
    first = cores.spec("edge-a", READY_THEN_SLEEP)
    second = cores.spec("edge-b", READY_THEN_SLEEP)
    first_pid, second_pid = cores.start(first), cores.start(second)
    assert first_pid != second_pid and first.unit_name != second.unit_name
    assert status(first).pid == first_pid and status(second).pid == second_pid
    assert stop(first) is True
    assert status(second).running and process_alive(second_pid)


def test_process_ignoring_sigterm_is_killed_after_grace(cores: Cores) -> None:
    spec = cores.spec("stubborn", IGNORE_TERM)
    pid = cores.start(spec)
    began = time.monotonic()
    assert stop(spec, grace=1.0) is True
    assert time.monotonic() - began >= 1.0
    assert not process_alive(pid)
    assert not spec.pid_file.exists()


def test_stop_signals_the_whole_process_group(cores: Cores) -> None:
    spec = cores.spec("family", WITH_GRANDCHILD)
    pid = cores.start(spec)
    assert wait_for(lambda: cores.ready_file(spec).read_text().isdigit(), 5)
    grandchild = int(cores.ready_file(spec).read_text())
    cores.pids.append(grandchild)
    assert stop(spec, grace=1.0) is True
    assert not process_alive(pid)
    assert wait_for(lambda: not process_alive(grandchild), 5)


def test_process_exiting_at_once_fails_start_with_code_and_log(cores: Cores) -> None:
    spec = cores.spec("broken", EXIT_THREE)
    with pytest.raises(StartFailed) as failed:
        cores.start(spec)
    message = str(failed.value)
    assert "code 3" in message
    assert "cannot read config: boom" in message
    assert str(spec.log_file) in message
    assert not spec.pid_file.exists()
    assert status(spec).running is False


def test_readiness_timeout_fails_start_and_leaves_no_process(cores: Cores) -> None:
    spec = cores.spec("never-ready", READY_THEN_SLEEP, readiness_timeout=1.0)
    seen_pids: list[int] = []

    def never_ready() -> bool:
        # start() gives no pid when it fails; learn it from the pid file while it waits.
        pid = status(spec).pid
        if pid is not None and pid not in seen_pids:
            seen_pids.append(pid)
            cores.pids.append(pid)
        return False

    with pytest.raises(StartFailed) as failed:
        start(spec, ready=never_ready)
    assert "did not become ready" in str(failed.value)
    assert str(spec.log_file) in str(failed.value)
    assert len(seen_pids) == 1
    assert not process_alive(seen_pids[0])
    assert not spec.pid_file.exists()


def test_stale_pid_file_is_reported_and_removed(cores: Cores) -> None:
    spec = cores.spec("stale", READY_THEN_SLEEP)
    exited = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    record = {"pid": exited.pid, "start_time": process_start_time(exited.pid),
              "argv": ["x"], "config_dir": str(spec.config_dir)}
    exited.kill()
    exited.wait()
    spec.run_dir.mkdir(parents=True)
    spec.pid_file.write_text(json.dumps(record))

    assert status(spec).stale_pid_file and not status(spec).running
    assert stop(spec) is False
    assert not spec.pid_file.exists()
    assert status(spec).stale_pid_file is False


def test_recycled_pid_is_not_taken_for_ours(cores: Cores) -> None:
    # Our own pid is alive but started at another time than the one recorded.
    spec = cores.spec("recycled", READY_THEN_SLEEP)
    record = {"pid": os.getpid(), "start_time": process_start_time(os.getpid()) + 1,
              "argv": ["x"], "config_dir": str(spec.config_dir)}
    spec.run_dir.mkdir(parents=True)
    spec.pid_file.write_text(json.dumps(record))
    assert status(spec).stale_pid_file and not status(spec).running
    assert stop(spec) is False
    assert not spec.pid_file.exists()
    pid = cores.start(spec)
    assert status(spec).pid == pid


def test_core_that_exits_after_start_is_not_running(cores: Cores) -> None:
    # It stays our unreaped child (a zombie) for a while; a zombie counts as gone.
    spec = cores.spec("short-lived", READY_THEN_EXIT)
    pid = cores.start(spec)
    assert wait_for(lambda: not status(spec).running, 5)
    assert status(spec).stale_pid_file
    assert stop(spec) is False
    assert not process_alive(pid)


def test_core_outlives_the_process_that_started_it(cores: Cores) -> None:
    # keadm join starts the core and exits; a later keadm reset stops a non-child by pid.
    spec = cores.spec("detached", READY_THEN_SLEEP)
    starter = f"""
import sys
from pathlib import Path
from cores.common.supervision import ServiceSpec, start
spec = ServiceSpec("edgecore", Path({str(spec.config_dir)!r}), Path({str(spec.log_dir)!r}),
                   Path({str(spec.run_dir)!r}), {spec.argv!r})
print(start(spec, ready=lambda: Path({str(cores.ready_file(spec))!r}).exists()))
"""
    result = subprocess.run(
        [sys.executable, "-c", starter], capture_output=True, text=True,
        timeout=30 * TIMEOUT_FACTOR, check=True, cwd=Path(__file__).parents[2],
    )
    pid = int(result.stdout)
    cores.pids.append(pid)
    assert process_alive(pid) and status(spec).pid == pid
    assert stop(spec) is True
    assert not process_alive(pid)


def test_failing_readiness_check_leaves_no_process(cores: Cores) -> None:
    spec = cores.spec("bad-check", READY_THEN_SLEEP)
    seen_pids: list[int] = []

    def broken_check() -> bool:
        seen_pids.append(status(spec).pid or 0)
        cores.pids.extend(seen_pids[-1:])
        raise RuntimeError("probe crashed")

    with pytest.raises(RuntimeError, match="probe crashed"):
        start(spec, ready=broken_check)
    assert seen_pids and not process_alive(seen_pids[0])
    assert not spec.pid_file.exists()
