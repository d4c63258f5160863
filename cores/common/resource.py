"""Resource strings: the ``route.resource`` of every message, parsed and built in one place.

Forms (upstream ``messagelayer/util.go``, ``edge/pkg/common/message``, captures):

- objects: ``{namespace}/{type}/{name}``; ``null`` is the namespace of cluster-scoped objects
  (``null/node/edge-1``); ``{namespace}/{type}`` (no name) lists by type in queries/responses;
- the cloud-internal prefix ``node/{nodeID}/`` that CloudHub adds going up and strips going down;
- device twin: ``device/{namespace}/{name}/twin/{action}`` and ``.../state/{action}`` (edge to
  cloud; the device id is ``{namespace}/{name}``); membership: ``membership``, ``membership/detail``;
- node tasks: ``{group}/{version}/{type}/{job}/node/{node}``;
- single words the protocol uses as they are: ``node`` (keepalive), ``twin``, ``k8s/ca.crt``.

Malformed strings raise :class:`ResourceError` with the reason.
"""

from __future__ import annotations

import dataclasses
import re

NULL_NAMESPACE = "null"
NODE_PREFIX = "node"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SEGMENT = re.compile(r"^[^/\s]+$")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*$")
# Resources the protocol uses verbatim (no namespace/type/name structure).
SPECIAL_RESOURCES = frozenset({"node", "twin", "membership", "membership/detail", "k8s/ca.crt"})


class ResourceError(ValueError):
    """A resource string that does not have any of the known forms."""

    def __init__(self, resource: str, reason: str) -> None:
        super().__init__(f"malformed resource {resource!r}: {reason}")
        self.resource = resource


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectResource:
    """``{namespace}/{type}/{name}``; ``namespace`` is ``"null"`` for cluster scope, ``name`` may be ``""``."""

    namespace: str
    type: str
    name: str = ""

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.type}"
        return f"{base}/{self.name}" if self.name else base

    @property
    def cluster_scoped(self) -> bool:
        return self.namespace == NULL_NAMESPACE

    @property
    def namespace_or_none(self) -> str | None:
        """The namespace as the Kubernetes API wants it (None for cluster scope)."""
        return None if self.cluster_scoped else self.namespace


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceResource:
    """``device/{namespace}/{name}/{kind}/{action}``, kind ``twin`` or ``state``."""

    namespace: str
    name: str
    kind: str
    action: str

    @property
    def device_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"device/{self.namespace}/{self.name}/{self.kind}/{self.action}"


@dataclasses.dataclass(frozen=True, slots=True)
class TaskResource:
    """``{group}/{version}/{type}/{job}/node/{node}`` (node upgrade and similar tasks)."""

    group: str
    version: str
    type: str
    job: str
    node: str

    def __str__(self) -> str:
        return f"{self.group}/{self.version}/{self.type}/{self.job}/node/{self.node}"


@dataclasses.dataclass(frozen=True, slots=True)
class SpecialResource:
    """A resource used as a fixed word: keepalive's ``node``, ``membership``, ``k8s/ca.crt`` ..."""

    value: str

    def __str__(self) -> str:
        return self.value


Resource = ObjectResource | DeviceResource | TaskResource | SpecialResource


# ----------------------------------------------------------------------------------- objects
def build(namespace: str | None, type_: str, name: str = "") -> str:
    """Build ``{namespace}/{type}/{name}``; ``None`` or ``""`` namespace means cluster scope."""
    return str(make_object(namespace or NULL_NAMESPACE, type_, name))


def make_object(namespace: str, type_: str, name: str = "") -> ObjectResource:
    resource = ObjectResource(namespace, type_, name)
    _check_object(str(resource), resource)
    return resource


