"""The resource types the control plane serves: built-in ones and those CustomResourceDefinitions add.

A :class:`ResourceType` knows its group, version, plural, kind, scope and subresources, and how
its objects are keyed in storage: ``/<group or core>/<plural>/<namespace>/<name>`` (cluster-scoped:
``/<group>/<plural>/<name>``). Keys do not hold the version, so every served version of a CRD
reads the same objects, as with a real apiserver's ``None`` conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # printer columns of a CRD version (used for tables); empty for built-ins
    printer_columns: tuple[dict[str, Any], ...] = ()
    served_versions: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key_prefix(self) -> str:
        return f"/{self.group or 'core'}/{self.plural}/"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.key_prefix}{namespace}/{name}"
        return f"{self.key_prefix}{name}"

    def list_prefix(self, namespace: str | None) -> str:
        """The key prefix of a list: one namespace, or all of them (``namespace`` None)."""
        if self.namespaced and namespace:
            return f"{self.key_prefix}{namespace}/"
        return self.key_prefix


def _core(plural: str, kind: str, namespaced: bool, *, short: tuple[str, ...] = (), sub: Iterable[str] = (),
          categories: tuple[str, ...] = (), verbs: tuple[str, ...] = ALL_VERBS) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, short_names=short, subresources=frozenset(sub),
                        categories=categories, verbs=verbs)


BUILTINS: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", False, short=("ns",), sub=("status", "finalize"),
          verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _core("nodes", "Node", False, short=("no",), sub=("status",)),
    _core("pods", "Pod", True, short=("po",), sub=("status", "binding", "eviction", "log", "exec", "attach", "portforward"), categories=("all",)),
    _core("bindings", "Binding", True, verbs=("create",)),
    _core("configmaps", "ConfigMap", True, short=("cm",)),
    _core("secrets", "Secret", True),
    _core("services", "Service", True, short=("svc",), sub=("status",), categories=("all",)),
    _core("endpoints", "Endpoints", True, short=("ep",)),
    _core("events", "Event", True, short=("ev",)),
    _core("serviceaccounts", "ServiceAccount", True, short=("sa",), sub=("token",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",),
                 subresources=frozenset({"status", "scale"}), categories=("all",)),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",),
                 subresources=frozenset({"status", "scale"}), categories=("all",)),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",),
                 subresources=frozenset({"status"}), categories=("all",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",),
                 subresources=frozenset({"status", "scale"}), categories=("all",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("batch", "v1", "jobs", "Job", True, subresources=frozenset({"status"}), categories=("all",)),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, short_names=("cj",), subresources=frozenset({"status"}),
                 categories=("all",)),
    # Reviews are answered, never stored (kube-apiserver's create-only virtual resources).
    ResourceType("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=("create",)),
    ResourceType("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=("create",)),
    ResourceType("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=("create",)),
    ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
                 verbs=("create",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                 short_names=("crd", "crds"), subresources=frozenset({"status"}), categories=("api-extensions",)),
)

CRD = BUILTINS[-1]


class Registry:
    """Lookup of served resource types by (group, version, plural); CRDs come and go."""

    def __init__(self, builtins: Iterable[ResourceType] = BUILTINS) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}  # CRD name -> its served versions
        for resource in builtins:
            self._types[(resource.group, resource.version, resource.plural)] = resource

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for resource in self._types.values():
            if resource.group == group and resource.version == version and resource.kind == kind:
                return resource
        return None

    def by_key(self, key: str) -> ResourceType | None:
        """The resource type (any served version) that stores ``key`` (``/<group>/<plural>/...``)."""
        _, group, plural = key.split("/", 3)[:3]
        group = "" if group == "core" else group
        for resource in self._types.values():
            if resource.group == group and resource.plural == plural:
                return resource
        return None

    def all(self) -> Iterator[ResourceType]:
        return iter(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions (preferred first), for discovery; the core group is ``""``."""
        result: dict[str, list[str]] = {}
        for resource in self._types.values():
            versions = result.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
        for group, versions in result.items():
            versions.sort(key=_version_priority)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._types.values() if r.group == group and r.version == version]

    # CRDs ---------------------------------------------------------------------------------
    def apply_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Serve (or re-serve) the resource a CRD defines; returns its types, one per served version."""
        self.remove_crd(crd["metadata"]["name"])
        types = crd_resource_types(crd)
        for resource in types:
            if self.get(resource.group, resource.version, resource.plural) is not None:
                continue  # never let a CRD shadow a built-in
            self._types[(resource.group, resource.version, resource.plural)] = resource
        self._crd_types[crd["metadata"]["name"]] = types
        return types

    def remove_crd(self, name: str) -> list[ResourceType]:
        types = self._crd_types.pop(name, [])
        for resource in types:
            self._types.pop((resource.group, resource.version, resource.plural), None)
        return types


def crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = [v for v in spec.get("versions") or [] if v.get("served", True)]
    served_names = tuple(v["name"] for v in served)
    types = []
    for version in served:
        subresources = set((version.get("subresources") or {}).keys())
        types.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope") == "Namespaced",
                singular=names.get("singular", ""),
                short_names=tuple(names.get("shortNames") or ()),
                subresources=frozenset(subresources),
                categories=tuple(names.get("categories") or ()),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                served_versions=served_names,
            )
        )
    return types


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA before beta before alpha, higher numbers first."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0)
    major, stage, minor = int(match.group(1)), match.group(2), int(match.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor)
