"""kubelet's restart back-off: 10 s doubling to 5 min, per pod container, forgotten after quiet.

As ``k8s.io/client-go/util/flowcontrol.Backoff`` used by kubelet's ``doBackOff``: the first
failure restarts at once and arms 10 s; a failure while armed waits out the remainder
(``CrashLoopBackOff``), and each restart doubles the delay up to the cap. An entry untouched for
twice the cap starts over.
"""

from __future__ import annotations

import dataclasses

INITIAL_SECONDS = 10.0
MAX_SECONDS = 300.0


@dataclasses.dataclass(frozen=True)
class Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(self, initial: float = INITIAL_SECONDS, cap: float = MAX_SECONDS) -> None:
        self.initial = initial
        self.cap = cap
        self.entries: dict[str, Entry] = {}

    def remaining(self, key: str, now: float) -> float:
        """Seconds left before ``key`` may restart (0 when it may now)."""
        entry = self.entries.get(key)
        if entry is None or now - entry.last_update > 2 * self.cap:
            return 0.0
        return max(0.0, entry.delay - (now - entry.last_update))

    def delay(self, key: str) -> float:
        entry = self.entries.get(key)
        return entry.delay if entry else self.initial

    def next(self, key: str, now: float) -> None:
        """A restart happens now: arm (or double) the delay before the next one."""
        entry = self.entries.get(key)
        if entry is None or now - entry.last_update > 2 * self.cap:
            self.entries[key] = Entry(self.initial, now)
        else:
            self.entries[key] = Entry(min(entry.delay * 2, self.cap), now)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self.entries if k.startswith(prefix)]:
            del self.entries[key]
