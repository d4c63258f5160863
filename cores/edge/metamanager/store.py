"""The edge's store: ``meta(key, type, value)`` as upstream, plus a log of changes MetaServer watches.

``meta`` holds the newest value of each key (``<namespace>/<type>/<name>``), in upstream's
layout. Every write of an object (not of a service-account token, which is no API object) also
appends to ``meta_events`` in the same transaction, and sets the key's revision in
``meta_revision``: a local, gap-free counter that MetaServer serves as ``resourceVersion``.

Why local revisions and not the cloud's resourceVersions: pushes of different resources come
from different watches and may arrive out of the cloud's order, so a watch resumed from the
cloud's number could miss a change that arrived late. The local revision orders what this edge
has, so a list then a watch from its revision sees every later change exactly once. The cloud's
resourceVersion is kept in each event (``cloud_rv``) for the writes that will need it.

The log keeps the last :data:`EVENT_LOG_LIMIT` events; a watch from before them is 410 Gone
(``meta_state.compacted`` holds the newest revision dropped). Every commit is fsynced
(``synchronous=FULL``): what was acked survives a power cut.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

EVENT_LOG_LIMIT = 10_000
COMPACT_EVERY = 256
UNWATCHED_TYPES = frozenset({"serviceaccounttoken", "passthrough"})  # tokens are kept for pods; discovery is cached


@dataclasses.dataclass(frozen=True)
class Change:
    """One committed change: what a watch sends (``event`` ADDED, MODIFIED or DELETED)."""

    revision: int
    type: str
    key: str
    event: str
    value: str
    previous: str | None = None  # the value before a MODIFIED: a watch with a selector needs it


class Compacted(Exception):
    """A watch asked for changes older than the log keeps."""

    def __init__(self, revision: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {revision} ({oldest})")
        self.revision, self.oldest = revision, oldest


class MetaStore:
    """One SQLite file; every write is its own transaction, fsynced. Safe from one thread at a time."""

    def __init__(self, path: Path, event_log_limit: int = EVENT_LOG_LIMIT) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: in WAL mode each commit syncs the log, so what was acked is there after a power cut
        # (NORMAL would only keep the database consistent, losing the last commits).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, type TEXT NOT NULL, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta_events (revision INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "type TEXT NOT NULL, key TEXT NOT NULL, event TEXT NOT NULL, value TEXT NOT NULL, cloud_rv TEXT, "
                         "previous TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta_revision (key TEXT PRIMARY KEY, revision INTEGER NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._lock = threading.Lock()
        self.event_log_limit = event_log_limit
        self._writes = 0
        self._backfill()

    def _backfill(self) -> None:
        """Objects stored before the log existed (an older EdgeCore's database) get a revision."""
        with self._lock, self._transaction():
            rows = self._db.execute("SELECT key, type, value FROM meta WHERE key NOT IN (SELECT key FROM meta_revision)"
                                    ).fetchall()
            for key, kind, value in rows:
                if kind not in UNWATCHED_TYPES:
                    self._log(str(key), str(kind), "ADDED", str(value))

    def _transaction(self, write: bool = True) -> Any:
        """One transaction; a read one is deferred: a snapshot that takes no write lock from the
        other modules writing this file (DeviceTwin, ServiceBus)."""
        db = self._db

        class Transaction:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")

            def __exit__(self, kind: Any, *_: Any) -> None:
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return Transaction()

    def _log(self, key: str, kind: str, event: str, value: str, previous: str | None = None) -> Change:
        cursor = self._db.execute("INSERT INTO meta_events (type, key, event, value, cloud_rv, previous) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", (kind, key, event, value, _cloud_rv(value), previous))
        revision = int(cursor.lastrowid or 0)
        if event == "DELETED":
            self._db.execute("DELETE FROM meta_revision WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta_revision (key, revision) VALUES (?, ?)", (key, revision))
        return Change(revision, kind, key, event, value, previous)

    def synchronous(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA synchronous").fetchone()[0])

    def put(self, key: str, kind: str, value: Any) -> Change | None:
        """Store ``value``; the change a watch sees (None for a token, or when nothing changed)."""
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        with self._lock, self._transaction():
            before = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            self._db.execute("INSERT OR REPLACE INTO meta (key, type, value) VALUES (?, ?, ?)", (key, kind, text))
            if kind in UNWATCHED_TYPES or (before is not None and before[0] == text):
                return None
            change = self._log(key, kind, "ADDED" if before is None else "MODIFIED", text,
                               None if before is None else str(before[0]))
        self._maybe_compact()
        return change

    def delete(self, key: str) -> Change | None:
        with self._lock, self._transaction():
            before = self._db.execute("SELECT type, value FROM meta WHERE key = ?", (key,)).fetchone()
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            if before is None or before[0] in UNWATCHED_TYPES:
                return None
            change = self._log(key, str(before[0]), "DELETED", str(before[1]))
        self._maybe_compact()
        return change

    def delete_tokens_of(self, prefix: str, pod_uid: str) -> None:
        """Forget the service account tokens bound to one pod (keys ``<prefix><account>/<uid>/...``)."""
        with self._lock:
            self._db.execute("DELETE FROM meta WHERE type = 'serviceaccounttoken' AND key LIKE ? ESCAPE '\\' AND key LIKE ? ESCAPE '\\'",
                             (_like(prefix) + "%", "%/" + _like(pod_uid) + "/%"))

    def of_type(self, kind: str) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta WHERE type = ? ORDER BY key", (kind,)).fetchall()
        return [(str(key), str(value)) for key, value in rows]

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- what MetaServer reads -------------------------------------------------------------------
    def get_revised(self, key: str) -> tuple[str, int] | None:
        """The value of ``key`` and the local revision it was written at."""
        with self._lock, self._transaction(write=False):
            row = self._db.execute("SELECT meta.value, COALESCE(meta_revision.revision, 0) FROM meta "
                                   "LEFT JOIN meta_revision ON meta_revision.key = meta.key WHERE meta.key = ?", (key,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def listing(self, kind: str) -> tuple[int, list[tuple[str, str, int]]]:
        """The newest revision, and every ``(key, value, revision)`` of ``kind``, in one snapshot."""
        with self._lock, self._transaction(write=False):
            revision = self._revision()
            rows = self._db.execute("SELECT meta.key, meta.value, COALESCE(meta_revision.revision, 0) FROM meta "
                                    "LEFT JOIN meta_revision ON meta_revision.key = meta.key "
                                    "WHERE meta.type = ? ORDER BY meta.key", (kind,)).fetchall()
        return revision, [(str(key), str(value), int(rev)) for key, value, rev in rows]

    def changes_since(self, revision: int, kind: str, limit: int = 1000) -> list[Change]:
        """Changes of ``kind`` after ``revision``, oldest first; :class:`Compacted` when the log no longer has them."""
        with self._lock:
            compacted = self._compacted()
            if revision < compacted:
                raise Compacted(revision, compacted + 1)
            rows = self._db.execute("SELECT revision, type, key, event, value, previous FROM meta_events WHERE revision > ? "
                                    "AND type = ? ORDER BY revision LIMIT ?", (revision, kind, limit)).fetchall()
        return [Change(int(rev), str(t), str(k), str(e), str(v), None if p is None else str(p))
                for rev, t, k, e, v, p in rows]

    def revision(self) -> int:
        with self._lock:
            return self._revision()

    def _revision(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'meta_events'").fetchone()
        return int(row[0]) if row else 0

    def _compacted(self) -> int:
        row = self._db.execute("SELECT value FROM meta_state WHERE name = 'compacted'").fetchone()
        return int(row[0]) if row else 0

    def _maybe_compact(self) -> None:
        self._writes += 1
        if self._writes % COMPACT_EVERY:
            return
        self.compact()

    def compact(self) -> None:
        """Drop all but the newest ``event_log_limit`` events (as etcd compacts its history)."""
        with self._lock, self._transaction():
            floor = self._revision() - self.event_log_limit
            if floor <= self._compacted():
                return
            self._db.execute("DELETE FROM meta_events WHERE revision <= ?", (floor,))
            self._db.execute("INSERT OR REPLACE INTO meta_state (name, value) VALUES ('compacted', ?)", (floor,))

    def close(self) -> None:
        # Under the lock: closing while another thread runs a statement crashes sqlite3.
        with self._lock:
            self._db.close()


def _cloud_rv(value: str) -> str | None:
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return str(rv) if rv is not None else None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
