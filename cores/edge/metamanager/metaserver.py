"""MetaServer: the Kubernetes API of what this edge stores, for kubectl and apps at the edge.

Upstream's ``edge/pkg/metamanager/metaserver`` (plain HTTP on ``metaManager.metaServer.server``,
127.0.0.1:10550 by default). This one serves, from MetaManager's SQLite store, with the cloud up
or away:

- ``get`` and ``list`` of pods, configmaps, secrets, services, endpoints, nodes, events, leases,
  devices and devicemodels (label and field selectors, kube-apiserver's Table output for kubectl);
  a ``get`` of a configmap, secret, node or lease asks the cloud first through the link, as
  upstream's does, so the cloud's NodeRestriction answers (403 for what no pod of this node uses);
- ``watch`` from the store's change log (:mod:`cores.edge.metamanager.store`): resumed from any
  ``resourceVersion`` the log still holds, an ``ERROR`` 410 Expired event for one it dropped,
  bookmarks when asked, ``timeoutSeconds``;
- discovery (``/api``, ``/apis``, ``/version``, health) for those resources, built in, so it
  answers with the cloud away;
- ``pods/log`` (kubectl logs, its options as kubelet's) read through CRI, as upstream's.

What the edge holds is what the cloud sent this node (its pods and what they reference), so a
read can reach nothing another node owns. ``resourceVersion`` is the store's local revision (why:
see the store). Writes are not served yet: they answer 405 with the reason. Lists and other gets are the store's
(upstream lists cloud first too, through the DynamicController this project lacks). Upstream's
``POST .../pods/restart`` (a JSON list of names) stops the named pods' containers through CRI, and
``POST /api/v1/pods|nodes/unhold-upgrade`` releases pods Edged holds for ``hold-upgrade``. Not yet either:
reads that go to the cloud first, HTTPS with service-account tokens and RBAC.

HTTP/1.1 on h11 (the edge never loads aiohttp): keep-alive, one request at a time a connection;
headers within :data:`HEADER_TIMEOUT`, request bodies refused past :data:`MAX_BODY` (413); a
watcher that cannot keep up is ended (it resumes from its last revision) and never slows the
store or another watcher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import urllib.parse
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import h11

from cores.common import selectors, tables
from cores.common.names import is_dns1123_subdomain
from cores.edge.metamanager.store import Change, Compacted, MetaStore
from cores.link import application
from cores.link.application import Application

log = logging.getLogger("kubeedge.metaserver")

HEADER_TIMEOUT = 30.0
IDLE_TIMEOUT = 90.0
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY = 3 * 1024 * 1024
WATCH_QUEUE = 1000          # changes a watcher may lag behind before it is ended
MAX_WATCHERS = 256
BOOKMARK_SECONDS = 30.0
DEFAULT_WATCH_SECONDS = 1800  # kube-apiserver's --min-request-timeout
LINGER_SECONDS, LINGER_BYTES = 2.0, 16 * 1024 * 1024  # what is read and dropped after a 413
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.10-kubeedge", "platform": "linux/amd64"}


@dataclasses.dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    meta_type: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = (
    Resource("", "v1", "pods", "Pod", "pod", short_names=("po",)),
    Resource("", "v1", "configmaps", "ConfigMap", "configmap", short_names=("cm",)),
    Resource("", "v1", "secrets", "Secret", "secret"),
    Resource("", "v1", "services", "Service", "service", short_names=("svc",)),
    Resource("", "v1", "endpoints", "Endpoints", "endpoints", short_names=("ep",)),
    Resource("", "v1", "nodes", "Node", "node", namespaced=False, short_names=("no",)),
    Resource("", "v1", "events", "Event", "event", short_names=("ev",)),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", "lease"),
    Resource("devices.kubeedge.io", "v1beta1", "devices", "Device", "device"),
    Resource("devices.kubeedge.io", "v1beta1", "devicemodels", "DeviceModel", "devicemodel"),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
# what a get asks the cloud for first: the kinds EdgeController answers queries of
CLOUD_FIRST = frozenset({"configmap", "secret", "node", "lease"})
# what a list asks the cloud for first (as the node: its rights decide), keeping what comes back;
# the kinds Edged and DeviceTwin act on are listed from the store, which the cloud's acked pushes
# keep exact (and a stored pod is one this node runs after a restart: only a push may add it)
LIST_CLOUD_FIRST = frozenset({"service", "endpoints", "node", "lease", "event"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NODE_CLIENT = "x-kubeedge-node-client"  # set by the server alone: the TLS client is this node
WRITE_TIMEOUT = 10.0         # upstream's doApply
LIST_TIMEOUT = 5.0           # a list waits this long for the cloud before the store answers
LIST_LOCAL_SECONDS = 60.0    # after a list the cloud left unanswered, lists stay local this long
MAX_BODY_DEPTH = 64
PATCH_TYPES = frozenset({"application/json-patch+json", "application/merge-patch+json",
                         "application/strategic-merge-patch+json", "application/apply-patch+yaml"})


class Refusal(Exception):
    """An answer with a kube-apiserver ``Status``."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


@dataclasses.dataclass
class Answer:
    code: int
    body: Any                                      # JSON-able, or bytes
    stream: AsyncGenerator[bytes, None] | None = None  # a watch or a log: chunks after the head
    content_type: str = "application/json"
    upgrade: Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]] | None = None

    def encoded(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body, separators=(",", ":")).encode()


@dataclasses.dataclass
class Query:
    """One read, parsed and checked before anything is read."""

    resource: Resource
    namespace: str | None
    name: str
    labels: selectors.LabelSelector
    fields: selectors.FieldSelector
    table: str | None          # the Table version asked for, None for plain JSON
    include_object: str

    def matches(self, key: str, obj: dict[str, Any]) -> bool:
        namespace, _, name = _split_key(key)
        metadata: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
        if self.resource.namespaced and self.namespace is not None and namespace != self.namespace:
            return False
        if self.name and name != self.name:
            return False
        return self.labels.matches(metadata.get("labels") if isinstance(metadata.get("labels"), dict) else {}) \
            and self.fields.matches(obj)


class Watcher:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Change] = asyncio.Queue(WATCH_QUEUE)
        self.overflowed = False

    def offer(self, change: Change) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.overflowed = True


