"""MetaManager: the edge's store of what the cloud said, and the path of edge requests to the cloud.

Cloud pushes (insert, update, delete) are written to SQLite (``meta(key, type, value)`` as
upstream) and acked with ``"OK"`` only after the commit. Requests from Edged (group ``meta``) go
to the cloud through EdgeHub and their replies come back to the requester; replies to
insert, update and query are acked with ``"OK"`` as upstream's ``feedbackResponse`` does, patch
replies are not. With the cloud away, queries are answered from SQLite and writes fail at once.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from cores.beehive import Context, Message, SyncTimeout
from cores.common.config import Config
from cores.common.resource import ResourceError, parse_object

log = logging.getLogger("kubeedge.metamanager")

PUSH_OPERATIONS = ("insert", "update", "delete")
EDGED_TYPES = ("pod", "configmap", "secret")  # pushes Edged acts on, forwarded after the commit
FEEDBACK_OPERATIONS = ("insert", "update", "query")


class MetaStore:
    """``meta(key, type, value)`` in one SQLite file; every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, type TEXT NOT NULL, value TEXT NOT NULL)")
        self._lock = threading.Lock()

    def put(self, key: str, kind: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, type, value) VALUES (?, ?, ?)", (key, kind, text))

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))

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

    def close(self) -> None:
        # Under the lock: closing while another thread runs a statement crashes sqlite3.
        with self._lock:
            self._db.close()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def not_connected(request: Message) -> Message:
    return request.response({"Object": None, "Err": {"ErrStatus": {
        "metadata": {}, "status": "Failure", "reason": "ServiceUnavailable", "code": 503,
        "message": "edge is not connected to the cloud"}}})


class MetaManager:
    name = "metamanager"
    group = "meta"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.modules.metaManager
        self.store = MetaStore(Path(config.database.dataSource))
        self.connected = False
        self._in_flight: dict[str, Message] = {}  # our remote copies awaiting the cloud's reply

    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        await self._replay_pods()
        while True:
            message = await ctx.receive(self.name)
            if message.route.resource == "node/connection":
                self.connected = message.content == "cloud_connected"
                if not self.connected:
                    self._fail_in_flight()
            elif message.route.source == "edged" or message.route.group == "meta":
                asyncio.create_task(self._request(message))
            elif message.route.operation in PUSH_OPERATIONS:
                await self._push(message)

    async def stop(self) -> None:
        self.store.close()

    async def _push(self, message: Message) -> None:
        """A cloud push: commit it, then ack it (never the other way round)."""
        try:
            resource = parse_object(message.route.resource)
        except ResourceError as error:
            log.warning("ignored push %s: %s", message.describe(), error)
            return
        if message.route.operation == "delete":
            await asyncio.to_thread(self.store.delete, message.route.resource)
            uid = ((message.content or {}).get("metadata") or {}).get("uid") if isinstance(message.content, dict) else None
            if resource.type == "pod" and uid:
                # the tokens bound to the pod go with it (upstream's DeleteServiceAccountToken)
                await asyncio.to_thread(self.store.delete_tokens_of, f"{resource.namespace}/serviceaccounttoken/", str(uid))
        else:
            await asyncio.to_thread(self.store.put, message.route.resource, resource.type, message.content)
        await self.ctx.send(self.settings.contextSendModule, message.response("OK"))
        if resource.type in EDGED_TYPES:
            await self._to_edged(message.route.operation, message.route.resource, message.content)

    async def _to_edged(self, operation: str, resource: str, content: Any) -> None:
        if "edged" in self.ctx.modules():
            await self.ctx.send("edged", Message.new(source="metamanager", group="meta", operation=operation,
                                                     resource=resource, content=content))

    async def _replay_pods(self) -> None:
        """Autonomy: the pods this node was told about come back from SQLite at start, cloud or not."""
        for key, value in await asyncio.to_thread(self.store.of_type, "pod"):
            await self._to_edged("insert", key, json.loads(value))

    async def _request(self, request: Message) -> None:
        operation = request.route.operation
        if "/event/" in request.route.resource:
            # events go straight to the cloud and get no reply (upstream); with the cloud away, dropped
            if self.connected:
                await self.ctx.send(self.settings.contextSendModule, request)
            return
        if not self.connected:
            reply = self._local(request) if operation == "query" else not_connected(request)
            self.ctx.send_response(reply)
            return
        remote = copy.copy(request)
        remote.header = copy.copy(request.header)
        remote.header.msg_id = str(uuid.uuid4())  # our own wait, apart from the requester's
        remote.header.sync = False
        self._in_flight[remote.msg_id] = remote
        try:
            reply = await self.ctx.send_sync(self.settings.contextSendModule, remote, float(self.settings.remoteQueryTimeout))
        except SyncTimeout as error:
            log.warning("%s", error)
            return
        finally:
            self._in_flight.pop(remote.msg_id, None)
        await self._remember(request, reply)
        if _answered_locally(reply):
            pass
        elif operation in FEEDBACK_OPERATIONS:
            await self.ctx.send(self.settings.contextSendModule, reply.response("OK"))
        answer = copy.copy(reply)
        answer.header = copy.copy(reply.header)
        answer.header.parent_msg_id = request.msg_id
        self.ctx.send_response(answer)

    def _fail_in_flight(self) -> None:
        """The link broke: requests sent on it will get no reply, so answer them now."""
        for remote in list(self._in_flight.values()):
            self.ctx.send_response(not_connected(remote))

    async def _remember(self, request: Message, reply: Message) -> None:
        content = reply.content
        obj = content.get("Object") if isinstance(content, dict) and "Err" in content else content
        if not isinstance(obj, dict) or (isinstance(content, dict) and (content.get("Err") or content.get("ErrStatus"))):
            return  # a refusal or failure never replaces what was stored
        resource = request.route.resource.replace("/nodepatch/", "/node/").replace("/podpatch/", "/pod/")
        try:
            kind = parse_object(resource).type
        except ResourceError:
            return
        await asyncio.to_thread(self.store.put, _store_key(request, resource), kind, obj)

    def _local(self, request: Message) -> Message:
        """A query answered from SQLite, in the shape the cloud would have used."""
        value = self.store.get(_store_key(request, request.route.resource))
        if value is None:
            return not_connected(request)
        kind = parse_object(request.route.resource).type
        if kind in ("configmap", "secret", "serviceaccounttoken"):
            return request.response(json.loads(value))
        return request.response({"Object": json.loads(value), "Err": None})


def _store_key(request: Message, resource: str) -> str:
    """Where a reply is kept. Tokens of one service account differ by pod, audience and lifetime
    (upstream keys them likewise), so a pod restarted with the cloud away finds its own again."""
    if "/serviceaccounttoken/" not in resource or not isinstance(request.content, dict):
        return resource
    spec = request.content.get("spec") or {}
    bound = spec.get("boundObjectRef") or {}
    audiences = ",".join(spec.get("audiences") or [])
    return f"{resource}/{bound.get('uid') or ''}/{audiences}/{spec.get('expirationSeconds') or ''}"


def _answered_locally(reply: Message) -> bool:
    content = reply.content
    return isinstance(content, dict) and bool(content.get("Err")) and (content.get("Err") or {}).get("ErrStatus", {}).get("reason") == "ServiceUnavailable"
