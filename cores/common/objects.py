"""Typed views of the Kubernetes objects that travel the link: they read the dict, never copy it.

A Pod, Node or ConfigMap moves as JSON through many hops (watch -> EdgeController -> CloudHub
-> EdgeHub -> MetaManager -> Edged and back). Each hop reads a few fields; a view names them
once, with their types and their defaults for a missing or mistyped field (an object from an
edge may hold anything), instead of ``(obj.get("metadata") or {}).get(...)`` in every module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypedDict


class StatusDict(TypedDict, total=False):
    """``metav1.Status`` as it crosses the link (no kind/apiVersion inside ``ErrStatus``)."""

    metadata: dict[str, Any]
    status: str
    reason: str
    code: int
    message: str
    details: dict[str, Any]


class ErrWire(TypedDict):
    """A Go ``error`` as upstream serialises it in a reply."""

    ErrStatus: StatusDict


# upstream's ObjectResp: {"Object": <object or null>, "Err": null | {"ErrStatus": Status}}
ObjectReply = TypedDict("ObjectReply", {"Object": Any, "Err": "ErrWire | None"})


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class ObjectView:
    """Any Kubernetes object: kind, metadata."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw: Mapping[str, Any] = _mapping(raw)

    @property
    def kind(self) -> str:
        return _text(self.raw.get("kind"))

    @property
    def metadata(self) -> Mapping[str, Any]:
        return _mapping(self.raw.get("metadata"))

    @property
    def name(self) -> str:
        return _text(self.metadata.get("name"))

    @property
    def namespace(self) -> str:
        return _text(self.metadata.get("namespace"))

    @property
    def uid(self) -> str:
        return _text(self.metadata.get("uid"))

    @property
    def resource_version(self) -> str:
        return _text(self.metadata.get("resourceVersion"))

    @property
    def labels(self) -> Mapping[str, str]:
        return _mapping(self.metadata.get("labels"))

    @property
    def annotations(self) -> Mapping[str, str]:
        return _mapping(self.metadata.get("annotations"))

    @property
    def deleting(self) -> bool:
        return bool(self.metadata.get("deletionTimestamp"))

    @property
    def key(self) -> str:
        """``<namespace>/<name>`` for namespaced objects, ``<name>`` otherwise (client-go's key)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class PodView(ObjectView):
    __slots__ = ()

    @property
    def spec(self) -> Mapping[str, Any]:
        return _mapping(self.raw.get("spec"))

    @property
    def status(self) -> Mapping[str, Any]:
        return _mapping(self.raw.get("status"))

    @property
    def node_name(self) -> str:
        return _text(self.spec.get("nodeName"))

    @property
    def service_account(self) -> str:
        return _text(self.spec.get("serviceAccountName")) or _text(self.spec.get("serviceAccount"))

    @property
    def phase(self) -> str:
        return _text(self.status.get("phase"))


class NodeView(ObjectView):
    __slots__ = ()

    EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"

    @property
    def is_edge(self) -> bool:
        return self.EDGE_ROLE_LABEL in self.labels

    @property
    def conditions(self) -> list[Mapping[str, Any]]:
        found = _mapping(self.raw.get("status")).get("conditions")
        return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []

    def condition(self, kind: str) -> str:
        """The status ("True", "False", "Unknown") of condition ``kind``, "" when absent."""
        return next((_text(c.get("status")) for c in self.conditions if c.get("type") == kind), "")


def pod_references(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """("configmap"|"secret", name) of everything a pod may read: volumes, projections, env, pull secrets."""
    spec = pod.get("spec") or {}
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            yield "configmap", volume["configMap"].get("name", "")
        if "secret" in volume:
            yield "secret", volume["secret"].get("secretName", "")
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield "configmap", source["configMap"].get("name", "")
            if "secret" in source:
                yield "secret", source["secret"].get("name", "")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or []), *(spec.get("ephemeralContainers") or [])]:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                yield "configmap", source["configMapKeyRef"].get("name", "")
            if "secretKeyRef" in source:
                yield "secret", source["secretKeyRef"].get("name", "")
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                yield "configmap", env_from["configMapRef"].get("name", "")
            if "secretRef" in env_from:
                yield "secret", env_from["secretRef"].get("name", "")
    for pull_secret in spec.get("imagePullSecrets") or []:
        yield "secret", pull_secret.get("name", "")
