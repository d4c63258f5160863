"""``keadm debug collect``: one archive for a bug report, with no private key and no token in it.

It holds system facts, EdgeCore's config with every secret value replaced, its logs, a consistent
copy of the edge database, the public certificates (never their keys) and the versions.
"""

from __future__ import annotations

import datetime
import io
import os
import platform
import re
import sqlite3
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

from cores.install.debug import EdgeSite

REDACTED = "<redacted>"
TOKEN_ARG = re.compile(r"(--token[= ])\S+")
SECRET_KEY = re.compile(r"token|password|secret|privatekey", re.IGNORECASE)
MAX_LOG_BYTES = 20 * 1024 * 1024
SYSTEM_FILES = ("/proc/cpuinfo", "/proc/meminfo", "/proc/version", "/proc/uptime", "/etc/hosts", "/etc/resolv.conf",
                "/etc/os-release")


def redact(value: Any) -> Any:
    """The config with every value under a secret-looking key replaced (file paths to keys stay)."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) and not str(k).endswith("File") and v not in ("", None)
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def collect(site: EdgeSite, output_dir: Path, detail: bool = False, version: str = "") -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    output_dir.mkdir(parents=True, exist_ok=True)
    archive = output_dir / f"edge_{stamp}.tar.gz"
    root = f"edge_{stamp}"
    with tarfile.open(archive, "w:gz") as tar:
        def add_bytes(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mtime, info.mode = len(data), int(datetime.datetime.now().timestamp()), 0o600
            tar.addfile(info, io.BytesIO(data))

        add_bytes("system/facts.yaml", yaml.safe_dump(_facts()).encode())
        for path in SYSTEM_FILES:
            try:
                add_bytes(f"system/{path.strip('/').replace('/', '_')}", Path(path).read_bytes()[:1024 * 1024])
            except OSError:
                pass
        add_bytes("system/processes.txt", _processes().encode())
        document = yaml.safe_load(site.config_path.read_text()) or {}
        add_bytes("edgecore/edgecore.yaml", yaml.safe_dump(redact(document), sort_keys=False).encode())
        for log in sorted(site.log_dir.glob("*.log*")) if site.log_dir.is_dir() else []:
            data = log.read_bytes()
            add_bytes(f"edgecore/logs/{log.name}", data[-MAX_LOG_BYTES:] if not detail else data)
        database = _database_copy(site.database)
        if database is not None:
            add_bytes("edgecore/edgecore.db", database)
        for key in ("tlsCaFile", "tlsCertFile"):
            cert_path = Path(str(site.hub.get(key) or ""))
            try:
                data = cert_path.read_bytes()
            except OSError:
                continue
            if b"PRIVATE KEY" not in data:  # a certificate file that also holds its key is left out entirely
                add_bytes(f"edgecore/certs/{cert_path.name}", data)
        add_bytes("edgecore/version.txt", (version + "\n").encode())
    archive.chmod(0o600)
    return archive


def _facts() -> dict[str, Any]:
    stats = os.statvfs("/")
    return {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(), "hostname": platform.node(),
            "arch": platform.machine(), "kernel": platform.release(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "root_disk_bytes": stats.f_blocks * stats.f_frsize,
            "root_free_bytes": stats.f_bavail * stats.f_frsize}


def _processes() -> str:
    lines = []
    for entry in sorted((e for e in os.listdir("/proc") if e.isdigit()), key=int):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        # argv may carry a token (keadm join --token ...): never into the archive
        lines.append(f"{entry} {TOKEN_ARG.sub(lambda m: m.group(1) + REDACTED, argv)[:500]}")
    return "\n".join(lines) + "\n"


def _database_copy(database: Path) -> bytes | None:
    if not database.exists():
        return None
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "copy.db"
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as source, sqlite3.connect(copy) as target:
                source.backup(target)
        except sqlite3.Error:
            return None
        return copy.read_bytes()
