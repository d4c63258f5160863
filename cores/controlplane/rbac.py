"""RBAC (``rbac.authorization.k8s.io/v1``): Roles, ClusterRoles and their bindings, read from the store.

A request is allowed when a ClusterRoleBinding, or a RoleBinding in the request's namespace,
names its user, one of its groups, or its service account (``system:serviceaccount:<ns>:<name>``),
and the role it refers to has a rule that covers it: the verb, the API group, the resource
(``pods``, ``pods/log``, ``*``, ``*/scale``), the name when the rule lists ``resourceNames``, or,
for a path that names no resource, ``nonResourceURLs`` (exact, or a prefix ending in ``*``).
A RoleBinding may refer to a ClusterRole, whose rules then hold in the binding's namespace only.
Nothing is cached: bindings are read at each decision (the embedded control plane's scale), so a
new binding counts at once. Aggregated ClusterRoles (``aggregationRule``) are not computed: their
``rules`` count as they are stored.

:func:`bootstrap_objects` are kube-apiserver's default roles that users rely on: ``cluster-admin``
(bound to ``system:masters``), ``admin``, ``edit`` and ``view`` for RoleBindings, and
``system:basic-user``, ``system:discovery`` and ``system:public-info-viewer`` bound to everyone
authenticated.
"""

from __future__ import annotations

import json
from typing import Any

from cores.controlplane.authz import Request

GROUP = "rbac.authorization.k8s.io"
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]


class Rbac:
    def __init__(self, api: Any, registry: Any) -> None:
        self.api, self.registry = api, registry

    async def _items(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        resource = self.registry.get(GROUP, "v1", plural)
        if resource is None:
            return []
        _, items, _ = await self.api.list(resource, namespace)
        return [json.loads(item) for item in items]

    async def allows(self, request: Request) -> bool:
        bindings = await self._items("clusterrolebindings", None)
        if request.namespace:
            bindings += await self._items("rolebindings", request.namespace)
        for binding in bindings:
            if not any(_subject_matches(subject, request, binding) for subject in binding.get("subjects") or []):
                continue
            for rule in await self._rules(binding):
                if rule_allows(rule, request):
                    return True
        return False

    async def rules_of_ref(self, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]] | None:
        """The rules of the role a binding's ``roleRef`` names (None when there is no such role)."""
        rules = await self._rules({"roleRef": ref, "metadata": {"namespace": namespace or None}})
        return rules if rules or await self._exists(ref, namespace) else None

    async def _exists(self, ref: dict[str, Any], namespace: str) -> bool:
        plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        resource = self.registry.get(GROUP, "v1", plural)
        try:
            await self.api.get(resource, namespace or None if plural == "roles" else None, str(ref.get("name") or ""))
        except Exception:  # noqa: BLE001 - not there
            return False
        return True

    async def _rules(self, binding: dict[str, Any]) -> list[dict[str, Any]]:
        ref = binding.get("roleRef") or {}
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        namespace = (binding.get("metadata") or {}).get("namespace")
        if kind == "ClusterRole":
            resource, where = self.registry.get(GROUP, "v1", "clusterroles"), None
        elif kind == "Role" and namespace:
            resource, where = self.registry.get(GROUP, "v1", "roles"), namespace
        else:
            return []
        try:
            role = json.loads(await self.api.get(resource, where, name))
        except Exception:  # noqa: BLE001 - a binding to a missing role grants nothing
            return []
        return [rule for rule in role.get("rules") or [] if isinstance(rule, dict)]


def _subject_matches(subject: dict[str, Any], request: Request, binding: dict[str, Any]) -> bool:
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return name == request.user
    if kind == "Group":
        return name in request.groups
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or (binding.get("metadata") or {}).get("namespace") or "")
        return request.user == f"system:serviceaccount:{namespace}:{name}"
    return False


def rule_allows(rule: dict[str, Any], request: Request) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and request.verb not in verbs:
        return False
    if not request.resource:
        urls = rule.get("nonResourceURLs") or []
        return any(url == "*" or url == request.path or (url.endswith("*") and request.path.startswith(url[:-1]))
                   for url in urls)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and request.group not in groups:
        return False
    wanted = request.resource + (f"/{request.subresource}" if request.subresource else "")
    resources = rule.get("resources") or []
    if not any(r in ("*", wanted) or (request.subresource and r == f"*/{request.subresource}") for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(request.named()) and request.named() in names)


def _role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}, "rules": rules}


def _binding(name: str, role: str, group: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": group}]}


_NAMESPACED_READ = ["pods", "pods/log", "pods/status", "services", "endpoints", "configmaps", "persistentvolumeclaims",
                    "serviceaccounts", "events", "replicationcontrollers", "resourcequotas", "limitranges"]
_APPS = ["deployments", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale",
         "daemonsets", "controllerrevisions"]


def bootstrap_objects() -> list[tuple[str, dict[str, Any]]]:
    """(plural, object) of the default roles and bindings, created once if missing."""
    view = [{"apiGroups": [""], "resources": _NAMESPACED_READ, "verbs": READ},
            {"apiGroups": ["apps"], "resources": _APPS, "verbs": READ},
            {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": READ},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": READ}]
    edit = [{"apiGroups": [""], "resources": [*_NAMESPACED_READ, "secrets", "pods/exec", "pods/attach", "pods/portforward",
                                              "pods/eviction", "serviceaccounts/token"], "verbs": READ + WRITE},
            {"apiGroups": ["apps"], "resources": _APPS, "verbs": READ + WRITE},
            {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": READ + WRITE},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ + WRITE},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": READ + WRITE}]
    admin = [*edit, {"apiGroups": [GROUP], "resources": ["roles", "rolebindings"], "verbs": READ + WRITE}]
    everyone = "system:authenticated"
    return [
        ("clusterroles", _role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                                 {"nonResourceURLs": ["*"], "verbs": ["*"]}])),
        ("clusterroles", _role("admin", admin)),
        ("clusterroles", _role("edit", edit)),
        ("clusterroles", _role("view", view)),
        ("clusterroles", _role("system:basic-user", [
            {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
             "verbs": ["create"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}])),
        ("clusterroles", _role("system:discovery", [
            {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                                 "/readyz", "/version", "/version/"], "verbs": ["get"]}])),
        ("clusterroles", _role("system:public-info-viewer", [
            {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}])),
        ("clusterrolebindings", _binding("cluster-admin", "cluster-admin", "system:masters")),
        ("clusterrolebindings", _binding("system:basic-user", "system:basic-user", everyone)),
        ("clusterrolebindings", _binding("system:discovery", "system:discovery", everyone)),
        ("clusterrolebindings", _binding("system:public-info-viewer", "system:public-info-viewer", "system:unauthenticated")),
    ]
