"""Starting, stopping and inspecting one running core (CloudCore, EdgeCore, control plane).

This module owns the life of a core as an operating-system service: ``keadm init``,
``join`` and ``reset`` and the benchmarks call :func:`start`, :func:`stop` and
:func:`status` and never spawn cores themselves.

When systemd is PID 1 a core becomes a systemd unit, as upstream keadm installs it;
otherwise it becomes a background process in its own session, tracked by a pid file that
also records the process start time, so a recycled pid is never taken for ours.
Every instance is keyed by its config directory (unit name) and its run directory
(pid file), so several edges with different directories coexist on one machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal

Component = Literal["cloudcore", "edgecore", "controlplane"]
Manager = Literal["systemd", "process"]

UPSTREAM_CONFIG_DIR = Path("/etc/kubeedge")
SYSTEMD_UNIT_DIR = Path("/etc/systemd/system")
POLL_INTERVAL = 0.1
LOG_TAIL_LINES = 20
# After SIGKILL the kernel only needs to tear the process down; longer means it is stuck
# in uninterruptible sleep and waiting more will not help.
KILL_WAIT = 5.0
STOP_TIMEOUT_SECONDS = 10


class SupervisionError(Exception):
    """A core could not be started or stopped as asked."""


class AlreadyRunning(SupervisionError):
    """A live instance already exists for this spec."""


class StartFailed(SupervisionError):
    """The core exited or did not become ready in time."""


class StopFailed(SupervisionError):
    """The core could not be signalled or did not go away."""


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """What to run for one core instance and where its files live."""

    component: Component
    config_dir: Path
    log_dir: Path
    run_dir: Path
    argv: tuple[str, ...]
    # Left out of the hash (a mapping has none) so a spec can still key a dict.
    env: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    readiness_timeout: float = 30.0

    @property
    def unit_name(self) -> str:
        """``<component>.service`` for the upstream config dir, else a name unique to the dir."""
        resolved = self.config_dir.resolve()
        if resolved == UPSTREAM_CONFIG_DIR:
            return f"{self.component}.service"
        digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
        return f"{self.component}-{digest}.service"

    @property
    def unit_file(self) -> Path:
        return SYSTEMD_UNIT_DIR / self.unit_name

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.component}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.component}.log"


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    """Whether a core runs, under which manager, and whether a dead pid file was left."""

    running: bool
    pid: int | None
    manager: Manager | None
    stale_pid_file: bool


@dataclasses.dataclass(frozen=True)
class PidRecord:
    """The content of a pid file."""

    pid: int
    start_time: int
    argv: tuple[str, ...]
    config_dir: str


# Children spawned by this interpreter, kept so they can be reaped (no zombies while a
# long-lived caller such as a benchmark goes on) and so Popen never warns, on garbage
# collection, that a child it still owns is running.
_spawned_children: dict[int, subprocess.Popen[bytes]] = {}


# ---------------------------------------------------------------- public entry points


def systemd_is_running() -> bool:
    """True when systemd is PID 1; the same test as sd_booted(3)."""
    return Path("/run/systemd/system").is_dir()


def start(spec: ServiceSpec, ready: Callable[[], bool] | None = None) -> int:
    """Start the core and wait until ``ready()`` holds; return its pid.

    Without ``ready`` it returns as soon as the process runs; a later crash shows in
    :func:`status` and the log file.
    """
    _reap_exited()
    if systemd_is_running():
        return _start_systemd_unit(spec, ready)
    return _start_background_process(spec, ready)


def stop(spec: ServiceSpec, grace: float = 10.0) -> bool:
    """Stop the core (SIGTERM, then SIGKILL after ``grace`` seconds); True if one was running.

    A systemd unit is stopped by systemd, which applies the unit's own TimeoutStopSec.
    """
    stopped = False
    if systemd_is_running() and spec.unit_file.exists():
        stopped = _stop_systemd_unit(spec)
    return _stop_background_process(spec, grace) or stopped


def status(spec: ServiceSpec) -> ServiceStatus:
    """Report whether the core of this spec runs."""
    if systemd_is_running() and spec.unit_file.exists():
        if _systemctl_ok("is-active", "--quiet", spec.unit_name):
            return ServiceStatus(True, _systemd_main_pid(spec), "systemd", False)
    record = _read_pid_record(spec.pid_file)
    if record is None:
        return ServiceStatus(False, None, None, False)
    if _process_matches(record.pid, record.start_time):
        return ServiceStatus(True, record.pid, "process", False)
    return ServiceStatus(False, None, None, True)


# ---------------------------------------------------------------- systemd unit


def render_unit(spec: ServiceSpec) -> str:
    """The unit file installed at /etc/systemd/system/<unit_name> for this spec."""
    lines = [
        "[Unit]",
        f"Description=KubeEdge {spec.component} ({_escape_specifiers(str(spec.config_dir))})",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_quote_exec_arg(arg) for arg in spec.argv),
    ]
    lines += [
        "Environment=" + _quote_unit_word(f"{key}={value}") for key, value in spec.env.items()
    ]
    lines += [
        "Restart=always",
        "RestartSec=10",
        # mixed: SIGTERM reaches only the main process, which shuts its children down
        # itself; whatever is left of the group gets SIGKILL when the timeout expires.
        "KillMode=mixed",
        f"TimeoutStopSec={STOP_TIMEOUT_SECONDS}",
        f"StandardOutput=append:{_escape_specifiers(str(spec.log_file))}",
        "StandardError=inherit",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def _escape_specifiers(text: str) -> str:
    # systemd expands %-specifiers in almost every setting; a literal % is written %%.
    return text.replace("%", "%%")


def _quote_unit_word(word: str) -> str:
    """Quote one word for systemd's command-line and Environment= splitting."""
    word = _escape_specifiers(word)
    if word and not any(ch.isspace() or ch in "\"'\\;" for ch in word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _quote_exec_arg(arg: str) -> str:
    # ExecStart= also expands $VAR and ${VAR} from the environment; $$ is a literal $.
    return _quote_unit_word(arg).replace("$", "$$")


def _start_systemd_unit(spec: ServiceSpec, ready: Callable[[], bool] | None) -> int:
    if _systemctl_ok("is-active", "--quiet", spec.unit_name):
        raise AlreadyRunning(
            f"{spec.unit_name} is already active for {spec.config_dir}; "
            f"stop it first (systemctl stop {spec.unit_name})"
        )
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(spec.unit_file, render_unit(spec))
    _systemctl("daemon-reload")
    _systemctl("enable", "--now", spec.unit_name)
    if ready is not None:
        _wait_for_unit_ready(spec, ready)
    return _systemd_main_pid(spec) or 0


def _wait_for_unit_ready(spec: ServiceSpec, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + spec.readiness_timeout
    while not ready():
        if time.monotonic() > deadline:
            _stop_systemd_unit(spec)
            raise StartFailed(
                f"{spec.unit_name} did not become ready within {spec.readiness_timeout} s; "
                f"see journalctl -u {spec.unit_name} and {spec.log_file}\n"
                + _log_tail(spec.log_file)
            )
        time.sleep(POLL_INTERVAL)


def _stop_systemd_unit(spec: ServiceSpec) -> bool:
    was_active = _systemctl_ok("is-active", "--quiet", spec.unit_name)
    _systemctl("disable", "--now", spec.unit_name)
    spec.unit_file.unlink(missing_ok=True)
    _systemctl("daemon-reload")
    return was_active


def _systemd_main_pid(spec: ServiceSpec) -> int | None:
    result = subprocess.run(
        ["systemctl", "show", "--property=MainPID", "--value", spec.unit_name],
        capture_output=True, text=True, check=False,
    )
    pid = int(result.stdout.strip() or 0)
    return pid or None


def _systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SupervisionError(
            f"systemctl {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.strip()}; check that you run as root"
        )


def _systemctl_ok(*args: str) -> bool:
    return subprocess.run(["systemctl", *args], capture_output=True, check=False).returncode == 0


# ---------------------------------------------------------------- background process


def _start_background_process(spec: ServiceSpec, ready: Callable[[], bool] | None) -> int:
    _refuse_if_running(spec)
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    child = _spawn(spec)
    start_time = _process_start_time(child.pid)
    if start_time is None:
        # An unreaped child stays in /proc even as a zombie, so only a missing /proc gets here.
        child.kill()
        child.wait()
        _spawned_children.pop(child.pid, None)
        raise SupervisionError(f"cannot read /proc/{child.pid}/stat; mount /proc and retry")
    record = PidRecord(child.pid, start_time, spec.argv, str(spec.config_dir))
    _write_atomically(spec.pid_file, json.dumps(dataclasses.asdict(record)))
    if ready is not None:
        try:
            _wait_for_ready(spec, child, ready)
        except BaseException:
            # Timeout, a failing ready() or Ctrl-C: leave no half-started core behind.
            _stop_background_process(spec, grace=1.0)
            raise
    return child.pid


def _refuse_if_running(spec: ServiceSpec) -> None:
    record = _read_pid_record(spec.pid_file)
    if record is not None and _process_matches(record.pid, record.start_time):
        raise AlreadyRunning(
            f"{spec.component} already runs as pid {record.pid} for config dir "
            f"{record.config_dir} (pid file {spec.pid_file}); stop it first or use other dirs"
        )


def _spawn(spec: ServiceSpec) -> subprocess.Popen[bytes]:
    with spec.log_file.open("ab") as log:
        # A new session detaches the core from our terminal and process group, so it
        # outlives the caller and its whole group can be signalled on stop.
        child = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=os.environ | dict(spec.env),
        )
    _spawned_children[child.pid] = child
    return child


def _wait_for_ready(
    spec: ServiceSpec, child: subprocess.Popen[bytes], ready: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + spec.readiness_timeout
    while True:
        if child.poll() is not None:
            raise _exited_error(spec, child)
        if ready():
            return
        if time.monotonic() > deadline:
            raise StartFailed(
                f"{spec.component} (pid {child.pid}) did not become ready within "
                f"{spec.readiness_timeout} s and was stopped; see {spec.log_file}\n"
                + _log_tail(spec.log_file)
            )
        time.sleep(POLL_INTERVAL)


def _exited_error(spec: ServiceSpec, child: subprocess.Popen[bytes]) -> StartFailed:
    """The error for a child that exited before it was ready; forgets the reaped child."""
    _spawned_children.pop(child.pid, None)
    spec.pid_file.unlink(missing_ok=True)
    return StartFailed(
        f"{spec.component} exited with code {child.returncode} before it was ready; "
        f"see {spec.log_file}\n" + _log_tail(spec.log_file)
    )


def _stop_background_process(spec: ServiceSpec, grace: float) -> bool:
    record = _read_pid_record(spec.pid_file)
    if record is None:
        return False
    if not _process_matches(record.pid, record.start_time):
        spec.pid_file.unlink(missing_ok=True)
        _reap(record.pid)
        return False
    _signal_group(record.pid, signal.SIGTERM)
    if not _wait_until_gone(record, grace):
        _signal_group(record.pid, signal.SIGKILL)
        if not _wait_until_gone(record, KILL_WAIT):
            raise StopFailed(
                f"{spec.component} pid {record.pid} survived SIGKILL for {KILL_WAIT} s "
                f"(stuck in the kernel?); pid file {spec.pid_file} kept"
            )
    spec.pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    # start_new_session made the core its session and group leader: pgid == pid.
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError as error:
        raise StopFailed(
            f"not allowed to signal pid {pid} ({error}); run as the user that started it or root"
        ) from error


def _wait_until_gone(record: PidRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(record.pid)
        if not _process_matches(record.pid, record.start_time):
            _reap(record.pid)
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)


def _reap_exited() -> None:
    """Collect every child of ours that has exited, however it died (e.g. a kill -9 from outside)."""
    for pid, child in list(_spawned_children.items()):
        if child.poll() is not None:
            del _spawned_children[pid]


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child, so it leaves no zombie."""
    child = _spawned_children.get(pid)
    if child is not None and child.poll() is not None:
        del _spawned_children[pid]


# ---------------------------------------------------------------- /proc and files


def _process_matches(pid: int, start_time: int) -> bool:
    """True if ``pid`` is alive, not a zombie, and is the process that started at ``start_time``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else; /proc still tells whether it is ours
    stat = _read_proc_stat(pid)
    if stat is None:
        return False
    state, observed_start_time = stat
    return state != "Z" and observed_start_time == start_time


def _process_start_time(pid: int) -> int | None:
    stat = _read_proc_stat(pid)
    return None if stat is None else stat[1]


def _read_proc_stat(pid: int) -> tuple[str, int] | None:
    """State and start time (fields 3 and 22 of /proc/<pid>/stat), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses; it ends at the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _read_pid_record(pid_file: Path) -> PidRecord | None:
    try:
        data = json.loads(pid_file.read_text())
        return PidRecord(
            int(data["pid"]), int(data["start_time"]), tuple(data["argv"]), str(data["config_dir"])
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise SupervisionError(
            f"pid file {pid_file} is unreadable ({error}); check no process runs and delete it"
        ) from error


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _log_tail(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log file at {log_file})"
    return "\n".join(lines[-LOG_TAIL_LINES:])
