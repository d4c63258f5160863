"""Is the container runtime up? A CRI ``Version`` and ``Status`` call to the configured endpoint."""

from __future__ import annotations

import logging

from cores.edge.edged.node import RuntimeState

log = logging.getLogger("kubeedge.edged")


async def probe_runtime(endpoint: str, timeout: float = 5.0) -> RuntimeState:
    try:
        from cores.edge.cri import CriClient, CriError
    except ImportError as error:  # pragma: no cover - a broken install
        return RuntimeState(False, "", f"no CRI client: {error}")

    client = CriClient(endpoint, timeout=timeout)
    try:
        version = await client.version()
        status = await client.status()
    except CriError as error:
        return RuntimeState(False, "", str(error))
    finally:
        await client.close()
    runtime_version = f"{version.runtime_name}://{version.runtime_version}"
    not_ready = [c for c in status.conditions if c.type == "RuntimeReady" and not c.status]
    if not_ready:
        return RuntimeState(False, runtime_version, not_ready[0].message or not_ready[0].reason)
    return RuntimeState(True, runtime_version)
