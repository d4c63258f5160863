"""DeviceTwin's tables in the edge database, beside MetaManager's ``meta``.

``device``, ``device_attr`` and ``device_twin`` have upstream's columns (GORM's DDL, as an
upstream edgecore.db has them), so a database moves between the two. ``twin_outbox`` is ours:
what the twin must tell the cloud (twin and state reports), kept until the cloud answers, so
reports made while the cloud is away, or before a kill -9, are sent after reconnect in order.

Every write is one transaction with ``synchronous=FULL``; calls come from one thread (the
module's executor) and are serialised by a lock besides.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS `device` (`id` text,`name` text,`description` text,`state` text,`last_online` text,"
    "PRIMARY KEY (`id`))",
    "CREATE TABLE IF NOT EXISTS `device_attr` (`id` integer PRIMARY KEY AUTOINCREMENT,`deviceid` text,`name` text,"
    "`description` text,`value` text,`optional` numeric,`attr_type` text,`metadata` text)",
    "CREATE TABLE IF NOT EXISTS `device_twin` (`id` integer PRIMARY KEY AUTOINCREMENT,`deviceid` text,`name` text,"
    "`description` text,`expected` text,`actual` text,`expected_meta` text,`actual_meta` text,`expected_version` text,"
    "`actual_version` text,`optional` numeric,`attr_type` text,`metadata` text)",
    "CREATE TABLE IF NOT EXISTS twin_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL,"
    " resource TEXT NOT NULL, content TEXT NOT NULL)",
)
OUTBOX_LIMIT = 10000  # reports kept for the cloud; past it the oldest go (written in docs/devices.md)


class TwinStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- devices -------------------------------------------------------------------------------
    def load(self) -> dict[str, Obj]:
        """Every device with its attributes and twins, in the twin's message shape."""
        with self._lock:
            devices = {str(row[0]): {"id": row[0], "name": row[1] or "", "description": row[2] or "",
                                     "state": row[3] or "", "last_online": row[4] or "", "attributes": {}, "twin": {}}
                       for row in self._db.execute("SELECT id, name, description, state, last_online FROM device")}
            for device_id, name, value, optional, attr_type, metadata in self._db.execute(
                    "SELECT deviceid, name, value, optional, attr_type, metadata FROM device_attr"):
                if device_id in devices:
                    devices[device_id]["attributes"][name] = {"value": value or "", "optional": bool(optional),
                                                              "metadata": {**_json(metadata), "type": attr_type or ""}}
            for row in self._db.execute(
                    "SELECT deviceid, name, expected, actual, expected_meta, actual_meta, expected_version,"
                    " actual_version, optional, attr_type, metadata FROM device_twin"):
                if row[0] in devices:
                    devices[row[0]]["twin"][row[1]] = _twin_of(row)
        return devices

    def put_device(self, device: Obj) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO device (id, name, description, state, last_online) VALUES (?,?,?,?,?)",
                             (device["id"], device.get("name", ""), device.get("description", ""),
                              device.get("state", ""), device.get("last_online", "")))

    def delete_device(self, device_id: str) -> None:
        with self._lock, self._db:
            for table, column in (("device", "id"), ("device_attr", "deviceid"), ("device_twin", "deviceid")):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (device_id,))

    def put_twins(self, device_id: str, twins: dict[str, Obj], names: list[str], report: tuple[str, str, Obj] | None = None) -> None:
        """Write the named twins of one device, and queue ``report`` for the cloud, in one transaction."""
        with self._lock, self._db:
            for name in names:
                self._db.execute("DELETE FROM device_twin WHERE deviceid = ? AND name = ?", (device_id, name))
                if name in twins:
                    self._db.execute(
                        "INSERT INTO device_twin (deviceid, name, description, expected, actual, expected_meta, actual_meta,"
                        " expected_version, actual_version, optional, attr_type, metadata) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (device_id, name, "", *_columns_of(twins[name])))
            if report is not None:
                self._queue(*report)

    # -- reports for the cloud -----------------------------------------------------------------
    def queue(self, msg_id: str, resource: str, content: Obj) -> None:
        with self._lock, self._db:
            self._queue(msg_id, resource, content)

    def _queue(self, msg_id: str, resource: str, content: Obj) -> None:
        self._db.execute("INSERT INTO twin_outbox (msg_id, resource, content) VALUES (?,?,?)",
                         (msg_id, resource, json.dumps(content, separators=(",", ":"))))
        self._db.execute("DELETE FROM twin_outbox WHERE seq <= (SELECT MAX(seq) FROM twin_outbox) - ?", (OUTBOX_LIMIT,))

    def outbox(self) -> list[tuple[str, str, Obj]]:
        with self._lock:
            rows = self._db.execute("SELECT msg_id, resource, content FROM twin_outbox ORDER BY seq").fetchall()
        return [(str(msg_id), str(resource), json.loads(content)) for msg_id, resource, content in rows]

    def confirm(self, msg_id: str) -> bool:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM twin_outbox WHERE msg_id = ?", (msg_id,)).rowcount > 0

    def models(self) -> dict[str, Obj]:
        """The DeviceModels MetaManager stored (``meta`` rows of type devicemodel), by ``ns/name``."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT key, value FROM meta WHERE type = 'devicemodel'").fetchall()
            except sqlite3.OperationalError:
                return {}  # no MetaManager table yet
        models = {}
        for key, value in rows:
            namespace, _, name = str(key).partition("/devicemodel/")
            try:
                models[f"{namespace}/{name}"] = json.loads(value)
            except ValueError:
                continue
        return models


def _json(text: Any) -> Obj:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _twin_of(row: tuple[Any, ...]) -> Obj:
    _, _, expected, actual, expected_meta, actual_meta, expected_version, actual_version, optional, attr_type, metadata = row
    twin: Obj = {"optional": bool(optional), "metadata": {**_json(metadata), "type": attr_type or ""}}
    if expected is not None:
        twin["expected"] = {"value": expected, "metadata": _json(expected_meta)}
    if actual is not None:
        twin["actual"] = {"value": actual, "metadata": _json(actual_meta)}
    if expected_version:
        twin["expected_version"] = _json(expected_version)
    if actual_version:
        twin["actual_version"] = _json(actual_version)
    return twin


def _columns_of(twin: Obj) -> tuple[Any, ...]:
    def side(name: str) -> tuple[Any, Any]:
        part = twin.get(name)
        if not isinstance(part, dict) or part.get("value") is None:
            return None, None
        return part["value"], json.dumps(part.get("metadata") or {}, separators=(",", ":"))

    def version(name: str) -> str | None:
        value = twin.get(f"{name}_version")
        return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else None

    expected, expected_meta = side("expected")
    actual, actual_meta = side("actual")
    metadata = {k: v for k, v in (twin.get("metadata") or {}).items() if k != "type"}
    return (expected, actual, expected_meta, actual_meta, version("expected"), version("actual"),
            1 if twin.get("optional", True) else 0, (twin.get("metadata") or {}).get("type") or "",
            json.dumps(metadata, separators=(",", ":")))