class MetaServer:
    def __init__(self, address: str, db: Callable[..., Awaitable[Any]], store: MetaStore,
                 runtime_endpoint: str | None = None, unhold: Callable[[str, str], None] | None = None,
                 node_name: str = "", ask_cloud: Callable[[str], Awaitable[Any]] | None = None,
                 apply_in_cloud: Callable[[Application, float], Awaitable[Application]] | None = None,
                 auth: Any = None, ssl_context: Any = None) -> None:
        self.auth = auth              # a MetaAuth with requireAuthorization: tokens and RBAC, from the cloud
        self.ssl_context = ssl_context
        self.ask_cloud = ask_cloud  # a query through the link (None: the cloud is not asked, e.g. offline)
        self.apply_in_cloud = apply_in_cloud  # an Application to the cloud's DynamicController
        self._lists_local_until = 0.0  # the cloud did not answer a list: lists stay local until then
        self.runtime_endpoint = runtime_endpoint  # for pods/restart; None when Edged is off
        self.unhold = unhold                      # tells Edged to start a held pod (namespace, name)
        self.node_name = node_name
        host, _, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port or 10550)
        self._db, self.store = db, store
        self.watchers: set[Watcher] = set()
        self._server: asyncio.Server | None = None
        self._dummy: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self, dummy: str = "") -> None:
        """Listen on the server address, and with ``dummy`` (``host:port``, requireAuthorization) on
        upstream's dummy interface too, which it makes; a dummy that cannot be made is logged, with
        the fix, and the server address still serves."""
        self._server = await asyncio.start_server(self._connection, self.host, self.port, ssl=self.ssl_context)
        scheme = "https" if self.ssl_context is not None else "http"
        log.info("metaserver listening on %s://%s:%d%s", scheme, self.host, self.port,
                 " (service-account tokens and RBAC, from the cloud)" if self.auth is not None else "")
        if dummy:
            from cores.edge.metamanager import dummy as dummies

            host, _, port = dummy.rpartition(":")
            device, error = await asyncio.to_thread(dummies.ensure, host)
            try:
                if error:
                    raise OSError(error)
                self._dummy = await asyncio.start_server(self._connection, host, int(port), ssl=self.ssl_context)
            except (OSError, ValueError) as failure:
                log.error("metaserver: cannot serve on the dummy address %s (%s): pods that are not hostNetwork cannot "
                          "reach MetaServer; fix it, or set metaServer.dummyServer: \"\" and give pods hostNetwork", dummy, failure)
            else:
                log.info("metaserver listening on %s://%s (on %s)", scheme, dummy, device)

    async def stop(self) -> None:
        """Stop listening and end every connection, watches included (their clients resume elsewhere)."""
        for server in (self._server, self._dummy):
            if server is not None:
                server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in (self._server, self._dummy):
            if server is not None:
                await server.wait_closed()

    def publish(self, change: Change | None) -> None:
        """A committed change, for every live watch (never waits: a watcher that lags is ended)."""
        if change is None:
            return
        for watcher in list(self.watchers):
            watcher.offer(change)

    # -- HTTP ---------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                request = await self._read_request(reader, conn)
                if request is None:
                    return
                method, target, headers, raw_headers, body, too_large = request
                headers.pop(NODE_CLIENT, None)  # only this server sets it, from the TLS session
                if self.ssl_context is not None and self._is_node(writer.get_extra_info("peercert")):
                    headers[NODE_CLIENT] = "1"
                if too_large:
                    answer = Answer(413, status(413, "RequestEntityTooLarge", f"the request body is larger than {MAX_BODY} bytes"))
                else:
                    answer = await self._answer("GET" if method == "HEAD" else method, target, headers, body, raw_headers)
                if answer.upgrade is not None:
                    # exec: the runtime's streaming server answers the upgrade itself, bytes pass through
                    await answer.upgrade(reader, writer, conn.trailing_data[0])
                    return
                streamed = answer.stream is not None
                await self._send(reader, writer, conn, answer, head_only=method == "HEAD")
                if streamed:
                    return  # what the client sent during a stream was read as its end: nothing to go on with
                if too_large:
                    await _linger(reader, writer)
                    return  # an unread body leaves nothing to read the next request from
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, OSError, h11.ProtocolError, TimeoutError) as error:
            log.debug("metaserver: connection ended: %s", error)
        except asyncio.CancelledError:
            pass  # stop() ends it; a cancelled handler would be logged by asyncio's stream callback as an error
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader,
                            conn: h11.Connection) -> tuple[str, str, dict[str, str], list[tuple[str, str]], bytes, bool] | None:
        timeout = IDLE_TIMEOUT
        request: h11.Request | None = None
        size = 0
        body = bytearray()
        async with asyncio.timeout(HEADER_TIMEOUT + timeout):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data and conn.their_state in (h11.IDLE, h11.DONE):
                        return None
                    continue
                if isinstance(event, h11.ConnectionClosed):
                    return None
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size <= MAX_BODY:
                        body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                if size > MAX_BODY:
                    break
        assert request is not None
        raw = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers]
        headers = {name.lower(): value for name, value in raw}
        return request.method.decode("latin-1"), request.target.decode("latin-1"), headers, raw, bytes(body), size > MAX_BODY

    async def _send(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: h11.Connection,
                    answer: Answer, head_only: bool = False) -> None:
        headers = [("Content-Type", answer.content_type), ("Cache-Control", "no-cache, private")]
        if answer.stream is None or head_only:
            if answer.stream is not None:
                await answer.stream.aclose()
            body = answer.encoded() if answer.stream is None else b""
            writer.write(conn.send(h11.Response(status_code=answer.code, headers=[*headers, ("Content-Length", str(len(body)))]))
                         or b"")
            if not head_only:  # h11 knows a HEAD answer has no body, and refuses one
                writer.write(conn.send(h11.Data(data=body)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            return
        stream = answer.stream
        # A client that goes away is seen at once, not at the next write: a log -f of a quiet
        # container, or a watch with no change, would hold its file, its CRI client or its watcher slot.
        gone = asyncio.ensure_future(reader.read(1))
        following: asyncio.Future[bytes] | None = None
        try:
            writer.write(conn.send(h11.Response(status_code=answer.code, headers=[*headers, ("Transfer-Encoding", "chunked")]))
                         or b"")
            await writer.drain()
            while True:
                following = asyncio.ensure_future(anext(stream))
                await asyncio.wait({following, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    return  # the client went away
                try:
                    chunk = following.result()
                except StopAsyncIteration:
                    break
                writer.write(conn.send(h11.Data(data=chunk)) or b"")
                await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
        finally:
            for task in (following, gone):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await stream.aclose()  # after the step that ran it is over: its finally runs now

    async def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes = b"",
                      raw_headers: list[tuple[str, str]] | None = None) -> Answer:
        try:
            path, _, raw_query = target.partition("?")
            query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
            parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
            if self.auth is not None and not (method == "GET" and parts in (["healthz"], ["livez"], ["readyz"], ["version"])):
                # health and version are public, as RBAC's system:public-info-viewer makes them
                await self._check_access(method, path, parts, query, headers)
            if method in ("GET", "POST") and len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] \
                    and parts[4] == "pods" and parts[6] == "exec":
                return await self._exec(method, parts[3], parts[5], raw_query, raw_headers or [])
            if method == "POST" and len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods", "restart"]:
                return await self._restart(parts[3], body)
            if method == "POST" and parts in (["api", "v1", "pods", "unhold-upgrade"], ["api", "v1", "nodes", "unhold-upgrade"]):
                return await self._unhold(parts[2], body)
            if method == "POST" and parts == ["api", "v1", "taskupgrade", "confirm-upgrade"]:
                # upstream's answer when no NodeUpgradeJob waits for confirmation: this EdgeCore runs none
                raise Refusal(400, "BadRequest", "there are no valid upgrade tasks to execute")
            if method in WRITE_METHODS:
                return await self._write(method, parts, query, headers, body)
            if method != "GET":
                raise Refusal(405, "MethodNotAllowed", f"{method} is not a Kubernetes API method")
            if _is_passthrough(path, parts):
                return await self._passthrough(path, parts, headers)
            discovered = self._discovery(parts)
            if discovered is not None:
                return Answer(200, discovered)
            if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods" and parts[6] == "log":
                return await self._log(parts[3], parts[5], raw_query)
            return await self._read(parts, query, headers)
        except Refusal as refusal:
            return Answer(refusal.code, status(refusal.code, refusal.reason, refusal.message))
        except Exception:  # noqa: BLE001 - a bug answers this request with a 500; the server goes on
            log.exception("metaserver: %s %s failed", method, target[:200])
            return Answer(500, status(500, "InternalError", "an internal error occurred"))

    # -- requireAuthorization ------------------------------------------------------------------
    async def _check_access(self, method: str, path: str, parts: list[str], query: dict[str, list[str]],
                            headers: dict[str, str]) -> None:
        """401 without a token the cloud accepts, 403 for what RBAC does not allow (kube-apiserver's bodies)."""
        from cores.edge.metamanager.metaauth import Attributes

        if headers.get(NODE_CLIENT) == "1":
            return  # the node's own certificate (keadm ctl as root): the node itself, as upstream trusts it
        header = headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        identity, why = await self.auth.authenticate(token) if token else (None, "Unauthorized")
        if identity is None:
            raise Refusal(401, "Unauthorized", why)
        attributes = _attributes(method, "/" + "/".join(parts), parts, query) or Attributes(method.lower(), path)
        allowed, reason = await self.auth.authorize(identity, attributes)
        if not allowed:
            raise Refusal(403, "Forbidden", attributes.describe(identity.name) + (f": {reason}" if reason else ""))

    def _is_node(self, peer: Any) -> bool:
        """A client certificate (chain verified by TLS against tlsCaFile) naming this node."""
        if not peer or not self.node_name:
            return False
        subject = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
        return subject == [f"system:node:{self.node_name}"]

    # -- pods/restart (upstream's extension: keadm ctl restart pod) ------------------------------
    async def _restart(self, namespace: str, body: bytes) -> Answer:
        """Stop every container of the named pods of this node (3 s grace, as upstream); Edged then
        starts them again by their restart policy. The answer is upstream's RestartResponse."""
        try:
            names = json.loads(body or b"null")
        except ValueError:
            raise Refusal(400, "BadRequest", "the body must be a JSON list of pod names") from None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names) or len(names) > 256:
            raise Refusal(400, "BadRequest", "the body must be a JSON list of at most 256 pod names")
        if not is_dns1123_subdomain(namespace):
            raise Refusal(400, "BadRequest", f"invalid namespace {namespace!r}")
        if self.runtime_endpoint is None:
            raise Refusal(503, "ServiceUnavailable", "Edged is not enabled here: no container runtime to restart pods in")
        logged: list[str] = []
        errors: list[str] = []
        from cores.edge.cri import labels
        from cores.edge.cri.client import CriClient

        async with CriClient(self.runtime_endpoint) as cri:
            for name in names:
                if not is_dns1123_subdomain(name):
                    errors.append(f"invalid pod name {name!r}")
                    continue
                if await self._db(self.store.get, f"{namespace}/pod/{name}") is None:
                    errors.append(f'not found pod:"/{namespace}/{name}"')  # upstream's words; not this node's pod
                    continue
                try:
                    containers = await cri.list_containers({labels.POD_NAME: name, labels.POD_NAMESPACE: namespace})
                    stopped = 0
                    for container in containers:
                        await cri.stop_container(container.id, 3)
                        stopped += 1
                except Exception as error:  # noqa: BLE001 - the runtime's reason goes back to the caller
                    errors.append(f'failed to restart pod "/{namespace}/{name}": {getattr(error, "message", None) or error}')
                    continue
                if not containers:
                    errors.append(f'not found pod:"/{namespace}/{name}"')
                else:
                    log.info("metaserver: pod %s/%s restarted (%d containers stopped)", namespace, name, stopped)
                    logged.append(f'the pod "{namespace}/{name}" restart successful')
        answer: dict[str, Any] = {}
        if errors:
            answer["errMessages"] = errors
        if logged:
            answer["LogMessages"] = logged
        return Answer(200, answer)

    # -- pods/exec, through CRI: kubectl exec at the edge with the cloud away ---------------------
    async def _exec(self, method: str, namespace: str, name: str, raw_query: str,
                    headers: list[tuple[str, str]]) -> Answer:
        """The upgrade goes on to containerd's streaming server (SPDY; kubelet's own path), byte for
        byte. WebSocket is refused with 400 so that kubectl 1.32 falls back to SPDY."""
        from cores.edge.cri.streaming import StreamProxyError, proxy_upgrade

        upgrade = next((value for key, value in headers if key.lower() == "upgrade"), "")
        if upgrade.lower() == "websocket":
            raise Refusal(400, "BadRequest", "WebSocket streams are not served here; use SPDY (kubectl falls back to it)")
        if not upgrade:
            raise Refusal(400, "BadRequest", "Upgrade request required")
        pod, container = await self._pod_container(namespace, name, raw_query)
        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        command = query.get("command") or []
        if not command:
            raise Refusal(400, "BadRequest", "you must specify at least 1 command")

        def flag(key: str) -> bool:
            return _one(query, key).lower() in ("1", "true")

        from cores.edge.cri import labels
        from cores.edge.cri.client import CriClient

        assert self.runtime_endpoint is not None
        async with CriClient(self.runtime_endpoint) as cri:
            found = [c for c in await cri.list_containers({labels.POD_NAME: name, labels.POD_NAMESPACE: namespace,
                                                            labels.CONTAINER_NAME: container}) if int(c.state) == 1]
            if not found:
                raise Refusal(400, "BadRequest", f'container {container} is not running in pod "{name}"')
            url = await cri.exec_url(found[0].id, command, tty=flag("tty"), stdin=flag("stdin"),
                                     stdout=flag("stdout"), stderr=flag("stderr"))

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes) -> None:
            try:
                await proxy_upgrade(method, url, headers, rest, reader, writer)
            except StreamProxyError as error:
                body = json.dumps(status(error.status, "InternalError", error.message)).encode()
                writer.write(f"HTTP/1.1 {error.status} Error\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                await writer.drain()

        log.info("metaserver: exec in %s/%s (%s): %s", namespace, name, container, command[0][:64])
        return Answer(101, b"", upgrade=relay)

    async def _pod_container(self, namespace: str, name: str, raw_query: str) -> tuple[dict[str, Any], str]:
        """This node's pod from the store, and the container the request names (or its only one)."""
        if self.runtime_endpoint is None:
            raise Refusal(503, "ServiceUnavailable", "Edged is not enabled here: no container runtime")
        value = await self._db(self.store.get, f"{namespace}/pod/{name}")
        if value is None:
            raise Refusal(404, "NotFound", f'pods "{name}" not found')
        pod = json.loads(value)
        containers = [str(c.get("name")) for c in ((pod.get("spec") or {}).get("containers") or []) if isinstance(c, dict)]
        container = _one(urllib.parse.parse_qs(raw_query, keep_blank_values=True), "container")
        if not container:
            if len(containers) != 1:
                raise Refusal(400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: "
                                                 f"[{' '.join(containers)}]")
            container = containers[0]
        elif container not in containers:
            raise Refusal(400, "BadRequest", f"container {container} is not valid for pod {name}")
        return pod, container

    # -- pods/log, through CRI: kubectl logs at the edge with the cloud away -----------------------
    async def _log(self, namespace: str, name: str, raw_query: str) -> Answer:
        from cores.edge.edged import logs

        _, container = await self._pod_container(namespace, name, raw_query)
        try:
            options = logs.parse_options(raw_query)
        except logs.LogOptionsError as error:
            raise Refusal(400, "BadRequest", str(error)) from None
        if self.runtime_endpoint is None:
            raise Refusal(503, "ServiceUnavailable", "Edged is not enabled here: no container runtime to read logs from")
        from cores.edge.cri import labels
        from cores.edge.cri.client import CriClient

        async with CriClient(self.runtime_endpoint) as cri:  # the answer's status comes from this lookup
            found = sorted(await cri.list_containers({labels.POD_NAME: name, labels.POD_NAMESPACE: namespace,
                                                      labels.CONTAINER_NAME: container}),
                           key=lambda c: c.created_at, reverse=True)
            index = 1 if options.previous else 0
            if len(found) <= index:
                what = "previous terminated container" if options.previous else "container"
                raise Refusal(400, "BadRequest", f'{what} "{container}" in pod "{name}" not found')
            chosen = found[index]
            path = (await cri.container_status(chosen.id)).status.log_path
        if not path:
            raise Refusal(400, "BadRequest", f'container "{container}" in pod "{name}" has no log file')
        endpoint = self.runtime_endpoint

        async def body() -> AsyncGenerator[bytes, None]:
            # its own client, made once the stream runs: a stream that never starts holds nothing
            async with CriClient(endpoint) as watching:
                async def running() -> bool:
                    try:
                        return int((await watching.container_status(chosen.id)).status.state) == 1
                    except Exception:  # noqa: BLE001 - gone is not running
                        return False

                async for chunk in logs.stream_log(path, options, running):
                    yield chunk

        return Answer(200, b"", body(), content_type="text/plain")

    # -- unhold-upgrade (upstream's extension: keadm ctl unhold-upgrade pod|node) ---------------
    async def _unhold(self, resource: str, body: bytes) -> Answer:
        """Release pods Edged holds for ``edge.kubeedge.io/hold-upgrade``: one (body ``<ns>/<name>``) or
        every one of this node (body: the node's name). Checked against the store, as upstream checks
        them against the API: annotated "true" and still Pending."""
        text = body.decode("utf-8", "replace").strip()
        if self.unhold is None:
            raise Refusal(503, "ServiceUnavailable", "Edged is not enabled here: no pod is held")
        if resource == "pods":
            namespace, _, name = text.partition("/")
            if not (is_dns1123_subdomain(namespace) and is_dns1123_subdomain(name)):
                raise Refusal(400, "BadRequest", "invalid format, expected <namespace>/<name>")
            value = await self._db(self.store.get, f"{namespace}/pod/{name}")
            if value is None:
                raise Refusal(404, "NotFound", f'pods "{name}" not found')
            pod = json.loads(value)
            refusal = _hold_refusal(pod)
            if refusal:
                raise Refusal(400, "BadRequest", refusal)
            self.unhold(namespace, name)
            return Answer(200, {})
        node = self.node_name
        if not node or text != node:
            raise Refusal(404, "NotFound", f'nodes "{text}" not found' if text else "node name required in body")
        _, rows = await self._db(self.store.listing, "pod")
        released = 0
        for key, value, _ in rows:
            try:
                pod = json.loads(value)
            except ValueError:
                continue
            if isinstance(pod, dict) and not _hold_refusal(pod):
                namespace, _, name = _split_key(key)
                self.unhold(namespace, name)
                released += 1
        log.info("metaserver: unhold-upgrade of node %s: %d pods released", node, released)
        return Answer(200, {})

    # -- through the cloud: writes, and reads of what the edge does not store ---------------------
    async def _write(self, method: str, parts: list[str], query: dict[str, list[str]], headers: dict[str, str],
                     body: bytes) -> Answer:
        """A create, update, patch or delete: an Application to the cloud, which runs it as this
        node (its Node authorizer and NodeRestriction decide); with the cloud away, 503."""
        path = _resource_path(parts)
        if path is None:
            raise Refusal(404, "NotFound", "the server could not find the requested resource")
        group, version, namespace, plural, name, subresource = path
        key = application.build_key(group, version, plural, namespace, name)
        options: dict[str, Any] = {k: v for k, v in (("dryRun", query.get("dryRun")), ("fieldManager", _one(query, "fieldManager")),
                                                     ("fieldValidation", _one(query, "fieldValidation"))) if v}
        if method == "PATCH":
            patch_type = headers.get("content-type", "").split(";", 1)[0].strip()
            if patch_type not in PATCH_TYPES:
                raise Refusal(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media "
                                                           f"types include: {', '.join(sorted(PATCH_TYPES))}")
            if not name:
                raise Refusal(405, "MethodNotAllowed", "a patch names one object")
            if patch_type != "application/apply-patch+yaml":
                _json_body(body, list if patch_type == "application/json-patch+json" else dict)
            else:
                options["force"] = _one(query, "force") in ("true", "1")
            info = {"Name": name, "PatchType": patch_type, "Data": application.to_b64(body), "Options": options,
                    "Subresources": [subresource] if subresource else None}
            app = Application(key, "patch", self.node_name, option=application.to_bytes(info), subresource=subresource)
            return await self._through_cloud(app, 200)
        if method == "DELETE":
            if not name:
                raise Refusal(405, "MethodNotAllowed", "a delete of a whole collection is not served through the edge")
            delete = _object_body(body, headers) if body.strip() else {}
            for field in ("gracePeriodSeconds", "propagationPolicy"):
                if _one(query, field):
                    value = _one(query, field)
                    delete[field] = int(value) if field == "gracePeriodSeconds" and value.lstrip("-").isdigit() else value
            if query.get("dryRun"):
                delete["dryRun"] = query["dryRun"]
            app = Application(key, "delete", self.node_name, option=application.to_bytes(delete), subresource=subresource)
            return await self._through_cloud(app, 200)
        obj = _object_body(body, headers)
        if method == "POST":
            verb, code = "create", 201
            if not subresource and name:
                raise Refusal(405, "MethodNotAllowed", "a create is posted to its collection")
        else:
            if not name:
                raise Refusal(405, "MethodNotAllowed", "an update names one object")
            verb, code = ("updatestatus" if subresource == "status" else "update"), 200
            obj = await self._cloud_versions(plural, group, obj)
        app = Application(key, verb, self.node_name, option=application.to_bytes(options), req_body=application.to_bytes(obj),
                          subresource="" if verb == "updatestatus" else subresource)
        return await self._through_cloud(app, code)

    async def _cloud_versions(self, plural: str, group: str, obj: dict[str, Any]) -> dict[str, Any]:
        """An update of an object read from this MetaServer carries the store's revision; the cloud
        needs its own resourceVersion of that state, which the stored object holds. A revision that
        is not the stored one is sent as it is (the cloud's 409 then says it is stale)."""
        resource = next((r for r in RESOURCES if r.plural == plural and r.group == group), None)
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else None
        if resource is None or metadata is None or not str(metadata.get("resourceVersion") or "").isdigit():
            return obj
        namespace = str(metadata.get("namespace") or "") if resource.namespaced else "null"
        stored = await self._db(self.store.get_revised, f"{namespace}/{resource.meta_type}/{metadata.get('name') or ''}")
        if stored is None or str(stored[1]) != str(metadata["resourceVersion"]):
            return obj
        cloud = _cloud_version(stored[0])
        return {**obj, "metadata": {**metadata, "resourceVersion": cloud}} if cloud else obj

    async def _through_cloud(self, app: Application, code: int) -> Answer:
        if self.apply_in_cloud is None:
            raise Refusal(503, "ServiceUnavailable", "this MetaServer has no link to the cloud")
        from cores.link.status import StatusError

        try:
            answer = await self.apply_in_cloud(app, WRITE_TIMEOUT)
        except StatusError as error:
            if error.code == 503:
                raise Refusal(503, "ServiceUnavailable", f"the cloud is not reachable: {app.verb} goes to the cloud, and "
                                                         f"this edge is offline ({error.message})") from None
            raise Refusal(error.code or 504, error.reason or "Timeout", error.message) from None
        if answer.status == application.APPROVED:
            if not answer.resp_body:
                return Answer(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
            return Answer(code, answer.resp_body)
        if answer.error.get("code"):
            error_status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, **answer.error}
            return Answer(int(answer.error["code"]), error_status)
        if answer.status == application.REJECTED:
            raise Refusal(500, "InternalError", answer.reason or "the cloud refused the request")
        raise Refusal(503, "ServiceUnavailable", answer.reason or f"the cloud did not process the request ({answer.status})")

    async def _list_from_cloud(self, parsed: Query, query: dict[str, list[str]]) -> list[dict[str, Any]] | None:
        """A list, cloud first, as this node: the items the cloud returned (kept in the store), or
        None when it refused or did not answer (the store answers alone)."""
        loop = asyncio.get_running_loop()
        if self.apply_in_cloud is None or loop.time() < self._lists_local_until:
            return None
        from cores.link.status import RequestTimeout, StatusError

        resource = parsed.resource
        options = {"labelSelector": _one(query, "labelSelector"), "fieldSelector": _one(query, "fieldSelector")}
        key = application.build_key(resource.group, resource.version, resource.plural, parsed.namespace, "")
        app = Application(key, "list", self.node_name, option=application.to_bytes({k: v for k, v in options.items() if v}))
        try:
            answer = await self.apply_in_cloud(app, LIST_TIMEOUT)
        except RequestTimeout:
            self._lists_local_until = loop.time() + LIST_LOCAL_SECONDS  # no DynamicController there, maybe
            log.info("metaserver: the cloud did not answer a list within %gs: lists are served from the store for %gs",
                     LIST_TIMEOUT, LIST_LOCAL_SECONDS)
            return None
        except StatusError:
            return None
        listed = answer.response_json() if answer.status == application.APPROVED else None
        if not isinstance(listed, dict) or not isinstance(listed.get("items"), list):
            log.debug("metaserver: the cloud did not list %s (%s %s): the store answers", resource.plural, answer.status,
                      answer.error.get("message") or answer.reason)
            return None
        return [item for item in listed["items"] if isinstance(item, dict)]

    async def _get_from_cloud(self, parsed: Query) -> None:
        """A get of a kind no push brings (Services, Endpoints, Events), cloud first as the node: what
        it returns is kept, what it no longer has is forgotten; refused, away or silent, the store
        answers."""
        loop = asyncio.get_running_loop()
        if self.apply_in_cloud is None or loop.time() < self._lists_local_until:
            return
        from cores.link.status import RequestTimeout, StatusError

        resource = parsed.resource
        key = application.build_key(resource.group, resource.version, resource.plural, parsed.namespace, parsed.name)
        try:
            answer = await self.apply_in_cloud(Application(key, "get", self.node_name, option=b"{}"), LIST_TIMEOUT)
        except RequestTimeout:
            self._lists_local_until = loop.time() + LIST_LOCAL_SECONDS
            return
        except StatusError:
            return
        stored_key = f"{parsed.namespace if resource.namespaced else 'null'}/{resource.meta_type}/{parsed.name}"
        obj = answer.response_json() if answer.status == application.APPROVED else None
        if isinstance(obj, dict):
            await self._keep_listed(resource, [obj])
        elif answer.error.get("code") == 404:
            self.publish(await self._db(self.store.delete, stored_key))
        # a refusal (a node may not read Events, for one) leaves the answer to the store, which holds
        # only what this node was given, as upstream falls back to it on any error

    async def _keep_listed(self, resource: Resource, items: list[dict[str, Any]]) -> set[str]:
        """Store what a cloud list returned (what changed only); the keys it names."""
        keys = set()
        for item in items:
            metadata: dict[str, Any] = item["metadata"] if isinstance(item.get("metadata"), dict) else {}
            name, namespace = str(metadata.get("name") or ""), str(metadata.get("namespace") or "")
            if not is_dns1123_subdomain(name) or (resource.namespaced and not is_dns1123_subdomain(namespace)):
                continue
            key = f"{namespace if resource.namespaced else 'null'}/{resource.meta_type}/{name}"
            keys.add(key)
            stored = await self._db(self.store.get, key)
            if stored is not None and _cloud_version(stored) == metadata.get("resourceVersion"):
                continue
            item = {**item, "kind": resource.kind, "apiVersion": resource.api_version}
            change = await self._db(self.store.put, key, resource.meta_type, item)
            self.publish(change)
        return keys

    async def _forget_unlisted(self, parsed: Query, listed: set[str]) -> None:
        """A whole list from the cloud (no selector): what the store kept from an earlier one that the
        cloud no longer has is deleted (no push would ever delete a listed Service or Endpoints)."""
        _, rows = await self._db(self.store.listing, parsed.resource.meta_type)
        for key, _, _ in rows:
            namespace = _split_key(key)[0]
            if key not in listed and (parsed.namespace is None or namespace == parsed.namespace):
                self.publish(await self._db(self.store.delete, key))

    async def _unstored(self, parts: list[str], query: dict[str, list[str]]) -> Answer:
        """A get or list of a kind the edge does not store: the cloud's answer, as this node."""
        path = _resource_path(parts)
        if path is None or path[5]:
            raise Refusal(404, "NotFound", "the server could not find the requested resource")
        group, version, namespace, plural, name, _ = path
        if _one(query, "watch") in ("true", "1"):
            raise Refusal(405, "MethodNotAllowed", f"{plural} are not stored at the edge: a watch of them is not served")
        key = application.build_key(group, version, plural, namespace, name)
        options: dict[str, Any] = {k: _one(query, k) for k in ("labelSelector", "fieldSelector", "resourceVersion", "limit",
                                                                "continue") if _one(query, k)}
        if "limit" in options:
            options["limit"] = int(options["limit"]) if options["limit"].isdigit() else 0
        app = Application(key, "get" if name else "list", self.node_name, option=application.to_bytes(options))
        try:
            return await self._through_cloud(app, 200)
        except Refusal as refusal:
            if refusal.code == 503:  # as upstream's, which then finds nothing in its store
                raise Refusal(404, "NotFound", f"the server could not find the requested resource ({plural} are not "
                                               f"stored at the edge, and the cloud is not reachable)") from None
            raise

    # -- discovery -----------------------------------------------------------------------------
    async def _passthrough(self, path: str, parts: list[str], headers: dict[str, str]) -> Answer:
        """Discovery and OpenAPI, as upstream passes them through: the cloud's answer (kept for when
        it is away), else the last one kept, else what this MetaServer serves itself."""
        if path == "/openapi/v2" and "protobuf" in headers.get("accept", "") and "json" not in headers.get("accept", ""):
            raise Refusal(406, "NotAcceptable", "only the JSON form of /openapi/v2 is served at the edge")
        key = f"null/passthrough{path}"
        loop = asyncio.get_running_loop()
        if self.apply_in_cloud is not None and loop.time() >= self._lists_local_until:
            from cores.link.status import RequestTimeout, StatusError

            try:
                answer = await self.apply_in_cloud(Application(path, "get", self.node_name, option=b"{}"), LIST_TIMEOUT)
            except RequestTimeout:
                self._lists_local_until = loop.time() + LIST_LOCAL_SECONDS
                answer = None
            except StatusError:
                answer = None
            if answer is not None and answer.status == application.APPROVED and answer.resp_body:
                try:
                    document = json.loads(answer.resp_body)
                except ValueError:
                    document = None
                if isinstance(document, dict):
                    await self._db(self.store.put, key, "passthrough", answer.resp_body.decode())
                    return Answer(200, answer.resp_body)
        kept = await self._db(self.store.get, key)
        if kept is not None:
            return Answer(200, kept.encode())
        discovered = self._discovery(parts)
        if discovered is not None:
            return Answer(200, discovered)
        raise Refusal(404, "NotFound", "the server could not find the requested resource (the cloud is not reachable, "
                                       "and this edge has no copy)")

    def _discovery(self, parts: list[str]) -> Any:
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return b"ok"
        if parts == ["version"]:
            return VERSION
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]}
        if parts == ["apis"]:
            groups = sorted({(r.group, r.version) for r in RESOURCES if r.group})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": group, "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                 "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version}} for group, version in groups]}
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if len(parts) == 3 and parts[0] == "apis" and any(r.group == parts[1] and r.version == parts[2] for r in RESOURCES):
            return self._resource_list(parts[1], parts[2])
        return None

    @staticmethod
    def _resource_list(group: str, version: str) -> dict[str, Any]:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
                "resources": [{"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced, "kind": r.kind,
                               "verbs": ["get", "list", "watch"], **({"shortNames": list(r.short_names)} if r.short_names else {})}
                              for r in RESOURCES if (r.group, r.version) == (group, version)]}

    # -- reads ---------------------------------------------------------------------------------
    async def _read(self, parts: list[str], query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
        path = _resource_path(parts)
        if path is not None and (path[0], path[1], path[3]) not in BY_PATH:
            return await self._unstored(parts, query)
        parsed = self._query(parts, query, headers)
        watching = _one(query, "watch") in ("true", "1")
        if watching:
            return await self._watch(parsed, query)
        if parsed.name and parsed.resource.meta_type in CLOUD_FIRST:
            await self._from_cloud(parsed)
        elif parsed.name and parsed.resource.meta_type in LIST_CLOUD_FIRST:
            await self._get_from_cloud(parsed)
        listed: set[str] | None = None
        if not parsed.name and parsed.resource.meta_type in LIST_CLOUD_FIRST:
            items_in_cloud = await self._list_from_cloud(parsed, query)
            if items_in_cloud is not None:
                listed = await self._keep_listed(parsed.resource, items_in_cloud)
                if not _one(query, "labelSelector") and not _one(query, "fieldSelector"):
                    await self._forget_unlisted(parsed, listed)
        revision, rows = await self._db(self.store.listing, parsed.resource.meta_type)
        items = [obj for key, obj in self._objects(rows) if parsed.matches(key, obj) and (listed is None or key in listed)]
        if parsed.name:
            if not items:
                group = f".{parsed.resource.group}" if parsed.resource.group else ""
                raise Refusal(404, "NotFound", f'{parsed.resource.plural}{group} "{parsed.name}" not found')
            if parsed.table:
                return Answer(200, tables.table(parsed.resource.kind, parsed.resource.group, items,
                                                list_meta={"resourceVersion": items[0]["metadata"]["resourceVersion"]},
                                                include_object=parsed.include_object, api_version=parsed.table))
            return Answer(200, items[0])
        if parsed.table:
            return Answer(200, tables.table(parsed.resource.kind, parsed.resource.group, items,
                                            list_meta={"resourceVersion": str(revision)},
                                            include_object=parsed.include_object, api_version=parsed.table))
        return Answer(200, {"kind": f"{parsed.resource.kind}List", "apiVersion": parsed.resource.api_version,
                            "metadata": {"resourceVersion": str(revision)}, "items": items})

    async def _from_cloud(self, parsed: Query) -> None:
        """A get asks the cloud first, as upstream's: the cloud answers under NodeRestriction (403 for
        what this node may not read) and MetaManager stores what it sends. The cloud away or slow:
        the store answers alone."""
        if self.ask_cloud is None:
            return
        from cores.link.status import StatusError

        namespace = parsed.namespace if parsed.resource.namespaced else "null"
        try:
            await self.ask_cloud(f"{namespace}/{parsed.resource.meta_type}/{parsed.name}")
        except StatusError as error:
            if error.code in (401, 403, 404):
                raise Refusal(error.code, error.reason or "Forbidden", error.message) from None
            log.debug("metaserver: the cloud did not answer %s %s (%s): reading the store", parsed.resource.plural,
                      parsed.name, error)

    def _query(self, parts: list[str], query: dict[str, list[str]], headers: dict[str, str]) -> Query:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise Refusal(404, "NotFound", "the server could not find the requested resource")
        namespace: str | None = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 2:
            raise Refusal(404, "NotFound", "the server could not find the requested resource")
        resource = BY_PATH.get((group, version, rest[0]))
        if resource is None:
            raise Refusal(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and not resource.namespaced:
            raise Refusal(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) == 2 else ""
        if resource.namespaced and name and namespace is None:
            raise Refusal(404, "NotFound", "the server could not find the requested resource")
        try:
            labels = selectors.parse_label_selector(_one(query, "labelSelector"))
            fields = selectors.parse_field_selector_for(resource.plural, _one(query, "fieldSelector"))
        except selectors.SelectorError as error:
            raise Refusal(400, "BadRequest", str(error)) from None
        accept = headers.get("accept", "")
        wanted = tables.table_version(accept) if tables.wants_table(accept) else None
        table = f"meta.k8s.io/{wanted}" if wanted else None
        include = _one(query, "includeObject") or "Metadata"
        try:
            include = tables.check_include_object(include)
        except ValueError as error:
            raise Refusal(400, "BadRequest", str(error)) from None
        return Query(resource, namespace, name, labels, fields, table, include)

    def _objects(self, rows: list[tuple[str, str, int]]) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for key, value, revision in rows:
            obj = self._served(key, value, revision)
            if obj is not None:
                found.append((key, obj))
        return found

    @staticmethod
    def _served(key: str, value: str, revision: int, resource: Resource | None = None) -> dict[str, Any] | None:
        try:
            obj = json.loads(value)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        resource = resource or next((r for r in RESOURCES if r.meta_type == _split_key(key)[1]), None)
        metadata = dict(obj.get("metadata") or {}) if isinstance(obj.get("metadata"), dict) else {}
        metadata["resourceVersion"] = str(revision)
        served = {**obj, "metadata": metadata}
        if resource is not None:
            served["kind"], served["apiVersion"] = resource.kind, resource.api_version
        return served

    # -- watch ---------------------------------------------------------------------------------
    async def _watch(self, parsed: Query, query: dict[str, list[str]]) -> Answer:
        if len(self.watchers) >= MAX_WATCHERS:
            raise Refusal(429, "TooManyRequests", f"{MAX_WATCHERS} watches are open on this MetaServer")
        requested = _one(query, "resourceVersion")
        try:
            since = int(requested) if requested not in ("", "0") else None
        except ValueError:
            raise Refusal(400, "BadRequest", f"invalid resourceVersion {requested!r}") from None
        timeout = _one(query, "timeoutSeconds")
        if timeout and not (timeout.isascii() and timeout.isdigit() and len(timeout) <= 9):
            raise Refusal(400, "BadRequest", f"invalid timeoutSeconds {timeout!r}: a whole number of seconds")
        seconds = min(max(int(timeout or DEFAULT_WATCH_SECONDS), 1), DEFAULT_WATCH_SECONDS)
        bookmarks = _one(query, "allowWatchBookmarks") in ("true", "1")
        return Answer(200, b"", self._stream(parsed, since, float(seconds), bookmarks))

    async def _stream(self, parsed: Query, since: int | None, seconds: float, bookmarks: bool) -> AsyncGenerator[bytes, None]:
        resource = parsed.resource
        first = True
        watcher = Watcher()
        self.watchers.add(watcher)  # before reading what was: nothing falls between the two

        def line(event: str, obj: dict[str, Any]) -> bytes:
            nonlocal first
            if parsed.table:
                framed = tables.watch_event_table(event, obj, resource.kind, resource.group, include_object=parsed.include_object,
                                                  first=first, api_version=parsed.table)
            else:
                framed = {"type": event, "object": obj}
            if event not in ("BOOKMARK", "ERROR"):
                first = False
            return json.dumps(framed, separators=(",", ":")).encode() + b"\n"

        try:
            last = 0
            if since is None:  # "0" or none: the current state as ADDED, then what follows
                last, rows = await self._db(self.store.listing, resource.meta_type)
                for key, obj in self._objects(rows):
                    if parsed.matches(key, obj):
                        yield line("ADDED", obj)
            else:
                last = since
                try:
                    while True:
                        backlog = await self._db(self.store.changes_since, last, resource.meta_type)
                        for change in backlog:
                            chunk = self._change_line(change, parsed, line)
                            last = change.revision
                            if chunk:
                                yield chunk
                        if len(backlog) < 1000:
                            break
                except Compacted as gone:
                    yield line("ERROR", status(410, "Expired", f"too old resource version: {gone.revision} ({gone.oldest})"))
                    return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            next_bookmark = loop.time() + BOOKMARK_SECONDS
            while not watcher.overflowed:
                now = loop.time()
                if now >= deadline:
                    return
                try:
                    change = await asyncio.wait_for(watcher.queue.get(), min(deadline, next_bookmark) - now)
                except TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + BOOKMARK_SECONDS
                        yield line("BOOKMARK", {"kind": resource.kind, "apiVersion": resource.api_version,
                                                "metadata": {"resourceVersion": str(last)}})
                    elif loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + BOOKMARK_SECONDS
                    continue
                if change.revision <= last or change.type != resource.meta_type:
                    continue
                last = change.revision
                chunk = self._change_line(change, parsed, line)
                if chunk:
                    yield chunk
            log.info("metaserver: a watch of %s could not keep up (%d changes behind) and was ended; it resumes from "
                     "revision %d", resource.plural, WATCH_QUEUE, last)
        finally:
            self.watchers.discard(watcher)

    def _change_line(self, change: Change, parsed: Query, line: Callable[[str, dict[str, Any]], bytes]) -> bytes:
        """As kube-apiserver filters a watch: an object that comes into the selection is ADDED, one
        that leaves it DELETED (with its new state), others as they happened."""
        obj = self._served(change.key, change.value, change.revision, parsed.resource)
        if obj is None:
            return b""
        matches = parsed.matches(change.key, obj)
        if change.event == "MODIFIED" and change.previous is not None:
            before = self._served(change.key, change.previous, change.revision, parsed.resource)
            matched = before is not None and parsed.matches(change.key, before)
            if matched != matches:
                return line("ADDED" if matches else "DELETED", obj)
        return line(change.event, obj) if matches else b""


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After refusing a body: stop writing, and read what the client still sends for a while, so
    that closing does not reset the connection before the client has read the refusal."""
    if writer.can_write_eof():
        writer.write_eof()
    loop = asyncio.get_running_loop()
    deadline, left = loop.time() + LINGER_SECONDS, LINGER_BYTES
    try:
        while left > 0 and loop.time() < deadline:
            data = await asyncio.wait_for(reader.read(65536), deadline - loop.time())
            if not data:
                return
            left -= len(data)
    except (TimeoutError, ConnectionError, OSError):
        return


def _hold_refusal(pod: Any) -> str:
    """Why a pod cannot be unheld (upstream's words), "" when it can."""
    metadata: dict[str, Any] = pod["metadata"] if isinstance(pod, dict) and isinstance(pod.get("metadata"), dict) else {}
    status: dict[str, Any] = pod["status"] if isinstance(pod, dict) and isinstance(pod.get("status"), dict) else {}
    if (metadata.get("annotations") or {}).get("edge.kubeedge.io/hold-upgrade") != "true":
        return "pod is not marked with hold-upgrade annotation"
    if (status.get("phase") or "Pending") != "Pending":
        return "pod is not in pending phase"
    return ""


def _one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[-1]


def _split_key(key: str) -> tuple[str, str, str]:
    namespace, _, rest = key.partition("/")
    kind, _, name = rest.partition("/")
    return namespace, kind, name


def _resource_path(parts: list[str]) -> tuple[str, str, str | None, str, str, str] | None:
    """(group, version, namespace, plural, name, subresource) of a resource path, each part checked;
    None for anything else."""
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 3:
        return None
    plural, name, subresource = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
    if (group and not is_dns1123_subdomain(group)) or not version.isalnum() or not version.islower() \
            or not plural.replace("-", "").isalnum() or not plural.islower():
        return None
    if (namespace is not None and not is_dns1123_subdomain(namespace)) or (name and not _path_safe(name)) \
            or (subresource and not subresource.isalpha()):
        return None
    return group, version, namespace, plural, name, subresource


def _path_safe(name: str) -> bool:
    """A name that stays one path segment (names of some kinds, e.g. events, RBAC, allow ``:``)."""
    return 0 < len(name) <= 253 and name not in (".", "..") and all(c.isalnum() or c in "-._:@" for c in name)


def _object_body(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """A create's, update's or delete's body: JSON, or Kubernetes' protobuf (kubectl's typed
    creates send it), read into the same JSON shape; the cloud gets JSON (upstream's ReqBody)."""
    if headers.get("content-type", "").split(";", 1)[0].strip() == "application/vnd.kubernetes.protobuf":
        from cores.common import kubeproto  # its field table, loaded on the first protobuf body

        try:
            return kubeproto.decode(body)
        except kubeproto.ProtobufError as error:
            code, reason = (415, "UnsupportedMediaType") if "not supported" in str(error) else (400, "BadRequest")
            raise Refusal(code, reason, str(error)) from None
    value: dict[str, Any] = _json_body(body, dict)
    return value


def _json_body(body: bytes, kind: type) -> Any:
    from cores.common.jsonlimits import loads_bounded

    try:
        value = loads_bounded(body, MAX_BODY_DEPTH)
    except ValueError as error:
        raise Refusal(400, "BadRequest", f"the request body is not valid JSON: {error}") from None
    if not isinstance(value, kind):
        raise Refusal(400, "BadRequest", f"the request body must be a JSON {'object' if kind is dict else 'list'}")
    return value


def _cloud_version(stored: str) -> Any:
    """The cloud's resourceVersion in a stored object (None when it has none)."""
    try:
        obj = json.loads(stored)
    except ValueError:
        return None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata.get("resourceVersion") if isinstance(metadata, dict) else None


def _attributes(method: str, path: str, parts: list[str], query: dict[str, list[str]]) -> Any:
    """A request's authorization attributes, as kube-apiserver's RequestInfo makes them (None for a
    path that names no resource)."""
    from cores.edge.metamanager.metaauth import Attributes

    if parts in (["api", "v1", "pods", "unhold-upgrade"], ["api", "v1", "nodes", "unhold-upgrade"]):
        return Attributes("create", path, "", "v1", parts[2], "unhold-upgrade")
    if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods", "restart"]:
        return Attributes("create", path, "", "v1", "pods", "restart", parts[3])
    found = _resource_path(parts)
    if found is None:
        return None
    group, version, namespace, plural, name, subresource = found
    if method in ("GET", "HEAD"):
        watching = _one(query, "watch") in ("true", "1")
        verb = "get" if name else ("watch" if watching else "list")
        if subresource == "exec":
            verb = "create"  # kubectl's exec is a POST, client-go's upgrade a GET: both create pods/exec
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or ("delete" if name else "deletecollection")
    return Attributes(verb, path, group, version, plural, subresource, namespace or "", name)


def _is_passthrough(path: str, parts: list[str]) -> bool:
    """Discovery and OpenAPI paths (upstream's pass-through list, and OpenAPI v3's documents)."""
    if path in ("/api", "/apis", "/version", "/openapi/v2", "/openapi/v3") or path.startswith("/openapi/v3/"):
        return application.is_discovery(path, "get")
    return (parts[:1] == ["api"] and len(parts) == 2) or (parts[:1] == ["apis"] and len(parts) in (2, 3))
