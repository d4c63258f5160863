"""Supervised asyncio tasks: none is fired and forgotten.

A module keeps its tasks in a :class:`TaskSupervisor`:

- :meth:`~TaskSupervisor.keep` runs a loop that must always run (an informer, a sender, a
  reaper). When it dies with an error it is logged and started again after a short pause
  (doubling up to 30 s); after ``max_restarts`` deaths in a row it stops the module loudly:
  :meth:`~TaskSupervisor.failed` then raises, and the module's ``start`` lets it out.
- :meth:`~TaskSupervisor.spawn` runs a one-off job (handling one message). A reference is kept
  until it ends, so it is never collected mid-flight; an error is logged with the job's name.
- :meth:`~TaskSupervisor.close` cancels everything and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("kubeedge.tasks")

RESTART_START, RESTART_MAX = 0.5, 30.0


class TaskSupervisor:
    def __init__(self, owner: str, max_restarts: int = 10) -> None:
        self.owner = owner
        self.max_restarts = max_restarts
        self._jobs: set[asyncio.Task[Any]] = set()
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._failure: asyncio.Future[None] | None = None

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=f"{self.owner}:{name}")
        self._jobs.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, task: asyncio.Task[Any]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def keep(self, factory: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
        """Run ``factory()`` for as long as the supervisor lives, restarting it when it dies."""
        task = asyncio.create_task(self._restarting(factory, name), name=f"{self.owner}:{name}")
        self._loops[name] = task
        return task

    async def _restarting(self, factory: Callable[[], Awaitable[None]], name: str) -> None:
        pause, deaths = RESTART_START, 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await factory()
                log.warning("%s:%s returned; starting it again", self.owner, name)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - logged, then restarted or escalated below
                log.error("%s:%s died: %s; starting it again in %.1fs", self.owner, name, error, pause, exc_info=error)
            if loop.time() - started > RESTART_MAX:
                pause, deaths = RESTART_START, 0  # it ran a good while: a fresh failure, not a loop
            deaths += 1
            if deaths > self.max_restarts:
                self._fail(RuntimeError(f"{self.owner}: task {name} died {deaths} times in a row"))
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX)

    def _fail(self, error: BaseException) -> None:
        future = self._failure_future()
        if not future.done():
            future.set_exception(error)

    def _failure_future(self) -> asyncio.Future[None]:
        if self._failure is None:
            self._failure = asyncio.get_running_loop().create_future()
        return self._failure

    async def failed(self) -> None:
        """Waits until a kept task gave up for good, then raises its error (never returns otherwise)."""
        await self._failure_future()

    def cancel(self, name: str) -> None:
        """Stop the kept task ``name`` for good (its owner no longer needs it)."""
        task = self._loops.pop(name, None)
        if task is not None:
            task.cancel()

    def running(self) -> int:
        return len(self._jobs) + sum(1 for task in self._loops.values() if not task.done())

    async def close(self) -> None:
        tasks = [*self._jobs, *self._loops.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._loops.clear()
        if self._failure is not None and not self._failure.done():
            self._failure.cancel()
