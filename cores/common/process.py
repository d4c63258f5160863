"""Running one core process (``keadm run cloud|edge``): modules from config, signals, exit codes.

The enabled modules that exist are started in config order on one asyncio loop and stopped in
reverse order on SIGTERM or SIGINT (exit 0). An enabled module this project does not implement
yet is named in a warning at start: nothing pretends to work. A module that fails to start, or
dies later, ends the process with exit code 1 and a one-line reason.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping

from cores.beehive import Context, Module, ModuleFailed, ModuleRunner
from cores.common.config import Config

log = logging.getLogger("kubeedge.core")

ModuleFactory = Callable[[Config], Module]


def build_modules(config: Config, factories: Mapping[str, ModuleFactory]) -> list[Module]:
    """Instantiate the enabled modules we implement; warn about the enabled ones we do not."""
    modules: list[Module] = []
    missing = []
    for key in config.enabled_modules():
        factory = factories.get(key)
        if factory is None:
            missing.append(key)
        else:
            modules.append(factory(config))
    if missing:
        log.warning(
            "enabled in %s but not implemented yet, so not running: %s", config.source, ", ".join(missing)
        )
    return modules


async def serve(component: str, modules: list[Module], ready: Callable[[], None] | None = None) -> None:
    """Run ``modules`` until SIGTERM/SIGINT; raise :class:`ModuleFailed` if one fails."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_stop, stop, sig)
    try:
        runner = ModuleRunner(Context(), modules)
        log.info("%s starting with modules: %s", component, ", ".join(m.name for m in modules) or "none")
        started = asyncio.create_task(_announce(component, stop, ready))
        try:
            await runner.run(stop)
        finally:
            started.cancel()
        log.info("%s stopped", component)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _announce(component: str, stop: asyncio.Event, ready: Callable[[], None] | None) -> None:
    await asyncio.sleep(0.05)
    if not stop.is_set():
        log.info("%s is running", component)
        if ready is not None:
            ready()


def _request_stop(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("received %s, shutting down", sig.name)
    stop.set()


def run(component: str, config: Config, factories: Mapping[str, ModuleFactory]) -> int:
    """Build and serve the modules; the process's exit code."""
    try:
        modules = build_modules(config, factories)
        asyncio.run(serve(component, modules))
    except ModuleFailed as failure:
        log.error("%s: %s", component, failure)
        log.debug("module failure", exc_info=failure.error)
        return 1
    return 0
