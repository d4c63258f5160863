"""Session timing of the link, without I/O: every object is fed the time and says what is due.

- :class:`KeepaliveDeadline`: CloudHub closes a session that sent no keepalive for
  ``keepaliveInterval`` seconds.
- :class:`Heartbeat`: EdgeHub sends a keepalive at once and every ``heartbeat`` seconds.
- :class:`TokenBucket`: EdgeHub's outgoing limit, ``messageQPS`` a second, bursts of ``messageBurst``.
- :class:`ReconnectBackoff`: 1 s, 2 s, 4 s ... capped at 30 s, each with +-25 % jitter so a fleet
  does not reconnect in step; reset by a session that came up.
- :class:`MalformedWindow`: how many bad frames a node sent in the last minute.
- :class:`Outbox`: the frames waiting to be written to one peer, bounded in size, so a peer that
  stops reading costs a bounded amount of memory and never makes a sender wait.
"""

from __future__ import annotations

import collections
import random
from typing import Generic, TypeVar

Frame = TypeVar("Frame", str, bytes)

BACKOFF_START, BACKOFF_MAX, BACKOFF_JITTER = 1.0, 30.0, 0.25


class KeepaliveDeadline:
    def __init__(self, timeout: float, now: float) -> None:
        self.timeout = timeout
        self.deadline = now + timeout

    def seen(self, now: float) -> None:
        """A keepalive arrived."""
        self.deadline = now + self.timeout

    def expired(self, now: float) -> bool:
        return now > self.deadline


class Heartbeat:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next_at = 0.0  # the first one goes at once

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def sent(self, now: float) -> None:
        self.next_at = now + self.interval

    def reset(self) -> None:
        """A new session: the first keepalive goes at once."""
        self.next_at = 0.0


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = max(rate, 0.001), max(burst, 1)
        self.tokens = float(self.burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token; the seconds to wait before sending (0 when one was there)."""
        self.tokens = min(float(self.burst), self.tokens + max(now - self.stamp, 0.0) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class ReconnectBackoff:
    def __init__(self, start: float = BACKOFF_START, cap: float = BACKOFF_MAX, jitter: float = BACKOFF_JITTER,
                 rng: random.Random | None = None) -> None:
        self.start, self.cap, self.jitter = start, cap, jitter
        self.rng = rng or random.Random()
        self._next = start

    def next_delay(self) -> float:
        delay = self._next * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.start


class MalformedWindow:
    def __init__(self, threshold: int, window: float = 60.0) -> None:
        self.threshold = threshold
        self.window = window
        self._stamps: collections.deque[float] = collections.deque()

    def record(self, now: float) -> bool:
        """One bad frame; True when there were more than ``threshold`` in the window."""
        self._stamps.append(now)
        while self._stamps and now - self._stamps[0] >= self.window:
            self._stamps.popleft()
        return len(self._stamps) > self.threshold


class Outbox(Generic[Frame]):
    """Frames queued for one peer's writer, at most ``max_size`` in all (characters of text frames,
    bytes of binary ones).

    ``put`` never waits: whoever sends (CloudHub's mailbox, a node's reliable queue) must not be held
    up by one peer that does not read. A frame that does not fit means the peer has fallen that far
    behind: the caller ends the session (the reliable queue resends what was not acked on the next
    one) rather than let the backlog grow without bound or drop a frame in the middle of a session.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self.overflowed = False
        self._frames: collections.deque[Frame] = collections.deque()

    def put(self, frame: Frame) -> bool:
        """Queue ``frame``; False (and :attr:`overflowed` set, nothing queued) when it does not fit."""
        if self.overflowed or self.size + len(frame) > self.max_size:
            self.overflowed = True
            return False
        self._frames.append(frame)
        self.size += len(frame)
        return True

    def take(self) -> Frame | None:
        """The oldest frame, no longer counted; None when nothing waits."""
        if not self._frames:
            return None
        frame = self._frames.popleft()
        self.size -= len(frame)
        return frame

    def __len__(self) -> int:
        return len(self._frames)
