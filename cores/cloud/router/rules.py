"""Rules and RuleEndpoints as routes: parsing, checking and matching, with no I/O (upstream §6.5).

A Rule names two RuleEndpoints of its namespace, a source and a target, and says where on each
(``sourceResource``/``targetResource``). Four pairs work, as upstream's providers implement them:

=============  ==========================================  ==============================
source→target  source resource                             target resource
=============  ==========================================  ==============================
rest→eventbus  ``{"path": "/a"}``                          ``{"topic": "t"}``
rest→servicebus ``{"path": "/a"}``                         ``{"path": "/p"}`` (+ endpoint ``service_port``)
eventbus→rest  ``{"topic": "t", "node_name": "n"}``        ``{"resource": "http://..."}``
servicebus→rest ``{"target_url": "http://...", "node_name": "n"}``  ``{"resource": "http://..."}``
=============  ==========================================  ==============================

A rule that cannot work (a missing endpoint, a wrong key, another pair) is a :class:`RuleError`
with the reason, which the Router writes into the rule's status.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from cores.common.names import is_dns1123_label, is_dns1123_subdomain

REST, EVENTBUS, SERVICEBUS = "rest", "eventbus", "servicebus"
ENDPOINT_TYPES = (REST, EVENTBUS, SERVICEBUS)
PAIRS = frozenset({(REST, EVENTBUS), (REST, SERVICEBUS), (EVENTBUS, REST), (SERVICEBUS, REST)})
SOURCE_KEYS = {REST: ("path",), EVENTBUS: ("topic", "node_name"), SERVICEBUS: ("target_url", "node_name")}
TARGET_KEYS = {REST: ("resource",), EVENTBUS: ("topic",), SERVICEBUS: ("path",)}

MAX_PATH, MAX_TOPIC, MAX_URL = 1024, 1024, 2048
_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]+")          # a path segment, unreserved or sub-delims
_PARAM = re.compile(r"\{[-A-Za-z0-9+&@#%?=~_|!:,.;]+\}")           # upstream's {name} placeholder


class RuleError(ValueError):
    pass


class PathError(ValueError):
    """An ingress path that is refused (``status`` is the HTTP answer)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Endpoint:
    namespace: str
    name: str
    type: str
    properties: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Route:
    namespace: str
    rule: str
    uid: str
    source_type: str
    target_type: str
    # source side: rest path segments, or the node and its topic / target URL
    path: tuple[str, ...] = ()
    node: str = ""
    topic: str = ""          # eventbus source: the MQTT topic at the edge, "<namespace>/<topic>" as upstream subscribes
    target_url: str = ""     # servicebus source
    # target side
    resource: str = ""       # rest target URL
    target_topic: str = ""   # eventbus target
    target_path: str = ""    # servicebus target
    service_port: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.rule}"


def endpoint_of(obj: Mapping[str, Any]) -> Endpoint:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    properties = spec.get("properties") or {}
    return Endpoint(str(meta.get("namespace") or "default"), str(meta.get("name") or ""),
                    str(spec.get("ruleEndpointType") or ""),
                    {str(k): str(v) for k, v in properties.items()} if isinstance(properties, dict) else {})


def compile_rule(obj: Mapping[str, Any], endpoints: Mapping[tuple[str, str], Endpoint]) -> Route:
    """The route a Rule object describes, or :class:`RuleError` saying why it cannot work."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    source = _endpoint(endpoints, namespace, spec.get("source"), "source")
    target = _endpoint(endpoints, namespace, spec.get("target"), "target")
    if (source.type, target.type) not in PAIRS:
        raise RuleError(f"a {source.type} source cannot feed a {target.type} target: the pairs that work are "
                        + ", ".join(f"{a}->{b}" for a, b in sorted(PAIRS)))
    source_resource = _resource(spec.get("sourceResource"), SOURCE_KEYS[source.type], "sourceResource", source.type)
    target_resource = _resource(spec.get("targetResource"), TARGET_KEYS[target.type], "targetResource", target.type)
    fields: dict[str, Any] = {}
    if source.type == REST:
        fields["path"] = rule_path(source_resource["path"])
    else:
        node = source_resource["node_name"]
        if not is_dns1123_subdomain(node):
            raise RuleError(f"sourceResource.node_name {node[:80]!r} is not a node name (DNS-1123 subdomain)")
        fields["node"] = node
        if source.type == EVENTBUS:
            fields["topic"] = f"{namespace}/{_topic(source_resource['topic'], 'sourceResource.topic')}"
        else:
            fields["target_url"] = _url(source_resource["target_url"], "sourceResource.target_url")
    if target.type == REST:
        fields["resource"] = _url(target_resource["resource"], "targetResource.resource")
    elif target.type == EVENTBUS:
        fields["target_topic"] = _topic(target_resource["topic"], "targetResource.topic")
    else:
        fields["target_path"] = "/" + "/".join(rule_path(target_resource["path"]))
        port = target.properties.get("service_port", "")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise RuleError(f"ruleendpoint {target.name}: properties.service_port {port[:20]!r} is not a port (1-65535)")
        fields["service_port"] = int(port)
    return Route(namespace, name, str(meta.get("uid") or ""), source.type, target.type, **fields)


def _endpoint(endpoints: Mapping[tuple[str, str], Endpoint], namespace: str, name: Any, role: str) -> Endpoint:
    if not isinstance(name, str) or not is_dns1123_subdomain(name):
        raise RuleError(f"spec.{role} {str(name)[:80]!r} is not a RuleEndpoint name")
    endpoint = endpoints.get((namespace, name))
    if endpoint is None:
        raise RuleError(f"{role} ruleendpoint {namespace}/{name} does not exist")
    if endpoint.type not in ENDPOINT_TYPES:
        raise RuleError(f"ruleendpoint {namespace}/{name}: ruleEndpointType {endpoint.type[:40]!r} is not one of "
                        + ", ".join(ENDPOINT_TYPES))
    return endpoint


def _resource(value: Any, keys: tuple[str, ...], field: str, kind: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RuleError(f"spec.{field} must be a map with {', '.join(keys)} for a {kind} endpoint")
    missing = [key for key in keys if not isinstance(value.get(key), str) or not value.get(key)]
    if missing:
        raise RuleError(f"spec.{field} lacks {', '.join(missing)} (a {kind} endpoint needs {', '.join(keys)})")
    return {key: str(value[key]) for key in keys}


def rule_path(path: str) -> tuple[str, ...]:
    """A rule's path as segments (upstream trims the slashes); ``{name}`` matches any one segment."""
    if len(path) > MAX_PATH:
        raise RuleError(f"path over {MAX_PATH} characters")
    segments = tuple(s for s in path.strip("/").split("/"))
    if segments == ("",):
        raise RuleError("path is empty")
    for segment in segments:
        if segment in ("", ".", "..") or not (_PARAM.fullmatch(segment) or _SEGMENT.fullmatch(segment)):
            raise RuleError(f"path {path[:80]!r}: segment {segment[:40]!r} is empty, a dot segment or has characters "
                            "a path may not hold")
    return segments