def parse_object(resource: str, *, allow_list: bool = False) -> ObjectResource:
    """Parse ``{namespace}/{type}/{name}`` (or ``{namespace}/{type}`` when ``allow_list``)."""
    if not isinstance(resource, str) or not resource:
        raise ResourceError(str(resource), "empty")
    parts = resource.split("/")
    if len(parts) == 3:
        parsed = ObjectResource(parts[0], parts[1], parts[2])
    elif len(parts) == 2 and allow_list:
        parsed = ObjectResource(parts[0], parts[1])
    else:
        expected = "namespace/type/name or namespace/type" if allow_list else "namespace/type/name"
        raise ResourceError(resource, f"expected {expected}, got {len(parts)} segment(s)")
    _check_object(resource, parsed)
    return parsed


def _check_object(resource: str, parsed: ObjectResource) -> None:
    if parsed.namespace != NULL_NAMESPACE and not _DNS_LABEL.match(parsed.namespace):
        raise ResourceError(resource, f"namespace {parsed.namespace!r} is not a DNS-1123 label or 'null'")
    if not _TYPE.match(parsed.type):
        raise ResourceError(resource, f"resource type {parsed.type!r} is not a word")
    if parsed.name and (not _SEGMENT.match(parsed.name) or len(parsed.name) > 253):
        raise ResourceError(resource, f"name {parsed.name!r} is empty, too long or holds spaces or '/'")


# ------------------------------------------------------------------------- node prefix (cloud)
def add_node_prefix(node_id: str, resource: str) -> str:
    """The cloud-internal form CloudHub gives an upstream resource: ``node/{id}/{resource}``."""
    if not _SEGMENT.match(node_id or ""):
        raise ResourceError(resource, f"node id {node_id!r} is empty or holds '/' or spaces")
    return f"{NODE_PREFIX}/{node_id}/{resource}"


def split_node_prefix(resource: str) -> tuple[str, str]:
    """``node/{id}/{rest}`` -> ``(id, rest)``: what CloudHub strips before sending to the edge."""
    parts = resource.split("/", 2)
    if len(parts) < 3 or parts[0] != NODE_PREFIX or not parts[1] or not parts[2]:
        raise ResourceError(resource, "expected the cloud form node/{nodeID}/{resource}")
    return parts[1], parts[2]


def has_node_prefix(resource: str) -> bool:
    parts = resource.split("/", 2)
    return len(parts) == 3 and parts[0] == NODE_PREFIX and bool(parts[1]) and bool(parts[2])


def node_id_of(resource: str) -> str:
    """The node named in a resource, found as upstream's ``GetNodeID``: the token after ``node``."""
    parts = resource.split("/")
    for index, part in enumerate(parts[:-1]):
        if part == NODE_PREFIX and parts[index + 1]:
            return parts[index + 1]
    raise ResourceError(resource, "names no node (no 'node/<id>' segment)")


# ---------------------------------------------------------------------------------- any form
def parse(resource: str) -> Resource:
    """Classify and parse any resource string seen on the wire (without the node prefix)."""
    if not isinstance(resource, str) or not resource:
        raise ResourceError(str(resource), "empty")
    if resource in SPECIAL_RESOURCES:
        return SpecialResource(resource)
    parts = resource.split("/")
    if parts[0] == "device":
        return _parse_device(resource, parts)
    if len(parts) == 6 and parts[4] == NODE_PREFIX:
        if not all(_SEGMENT.match(p) for p in parts):
            raise ResourceError(resource, "a task resource has an empty segment")
        return TaskResource(parts[0], parts[1], parts[2], parts[3], parts[5])
    return parse_object(resource, allow_list=True)


def _parse_device(resource: str, parts: list[str]) -> DeviceResource:
    if len(parts) != 5 or parts[3] not in ("twin", "state"):
        raise ResourceError(resource, "expected device/{namespace}/{name}/twin|state/{action}")
    if not all(_SEGMENT.match(p) for p in parts):
        raise ResourceError(resource, "a device resource has an empty segment")
    if not _DNS_LABEL.match(parts[1]):
        raise ResourceError(resource, f"namespace {parts[1]!r} is not a DNS-1123 label")
    return DeviceResource(parts[1], parts[2], parts[3], parts[4])
