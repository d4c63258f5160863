"""Who may do what: impersonation, discovery for everyone, and the Node authorizer.

Decisions follow kube-apiserver's chain, first match wins:

- ``system:masters`` may do anything (and only it may impersonate: ``Impersonate-User`` and
  ``Impersonate-Group`` make the request run as that identity, as CloudCore's DynamicController
  sends an edge's requests);
- any authenticated identity may read discovery, OpenAPI, ``/version`` and health, and ask who it is
  (RBAC's ``system:discovery``, ``system:public-info-viewer`` and ``system:basic-user``);
- a node (``system:node:<name>`` in ``system:nodes``) gets what the Node authorizer and RBAC's
  ``system:node`` role give a kubelet, with selectors (``AuthorizeNodeWithSelectors``, on by default
  since 1.32): its own Node, its own Lease, the pods bound to it (a list or watch only with
  ``spec.nodeName=<node>``), the ConfigMaps, Secrets, PersistentVolumeClaims and ServiceAccounts
  those pods use (a get, or a list or watch of that one name), service-account tokens for them,
  Services, Endpoints and EndpointSlices, and writing Events. NodeRestriction's rule for pods holds:
  a node creates only mirror pods, bound to itself;
- then RBAC (:mod:`cores.controlplane.rbac`), for everyone.

Refusals carry kube-apiserver's wording, with the reason the Node authorizer gives.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from cores.common.objects import pod_references

NODE_PREFIX, NODES_GROUP = "system:node:", "system:nodes"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DISCOVERY_PREFIXES = ("/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz")
READ = frozenset({"get", "list", "watch"})
MAX_TOKEN_SECONDS = 48 * 3600  # as CloudCore's own check of tokens asked for through the link


@dataclasses.dataclass(frozen=True)
class Request:
    """The attributes of one request, as the authorizers see them."""

    user: str
    groups: tuple[str, ...]
    verb: str
    path: str
    group: str = ""
    resource: str = ""       # "" for a path that names no resource
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    field_selector: str = ""

    def named(self) -> str:
        """The name a request is about: its path's, or a list's ``metadata.name=`` selector's."""
        if self.name:
            return self.name
        for term in self.field_selector.split(","):
            key, _, value = term.partition("=")
            if key.strip() in ("metadata.name",) and value and not value.startswith("="):
                return value.strip()
        return ""

    def describe(self) -> str:
        if not self.resource:
            return f'User "{self.user}" cannot {self.verb} path "{self.path}"'
        plural = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f' in the namespace "{self.namespace}"' if self.namespace else ""
        scope = "" if self.namespace else " at the cluster scope"
        return f'User "{self.user}" cannot {self.verb} resource "{plural}" in API group "{self.group}"{where or scope}'


class Denied(Exception):
    def __init__(self, request: Request, reason: str = "") -> None:
        message = request.describe() + (f": {reason}" if reason else "")
        if request.resource:
            plural = request.resource + (f".{request.group}" if request.group else "")
            subject = f'{plural} "{request.name}"' if request.name else plural
            message = f"{subject} is forbidden: {message}"
        else:
            message = f"forbidden: {message}"
        super().__init__(message)
        self.request = request


def is_discovery(request: Request) -> bool:
    return not request.resource and request.verb == "get" and request.path.startswith(DISCOVERY_PREFIXES)


def node_name(user: str, groups: tuple[str, ...]) -> str:
    return user[len(NODE_PREFIX):] if user.startswith(NODE_PREFIX) and NODES_GROUP in groups else ""


# what the Node authorizer asks of the store: the pods bound to a node
PodsOf = Callable[[str], Awaitable[list[dict[str, Any]]]]
BodyOf = Callable[[], Awaitable[Any]]