def _topic(topic: str, field: str) -> str:
    if not topic or len(topic) > MAX_TOPIC or "+" in topic or "#" in topic or "\x00" in topic:
        raise RuleError(f"{field} {topic[:80]!r} is not an MQTT topic (no wildcards, at most {MAX_TOPIC} characters)")
    return topic


def _url(url: str, field: str) -> str:
    if len(url) > MAX_URL or not url.startswith(("http://", "https://")) or any(c.isspace() or ord(c) < 32 for c in url):
        raise RuleError(f"{field} {url[:80]!r} is not an http(s) URL")
    return url


# ------------------------------------------------------------------------------- the ingress
@dataclasses.dataclass(frozen=True)
class IngressPath:
    node: str
    namespace: str
    segments: tuple[str, ...]
    query: str


def parse_ingress(raw: str) -> IngressPath:
    """``/<node>/<namespace>/<path>[?query]`` as sent (percent-escapes still in), or a refusal."""
    if not raw.startswith("/") or raw.startswith("//"):
        raise PathError(400, "the request target must be a path (absolute URLs are refused)")
    if len(raw) > MAX_URL:
        raise PathError(414, f"the path is over {MAX_URL} characters")
    path, _, query = raw.partition("?")
    if "\\" in path or any(ord(c) < 33 or ord(c) > 126 for c in raw):
        raise PathError(400, "the path holds characters a path may not hold")
    parts = path[1:].split("/")
    decoded = [unquote(part) for part in parts]
    if any(part in (".", "..") for part in decoded) or any("/" in part or "\\" in part or "\x00" in part for part in decoded):
        raise PathError(400, "the path climbs out of its root ('..', '.' or an escaped '/')")
    if len(parts) < 3 or not parts[2]:
        raise PathError(404, "expected /<node>/<namespace>/<path>")
    node, namespace = decoded[0], decoded[1]
    if not is_dns1123_subdomain(node):
        raise PathError(404, f"{node[:80]!r} is not a node name")
    if not is_dns1123_label(namespace):
        raise PathError(404, f"{namespace[:80]!r} is not a namespace")
    segments = tuple(parts[2:])
    if any(segment == "" for segment in segments[:-1]):
        raise PathError(400, "the path holds an empty segment ('//')")
    return IngressPath(node, namespace, tuple(s for s in segments if s), query)


def match_rest(routes: Iterable[Route], path: IngressPath) -> tuple[Route, str] | None:
    """The rest-source route for ``path`` and what follows its rule path (upstream's ``param``,
    with the query): literal segments beat ``{name}`` ones, then the longest rule path wins."""
    best: tuple[tuple[int, int, str], Route] | None = None
    for route in routes:
        if route.source_type != REST or route.namespace != path.namespace or len(route.path) > len(path.segments):
            continue
        if all(_PARAM.fullmatch(want) or want == got for want, got in zip(route.path, path.segments)):
            literal = sum(1 for want in route.path if not _PARAM.fullmatch(want))
            rank = (literal, len(route.path), route.rule)
            if best is None or rank[:2] > best[0][:2] or (rank[:2] == best[0][:2] and rank[2] < best[0][2]):
                best = (rank, route)
    if best is None:
        return None
    route = best[1]
    rest = path.segments[len(route.path):]
    param = ("/" + "/".join(rest) if rest else "") + (f"?{path.query}" if path.query else "")
    return route, param


def join_target(base: str, param: str) -> str:
    """Upstream's join of a target path or topic and the ingress's remainder."""
    if not param:
        return base
    return base.rstrip("/") + "/" + param.lstrip("/")
