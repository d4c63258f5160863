"""Running a set of core modules in one asyncio process: start in order, stop in reverse.

A module is any object with ``name``, ``group`` and ``async start(ctx)``; ``start`` runs for the
module's whole life (it reads its mailbox until cancelled). ``async stop()`` is optional and is
called, in reverse start order, before the module's task is cancelled. A module whose task ends
with an exception stops the whole process loudly: half a CloudCore must not pretend to work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cores.beehive.context import Context

log = logging.getLogger("kubeedge.beehive")


@runtime_checkable
class Module(Protocol):
    name: str
    group: str

    async def start(self, ctx: Context) -> None: ...


class ModuleFailed(Exception):
    """A module ended with an error; the process must exit non-zero."""

    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(f"module {name} failed: {error}")
        self.module = name
        self.error = error


class ModuleRunner:
    """Owns the tasks of the modules of one process."""

    def __init__(self, ctx: Context, modules: Sequence[Module]) -> None:
        self.ctx = ctx
        self.modules = list(modules)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Start every module, then wait until ``stop`` is set or a module fails; always shut down."""
        for module in self.modules:
            self.ctx.register(module.name, module.group)
        try:
            for module in self.modules:
                log.info("starting module %s (group %s)", module.name, module.group or "-")
                self._tasks[module.name] = asyncio.create_task(module.start(self.ctx), name=module.name)
                # Let the module run its start-up synchronously before the next one starts,
                # so a failing start is reported by name and stops the start sequence.
                await asyncio.sleep(0)
                self._raise_if_failed()
            await self._wait(stop)
        finally:
            await self.shutdown()

    async def _wait(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait(), name="stop-signal")
        try:
            while not stop.is_set():
                pending = [t for t in self._tasks.values() if not t.done()]
                await asyncio.wait([stopper, *pending], return_when=asyncio.FIRST_COMPLETED)
                self._raise_if_failed()
                if not pending:
                    # Every module returned on its own: nothing is left to run.
                    return
        finally:
            stopper.cancel()

    def _raise_if_failed(self) -> None:
        for name, task in self._tasks.items():
            if task.done() and not task.cancelled() and task.exception() is not None:
                error = task.exception()
                assert error is not None
                raise ModuleFailed(name, error)

    async def shutdown(self) -> None:
        """Stop modules in reverse start order: ``stop()`` first, then cancel the task."""
        for module in reversed(self.modules):
            task = self._tasks.pop(module.name, None)
            if task is None:
                self.ctx.unregister(module.name)  # registered, never started
                continue
            log.info("stopping module %s", module.name)
            stop = getattr(module, "stop", None)
            if stop is not None and not task.done():
                try:
                    await asyncio.wait_for(stop(), 10)
                except Exception as error:  # noqa: BLE001 - shutdown goes on for the others
                    log.error("module %s failed to stop cleanly: %s", module.name, error)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as error:  # noqa: BLE001 - already reported by run()
                log.debug("module %s ended with %r", module.name, error)
            self.ctx.unregister(module.name)