class NodeAuthorizer:
    def __init__(self, pods_of: PodsOf) -> None:
        self.pods_of = pods_of

    async def decide(self, node: str, request: Request, body: BodyOf) -> str | None:
        """None when ``node`` may; else the reason it may not ("" when no rule speaks of it)."""
        resource, verb, name = request.resource, request.verb, request.named()
        if request.group == "" and resource == "nodes":
            if verb == "create":
                created = await body()
                if _name_in(created) != node:
                    return f"node '{node}' can only create its own Node"
                return node_label_refusal(created) or None
            if verb in ("list", "watch"):
                return None if name == node else "can only list/watch its own Node (fieldSelector metadata.name)"
            if request.subresource not in ("", "status"):
                return ""  # nodes/proxy and the like: never a kubelet's
            if verb in ("get", "update", "patch", "delete"):
                if request.name != node:
                    return f"node '{node}' cannot reach node '{request.name}'"
                if verb == "update":
                    refused = node_label_refusal(await body())
                    if refused:
                        return refused
                return None
            return ""
        if request.group == "coordination.k8s.io" and resource == "leases":
            if request.namespace != "kube-node-lease":
                return "can only access leases in the kube-node-lease namespace"
            target = request.name or (_name_in(await body()) if verb == "create" else name)
            return None if target == node and verb in ("get", "create", "update", "patch", "delete", "list", "watch") \
                else "can only access its own lease"
        if request.group == "" and resource == "pods":
            return await self._pods(node, request, body)
        if request.group == "" and resource in ("configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts"):
            if resource == "serviceaccounts" and request.subresource == "token" and verb == "create":
                if not await self._uses(node, "serviceaccount", request.namespace, request.name):
                    return "no relationship found between node and this object"
                return await self._token_refusal(node, request, await body()) or None
            if verb not in READ or request.subresource or not name:
                return ""
            found = await self._uses(node, resource[:-1], request.namespace, name)
            return None if found else f"no relationship found between node '{node}' and this object"
        if (request.group, resource) in (("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices")):
            return None if verb in READ else ""
        if resource == "events" and request.group in ("", "events.k8s.io"):
            return None if verb in ("create", "update", "patch") else ""
        if (request.group, resource, verb) in (("authentication.k8s.io", "tokenreviews", "create"),
                                               ("authorization.k8s.io", "subjectaccessreviews", "create"),
                                               ("certificates.k8s.io", "certificatesigningrequests", "create")):
            return None
        return ""

    async def _pods(self, node: str, request: Request, body: BodyOf) -> str | None:
        verb = request.verb
        if verb in ("list", "watch") and not request.name:
            selected = dict(term.partition("=")[::2] for term in request.field_selector.split(",") if "=" in term)
            return None if selected.get("spec.nodeName") == node else \
                "can only list/watch pods with spec.nodeName field selector"
        if verb == "create" and not request.subresource:
            pod = await body()
            pod = pod if isinstance(pod, dict) else {}
            metadata: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
            spec: dict[str, Any] = pod["spec"] if isinstance(pod.get("spec"), dict) else {}
            if MIRROR_ANNOTATION not in (metadata.get("annotations") or {}):
                return f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only create mirror pods'
            if spec.get("nodeName") != node:
                return f'node "{node}" can only create pods with spec.nodeName set to itself'
            return _mirror_refusal(node, metadata, spec) or None
        allowed = {"": READ | {"delete"}, "status": {"get", "update", "patch"}, "eviction": {"create"}}
        if verb not in allowed.get(request.subresource, set()):
            return ""
        pods = await self.pods_of(node)
        if any(_key(pod) == (request.namespace, request.name) for pod in pods):
            return None
        return f"no relationship found between node '{node}' and this object"

    async def _token_refusal(self, node: str, request: Request, token_request: Any) -> str:
        """NodeRestriction's rule for tokens: bound to a pod of this node that runs as that account,
        by name and uid, and at most :data:`MAX_TOKEN_SECONDS` long ("" when the request may go)."""
        given = token_request if isinstance(token_request, dict) else {}
        spec: dict[str, Any] = given["spec"] if isinstance(given.get("spec"), dict) else {}
        bound: dict[str, Any] = spec["boundObjectRef"] if isinstance(spec.get("boundObjectRef"), dict) else {}
        if bound.get("kind") != "Pod" or not bound.get("name") or not bound.get("uid"):
            return f'node "{node}" can only create tokens bound to a pod (boundObjectRef kind Pod, with its name and uid)'
        seconds = spec.get("expirationSeconds")
        if isinstance(seconds, int) and seconds > MAX_TOKEN_SECONDS:
            return f'node "{node}" can only create tokens of at most {MAX_TOKEN_SECONDS} seconds'
        for pod in await self.pods_of(node):
            metadata = pod.get("metadata") or {}
            if (_key(pod) == (request.namespace, str(bound["name"])) and metadata.get("uid") == bound["uid"]
                    and ((pod.get("spec") or {}).get("serviceAccountName") or "default") == request.name):
                return ""
        return f'node "{node}" can only create tokens for pods bound to it that use service account "{request.name}"'

    async def _uses(self, node: str, kind: str, namespace: str, name: str) -> bool:
        for pod in await self.pods_of(node):
            pod_namespace, _ = _key(pod)
            if pod_namespace != namespace or ((pod.get("metadata") or {}).get("annotations") or {}).get(MIRROR_ANNOTATION):
                continue  # a mirror pod reaches nothing
            spec = pod.get("spec") or {}
            if kind == "serviceaccount" and (spec.get("serviceAccountName") or "default") == name:
                return True
            if kind == "persistentvolumeclaim" and any(
                    (volume.get("persistentVolumeClaim") or {}).get("claimName") == name for volume in spec.get("volumes") or []):
                return True
            if any(found == (kind, name) for found in pod_references(pod)):
                return True
        return False


def node_label_refusal(node_object: Any) -> str:
    """NodeRestriction: a node may not set labels under node-restriction.kubernetes.io/."""
    metadata = node_object.get("metadata") if isinstance(node_object, dict) else None
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    for key in labels or {}:
        prefix = str(key).split("/", 1)[0] if "/" in str(key) else ""
        if prefix == "node-restriction.kubernetes.io" or prefix.endswith(".node-restriction.kubernetes.io"):
            return f"is not allowed to modify labels: {key}"
    return ""


def _mirror_refusal(node: str, metadata: dict[str, Any], spec: dict[str, Any]) -> str:
    """NodeRestriction's limits on a mirror pod: it reaches nothing through the API."""
    if metadata.get("ownerReferences"):
        return f'node "{node}" can only create mirror pods with no owner references'
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        return "a mirror pod may not reference service accounts"
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for kind in ("secret", "configMap", "persistentVolumeClaim", "projected", "ephemeral", "csi"):
            if kind in volume:
                return f"a mirror pod may not reference {kind} volumes"
    return ""


def _key(pod: dict[str, Any]) -> tuple[str, str]:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _name_in(body: Any) -> str:
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    metadata = body.get("metadata") if isinstance(body, dict) else None
    return str(metadata.get("name") or "") if isinstance(metadata, dict) else ""
