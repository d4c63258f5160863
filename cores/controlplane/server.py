"""The HTTPS server: Kubernetes API paths onto :class:`Api`, authentication, and the process around it.

Authentication is by client certificate (verified against the control plane's CA) or bearer
token (the config's static tokens, or a service-account token this server signed); anonymous
requests get 401, except the health and version endpoints that a real cluster also shows to
anyone. Authorization is :mod:`.authz`'s chain: ``system:masters`` (who alone may impersonate),
discovery for every authenticated identity, the Node authorizer for nodes; other identities get
403 with kube-apiserver's wording. The controllers (:mod:`cores.controlplane.controllers`) run in this
process, on the same loop, through the in-process :class:`Api`.

Every request is hostile until it is answered (limits in :mod:`cores.controlplane.limits`): the
socket caps connections per source and bounds the time to send headers (:mod:`.transport`); the
body is read only after authentication, within a size bound (413) and a deadline (408), must be
identity-encoded (415) and is parsed by :mod:`.jsonbody` (400 for invalid UTF-8, depth, NaN);
query parameters are parsed before use (400); every value of a built-in object has its schema's
type (400, :mod:`.typecheck`). Whatever still goes wrong is a 500 ``Status``, logged, never a
dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

from cores.common import kubeproto as protobuf
from cores.common.config import Config
from cores.common.selectors import selector_fields
from cores.controlplane import (authz, controllers, discovery, errors, metrics, openapi, openapi_v2proto, pki, podstreams, protoencode,
                                rbac, serviceaccounts, views)
from cores.controlplane.api import Api, check_definition, parse_json_body, parse_resource_version, selector_matcher
from cores.controlplane.bootstrap import bootstrap_objects
from cores.controlplane.limits import MAX_RESOURCE_VERSION, ServerLimits
from cores.controlplane.registry import BUILTINS, Registry, ResourceType
from cores.controlplane.store import Store
from cores.controlplane.transport import GatedTLSSite
from cores.controlplane.watch import stream

log = logging.getLogger("kubeedge.controlplane")

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
JSON = "application/json"
PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")  # sorted as kube-apiserver lists them
MAX_WATCH_TIMEOUT_SECONDS = 24 * 3600.0


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return pki.ADMIN_GROUP in self.groups


@dataclasses.dataclass(frozen=True)
class Target:
    """What a resource path names."""

    resource: ResourceType
    namespace: str | None
    name: str
    subresource: str
    legacy_watch: bool


def respond(body: Any, status: int = 200) -> web.Response:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return web.Response(text=text, status=status, content_type=JSON)


def list_document(resource: ResourceType, revision: int, items: list[str], continue_token: str) -> str:
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if continue_token:
        metadata["continue"] = continue_token
    head = json.dumps({"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": metadata},
                      separators=(",", ":"))
    return head[:-1] + ',"items":[' + ",".join(items) + "]}"


class ApiServer:
    def __init__(self, config: Config, limits: ServerLimits | None = None) -> None:
        self.config = config
        self.limits = limits or ServerLimits.from_config(config)
        data_dir = Path(config.dataDir)
        self.registry = Registry((*BUILTINS, *metrics.RESOURCES))  # metrics.k8s.io: served, never stored
        self.store = Store(data_dir / "state.db", selector_fields, watch_queue_size=config.watchQueueSize)
        self.api = Api(self.store, self.registry, config.serviceClusterIPRange, self.limits.max_json_depth)
        self.tokens = {t["token"]: User(t.get("user", ""), _with_authenticated(t.get("groups") or ()), t.get("uid", ""))
                       for t in config.authentication.tokens}
        self.signer = serviceaccounts.TokenSigner(pki.Pki(Path(config.pkiDir)).service_account_key)
        self.api.admission.append(self._admit)
        self.max_body = self.limits.max_request_bytes
        # Protobuf answers cost us a decode and an encode per object (stored JSON is sent as it is),
        # and save Go clients their slower JSON decoding; server.protobufResponses: false turns them off.
        self.protobuf_responses = bool(config.server.get("protobufResponses", True))
        self._tasks: list[asyncio.Task[None]] = []
        paths = pki.Pki(Path(config.pkiDir))
        kubelet_client = config.get("kubeletClient") or {}
        self.pod_streams = podstreams.PodStreams(self.api, self.registry, str(kubelet_client.get("streamServer") or ""),
                                                 str(paths.kubelet_client_cert), str(paths.kubelet_client_key),
                                                 str(kubelet_client.get("caFile") or ""))
        self.metrics = metrics.Metrics(self._node_summary)
        self.node_authorizer = authz.NodeAuthorizer(self._pods_of)
        self.rbac = rbac.Rbac(self.api, self.registry)

    # application --------------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await self._answer(request, handler)
        return _negotiated(request, response) if self.protobuf_responses else response

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if request.path not in PUBLIC_PATHS:
                user = await self._authenticate(request)
                if user is None:
                    raise errors.unauthorized()
                request["user"] = await self._impersonated(request, user)
            await self._read_body(request)
            response: web.StreamResponse = await handler(request)
            return response
        except errors.ApiError as error:
            return _closing(respond(error.status(), error.code), error.code in (408, 413))
        except web.HTTPRequestEntityTooLarge:
            too_large = errors.too_large(self.max_body)
            return _closing(respond(too_large.status(), too_large.code), True)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nobody to answer
        except Exception as error:  # noqa: BLE001 - a bug answers 500 with a Status, never a dropped connection
            log.exception("%s %s failed", request.method, request.path[:200])
            internal = errors.internal(f"{type(error).__name__} while serving the request")
            return respond(internal.status(), internal.code)

    async def _read_body(self, request: web.Request) -> None:
        """Read the whole body now, within the size bound and the body deadline; handlers get it cached.

        Only identity bodies: kube-apiserver decodes no Content-Encoding on requests, and inflating
        one would let 3 MiB on the wire become gigabytes in memory.
        """
        if not request.body_exists:
            return
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise errors.ApiError(415, "UnsupportedMediaType",
                                  f"the request body has Content-Encoding {encoding[:40]!r}; only identity bodies are accepted")
        if request.content_length is not None and request.content_length > self.max_body:
            raise errors.too_large(self.max_body)
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                await request.read()
        except TimeoutError:
            raise errors.ApiError(408, "Timeout", f"the request body was not received within "
                                                  f"{self.limits.body_timeout:g} s") from None

    async def _authenticate(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return await self.authenticate_token(header[7:].strip())
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        if not cert:
            return None
        subject = [attribute for rdn in cert.get("subject", ()) for attribute in rdn]
        names = [value for key, value in subject if key == "commonName"]
        groups = tuple(value for key, value in subject if key == "organizationName")
        return User(names[0], _with_authenticated(groups)) if names else None

    async def authenticate_token(self, token: str) -> User | None:
        user = self.tokens.get(token)
        if user is not None or not serviceaccounts.looks_like_jwt(token):
            return user
        identity = await serviceaccounts.authenticate(self.api, self.signer, token)
        return None if identity is None else User(identity.name, identity.groups, identity.uid, identity.extra)

    async def _admit(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        if resource.kind == "Pod" and resource.group == "":
            await serviceaccounts.admit_pod(self.api, obj)

    async def _authorize(self, request: web.Request, verb: str, target: Target | None, path: str) -> None:
        """kube-apiserver's chain (:mod:`.authz`): masters, discovery for anyone authenticated, the
        Node authorizer for nodes, then RBAC; 403 with its wording otherwise."""
        user: User = request["user"]
        if user.is_admin:
            return
        attributes = authz.Request(
            user.name, user.groups, verb, path, target.resource.group if target else "",
            target.resource.plural if target else "", target.subresource if target else "",
            (target.namespace or "") if target else "", target.name if target else "",
            request.query.get("fieldSelector", "") if target else "")

        async def body() -> Any:
            return await self._object_body(request)

        allowed, reason = await self.decide(attributes, body)
        if allowed:
            return
        denied = authz.Denied(attributes, reason)
        if target is None:
            raise errors.forbidden(str(denied))
        raise errors.forbidden(str(denied), target.resource.group, target.resource.plural, target.name)

    async def _confirm_no_escalation(self, request: web.Request, target: Target, verb: str) -> None:
        """RBAC's escalation check: a role may only be written with rules its writer already holds (or
        the ``escalate`` verb on it), a binding only to a role whose rules the writer holds (or
        ``bind`` on it). A patch by anyone but masters needs ``escalate``/``bind``: its result is not
        known before it is applied."""
        user: User = request["user"]
        if user.is_admin:
            return
        plural, namespace = target.resource.plural, target.namespace or ""
        binding = plural in ("rolebindings", "clusterrolebindings")
        body = None if verb == "patch" else await self._object_body(request)
        ref: dict[str, Any] = {}
        if binding:
            given = body.get("roleRef") if isinstance(body, dict) else None
            ref = given if isinstance(given, dict) else {}
            role_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            role_name = str(ref.get("name") or "")
            special = authz.Request(user.name, user.groups, "bind", request.path, rbac.GROUP, role_plural, "",
                                    namespace if role_plural == "roles" else "", role_name)
        else:
            special = authz.Request(user.name, user.groups, "escalate", request.path, rbac.GROUP, plural, "", namespace,
                                    target.name or _name_of(body))
        if (await self.decide(special))[0]:
            return
        if body is not None:
            rules = await self.rbac.rules_of_ref(ref, namespace) if binding else \
                [r for r in (body.get("rules") or []) if isinstance(r, dict)] if isinstance(body, dict) else []
            if rules is not None and await self._holds(user, rules, namespace):
                return
        what = "bind the role it refers to" if binding else "grant the permissions it holds"
        raise errors.forbidden(f'{plural}.{rbac.GROUP} "{target.name or _name_of(body)}" is forbidden: user "{user.name}" '
                               f'(groups={list(user.groups)}) is attempting to {what} without holding them '
                               f'(it needs "{special.verb}" on {special.resource})', rbac.GROUP, plural, target.name)

    async def _holds(self, user: User, rules: list[dict[str, Any]], namespace: str) -> bool:
        """Whether ``user`` is already allowed everything ``rules`` grant (wildcards need wildcards)."""
        for rule in rules:
            names = [str(n) for n in rule.get("resourceNames") or []] or [""]
            for verb in [str(v) for v in rule.get("verbs") or []]:
                for url in [str(u) for u in rule.get("nonResourceURLs") or []]:
                    if not (await self.decide(authz.Request(user.name, user.groups, verb, url)))[0]:
                        return False
                for group in [str(g) for g in rule.get("apiGroups") or []]:
                    for resource in [str(r) for r in rule.get("resources") or []]:
                        base, _, sub = resource.partition("/")
                        for name in names:
                            asked = authz.Request(user.name, user.groups, verb, "", group, base, sub, namespace, name)
                            if not (await self.decide(asked))[0]:
                                return False
        return True

    async def decide(self, attributes: authz.Request, body: authz.BodyOf | None = None) -> tuple[bool, str]:
        """(allowed, reason) for a request's attributes, as the chain decides (also SubjectAccessReviews')."""
        if pki.ADMIN_GROUP in attributes.groups:
            return True, ""
        if attributes.resource in ("selfsubjectreviews", "selfsubjectaccessreviews") and attributes.verb == "create":
            return True, ""  # system:basic-user: anyone authenticated may ask who they are and what they may do
        if authz.is_discovery(attributes):
            return True, ""
        reason = ""
        node = authz.node_name(attributes.user, attributes.groups)
        if node:
            async def nobody() -> Any:
                return {}

            decided = await self.node_authorizer.decide(node, attributes, body or nobody)
            if decided is None:
                return True, ""
            reason = decided
        if await self.rbac.allows(attributes):
            return True, ""
        return False, reason

    async def _impersonated(self, request: web.Request, user: User) -> User:
        """``Impersonate-User`` (and ``-Group``, ``-Uid``, ``-Extra-*``): only ``system:masters`` may."""
        as_user = request.headers.get("Impersonate-User", "")
        as_groups = request.headers.getall("Impersonate-Group", [])
        if not as_user:
            if as_groups or any(h.lower().startswith("impersonate-") for h in request.headers):
                raise errors.bad_request("requested impersonation of groups or extra without a user")
            return user
        if not user.is_admin:
            raise errors.forbidden(f'users "{as_user}" is forbidden: User "{user.name}" cannot impersonate resource '
                                   f'"users" in API group "" at the cluster scope', "", "users", as_user)
        groups = [g for g in as_groups if g]  # each header value is one group, commas and all (as kube-apiserver)
        extra = {h[len("Impersonate-Extra-"):].lower(): request.headers.getall(h) for h in request.headers
                 if h.lower().startswith("impersonate-extra-")}
        if as_user.startswith("system:serviceaccount:") and len(as_user.split(":")) == 4:
            namespace = as_user.split(":")[2]
            groups += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        return User(as_user, _with_authenticated(groups), request.headers.get("Impersonate-Uid", ""), extra)

    # routing ------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return respond(discovery.KUBERNETES_VERSION)
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            return await self._resource_path(request, "", "v1", parts[2:], path)
        if parts and parts[0] == "apis" and len(parts) >= 3:
            return await self._resource_path(request, parts[1], parts[2], parts[3:], path)
        await self._authorize(request, "get", None, path)
        if parts == ["api"]:
            return respond(discovery.api_versions(f"{self.config.server.advertiseAddress}:{self.config.server.port}"))
        if parts == ["apis"]:
            return respond(discovery.api_group_list(self.registry))
        if len(parts) == 2 and parts[0] == "apis":
            group = discovery.api_group(self.registry, parts[1])
            if group is not None:
                return respond(group)
        if path == "/admin/compact" and request.method == "POST":
            return await self._compact(request)
        if path.startswith("/openapi/v3"):
            document = views.openapi_v3(self.registry, await self._stored_crds(), path)
            if document is not None:
                return respond(document)
        if path == "/openapi/v2":
            accept = request.headers.get("Accept", "application/json")
            if "proto-openapi.spec.v2" in accept and "application/json" not in accept:
                # kubectl asks for the protobuf form only (1.20 validates and explains with it)
                body = views.openapi_v2_protobuf(self.registry, await self._stored_crds())
                return web.Response(body=body, headers={"Content-Type": openapi_v2proto.CONTENT_TYPE})
            if "json" not in accept and "*/*" not in accept:
                return web.Response(status=406, text="application/json or protobuf only")
            return respond(views.openapi_v2(self.registry, await self._stored_crds()))
        raise errors.path_not_found(path)

    async def _resource_path(self, request: web.Request, group: str, version: str, rest: list[str], path: str) -> web.StreamResponse:
        if not rest:
            await self._authorize(request, "get", None, path)
            document = discovery.api_resource_list(self.registry, group, version)
            if document is None:
                raise errors.path_not_found(path)
            return respond(document)
        target = self._target(group, version, rest, path)
        verb = self._verb(request, target)
        await self._authorize(request, verb, target, path)
        if target.resource.group == rbac.GROUP and verb in ("create", "update", "patch"):
            await self._confirm_no_escalation(request, target, verb)
        return await self._serve(request, target, verb)

    def _target(self, group: str, version: str, rest: list[str], path: str) -> Target:
        legacy_watch = rest[0] == "watch"
        if legacy_watch:
            rest = rest[1:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = self.registry.get(group, version, rest[0]) if rest else None
        if resource is None or len(rest) > 3 or (namespace is not None and not resource.namespaced):
            raise errors.path_not_found(path)
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and subresource not in resource.subresources:
            raise errors.path_not_found(path)
        return Target(resource, namespace, name, subresource, legacy_watch)

    @staticmethod
    def _verb(request: web.Request, target: Target) -> str:
        method = request.method
        watching = target.legacy_watch or request.query.get("watch") in ("1", "true", "True")
        if method == "GET":
            if target.subresource in ("exec", "attach", "portforward"):
                return "create"  # a WebSocket upgrade is a GET: kube-apiserver authorises it as create (1.31+)
            if watching:
                return "watch"
            return "get" if target.name else "list"
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
        if method in verbs:
            return verbs[method]
        if method == "DELETE":
            return "delete" if target.name else "deletecollection"
        raise errors.method_not_allowed(method, request.path)

    # verbs --------------------------------------------------------------------------------
    async def _serve(self, request: web.Request, target: Target, verb: str) -> web.StreamResponse:
        resource, namespace, name, sub = target.resource, target.namespace, target.name, target.subresource
        query = request.query
        dry_run = "dryRun" in query
        if verb not in resource.verbs and not sub:
            raise errors.method_not_allowed(verb, request.path)
        if sub == "scale":
            return await self._scale(request, target, verb, dry_run)
        if sub in podstreams.SUBRESOURCES and resource.kind == "Pod":
            return await self.pod_streams.serve(request, namespace or "", name, sub)
        if resource.group == metrics.GROUP:
            return respond(await self._metrics(request, target))
        if verb == "get":
            _query_resource_version(query)
            item = await self.api.get(resource, namespace, name)
            table = views.table_for(resource, request.headers.get("Accept", ""), query, [item],
                                    {"resourceVersion": views.resource_version_of(item)})
            return respond(table if table is not None else item)
        if verb == "list":
            return await self._list(request, resource, namespace)
        if verb == "watch":
            return await self._watch(request, target)
        if verb == "create":
            body = await self._object_body(request)
            if sub == "binding" or resource.plural == "bindings":
                pods = self.registry.get("", "v1", "pods")
                assert pods is not None
                await self.api.bind(pods, namespace or "", name or _name_of(body), body)
                return respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)
            if sub == "token" and resource.plural == "serviceaccounts":
                check_definition("io.k8s.api.authentication.v1.TokenRequest", body)
                return respond(await serviceaccounts.create_token(self.api, self.signer, namespace or "", name, body), 201)
            if resource.group == "authentication.k8s.io":
                return respond(await self._review(request, resource, body), 201)
            if resource.group == "authorization.k8s.io":
                return respond(await self._access_review(request, resource, body), 201)
            if name or sub:
                raise errors.method_not_allowed("POST", request.path)
            warnings = views.check_fields(resource, body, query, await self._crds_for(resource))
            return _warned(respond(await self.api.create(resource, namespace, body, dry_run), 201), warnings)
        if verb == "update":
            body = await self._object_body(request)
            warnings = views.check_fields(resource, body, query, await self._crds_for(resource)) if not sub else []
            return _warned(respond(await self.api.update(resource, namespace, name, body, sub, dry_run)), warnings)
        if verb == "patch":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            crds, warnings = await self._crds_for(resource), []
            checker = None if sub else (lambda obj: warnings.extend(views.check_fields(resource, obj, query, crds)))
            patched = await self.api.patch(resource, namespace, name, await request.read(), content_type, sub, dry_run, checker)
            return _warned(respond(patched), warnings)
        options = await self._delete_options(request)
        if verb == "delete":
            removed, obj = await self.api.delete(resource, namespace, name, options, dry_run)
            if resource.kind == "Pod" or not removed:
                return respond(obj)
            return respond(_success(resource, obj))
        deleted = await self.api.delete_collection(resource, namespace, options, query.get("labelSelector", ""),
                                                   query.get("fieldSelector", ""), dry_run)
        return respond({"kind": resource.list_kind, "apiVersion": resource.api_version,
                        "metadata": {"resourceVersion": str(self.store.revision)}, "items": deleted})

    async def _pods_of(self, node: str) -> list[dict[str, Any]]:
        pods = self.registry.get("", "v1", "pods")
        assert pods is not None
        _, items, _ = await self.api.list(pods, None, field_selector=f"spec.nodeName={node}")
        return [json.loads(item) for item in items]

    async def _object_body(self, request: web.Request) -> Any:
        """The request body as a JSON value, whether it came as JSON or as protobuf (any verb)."""
        data = await request.read()
        if request.headers.get("Content-Type", "").split(";")[0].strip() == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(data)
            except protobuf.ProtobufError as error:
                raise errors.unsupported_media_type(protobuf.CONTENT_TYPE, ["application/json", "application/yaml"]) \
                    if "not supported" in str(error) else errors.bad_request(str(error)) from None
        return parse_json_body(data, self.limits.max_json_depth)

    async def _scale(self, request: web.Request, target: Target, verb: str, dry_run: bool) -> web.Response:
        resource, namespace, name = target.resource, target.namespace, target.name
        if verb == "get":
            return respond(await self.api.get_scale(resource, namespace, name))
        if verb not in ("update", "patch"):
            raise errors.method_not_allowed(verb, request.path)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip() if verb == "patch" else ""
        return respond(await self.api.write_scale(resource, namespace, name, await request.read(), content_type, dry_run))

    async def _node_summary(self, node: str) -> dict[str, Any]:
        return metrics.parse_summary(await self.pod_streams.kubelet_get(node, "/stats/summary"))

    async def _metrics(self, request: web.Request, target: Target) -> dict[str, Any]:
        """metrics.k8s.io: the selected nodes or pods, with the usage their nodes report."""
        selector = request.query.get("labelSelector", "")
        nodes = self.registry.get("", "v1", "nodes")
        assert nodes is not None
        if target.resource is metrics.NODE_METRICS:
            if target.name:
                return await self.metrics.node_metrics([json.loads(await self.api.get(nodes, None, target.name))],
                                                       target.name)
            _, items, _ = await self.api.list(nodes, None, label_selector=selector)
            return await self.metrics.node_metrics([json.loads(item) for item in items], "")
        pods = self.registry.get("", "v1", "pods")
        assert pods is not None
        if target.name:
            selected = [json.loads(await self.api.get(pods, target.namespace, target.name))]
        else:
            _, items, _ = await self.api.list(pods, target.namespace, label_selector=selector)
            selected = [json.loads(item) for item in items]
        _, node_items, _ = await self.api.list(nodes, None, label_selector=metrics.EDGE_LABEL)
        edge_nodes = {json.loads(item)["metadata"]["name"] for item in node_items}
        return await self.metrics.pod_metrics(selected, edge_nodes, target.name)

    async def _review(self, request: web.Request, resource: ResourceType, body: Any) -> dict[str, Any]:
        version = resource.version
        if resource.plural == "selfsubjectreviews":
            user: User = request["user"]
            return serviceaccounts.self_subject_review(version, user.name, user.uid, user.groups, user.extra)
        token = str(((body or {}).get("spec") or {}).get("token") or "") if isinstance(body, dict) else ""
        found = await self.authenticate_token(token) if token else None
        identity = None if found is None else serviceaccounts.Identity(found.name, found.uid, found.groups, found.extra)
        return serviceaccounts.token_review(version, body, identity, list(serviceaccounts.API_AUDIENCES))

    async def _access_review(self, request: web.Request, resource: ResourceType, body: Any) -> dict[str, Any]:
        """A SubjectAccessReview (or the requester's own SelfSubjectAccessReview): the chain's decision."""
        check_definition(f"io.k8s.api.authorization.v1.{resource.kind}", body)
        spec = dict(body.get("spec") or {}) if isinstance(body, dict) else {}
        if resource.plural == "selfsubjectaccessreviews":
            user: User = request["user"]
            name, groups = user.name, user.groups
        else:
            name, groups = str(spec.get("user") or ""), tuple(str(g) for g in spec.get("groups") or ())
            if not name and not groups:
                raise errors.ApiError(422, "Invalid", f'{resource.kind}.authorization.k8s.io "" is invalid: spec.user: '
                                                      f'Invalid value: "": at least one of user or group must be specified')
        attrs = spec.get("resourceAttributes") or {}
        plain = spec.get("nonResourceAttributes") or {}
        if attrs:
            attributes = authz.Request(name, groups, str(attrs.get("verb") or ""), "", str(attrs.get("group") or ""),
                                       str(attrs.get("resource") or ""), str(attrs.get("subresource") or ""),
                                       str(attrs.get("namespace") or ""), str(attrs.get("name") or ""))
        else:
            attributes = authz.Request(name, groups, str(plain.get("verb") or ""), str(plain.get("path") or ""))
        allowed, reason = await self.decide(attributes)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        return {"kind": resource.kind, "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}

    async def _list(self, request: web.Request, resource: ResourceType, namespace: str | None) -> web.Response:
        query = request.query
        _query_resource_version(query)
        limit = _int_query(query, "limit", 0, MAX_RESOURCE_VERSION)
        revision, items, token = await self.api.list(
            resource, namespace, label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", ""), limit=max(limit, 0), continue_token=query.get("continue", ""),
        )
        metadata = {"resourceVersion": str(revision), **({"continue": token} if token else {})}
        table = views.table_for(resource, request.headers.get("Accept", ""), query, items, metadata)
        return respond(table if table is not None else list_document(resource, revision, items, token))

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        field_selector = query.get("fieldSelector", "")
        if target.name:
            name_selector = f"metadata.name={target.name}"
            field_selector = f"{field_selector},{name_selector}" if field_selector else name_selector
        matcher = selector_matcher(target.resource, query.get("labelSelector", ""), field_selector)
        timeout = _int_query(query, "timeoutSeconds", 0, 2**63 - 1) if query.get("timeoutSeconds") else None
        resource_version = str(_query_resource_version(query) or "") if query.get("resourceVersion") else ""
        transform = views.watch_table_transform(target.resource, request.headers.get("Accept", ""), query)
        content_type = JSON
        if transform is None and self.protobuf_responses and wants_protobuf(request.headers.get("Accept", "")) \
                and protoencode.message_name(target.resource.api_version, target.resource.kind) is not None:
            transform, content_type = _protobuf_watch_frames, f"{protobuf.CONTENT_TYPE};stream=watch"
        response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        def gone() -> bool:
            transport = request.transport
            return transport is None or transport.is_closing()

        lines = stream(self.api, target.resource, target.namespace, matcher, resource_version=resource_version,
                       timeout=min(float(timeout), MAX_WATCH_TIMEOUT_SECONDS) if timeout else None,
                       bookmarks=query.get("allowWatchBookmarks") in ("1", "true", "True"), client_gone=gone)
        try:
            async for chunk in lines:
                await response.write(transform(chunk) if transform is not None else chunk)
        except ConnectionResetError:
            pass  # the client went away (kubectl stops watching once it has what it waited for)
        except asyncio.CancelledError:
            await lines.aclose()
            raise
        except Exception:  # noqa: BLE001 - the headers are out: end this stream, the client re-watches
            log.exception("watch of %s ended by an error", target.resource.plural)
        await lines.aclose()
        return response

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        body = await request.read()
        options: dict[str, Any] = await self._object_body(request) if body.strip() else {}
        if isinstance(options, dict):
            for key in ("apiVersion", "kind"):  # protobuf's TypeMeta, or JSON's: not options
                options.pop(key, None)
            if options.get("metadata") == {}:
                options.pop("metadata")
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        check_definition(openapi.DELETE_OPTIONS, options)
        query = request.query
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = _int_query(query, "gracePeriodSeconds", -(2**63), 2**63 - 1)
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in PROPAGATION_POLICIES:
            listed = ", ".join(f'"{p}"' for p in PROPAGATION_POLICIES)
            raise errors.invalid("meta.k8s.io", "DeleteOptions", "",
                                 f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                                 f'"{str(policy)[:64]}": supported values: {listed}',
                                 [{"reason": "FieldValueNotSupported", "message": "Unsupported value",
                                   "field": "propagationPolicy"}])
        return options

    async def _compact(self, request: web.Request) -> web.Response:
        keep = _int_query(request.query, "keepRevisions", 0, MAX_RESOURCE_VERSION)
        compacted = await self.store.compact(keep_revisions=keep)
        return respond({"compactedRevision": compacted, "revision": self.store.revision})

    # lifecycle ----------------------------------------------------------------------------
    async def start_background(self) -> None:
        await bootstrap_objects(self.api, self.config)
        for crd in await self._stored_crds():
            try:
                self.registry.apply_crd(crd)
            except Exception:  # noqa: BLE001 - one broken CRD must not keep the control plane down
                log.exception("not serving the stored CustomResourceDefinition %s: it is malformed",
                              str((crd.get("metadata") or {}).get("name") if isinstance(crd.get("metadata"), dict) else "?")[:200])
        self._tasks.append(asyncio.create_task(self._periodic(self._compact_history, self.config.history.compactIntervalSeconds)))
        if self.config.controllers.enable:
            self._tasks.extend(controllers.start(self.api, self.config))

    async def _crds_for(self, resource: ResourceType) -> list[dict[str, Any]]:
        return await self._stored_crds() if views.is_custom(resource) else []

    async def _stored_crds(self) -> list[dict[str, Any]]:
        _, rows, _ = await self.store.list("/apiextensions.k8s.io/customresourcedefinitions/")
        return [json.loads(row.value) for row in rows]

    async def _compact_history(self) -> None:
        history = self.config.history
        await self.store.compact(keep_revisions=int(history.revisions), keep_seconds=float(history.minutes) * 60)

    @staticmethod
    async def _periodic(work: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
            except Exception:  # noqa: BLE001 - a failed pass is logged and retried next time
                log.exception("periodic task %s failed", getattr(work, "__name__", work))

    async def stop_background(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _int_query(query: Any, key: str, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or 400 naming it."""
    text = query.get(key) or "0"
    try:
        if len(text) > 20:
            raise ValueError
        value = int(text)
    except ValueError:
        raise errors.bad_request(f'invalid value for query parameter {key}: "{text[:64]}" is not an integer') from None
    if not low <= value <= high:
        raise errors.bad_request(f"invalid value for query parameter {key}: {value} is out of range [{low}, {high}]")
    return value


def _query_resource_version(query: Any) -> int:
    """The request's ``resourceVersion`` query parameter as a revision (0: none); 400 if it is none."""
    text = query.get("resourceVersion", "")
    try:
        return parse_resource_version(text)
    except ValueError as error:
        raise errors.bad_request(f'resourceVersion: Invalid value: "{text[:64]}": {error}') from None


def _closing(response: web.Response, close: bool) -> web.Response:
    """After a refused body (too large, too slow) the connection goes: the rest of it is never read."""
    if close:
        response.force_close()
    return response


def _with_authenticated(groups: Any) -> tuple[str, ...]:
    """Every authenticated user is also in ``system:authenticated`` (kube-apiserver's group adder)."""
    names = tuple(groups)
    return names if serviceaccounts.AUTHENTICATED_GROUP in names else (*names, serviceaccounts.AUTHENTICATED_GROUP)


def _protobuf_watch_frames(chunk: bytes) -> bytes:
    """JSON watch lines as protobuf watch frames. An object that will not encode (stored values are
    type-checked, so it should not happen) raises: the stream ends and the client lists again,
    which it gets in JSON, rather than miss an event."""
    frames = []
    for text in chunk.splitlines():
        if text.strip():
            event = json.loads(text)
            encoded = protoencode.encode(event["object"])
            if encoded is None:
                raise protobuf.ProtobufError(f"no protobuf message for {event['object'].get('kind')!r}")
            frames.append(protoencode.watch_frame(event["type"], encoded))
    return b"".join(frames)


def wants_protobuf(accept: str) -> bool:
    """Whether the first media type of ``accept`` that we serve is protobuf (client-go's default
    "application/vnd.kubernetes.protobuf, */*"); a Table or other ``as=`` view is JSON only."""
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if any(param.startswith("as=") for param in params):
            return False
        if media == protobuf.CONTENT_TYPE:
            return True
        if media in (JSON, "application/*", "*/*", "application/yaml"):
            return False
    return False


def _negotiated(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """A JSON answer re-encoded as protobuf when the client asked for that first and the kind has a
    message (built-in kinds, their lists, Status); anything else stays JSON, as kube-apiserver
    answers custom resources."""
    if not isinstance(response, web.Response) or response.content_type != JSON or not isinstance(response.body, bytes) \
            or not wants_protobuf(request.headers.get("Accept", "")):
        return response
    try:
        encoded = protoencode.encode(json.loads(response.body))
    except (ValueError, protobuf.ProtobufError) as error:
        log.warning("answering %s %s in JSON: its protobuf encoding failed: %s", request.method, request.path[:200], error)
        return response
    if encoded is None:
        return response
    answer = web.Response(body=encoded, status=response.status, content_type=protobuf.CONTENT_TYPE)
    for name, value in response.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            answer.headers.add(name, value)
    if response.keep_alive is False:
        answer.force_close()
    return answer


def _warned(response: web.Response, warnings: list[str]) -> web.Response:
    for warning in warnings:
        response.headers.add("Warning", warning)
    return response


def _name_of(body: Any) -> str:
    name = ((body or {}).get("metadata") or {}).get("name") if isinstance(body, dict) else None
    if not name:
        raise errors.bad_request("a Binding needs metadata.name: the pod to bind")
    return str(name)


def _success(resource: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    details = {"name": metadata.get("name", ""), "kind": resource.plural, "uid": metadata.get("uid", "")}
    if resource.group:
        details["group"] = resource.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def tls_context(paths: pki.Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(paths.server_cert, paths.server_key)
    context.load_verify_locations(paths.ca_cert)
    context.verify_mode = ssl.CERT_OPTIONAL  # a client cert, or a bearer token instead
    return context


def server_url(config: Config) -> str:
    host = config.server.bindAddress
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"https://{host}:{config.server.port}"


def prepare_pki(config: Config) -> pki.Pki:
    """The CA, certificates and admin kubeconfig: created on first start, reused after."""
    server = config.server
    network = config.serviceClusterIPRange
    import ipaddress

    service_ip = str(next(ipaddress.ip_network(network).hosts()))
    paths = pki.ensure_pki(Path(config.pkiDir), [server.advertiseAddress, server.bindAddress], list(server.dnsNames), service_ip)
    kubeconfig = Path(config.adminKubeconfig)
    if not kubeconfig.exists():
        pki.write_kubeconfig(kubeconfig, server_url(config), paths)
    return paths


async def serve(config: Config, limits: ServerLimits | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT, or until ``stop`` is set when one is given (no signal handlers then)."""
    paths = prepare_pki(config)
    server = ApiServer(config, limits)
    await server.start_background()
    runner = web.AppRunner(server.application(), access_log=None, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    site = GatedTLSSite(runner, config.server.bindAddress, int(config.server.port), ssl_context=tls_context(paths),
                        limits=server.limits)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        log.info("controlplane is running: %s (revision %d, admin kubeconfig %s)", server_url(config),
                 server.store.revision, config.adminKubeconfig)
        await stop.wait()
        log.info("controlplane shutting down")
    finally:
        await server.stop_background()
        await runner.cleanup()
        server.store.close()
        log.info("controlplane stopped")


def main(config: Config) -> int:
    try:
        asyncio.run(serve(config))
    except OSError as error:
        log.error("controlplane cannot start: %s", error)
        return 1
    return 0
