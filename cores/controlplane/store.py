"""Revision-ordered object storage on one SQLite file (WAL), with watch fan-out.

Every write takes the next revision, which becomes the object's ``resourceVersion``. The table
``objects`` holds the current state, ``events`` the history that watches resume from, until
compaction drops it (then a watch from before the compacted revision gets 410 Gone). Values are
stored as the JSON text the API returns, so lists and watch events are built by joining strings,
never by parsing every object; labels and selectable fields sit beside each value for filtering.

Threads: one writer thread owns the write connection and runs each transaction (the read,
check and write of one request happen there, atomically, in revision order); reads run on a
small pool with their own connections (WAL lets them read while the writer writes). The asyncio
loop only waits. A transaction's events are handed to watchers after its commit, in revision
order. Durability: a write is acknowledged only after its COMMIT returned, and every connection
runs with ``synchronous=FULL``, so in WAL mode that COMMIT has fsynced the WAL: an acknowledged
write survives kill -9 of the process and an OS crash or power loss too (on a disk that honours
fsync). ``NORMAL`` would sync only at checkpoints, so a crash of the machine could lose the last
acknowledged writes. The price is one fsync per write transaction on the writer thread.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import dataclasses
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("kubeedge.controlplane.store")

T = TypeVar("T")
FieldsOf = Callable[[dict[str, Any], str], dict[str, str]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY, revision INTEGER NOT NULL, value TEXT NOT NULL,
    labels TEXT NOT NULL, fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    labels TEXT NOT NULL, fields TEXT NOT NULL, prev_labels TEXT, prev_fields TEXT, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One change: ``ADDED``, ``MODIFIED`` or ``DELETED`` of ``key`` at ``revision``."""

    revision: int
    type: str
    key: str
    value: str
    labels: dict[str, str]
    fields: dict[str, str]
    prev_labels: dict[str, str] | None = None
    prev_fields: dict[str, str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    key: str
    revision: int
    value: str
    labels: dict[str, str]
    fields: dict[str, str]


class Compacted(Exception):
    """The revision asked for is older than what history still holds."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"too old resource version: {requested} ({compacted})")
        self.requested = requested
        self.compacted = compacted


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL (2): each COMMIT fsyncs the WAL before it returns, hence before the write is acknowledged.
    # The readers never commit a write; they get the same setting so no connection is ever weaker.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


def _labels_of(obj: dict[str, Any]) -> dict[str, str]:
    labels = _metadata(obj).get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """obj's metadata, made a dict if it is not one (an object stored before writes were type-checked)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = obj["metadata"] = {}
    return metadata


def _plural_of(key: str) -> str:
    return key.split("/", 3)[2]


class Transaction:
    """What one write transaction may do; runs on the writer thread."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._db = store._writer
        self.events: list[Event] = []

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM objects WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def scan(self, prefix: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT value FROM objects WHERE key >= ? AND key < ? ORDER BY key", (prefix, _prefix_end(prefix))
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def put(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` at the next revision (ADDED or MODIFIED); returns it with its resourceVersion."""
        previous = self._db.execute("SELECT labels, fields FROM objects WHERE key = ?", (key,)).fetchone()
        revision = self._store._next_revision()
        _metadata(obj)["resourceVersion"] = str(revision)
        value = json.dumps(obj, separators=(",", ":"))
        labels, fields = _labels_of(obj), self._store.fields_of(obj, _plural_of(key))
        labels_text, fields_text = json.dumps(labels), json.dumps(fields)
        self._db.execute(
            "INSERT INTO objects (key, revision, value, labels, fields) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET revision = excluded.revision, value = excluded.value, "
            "labels = excluded.labels, fields = excluded.fields",
            (key, revision, value, labels_text, fields_text),
        )
        event_type = "ADDED" if previous is None else "MODIFIED"
        prev = (None, None) if previous is None else previous
        self._record(Event(revision, event_type, key, value, labels, fields,
                           None if prev[0] is None else json.loads(prev[0]),
                           None if prev[1] is None else json.loads(prev[1])),
                     labels_text, fields_text, prev)
        return obj

    def delete(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove ``key``; ``obj`` (its last state) is what watchers see, at the deletion's revision."""
        revision = self._store._next_revision()
        _metadata(obj)["resourceVersion"] = str(revision)
        value = json.dumps(obj, separators=(",", ":"))
        labels, fields = _labels_of(obj), self._store.fields_of(obj, _plural_of(key))
        labels_text, fields_text = json.dumps(labels), json.dumps(fields)
        self._db.execute("DELETE FROM objects WHERE key = ?", (key,))
        self._record(Event(revision, "DELETED", key, value, labels, fields), labels_text, fields_text, (None, None))
        return obj

    def _record(self, event: Event, labels: str, fields: str, prev: tuple[str | None, str | None]) -> None:
        self._db.execute(
            "INSERT INTO events (revision, type, key, value, labels, fields, prev_labels, prev_fields, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.revision, event.type, event.key, event.value, labels, fields, prev[0], prev[1], time.time()),
        )
        self.events.append(event)


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Watcher:
    """A subscription to the events under ``prefix``; a bounded queue, closed when it overflows."""

    def __init__(self, prefix: str, size: int) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(size)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Like kube-apiserver with a slow watcher: end this watch; the client
            # re-watches from the last resourceVersion it saw and loses nothing.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class Store:
    """The SQLite store, its writer thread, its reader pool and its watchers."""

    def __init__(self, path: Path, fields_of: FieldsOf, watch_queue_size: int = 10_000) -> None:
        self.path = path
        self.fields_of = fields_of
        self.watch_queue_size = watch_queue_size
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(path)
        self._writer.executescript(_SCHEMA)
        self.revision = self._meta("revision", self._writer)
        self.compacted = self._meta("compacted", self._writer)
        self._write_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._read_pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="store-reader")
        self._readers = threading.local()
        self._watchers: set[Watcher] = set()
        # Highest revision handed to watchers (loop thread only): safe to put in a bookmark.
        self.published_revision = self.revision
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def _meta(name: str, db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0])

    def _next_revision(self) -> int:
        self.revision += 1
        return self.revision

    def close(self) -> None:
        self._write_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        self._writer.close()

    # writes -------------------------------------------------------------------------------
    async def transact(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` in one write transaction on the writer thread; publish its events after commit."""
        self._loop = asyncio.get_running_loop()
        return await self._loop.run_in_executor(self._write_pool, self._run_transaction, work)

    def _run_transaction(self, work: Callable[[Transaction], T]) -> T:
        txn = Transaction(self)
        start_revision = self.revision
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            result = work(txn)
            if txn.events:
                self._writer.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (self.revision,))
            self._writer.execute("COMMIT")
        except BaseException:
            self._writer.execute("ROLLBACK")
            self.revision = start_revision
            raise
        if txn.events and self._loop is not None:
            self._loop.call_soon_threadsafe(self._publish, txn.events)
        return result

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            for watcher in self._watchers:
                if event.key.startswith(watcher.prefix):
                    watcher.offer(event)
            self.published_revision = max(self.published_revision, event.revision)

    # reads --------------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if connection is None:
            connection = _connect(self.path)
            self._readers.connection = connection
        return connection

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, lambda: work(self._reader()))

    async def get(self, key: str) -> str | None:
        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM objects WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._read(work)

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 0, match: Callable[[Row], bool] | None = None
    ) -> tuple[int, list[Row], str]:
        """Current objects under ``prefix`` in key order, past ``after``; (revision, rows, last key if more)."""

        def work(db: sqlite3.Connection) -> tuple[int, list[Row], str]:
            db.execute("BEGIN")
            try:
                revision = self._meta("revision", db)
                cursor = db.execute(
                    "SELECT key, revision, value, labels, fields FROM objects WHERE key >= ? AND key < ? "
                    "AND key > ? ORDER BY key",
                    (prefix, _prefix_end(prefix), after),
                )
                rows: list[Row] = []
                more = ""
                for key, rev, value, labels, fields in cursor:
                    if limit and len(rows) >= limit:
                        more = rows[-1].key
                        break
                    row = Row(key, rev, value, json.loads(labels), json.loads(fields))
                    if match is None or match(row):
                        rows.append(row)
                return revision, rows, more
            finally:
                db.execute("COMMIT")

        return await self._read(work)

    async def containing(self, text: str) -> builtins.list[tuple[str, str]]:  # (``list`` is a method here)
        """(key, value) of every current object whose JSON contains ``text`` (a scan done in SQLite)."""

        def work(db: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = db.execute("SELECT key, value FROM objects WHERE instr(value, ?) > 0", (text,)).fetchall()
            return [(str(key), str(value)) for key, value in rows]

        return await self._read(work)

    async def events_since(self, prefix: str, revision: int) -> builtins.list[Event]:
        """History under ``prefix`` after ``revision``; :class:`Compacted` if that is no longer held."""

        def work(db: sqlite3.Connection) -> list[Event]:
            db.execute("BEGIN")
            try:
                compacted = self._meta("compacted", db)
                if revision < compacted:
                    raise Compacted(revision, compacted)
                rows = db.execute(
                    "SELECT revision, type, key, value, labels, fields, prev_labels, prev_fields FROM events "
                    "WHERE revision > ? AND key >= ? AND key < ? ORDER BY revision",
                    (revision, prefix, _prefix_end(prefix)),
                ).fetchall()
            finally:
                db.execute("COMMIT")
            return [
                Event(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]),
                      None if r[6] is None else json.loads(r[6]), None if r[7] is None else json.loads(r[7]))
                for r in rows
            ]

        return await self._read(work)

    # watches ------------------------------------------------------------------------------
    def subscribe(self, prefix: str) -> Watcher:
        watcher = Watcher(prefix, self.watch_queue_size)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    # compaction ---------------------------------------------------------------------------
    async def compact(self, keep_revisions: int, keep_seconds: float | None = None) -> int:
        """Drop history older than the last ``keep_revisions`` (and older than ``keep_seconds``, if set)."""

        def work(txn: Transaction) -> int:
            target = self.revision - keep_revisions
            if keep_seconds is not None:
                row = txn._db.execute(
                    "SELECT MAX(revision) FROM events WHERE created < ?", (time.time() - keep_seconds,)
                ).fetchone()
                target = min(target, row[0] or 0)
            if target <= self.compacted:
                return self.compacted
            txn._db.execute("DELETE FROM events WHERE revision <= ?", (target,))
            txn._db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (target,))
            self.compacted = target
            log.info("compacted history up to revision %d", target)
            return target

        return await self.transact(work)
