"""An asyncio loop whose clock jumps over idle time, so timeouts are tested exactly and at once.

``loop.time()`` is virtual. Whenever the loop would sleep until its next timer, it first waits a
little for real I/O (a thread finishing, a socket), and when none comes it moves the clock
straight to that timer. So a 30 s timeout takes a few milliseconds and fires at 30.000 s, while
work done in threads (SQLite writes) still completes before time moves on. (looptime does the
same, but its pytest plugin leaves pytest-asyncio's loops unclosed in this suite.)
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any

REAL_IDLE_SECONDS = 0.05  # how long to wait for real I/O before time jumps


class _JumpingSelector:
    def __init__(self, inner: selectors.BaseSelector, loop: FakeClockLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:
            return self._inner.select(timeout)
        events = self._inner.select(min(timeout, REAL_IDLE_SECONDS))
        if not events:
            self._loop.advance(timeout)
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FakeClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._virtual = 0.0
        self._selector = _JumpingSelector(self._selector, self)  # type: ignore[has-type,assignment]

    def time(self) -> float:
        return self._virtual

    def advance(self, seconds: float) -> None:
        self._virtual += seconds


def in_fake_time(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` to its end on a fresh :class:`FakeClockLoop`, then close the loop."""
    loop = FakeClockLoop()
    try:
        loop.run_until_complete(scenario())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
