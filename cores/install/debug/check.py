"""``keadm debug check <item>``: can this machine run EdgeCore? Upstream's items and thresholds.

Each check is a :class:`Result` with what was measured; none needs EdgeCore to be installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import socket
import ssl
import struct
import time
from pathlib import Path

ITEMS = ("cpu", "mem", "disk", "dns", "network", "pid", "runtime")
MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Result:
    item: str
    ok: bool
    detail: str


def cpu() -> Result:
    cores = os.cpu_count() or 0

    def busy_total() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    busy0, total0 = busy_total()
    time.sleep(1)
    busy1, total1 = busy_total()
    usage = 100.0 * (busy1 - busy0) / max(total1 - total0, 1)
    return Result("cpu", cores >= 1 and usage < 90, f"{cores} logical core(s), {usage:.0f}% used over 1 s (need >= 1 core, < 90%)")


def mem() -> Result:
    info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
            if line.split()[1:2] and line.split()[1].isdigit()}
    total, free = info.get("MemTotal", 0), info.get("MemAvailable", info.get("MemFree", 0))
    usage = 100.0 * (total - free) / max(total, 1)
    return Result("mem", total >= 256 * MB and free >= 128 * MB and usage < 90,
                  f"{total // MB} MB total, {free // MB} MB available, {usage:.0f}% used (need >= 256 MB, >= 128 MB free, < 90%)")


def disk(path: str = "/") -> Result:
    stats = os.statvfs(path)
    total, free = stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize
    usage = 100.0 * (total - free) / max(total, 1)
    return Result("disk", total >= 1024 * MB and free >= 512 * MB and usage < 90,
                  f"{path}: {total // MB} MB, {free // MB} MB free, {usage:.0f}% used (need >= 1 GB, >= 512 MB free, < 90%)")


def dns(domain: str = "www.github.com", server: str = "") -> Result:
    """Resolve ``domain`` through the system resolver, or by a UDP query to ``server``:53 (4 s)."""
    if not server:
        try:
            addresses = sorted({str(info[4][0]) for info in socket.getaddrinfo(domain, None)})
        except OSError as error:
            return Result("dns", False, f"{domain} does not resolve: {error}")
        return Result("dns", True, f"{domain} -> {', '.join(addresses[:4])}")
    ident = random.randrange(1 << 16)
    question = b"".join(bytes([len(label)]) + label.encode("idna") for label in domain.rstrip(".").split(".")) + b"\0"
    query = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(4)
        try:
            probe.sendto(query, (server, 53))
            reply = probe.recv(4096)
        except OSError as error:
            return Result("dns", False, f"no answer from {server}:53 for {domain}: {error}")
    if len(reply) < 12 or struct.unpack(">H", reply[:2])[0] != ident:
        return Result("dns", False, f"{server}:53 sent a reply that is not an answer to the query")
    flags, answers = struct.unpack(">H", reply[2:4])[0], struct.unpack(">H", reply[6:8])[0]
    code = flags & 0xF
    return Result("dns", code == 0 and answers > 0, f"{server}:53: {domain} rcode {code}, {answers} answer(s)")


def network(server: str) -> Result:
    """A TLS handshake with ``host:port`` (the cloud's; certificate errors tolerated, as upstream)."""
    host, _, port = server.rpartition(":")
    if not host:
        return Result("network", False, "no cloud address: pass --server or --config")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as raw:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            with context.wrap_socket(raw, server_hostname=host.strip("[]")):
                pass
    except (OSError, ValueError) as error:
        return Result("network", False, f"https://{server} is not reachable: {error}")
    return Result("network", True, f"https://{server} answers TLS")


def pid() -> Result:
    maximum = int(Path("/proc/sys/kernel/pid_max").read_text())
    used = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    free = 100.0 * (maximum - used) / maximum
    return Result("pid", free >= 5, f"{used} of kernel.pid_max {maximum} in use, {free:.0f}% free (need >= 5%)")


def runtime(endpoint: str) -> Result:
    from cores.edge.cri.client import CriClient

    async def ask() -> str:
        async with CriClient(endpoint) as cri:
            version = await cri.version()
            state = await cri.status()
        ready = {c.type: c.status for c in state.conditions}.get("RuntimeReady")
        if not ready:
            raise RuntimeError(f"{version.runtime_name} {version.runtime_version} is not RuntimeReady")
        return f"{version.runtime_name} {version.runtime_version} on {endpoint}, RuntimeReady"

    try:
        return Result("runtime", True, asyncio.run(asyncio.wait_for(ask(), 10)))
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return Result("runtime", False, f"no container runtime answers on {endpoint}: {error or type(error).__name__}")
