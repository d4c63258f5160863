"""``keadm debug get``: objects from the edge database (the ``meta`` table), printed as kubectl prints them.

The table columns are the embedded control plane's printers, which are kube-apiserver's; so
``keadm debug get pods`` at the edge and ``kubectl get pods`` in the cloud look the same.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from cores.common import selectors, tables

# alias -> (meta type, kind, printer key)
RESOURCES: dict[str, tuple[str, tuple[str, str]]] = {}
for _type, _group_kind, _aliases in (
    ("pod", ("", "Pod"), ("po", "pod", "pods")),
    ("node", ("", "Node"), ("no", "node", "nodes")),
    ("service", ("", "Service"), ("svc", "service", "services")),
    ("secret", ("", "Secret"), ("secret", "secrets")),
    ("configmap", ("", "ConfigMap"), ("cm", "configmap", "configmaps")),
    ("endpoints", ("", "Endpoints"), ("ep", "endpoint", "endpoints")),
    ("lease", ("coordination.k8s.io", "Lease"), ("lease", "leases")),
    ("device", ("devices.kubeedge.io", "Device"), ("device", "devices")),
):
    for _alias in _aliases:
        RESOURCES[_alias] = (_type, _group_kind)
ALL = ("pod", "service", "endpoints", "configmap", "secret", "node")


class GetError(Exception):
    pass


def read(database: Path, meta_type: str, *, namespace: str | None, name: str = "", selector: str = "") -> list[dict[str, Any]]:
    """The stored objects of ``meta_type`` (``namespace`` None: all), newest value of each key."""
    if not database.exists():
        raise GetError(f"the edge database {database} does not exist: has EdgeCore run here?")
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT key, value FROM meta WHERE type = ?", (meta_type,)).fetchall()
    except sqlite3.Error as error:
        raise GetError(f"cannot read {database}: {error}") from None
    try:
        wanted = selectors.parse_label_selector(selector) if selector else None
    except Exception as error:  # noqa: BLE001 - the parser's own error types: a user's typo
        raise GetError(f"invalid label selector {selector!r}: {error}") from None
    found = []
    for key, value in rows:
        parts = str(key).split("/")
        if len(parts) != 3:
            continue
        try:
            obj = json.loads(value)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        meta = obj.get("metadata") or {}
        if namespace is not None and parts[0] not in (namespace, "null") and meta.get("namespace", parts[0]) != namespace:
            continue
        if name and meta.get("name", parts[2]) != name:
            continue
        if wanted is not None and not wanted.matches(meta.get("labels") or {}):
            continue
        found.append(obj)
    return sorted(found, key=lambda o: ((o.get("metadata") or {}).get("namespace") or "", (o.get("metadata") or {}).get("name") or ""))


def render(objects: list[dict[str, Any]], group_kind: tuple[str, str], *, output: str, all_namespaces: bool,
           prefix: str = "", now: datetime.datetime | None = None) -> str:
    if output == "json":
        if len(objects) == 1 and not prefix:
            return json.dumps(objects[0], indent=4)
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}}, indent=4)
    if output == "yaml":
        document: Any = objects[0] if len(objects) == 1 and not prefix else {"apiVersion": "v1", "items": objects, "kind": "List"}
        return yaml.safe_dump(document, sort_keys=True)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    columns, cells = tables.PRINTERS.get(group_kind, (tables.DEFAULT_COLUMNS, _default_cells))
    shown = [i for i, c in enumerate(columns) if output == "wide" or not c.get("priority")]
    header = [str(columns[i]["name"]).upper() for i in shown]
    rows = []
    for obj in objects:
        try:
            values = cells(obj, now)
        except Exception:  # noqa: BLE001 - a stored object that does not print is named, not fatal
            values = [(obj.get("metadata") or {}).get("name", "?")] + ["<invalid>"] * (len(columns) - 1)
        row = [_cell(values[i]) if i < len(values) else "" for i in shown]
        if prefix:
            row[0] = f"{prefix}/{row[0]}"
        if all_namespaces:
            row.insert(0, str((obj.get("metadata") or {}).get("namespace") or ""))
        rows.append(row)
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    return _align([header, *rows])


def _default_cells(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), tables.since(meta.get("creationTimestamp"), now)]


def _cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _align(rows: Iterable[list[str]]) -> str:
    rows = list(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def get(database: Path, resource: str, name: str = "", *, namespace: str = "default", all_namespaces: bool = False,
        selector: str = "", output: str = "") -> str:
    """What ``keadm debug get`` prints; :class:`GetError` for an unknown resource or an unreadable database."""
    if output not in ("", "wide", "json", "yaml"):
        raise GetError(f"unknown output format {output!r}: use yaml, json or wide")
    scope = None if all_namespaces else namespace
    if resource == "all":
        sections = []
        for meta_type in ALL:
            group_kind = next(gk for t, gk in RESOURCES.values() if t == meta_type)
            found = read(database, meta_type, namespace=scope, selector=selector)
            if found:
                sections.append(render(found, group_kind, output=output, all_namespaces=all_namespaces, prefix=meta_type))
        return "\n\n".join(sections) if sections else _nothing(namespace, all_namespaces)
    entry = RESOURCES.get(resource.lower())
    if entry is None:
        raise GetError(f"the edge database has no resource type {resource!r}: use one of "
                       + ", ".join(sorted({aliases for aliases in RESOURCES})) + " or all")
    meta_type, group_kind = entry
    found = read(database, meta_type, namespace=scope, name=name, selector=selector)
    if name and not found:
        raise GetError(f'{meta_type} "{name}" not found in the edge database')
    if not found:
        return _nothing(namespace, all_namespaces)
    return render(found, group_kind, output=output, all_namespaces=all_namespaces)


def _nothing(namespace: str, all_namespaces: bool) -> str:
    return "No resources found" + ("" if all_namespaces else f" in {namespace} namespace") + "."
