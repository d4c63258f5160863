"""Node certificates that must no longer work: who was issued what, and what is revoked.

The join token is cluster-wide and a node certificate lives a year, so a deleted node would keep
a working key. Every certificate the bootstrap server signs (join and renewal) is recorded, by
serial, before it is handed out; when the Node is deleted (EdgeController's ``forget``) all the
serials issued to it are revoked; CloudHub refuses a revoked certificate at the WebSocket
admission and at renewal, and closes the node's session. CloudStream reads the same list with its
own :class:`Revocations` (read only): it refuses a revoked certificate at the tunnel's admission
and closes a tunnel whose certificate is revoked while it is up.

Both lists live in the cluster, so every CloudCore shares them (namespace ``kubeedge``)::

    ConfigMap issued-node-certificates   data[<SERIAL>] = {"node", "issued", "expires", "registered"}
    ConfigMap revoked-node-certificates  data[<SERIAL>] = {"node", "revoked", "expires"}

``<SERIAL>`` is :func:`serial_key`: upper-case hex without leading zeros. Each write is a JSON
merge patch of single keys, so CloudCores never overwrite each other's entries (no
read-modify-write); each CloudCore re-reads the revoked list every :data:`POLL_SECONDS`. An
entry is dropped once its certificate has expired (TLS refuses it by then anyway).

A CloudCore that was down when a Node was deleted missed the ``forget``: at start it revokes the
serials of nodes that are gone but were seen registered (``registered``, set when CloudHub first
sees the Node, or at start for the Nodes that exist). A certificate whose node never registered
is left alone: the node may still be on its way (joined, edgecore not started yet).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from cores.cloud.kube import Kube, KubeError

log = logging.getLogger("kubeedge.cloudhub")

NAMESPACE = "kubeedge"
ISSUED, REVOKED = "issued-node-certificates", "revoked-node-certificates"
POLL_SECONDS = 2.0          # how soon another CloudCore's revocation is enforced here
PRUNE_SECONDS = 3600.0      # how often expired entries are dropped
EXPIRED_SLACK = datetime.timedelta(days=1)  # revoked entries outlive their certificate by this (clock skew)


def serial_key(serial: int | str) -> str:
    """The one form of a certificate serial: upper-case hex, no leading zeros.

    ``ssl``'s ``getpeercert()['serialNumber']`` pads to whole bytes ("0ABC" for 0xABC) and
    ``cryptography`` gives an int: both map here to "ABC". Raises ValueError for anything else.
    """
    number = serial if isinstance(serial, int) else int(str(serial).strip(), 16)
    if number < 0:
        raise ValueError(f"a certificate serial is positive, not {serial!r}")
    return format(number, "X")


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _entries(config_map: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A list's entries by canonical serial; a value that is not our JSON is kept as ``{}``."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in ((config_map or {}).get("data") or {}).items():
        try:
            serial = serial_key(key)
        except ValueError:
            log.warning("ignoring entry %r of a node certificate list: not a serial number", key)
            continue
        try:
            entry = json.loads(value)
        except (TypeError, ValueError):
            entry = None
        found[serial] = entry if isinstance(entry, dict) else {}
    return found


class Revocations:
    """The shared lists, and this CloudCore's copy of the revoked serials (:meth:`is_revoked`)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._revoked: set[str] = set()
        self._revoked_here: dict[str, datetime.datetime | None] = {}  # until the shared list shows them
        self._revoked_version = ""
        self._registered: set[str] = set()  # nodes whose entries this process marked registered

    # reading ------------------------------------------------------------------------------
    def is_revoked(self, serial: str) -> bool:
        """Whether the certificate with this serial (any hex form, e.g. ssl's) is revoked."""
        try:
            key = serial_key(serial)
        except ValueError:
            return False  # no certificate, or not one of ours: TLS and the CN check decide
        return key in self._revoked or key in self._revoked_here

    async def _get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.kube.request("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}")
        except KubeError as error:
            if error.code == 404:
                return None
            raise

    async def refresh(self) -> None:
        """Re-read the revoked list (cheap when it did not change)."""
        config_map = await self._get(REVOKED)
        version = str(((config_map or {}).get("metadata") or {}).get("resourceVersion") or "")
        if config_map is not None and version == self._revoked_version:
            return
        revoked = set(_entries(config_map))
        added = revoked - self._revoked
        self._revoked, self._revoked_version = revoked, version
        for serial in list(self._revoked_here):
            if serial in revoked:
                del self._revoked_here[serial]
        if added:
            log.info("revoked node certificates: %d (%d new from the cluster)", len(revoked), len(added))

    async def load(self) -> None:
        """The first read; CloudCore does not serve edges before it has the list (fail closed)."""
        await self.refresh()
        log.info("revocation list loaded: %d revoked node certificates", len(self._revoked))

    async def issued(self) -> dict[str, dict[str, Any]]:
        return _entries(await self._get(ISSUED))

    # writing ------------------------------------------------------------------------------
    async def _patch(self, name: str, data: dict[str, str | None]) -> None:
        """Merge ``data`` into the ConfigMap's data (None deletes a key), creating it when missing."""
        path = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}"
        for _ in range(3):
            try:
                await self.kube.request("PATCH", path, {"data": data}, content_type="application/merge-patch+json")
                return
            except KubeError as error:
                if error.code != 404:
                    raise
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
                    "data": {key: value for key, value in data.items() if value is not None}}
            try:
                await self.kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", body)
                return
            except KubeError as error:
                if error.code != 409:  # another CloudCore created it meanwhile: patch again
                    raise
        raise KubeError({"kind": "Status", "code": 409, "message": f"configmap {NAMESPACE}/{name} keeps changing"})

    async def record_issued(self, node: str, serial: int | str, expires: datetime.datetime) -> None:
        """Before a certificate leaves the bootstrap server: remember it was issued to ``node``."""
        entry = {"node": node, "issued": _stamp(_now()), "expires": _stamp(expires), "registered": False}
        await self._patch(ISSUED, {serial_key(serial): json.dumps(entry, sort_keys=True)})

    async def revoke_node(self, node: str) -> list[str]:
        """Revoke every certificate issued to ``node``; returns their serials."""
        issued = await self.issued()
        serials = [serial for serial, entry in issued.items() if entry.get("node") == node]
        await self._revoke({serial: issued[serial] for serial in serials})
        if serials:
            log.warning("revoked %d certificate(s) of node %s (serials %s): the node was deleted",
                        len(serials), node, ", ".join(sorted(serials)))
        self._registered.discard(node)
        return serials

    async def _revoke(self, entries: dict[str, dict[str, Any]]) -> None:
        if not entries:
            return
        stamp = _stamp(_now())
        for serial, entry in entries.items():
            self._revoked_here[serial] = _parse_stamp(entry.get("expires"))
        revoked = {serial: json.dumps({"node": entry.get("node", ""), "revoked": stamp, "expires": entry.get("expires", "")},
                                      sort_keys=True) for serial, entry in entries.items()}
        await self._patch(REVOKED, dict(revoked))  # first: a crash in between leaves it in both lists, never in none
        await self._patch(ISSUED, dict.fromkeys(entries))

    def seen(self, node: str) -> bool:
        """Whether this process already marked ``node``'s certificates registered."""
        return node in self._registered

    def unsee(self, node: str) -> None:
        self._registered.discard(node)

    async def node_seen(self, node: str) -> None:
        """The Node exists: mark its issued certificates registered (once per node and process)."""
        if node in self._registered:
            return
        self._registered.add(node)
        issued = await self.issued()
        await self._mark_registered(issued, {node})

    async def _mark_registered(self, issued: dict[str, dict[str, Any]], nodes: set[str]) -> None:
        marks = {serial: json.dumps({**entry, "registered": True}, sort_keys=True)
                 for serial, entry in issued.items() if entry.get("node") in nodes and not entry.get("registered")}
        if marks:
            await self._patch(ISSUED, dict(marks))

    async def reconcile(self, existing_nodes: Iterable[str]) -> list[str]:
        """At start: revoke what nodes deleted while this CloudCore was down still hold.

        ``existing_nodes`` are the Nodes in the cluster now. Issued entries of existing nodes are
        marked registered; those of absent nodes that had registered are revoked.
        """
        existing = set(existing_nodes)
        issued = await self.issued()
        await self._mark_registered(issued, existing)
        self._registered |= existing
        gone = {serial: entry for serial, entry in issued.items()
                if entry.get("registered") and entry.get("node") not in existing}
        await self._revoke(gone)
        for node in sorted({str(entry.get("node")) for entry in gone.values()}):
            log.warning("node %s was deleted while CloudCore was down: its certificates are revoked", node)
        return sorted(gone)

    async def prune(self) -> None:
        """Drop entries whose certificates have expired."""
        now = _now()
        issued = await self.issued()
        stale = [serial for serial, entry in issued.items() if (_parse_stamp(entry.get("expires")) or now) < now]
        if stale:
            await self._patch(ISSUED, dict.fromkeys(stale))
        revoked = _entries(await self._get(REVOKED))
        stale = [serial for serial, entry in revoked.items()
                 if (expires := _parse_stamp(entry.get("expires"))) is not None and expires + EXPIRED_SLACK < now]
        if stale:
            await self._patch(REVOKED, dict.fromkeys(stale))
            log.info("dropped %d revoked node certificates that have expired", len(stale))
        for serial, expires in list(self._revoked_here.items()):
            if expires is not None and expires + EXPIRED_SLACK < now:
                del self._revoked_here[serial]

    async def keep_current(self, prune: bool = True, refreshed: Callable[[], None] | None = None) -> None:
        """Forever: re-read the revoked list every POLL_SECONDS, prune every PRUNE_SECONDS.

        A reader that only enforces the list (CloudStream) passes ``prune=False``, so one CloudCore
        has one writer; ``refreshed`` runs after each read, to cut what was revoked meanwhile.
        """
        loop = asyncio.get_running_loop()
        pruned_at = loop.time()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.refresh()
                if refreshed is not None:
                    refreshed()
                if prune and loop.time() - pruned_at >= PRUNE_SECONDS:
                    pruned_at = loop.time()
                    await self.prune()
            except (KubeError, OSError) as error:
                # keep enforcing what we know; a revocation made here is kept locally meanwhile
                log.warning("cannot read the revocation list %s/%s: %s", NAMESPACE, REVOKED, error)
