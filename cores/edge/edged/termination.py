"""Termination messages: the file a container may leave its last words in, and reading them back.

Each attempt of a container gets its own empty host file,
``<root>/pods/<uid>/containers/<name>/<attempt>.termination-log``, mounted at
``terminationMessagePath`` (unless a volume is mounted there) and writable by any user in the
container: a new attempt never shows the previous one's message, and removing an old instance
removes its file. The message is what the runtime reports, else the file's first 4096 bytes;
with ``FallbackToLogsOnError``, a container that failed and left the file empty gets the tail of
its CRI log instead (kubelet's limits: 80 lines, 2048 bytes).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cores.edge.cri import api

DEFAULT_PATH = "/dev/termination-log"
MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048
LOG_TAIL_READ_BYTES = 64 * 1024


def message_file(pod_dir: Path, name: str, attempt: int) -> Path:
    return pod_dir / "containers" / name / f"{attempt}.termination-log"


async def mount(pod_dir: Path, spec: Mapping[str, Any], attempt: int, mounts: Sequence[api.Mount]) -> api.Mount | None:
    """A fresh empty message file for this attempt, as a mount; None when a volume is mounted at the path."""
    path = str(spec.get("terminationMessagePath") or DEFAULT_PATH)
    if any(m.container_path == path for m in mounts):
        return None
    host_file = message_file(pod_dir, str(spec["name"]), attempt)
    await asyncio.to_thread(_empty_file, host_file)
    return api.Mount(container_path=path, host_path=str(host_file))


async def remove(pod_dir: Path, name: str, attempt: int) -> None:
    await asyncio.to_thread(message_file(pod_dir, name, attempt).unlink, True)


async def message(pod_dir: Path, spec: Mapping[str, Any], status: api.ContainerStatus) -> str:
    """What the container left: the runtime's message, its file, or (FallbackToLogsOnError) its log's tail."""
    if status.message:
        return str(status.message)
    path = message_file(pod_dir, str(spec["name"]), int(status.metadata.attempt))
    text = await asyncio.to_thread(_read_head, path, MESSAGE_BYTES)
    if not text and status.exit_code != 0 and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        text = await asyncio.to_thread(log_tail, status.log_path, FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES)
    return text


def _empty_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    path.chmod(0o666)  # any user in the container may write its termination message


def _read_head(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as file:
            return file.read(limit).decode(errors="replace")
    except OSError:
        return ""


def log_tail(path: str, lines: int, limit: int) -> str:
    """The last lines of a CRI log file (``<time> <stream> <P|F> <text>``), as the container wrote them."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - LOG_TAIL_READ_BYTES))
            raw = file.read().splitlines()
    except OSError:
        return ""
    text = ""
    for line in raw:
        parts = line.split(b" ", 3)
        if len(parts) == 4:
            text += parts[3].decode(errors="replace") + ("\n" if parts[2] == b"F" else "")
    tail = "".join(f"{line}\n" for line in text.splitlines()[-lines:])
    return tail.encode()[-limit:].decode(errors="ignore")
