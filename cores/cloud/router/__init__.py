"""Router: the REST ingress and the rules that join it to edges' EventBus and ServiceBus (upstream §6.5).

It watches ``rules.kubeedge.io/v1`` RuleEndpoints and Rules and keeps one route per working rule
(:mod:`.rules`); a rule that cannot work gets the reason in ``status.errors``. The four flows:

- **rest→eventbus**: a request to ``http://<router>:9443/<node>/<namespace>/<path>`` is published
  at the node (``router_eventbus``, ``publish``, resource ``node/<node>/<topic>``); 200 "message
  delivered" once handed to the link;
- **rest→servicebus**: the request goes to the node as upstream's ``HTTPRequest`` (operation the
  method, resource ``node/<node>/<service_port>:<path>``); the edge server's status, headers and
  body come back within ``restTimeout``;
- **eventbus→rest**: the node is told to ``subscribe`` ``<namespace>/<topic>``; what it uploads on
  that topic is POSTed to the rule's URL with a ``NodeName`` header;
- **servicebus→rest**: the node is told to ``start`` the target URL; what an edge app sends to its
  ServiceBus is POSTed there and the answer's body goes back (``parent_msg_id``).

Subscriptions and starts are sent again whenever the node connects (upstream sends them once, so
a node offline then never got them). Each rule's successes and failures are counted and merged
into its status once a second, with its last errors. Limits: bodies up to ``maxBodyBytes`` (413),
every hop within ``restTimeout`` (504 naming the hop), at most ``maxInFlight`` ingress requests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
from typing import Any

from cores.beehive import Context, Message
from cores.beehive.context import BeehiveError, SyncTimeout
from cores.cloud.informer import Informer
from cores.cloud.kube import Kube, KubeError
from cores.cloud.router import rules
from cores.cloud.router.rules import REST, EVENTBUS, SERVICEBUS, Route
from cores.common.config import Config
from cores.common.tasks import TaskSupervisor
from cores.link.http import HOP_HEADERS, METHODS

log = logging.getLogger("kubeedge.router")

API = "/apis/rules.kubeedge.io/v1"
HUB = "cloudhub"
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 1024
STATUS_FLUSH_SECONDS = 1.0
KEPT_ERRORS = 10
API_RETRY_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Decision:
    """Where a request for a node goes: ``local`` (this CloudCore has its session), ``offline``.

    With several CloudCores (a later step) a node another one holds becomes ``forward`` to the
    address in its ``cloudcore`` annotation; :meth:`Router.decide` is the one place to change."""
    action: str
    address: str = ""


@dataclasses.dataclass
class Counts:
    success: int = 0
    fail: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


class Router:
    name = "router"
    group = "router"

    def __init__(self, config: Config, kube: Kube) -> None:
        self.config = config
        self.settings = config.modules.router
        self.kube = kube
        self.timeout = float(self.settings.restTimeout or 60) if int(self.settings.restTimeout or 0) > 0 else 60.0
        self.max_body = int(self.settings.get("maxBodyBytes") or DEFAULT_MAX_BODY)
        self.max_in_flight = int(self.settings.get("maxInFlight") or DEFAULT_MAX_IN_FLIGHT)
        self.endpoints: dict[tuple[str, str], rules.Endpoint] = {}
        self.rule_objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.routes: dict[tuple[str, str], Route] = {}
        self.broken: dict[tuple[str, str], str] = {}          # rule -> why it cannot work (as written in its status)
        self.connected: set[str] = set()
        self.counts: dict[tuple[str, str], Counts] = {}
        self.in_flight = 0
        self.informers: dict[str, Informer] = {}
        self.tasks = TaskSupervisor(self.name)
        self.runner: Any = None
        self.client: Any = None

    # start and stop ---------------------------------------------------------------------------
    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        import aiohttp

        self.client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        await self._serve()
        self.tasks.keep(self._watch_rules, "rules")
        self.tasks.keep(self._flush_counts, "status")
        mailbox = asyncio.create_task(self._read_mailbox(), name="router-mailbox")
        failed = asyncio.create_task(self.tasks.failed(), name="router-supervision")
        try:
            done, _ = await asyncio.wait([mailbox, failed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            mailbox.cancel()
            failed.cancel()

    async def stop(self) -> None:
        await self.tasks.close()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.client is not None:
            await self.client.close()

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self._ingress)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, max_line_size=8190, max_field_size=8190)
        await self.runner.setup()
        host, port = str(self.settings.address or "0.0.0.0"), int(self.settings.port or 9443)
        await web.TCPSite(self.runner, host, port, reuse_address=True).start()
        log.info("router REST ingress listening on %s:%d (bodies up to %d bytes, answers within %gs)",
                 host, port, self.max_body, self.timeout)

    # rules ------------------------------------------------------------------------------------
    async def _watch_rules(self) -> None:
        pause = 1.0
        while True:
            try:
                await self.kube.request("GET", API)
                break
            except (KubeError, OSError) as error:
                log.info("rules.kubeedge.io/v1 is not served yet (%s): the Router waits for its CRDs", error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, API_RETRY_SECONDS)
        for name, handler in (("ruleendpoints", self._on_endpoint), ("rules", self._on_rule)):
            if name not in self.informers:
                informer = self.informers[name] = Informer(self.kube, f"{API}/{name}", handler)
                self.tasks.keep(informer.run, f"informer-{name}")
        await asyncio.Event().wait()

    async def _on_endpoint(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        endpoint = rules.endpoint_of(obj)
        key = (endpoint.namespace, endpoint.name)
        if event == "DELETED":
            self.endpoints.pop(key, None)
        else:
            self.endpoints[key] = endpoint
        self._recompile()

    async def _on_rule(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        if event == "DELETED":
            self.rule_objects.pop(key, None)
            self.counts.pop(key, None)
        else:
            self.rule_objects[key] = obj
        self._recompile()

    def _recompile(self) -> None:
        """Routes from what is known now; edges told of sources that appeared or went."""
        routes: dict[tuple[str, str], Route] = {}
        broken: dict[tuple[str, str], str] = {}
        for key, obj in self.rule_objects.items():
            try:
                routes[key] = rules.compile_rule(obj, self.endpoints)
            except rules.RuleError as error:
                broken[key] = str(error)
        before = self.routes
        self.routes = routes
        for key, route in routes.items():
            if before.get(key) != route:
                if key in before:
                    self._tell_edge(before[key], active=False)
                log.info("rule %s/%s: %s -> %s", *key, route.source_type, route.target_type)
                self._tell_edge(route, active=True)
        for key, route in before.items():
            if key not in routes:
                self._tell_edge(route, active=False)
        for key, reason in broken.items():
            if self.broken.get(key) != reason:
                log.warning("rule %s/%s cannot work: %s", *key, reason)
                self._count(key, ok=False, error=reason, counted=False)
        self.broken = broken

    def _tell_edge(self, route: Route, *, active: bool) -> None:
        """A bus or servicebus source's subscription (upstream's RegisterListener/UnregisterListener)."""
        if route.source_type == EVENTBUS:
            message = Message.new(source="router_eventbus", group="user", resource=f"node/{route.node}/{route.topic}",
                                  operation="subscribe" if active else "unsubscribe")
        elif route.source_type == SERVICEBUS:
            message = Message.new(source="router_servicebus", group="user",
                                  resource=f"node/{route.node}/{route.target_url}", operation="start" if active else "stop")
        else:
            return
        self._send(message)

    def _send(self, message: Message) -> bool:
        try:
            self.ctx.send_nowait(HUB, message)
            return True
        except BeehiveError as error:
            log.warning("cannot hand %s to CloudHub: %s", message.describe(), error)
            return False

    # the mailbox: sessions and uploads ----------------------------------------------------------
    async def _read_mailbox(self) -> None:
        while True:
            message = await self.ctx.receive(self.name)
            try:
                self._from_hub(message)
            except Exception:  # noqa: BLE001 - one bad upload must not stop the Router
                log.exception("dropped %s", message.describe())

    def _from_hub(self, message: Message) -> None:
        if message.route.source == "cloudhub" and message.route.operation in ("connected", "disconnected"):
            node = message.route.resource.split("/", 1)[-1]
            if message.route.operation == "connected":
                self.connected.add(node)
                for known in self.routes.values():   # what it may have missed while away
                    if known.node == node:
                        self._tell_edge(known, active=True)
            else:
                self.connected.discard(node)
            return
        if message.parent_msg_id:
            self.ctx.send_response(message)  # ServiceBus's answer to a request an ingress call waits for
            return
        node, _, resource = message.route.resource.removeprefix("node/").partition("/")
        route: Route | None
        if message.route.source == "bus":
            route = next((r for r in self.routes.values() if r.source_type == EVENTBUS and r.node == node
                          and r.topic == resource), None)
        elif message.route.source == "servicebus":
            route = next((r for r in self.routes.values() if r.source_type == SERVICEBUS and r.node == node
                          and r.target_url == resource), None)
        else:
            route = None
        if route is None:
            log.debug("upload from node %s on %r: no rule", node, resource[:200])
            if message.route.source == "servicebus":
                self._answer_upload(message, 404, f"no rule for {resource[:200]} from node {node}")
            return
        self.tasks.spawn(self._to_rest(route, node, message), f"rest-{route.rule}")

    # edge -> rest target ------------------------------------------------------------------------
    async def _to_rest(self, route: Route, node: str, message: Message) -> None:
        method, body = "POST", _content_bytes(message.content)
        if route.source_type == SERVICEBUS:
            method, body = _servicebus_call(body)
        if len(body) > self.max_body:
            self._fail(route, message, 413, f"body over {self.max_body} bytes")
            return
        import aiohttp

        try:
            async with self.client.request(method, route.resource, data=body, headers={"NodeName": node},
                                           allow_redirects=False) as response:
                answer = await response.content.read(self.max_body + 1)
                status = response.status
        except TimeoutError:
            self._fail(route, message, 504, f"cloud -> {_host(route.resource)}: no answer within {self.timeout:g}s")
            return
        except (aiohttp.ClientError, OSError) as error:
            self._fail(route, message, 502, f"cloud -> {_host(route.resource)}: {error}")
            return
        if len(answer) > self.max_body:
            self._fail(route, message, 413, f"the answer of {_host(route.resource)} is over {self.max_body} bytes")
            return
        ok = status < 400
        self._count(route_key(route), ok=ok, error="" if ok else f"{_host(route.resource)} answered {status}")
        if route.source_type == SERVICEBUS:
            # upstream: the target's body as a string, whatever its status
            self._send(message.response(answer.decode("utf-8", "replace")))

    def _fail(self, route: Route, message: Message, code: int, reason: str) -> None:
        log.warning("rule %s: %s", route.key, reason)
        self._count(route_key(route), ok=False, error=reason)
        if route.source_type == SERVICEBUS:
            self._answer_upload(message, code, reason)

    def _answer_upload(self, message: Message, code: int, reason: str) -> None:
        self._send(message.response({"code": code, "msg": reason}, operation="response_error"))

    # the REST ingress ---------------------------------------------------------------------------
    def decide(self, node: str) -> Decision:
        return Decision("local") if node in self.connected else Decision("offline")

    async def _ingress(self, request: Any) -> Any:
        from aiohttp import web

        try:
            path = rules.parse_ingress(request.raw_path)
        except rules.PathError as error:
            return web.Response(status=error.status, text=str(error))
        matched = rules.match_rest(self.routes.values(), path)
        if matched is None:
            return web.Response(status=404, text=f"no rule matches /{path.namespace}/{'/'.join(path.segments)}")
        route, param = matched
        if self.in_flight >= self.max_in_flight:
            return web.Response(status=503, text=f"router busy: {self.max_in_flight} requests in flight")
        self.in_flight += 1
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return web.Response(status=413, text=f"request body over {self.max_body} bytes")
            decision = self.decide(path.node)
            if decision.action != "local":
                return await self._not_here(path.node, route)
            if route.target_type == EVENTBUS:
                return self._publish(route, path.node, param, body)
            return await self._call_edge(route, path.node, param, request, body)
        finally:
            self.in_flight -= 1

    async def _not_here(self, node: str, route: Route) -> Any:
        from aiohttp import web

        try:
            await self.kube.get_node(node)
        except KubeError as error:
            if error.code == 404:
                return web.Response(status=404, text=f"node {node} does not exist")
            return web.Response(status=503, text=f"node {node}: the API answered {error.code}")
        self._count(route_key(route), ok=False, error=f"node {node} is offline")
        return web.Response(status=503, text=f"node {node} is not connected")

    def _publish(self, route: Route, node: str, param: str, body: bytes) -> Any:
        from aiohttp import web

        topic = rules.join_target(route.target_topic, param.partition("?")[0])
        if not self._send(Message.new(source="router_eventbus", group="user", operation="publish",
                                      resource=f"node/{node}/{topic}", content=body.decode("utf-8", "replace"))):
            self._count(route_key(route), ok=False, error="CloudHub's mailbox is full")
            return web.Response(status=503, text="cloud -> edge: the link is congested, try again")
        self._count(route_key(route), ok=True)
        return web.Response(status=200, text="message delivered")

    async def _call_edge(self, route: Route, node: str, param: str, request: Any, body: bytes) -> Any:
        from aiohttp import web

        method = request.method.upper()
        if method not in METHODS:
            return web.Response(status=405, text=f"method {method[:20]} is not passed to edges")
        header: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            if name.lower() not in HOP_HEADERS:
                header.setdefault(name, []).append(value)
        target = rules.join_target(route.target_path, param)
        content = {"header": header, "body": base64.b64encode(body).decode(), "method": method, "url": target}
        message = Message.new(source="router_servicebus", group="user", operation=method,
                              resource=f"node/{node}/{route.service_port}:{target}", content=content)
        try:
            reply = await self.ctx.send_sync(HUB, message, self.timeout)
        except SyncTimeout:
            self._count(route_key(route), ok=False, error=f"node {node} did not answer within {self.timeout:g}s")
            return web.Response(status=504, text=f"cloud -> edge: node {node} did not answer within {self.timeout:g}s")
        except BeehiveError as error:
            return web.Response(status=503, text=str(error))
        status, headers, answer = _http_response(reply.content)
        if len(answer) > self.max_body:
            status, headers, answer = 413, {}, f"the edge's answer is over {self.max_body} bytes".encode()
        self._count(route_key(route), ok=status < 400, error="" if status < 400 else f"edge answered {status}")
        response = web.Response(status=status, body=answer)
        for name, values in headers.items():
            if name.lower() not in HOP_HEADERS and name.lower() != "content-encoding":
                for value in values:
                    response.headers.add(name, value)
        return response

    # status -----------------------------------------------------------------------------------
    def _count(self, key: tuple[str, str], *, ok: bool, error: str = "", counted: bool = True) -> None:
        """One message's outcome (``counted``: False for a rule's own error, which is no message)."""
        counts = self.counts.setdefault(key, Counts())
        if ok:
            counts.success += 1
        else:
            counts.fail += int(counted)
            if error:
                counts.errors.append(error[:500])

    async def _flush_counts(self) -> None:
        while True:
            await asyncio.sleep(STATUS_FLUSH_SECONDS)
            pending, self.counts = self.counts, {}
            for key, counts in pending.items():
                try:
                    await self._write_status(key, counts)
                except (KubeError, OSError) as error:
                    log.warning("rule %s/%s: status not written: %s", *key, error)

    async def _write_status(self, key: tuple[str, str], counts: Counts) -> None:
        namespace, name = key
        path = f"{API}/namespaces/{namespace}/rules/{name}"
        try:
            current = await self.kube.request("GET", path)
        except KubeError as error:
            if error.code == 404:
                return
            raise
        status = current.get("status") or {}
        errors = [str(e) for e in status.get("errors") or [] if isinstance(e, str)]
        patch = {"status": {
            "successMessages": int(status.get("successMessages") or 0) + counts.success,
            "failMessages": int(status.get("failMessages") or 0) + counts.fail,
            "errors": (errors + counts.errors)[-KEPT_ERRORS:],
        }}
        # the Router is the status's only writer (upstream's too), so a read-then-merge is enough
        await self.kube.request("PATCH", path, patch, content_type="application/merge-patch+json")


def route_key(route: Route) -> tuple[str, str]:
    return route.namespace, route.rule


def _content_bytes(content: Any) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode()
    return json.dumps(content).encode()


def _servicebus_call(raw: bytes) -> tuple[str, bytes]:
    """An edge app's ``{"method", "targetURL", "payload"}`` -> the method and body to send.

    Upstream's edge puts it on the link as a Go ``[]byte`` (base64 text), and upstream's cloud
    POSTs that text as it is; ours sends what the app meant: its method and its payload."""
    document: Any = None
    for candidate in (raw, _unbase64(raw)):
        if candidate is None:
            continue
        try:
            document = json.loads(candidate)
            break
        except ValueError:
            continue
    if not isinstance(document, dict):
        return "POST", raw
    method = str(document.get("method") or "POST").upper()
    payload = document.get("payload")
    body = payload.encode() if isinstance(payload, str) else b"" if payload is None else json.dumps(payload).encode()
    return (method if method in METHODS else "POST"), body


def _unbase64(raw: bytes) -> bytes | None:
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


def _http_response(content: Any) -> tuple[int, dict[str, list[str]], bytes]:
    """upstream's ``HTTPResponse {header, status_code, body}`` from the edge."""
    if isinstance(content, (str, bytes)):
        try:
            content = json.loads(content)
        except ValueError:
            return 502, {}, b"the edge's answer is not an HTTPResponse"
    if not isinstance(content, dict):
        return 502, {}, b"the edge's answer is not an HTTPResponse"
    try:
        status = int(content.get("status_code") or 0)
    except (TypeError, ValueError):
        status = 0
    if not 100 <= status <= 599:
        return 502, {}, b"the edge's answer has no valid status"
    body = _unbase64(str(content.get("body") or "").encode()) if content.get("body") else b""
    raw_header = content.get("header")
    header: dict[Any, Any] = raw_header if isinstance(raw_header, dict) else {}
    headers = {str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in header.items()
               if isinstance(k, str) and "\n" not in k and "\r" not in k}
    headers = {k: [v for v in vs if "\n" not in v and "\r" not in v] for k, vs in headers.items()}
    return status, headers, body if body is not None else b""


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url[:80]
