"""Liveness, readiness and startup probes of one running container.

How each handler runs, and why:

* ``exec``: CRI ``ExecSync`` in the container, success on exit 0 (as kubelet).
* ``httpGet`` / ``tcpSocket`` in a **hostNetwork** pod: Edged connects to ``127.0.0.1:<port>``
  itself (only loopback: a probe naming another host is reported unsupported).
* ``httpGet`` / ``tcpSocket`` in a pod with its own network: Edged never sends traffic to pod
  IPs (private ranges are off limits on these machines), so the check runs *inside* the pod via
  ``ExecSync``: an HTTP/1.0 GET to ``127.0.0.1:<port><path>`` written through ``nc`` (status 2xx/3xx
  passes; busybox's static ``wget`` crashes in such images), or ``nc`` to ``127.0.0.1:<port>``. When the image has no such tool (exit 126/127) the probe is reported
  unsupported in the log once and counted as success, so it never kills or hides a container.

Results follow kubelet: readiness starts False, liveness and startup start unknown (no action);
``failureThreshold`` consecutive failures flip a result, ``successThreshold`` successes flip it
back; liveness and readiness wait for the startup probe to succeed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from cores.edge.cri import CriClient, CriError

log = logging.getLogger("kubeedge.edged")

HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


class Unsupported(Exception):
    pass


def _port(value: Any, container: Mapping[str, Any]) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise Unsupported(f"named port {value!r} not found in the container")


async def run_probe(cri: CriClient, container_id: str, container: Mapping[str, Any], probe: Mapping[str, Any],
                    host_network: bool) -> bool:
    """One attempt: True on success. Raises :class:`Unsupported` when it cannot be checked here."""
    timeout = int(probe.get("timeoutSeconds") or 1)
    if probe.get("exec"):
        try:
            result = await cri.exec_sync(container_id, list(probe["exec"].get("command") or []), timeout=timeout)
        except CriError as error:
            log.debug("exec probe in %s failed: %s", container_id[:12], error)
            return False
        return result.exit_code == 0
    handler = probe.get("httpGet") or probe.get("tcpSocket")
    if not handler:
        raise Unsupported(f"probe handler {[k for k in probe if k in HANDLERS]} is not supported at the edge")
    host = str(handler.get("host") or "")
    if host not in ("", "127.0.0.1", "localhost"):
        raise Unsupported(f"probe host {host!r}: only loopback is probed at the edge")
    port = _port(handler.get("port"), container)
    path = str(handler.get("path") or "/") if probe.get("httpGet") else ""
    if host_network:
        return await (_http_get(port, path, timeout) if probe.get("httpGet") else _tcp_connect(port, timeout))
    if probe.get("httpGet"):
        # busybox-static's wget crashes in some images; a request through nc needs only sh, nc, head, grep
        script = ('command -v nc >/dev/null || exit 127; '
                  'printf "GET %s HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\nUser-Agent: kube-probe/1.32\\r\\n\\r\\n" "$1" '
                  f'| nc -w {timeout} 127.0.0.1 {port} | head -n 1 | grep -qE "^HTTP/[0-9.]+ [23][0-9][0-9]"')
        command = ["sh", "-c", script, "probe", path]
    else:
        command = ["nc", "-w", str(timeout), "127.0.0.1", str(port)]
    try:
        result = await cri.exec_sync(container_id, command, timeout=timeout + 1)
    except CriError as error:
        if "not found" in error.message or "no such file" in error.message.lower():
            raise Unsupported(f"{command[0]} is not in the image, needed to probe inside the pod") from error
        return False
    if result.exit_code in (126, 127):
        raise Unsupported(f"{command[0]} is not in the image, needed to probe inside the pod")
    return result.exit_code == 0


async def _tcp_connect(port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


async def _http_get(port: int, path: str, timeout: float) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.32\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
    parts = line.split()
    return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400


class ContainerProbes:
    """The probe loops of one container instance; ``on_change`` is called when a result flips."""

    def __init__(self, cri: CriClient, container_id: str, container: Mapping[str, Any], host_network: bool,
                 on_change: Callable[[], None], on_failure: Callable[[str], None] | None = None) -> None:
        self.cri = cri
        self.on_failure = on_failure  # each failed probe, by kind ("Liveness", "Readiness", "Startup")
        self.container_id = container_id
        self.container = container
        self.host_network = host_network
        self.on_change = on_change
        self.started = not container.get("startupProbe")
        self.ready = not container.get("readinessProbe")
        self.liveness_failed = False
        self.startup_failed = False
        self._started_event = asyncio.Event()
        if self.started:
            self._started_event.set()
        self._tasks = [asyncio.create_task(self._loop(kind, container[kind]), name=f"probe-{kind}-{container_id[:12]}")
                       for kind in ("startupProbe", "livenessProbe", "readinessProbe") if container.get(kind)]

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _loop(self, kind: str, probe: Mapping[str, Any]) -> None:
        if kind != "startupProbe":
            await self._started_event.wait()
        await asyncio.sleep(int(probe.get("initialDelaySeconds") or 0))
        period = max(1, int(probe.get("periodSeconds") or 10))
        failures_needed = max(1, int(probe.get("failureThreshold") or 3))
        successes_needed = 1 if kind != "readinessProbe" else max(1, int(probe.get("successThreshold") or 1))
        successes = failures = 0
        warned = False
        while True:
            try:
                ok = await run_probe(self.cri, self.container_id, self.container, probe, self.host_network)
            except Unsupported as error:
                if not warned:
                    log.warning("container %s %s unsupported, counted as success: %s", self.container.get("name"), kind, error)
                    warned = True
                ok = True
            except Exception:  # noqa: BLE001 - a probe bug must not end the loop silently
                log.exception("%s of container %s failed unexpectedly", kind, self.container.get("name"))
                ok = False
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not ok and self.on_failure is not None:
                self.on_failure(kind.removesuffix("Probe").capitalize())
            if self._record(kind, ok, successes >= successes_needed, failures >= failures_needed):
                self.on_change()
            if kind == "startupProbe" and self.started:
                return
            await asyncio.sleep(period)

    def _record(self, kind: str, ok: bool, enough_successes: bool, enough_failures: bool) -> bool:
        if kind == "startupProbe":
            if ok:
                self.started = True
                self._started_event.set()
                return True
            if enough_failures and not self.startup_failed:
                self.startup_failed = True
                return True
        elif kind == "livenessProbe":
            if enough_failures and not self.liveness_failed:
                self.liveness_failed = True
                return True
        elif kind == "readinessProbe":
            if ok and enough_successes and not self.ready:
                self.ready = True
                return True
            if not ok and enough_failures and self.ready:
                self.ready = False
                return True
        return False
