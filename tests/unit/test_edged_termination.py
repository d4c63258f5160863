"""Termination messages: one file per container attempt, read back with kubelet's limits and fallback."""

from __future__ import annotations

import stat
from pathlib import Path

from cores.edge.cri import api
from cores.edge.edged import termination


def status(attempt: int = 0, exit_code: int = 1, message: str = "", log_path: str = "") -> api.ContainerStatus:
    return api.ContainerStatus(id="c1", metadata=api.ContainerMetadata(name="main", attempt=attempt), exit_code=exit_code,
                               message=message, log_path=log_path)


async def test_each_attempt_gets_an_empty_file_anyone_in_the_container_may_write(tmp_path: Path) -> None:
    mount = await termination.mount(tmp_path, {"name": "main"}, 2, [])
    assert mount is not None and mount.container_path == "/dev/termination-log"
    host_file = Path(mount.host_path)
    assert host_file == tmp_path / "containers" / "main" / "2.termination-log"
    assert host_file.read_bytes() == b"" and stat.S_IMODE(host_file.stat().st_mode) == 0o666
    await termination.remove(tmp_path, "main", 2)
    await termination.remove(tmp_path, "main", 2)  # already gone: fine
    assert not host_file.exists()


async def test_a_volume_at_the_message_path_is_left_alone(tmp_path: Path) -> None:
    spec = {"name": "main", "terminationMessagePath": "/data/last"}
    taken = [api.Mount(container_path="/data/last", host_path="/elsewhere")]
    assert await termination.mount(tmp_path, spec, 0, taken) is None


async def test_the_message_is_the_runtimes_then_the_files_head(tmp_path: Path) -> None:
    assert await termination.message(tmp_path, {"name": "main"}, status(message="from the runtime")) == "from the runtime"
    path = termination.message_file(tmp_path, "main", 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 5000)
    assert await termination.message(tmp_path, {"name": "main"}, status(attempt=1)) == "x" * termination.MESSAGE_BYTES


def cri_log(path: Path, *entries: tuple[str, str]) -> str:
    path.write_text("".join(f"2024-01-01T00:00:00.000000000Z stdout {tag} {text}\n" for tag, text in entries))
    return str(path)


async def test_fallback_to_logs_only_after_a_failure_with_an_empty_file(tmp_path: Path) -> None:
    log_path = cri_log(tmp_path / "0.log", ("F", "starting"), ("P", "half "), ("F", "line"), ("F", "bye"))
    spec = {"name": "main", "terminationMessagePolicy": "FallbackToLogsOnError"}
    assert await termination.message(tmp_path, spec, status(log_path=log_path)) == "starting\nhalf line\nbye\n"
    assert await termination.message(tmp_path, spec, status(exit_code=0, log_path=log_path)) == ""
    assert await termination.message(tmp_path, {"name": "main"}, status(log_path=log_path)) == ""


def test_log_tail_keeps_the_last_lines_within_the_byte_limit(tmp_path: Path) -> None:
    log_path = cri_log(tmp_path / "0.log", *(("F", f"line {n}") for n in range(100)))
    assert termination.log_tail(log_path, 2, 2048) == "line 98\nline 99\n"
    assert termination.log_tail(log_path, 80, 10) == "8\nline 99\n"  # the last 10 bytes
    assert termination.log_tail(str(tmp_path / "missing.log"), 80, 2048) == ""
