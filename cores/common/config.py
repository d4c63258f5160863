"""CloudCore and EdgeCore configuration files: upstream's structure, defaults, strict validation.

A config file is overlaid on the defaults, as upstream does (maps and structs merge key by key,
lists are replaced, ``null`` keeps the default), then checked against
:mod:`cores.common.config_schema`, which lists every key upstream accepts. An unknown key or a
value of the wrong type is a :class:`ConfigError` naming the key's full path. Keys upstream
accepts but this project does not act on are listed at debug level when a file sets them.

Defaults are upstream's ``--defaultconfig`` output (templates/config/), with the host's address
and name filled in, and one deliberate difference: CloudHub's node authorization is on
(``authorization.enable: true``, ``debug: false``) so that only a node's own certificate can
speak for it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

import templates
from cores.common.config_schema import CLOUDCORE_SCHEMA, EDGECORE_SCHEMA

log = logging.getLogger("kubeedge.config")

# Upstream's --defaultconfig/--minconfig outputs use this placeholder for the host's address.
_TEMPLATE_ADDRESS = "192.0.2.2"
_GO_DURATION = re.compile(r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$")


class ConfigError(Exception):
    """A config that cannot be used; the message names the file and the key path."""


@dataclasses.dataclass(frozen=True)
class ConfigKind:
    kind: str
    api_versions: tuple[str, ...]  # the first one is what we write
    schema: dict[str, Any]
    default_template: str
    min_template: str
    fill_host: Callable[[dict[str, Any], str, str], None]
    ignored: tuple[str, ...]  # key path prefixes accepted for compatibility, not acted on
    honoured: tuple[str, ...] = ()  # exceptions under an ignored prefix

    @property
    def api_version(self) -> str:
        return self.api_versions[0]


def _fill_cloud_host(doc: dict[str, Any], address: str, hostname: str) -> None:
    hub = doc["modules"]["cloudHub"]
    hub["advertiseAddress"] = [address]


def _fill_edge_host(doc: dict[str, Any], address: str, hostname: str) -> None:
    modules = doc["modules"]
    if "edged" in modules:
        modules["edged"]["hostnameOverride"] = hostname
    hub = modules["edgeHub"]
    hub["httpServer"] = hub["httpServer"].replace(_TEMPLATE_ADDRESS, address)
    for transport in ("websocket", "quic"):
        if transport in hub:
            hub[transport]["server"] = hub[transport]["server"].replace(_TEMPLATE_ADDRESS, address)


CLOUDCORE = ConfigKind(
    kind="CloudCore",
    api_versions=("cloudcore.config.kubeedge.io/v1alpha1", "cloudcore.config.kubeedge.io/v1alpha2"),
    schema=CLOUDCORE_SCHEMA,
    default_template="config/cloudcore-defaultconfig.yaml",
    min_template="config/cloudcore-minconfig.yaml",
    fill_host=_fill_cloud_host,
    ignored=(
        "commonConfig.monitorServer.enableProfiling",
        "kubeAPIConfig.contentType",
        "kubeAPIConfig.master",
        "modules.cloudHub.quic",
        "modules.cloudHub.unixsocket",
        "modules.cloudHub.authorization.modes",
        "modules.edgeController.buffer",
        "modules.edgeController.load",
        "modules.deviceController.buffer",
        "modules.deviceController.load",
        "modules.taskManager",
    ),
)

EDGECORE = ConfigKind(
    kind="EdgeCore",
    api_versions=("edgecore.config.kubeedge.io/v1alpha2",),
    schema=EDGECORE_SCHEMA,
    default_template="config/edgecore-defaultconfig.yaml",
    min_template="config/edgecore-minconfig.yaml",
    fill_host=_fill_edge_host,
    ignored=(
        "database.driverName",
        "database.aliasName",
        "modules.edgeHub.quic",
        "modules.edged.tailoredKubeletConfig",
        "modules.edged.windowsService",
        "modules.edged.windowsPriorityClass",
        "modules.edged.experimentalMounterPath",
        "modules.edged.experimentalNodeAllocatableIgnoreEvictionThreshold",
        "modules.edged.runtimeCgroups",
        "modules.dbTest",
        "modules.taskManager",
    ),
    honoured=(
        "modules.edged.tailoredKubeletConfig.staticPodPath",
        "modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint",
        "modules.edged.tailoredKubeletConfig.imageServiceEndpoint",
        "modules.edged.tailoredKubeletConfig.cgroupDriver",
        "modules.edged.tailoredKubeletConfig.nodeLeaseDurationSeconds",
        "modules.edged.tailoredKubeletConfig.nodeStatusUpdateFrequency",
        "modules.edged.tailoredKubeletConfig.nodeStatusReportFrequency",
        "modules.edged.tailoredKubeletConfig.maxPods",
        "modules.edged.tailoredKubeletConfig.podLogsDir",
        "modules.edged.tailoredKubeletConfig.registerNode",
    ),
)

def _fill_controlplane_host(doc: dict[str, Any], address: str, hostname: str) -> None:
    doc["server"]["advertiseAddress"] = address
    if hostname not in doc["server"]["dnsNames"]:
        doc["server"]["dnsNames"].append(hostname)


CONTROLPLANE_SCHEMA: dict[str, Any] = {
    "apiVersion": "str",
    "kind": "str",
    "server": {
        "bindAddress": "str",
        "port": "int",
        "advertiseAddress": "str",
        "dnsNames": "list[str]",
        "maxRequestBytes": "int",
        "maxJSONDepth": "int",
        "requestHeaderTimeoutSeconds": "float",
        "requestBodyTimeoutSeconds": "float",
        "idleTimeoutSeconds": "float",
        "maxConnectionsPerSource": "int",
        "protobufResponses": "bool",
    },
    "dataDir": "str",
    "pkiDir": "str",
    "adminKubeconfig": "str",
    "history": {"revisions": "int", "minutes": "float", "compactIntervalSeconds": "float"},
    "authentication": {"tokens": [{"token": "str", "user": "str", "uid": "str", "groups": "list[str]"}]},
    "serviceClusterIPRange": "str",
    "watchQueueSize": "int",
    # Where the kubelet API of edge nodes is: CloudCore's stream server (host:port; "": none).
    "kubeletClient": {"streamServer": "str", "caFile": "str"},
    "controllers": {"enable": "bool", "nodeMonitorGracePeriodSeconds": "float", "nodeMonitorPeriodSeconds": "float",
                    "resyncPeriodSeconds": "float"},
}

# The embedded control plane's own config (this project's, not upstream's).
CONTROLPLANE = ConfigKind(
    kind="ControlPlane",
    api_versions=("controlplane.config.kubeedge.io/v1alpha1",),
    schema=CONTROLPLANE_SCHEMA,
    default_template="config/controlplane-defaultconfig.yaml",
    min_template="config/controlplane-defaultconfig.yaml",
    fill_host=_fill_controlplane_host,
    ignored=(),
)

# Keys this project adds to upstream's: accepted in addition to upstream's own, never printed by
# --defaultconfig (so upstream's output and ours stay the same).
EXTENSIONS: dict[str, dict[str, str]] = {
    # Node certificates' lifetime in seconds (0: use edgeCertSigningDuration days), so that
    # certificate rotation can be exercised for real in seconds, without a fake clock.
    # sendBufferBytes: what may wait to be written to one node before CloudHub cuts it for not
    # reading (bytes; 0: the default, 16 MiB). nodeMessageQPS/nodeMessageBurst: what CloudHub reads
    # from one node a second and in a burst (defaults 60 and 120; QPS 0: no limit).
    "modules.cloudHub": {"edgeCertSigningSeconds": "int", "sendBufferBytes": "int", "nodeMessageQPS": "float",
                         "nodeMessageBurst": "int"},
    # The name EdgeHub checks CloudCore's certificate against ("": the host it dials, IP or DNS name),
    # for a cloud reached through an address its certificate does not carry.
    "modules.edgeHub": {"tlsServerName": "str"},
    # Bounds of the Router and of ServiceBus: a request or answer body (bytes; 0: 4 MiB, which
    # base64 on the link keeps under its 8 MiB frame limit) and, at the edge, the calls to local
    # servers at once (0: 64).
    "modules.router": {"maxBodyBytes": "int", "maxInFlight": "int"},
    "modules.serviceBus": {"maxBodyBytes": "int", "maxInFlight": "int"},
    # Edged's kubelet server port (kubelet's 10250 role: TLS, logs/exec/attach/port-forward) on
    # ``address``; 0 turns it off. The read-only port (readOnlyPort) serves health, pods and stats.
    "modules.edged.tailoredKubeletConfig": {"port": "int"},
}


def _extend(schema: dict[str, Any]) -> None:
    for path, keys in EXTENSIONS.items():
        node = schema
        for key in path.split("."):
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and node:
            node.update(keys)


_extend(CLOUDCORE_SCHEMA)
_extend(EDGECORE_SCHEMA)

KINDS = {"cloud": CLOUDCORE, "edge": EDGECORE, "controlplane": CONTROLPLANE}


# ------------------------------------------------------------------------------ host facts
def host_address() -> str:
    """The address of the interface that carries the default route (upstream's first host IP)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            # connect() on UDP sends nothing; it only asks the kernel which source address it would use.
            probe.connect(("192.0.2.1", 9))
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return "127.0.0.1"


def host_name() -> str:
    """The node name upstream defaults to: the lower-cased hostname."""
    return socket.gethostname().lower()


# ------------------------------------------------------------------------------ defaults
def default_document(kind: ConfigKind, address: str | None = None, hostname: str | None = None) -> dict[str, Any]:
    """The full default config (upstream's ``--defaultconfig``) for this host."""
    return _template_document(kind, kind.default_template, address, hostname)


def min_document(kind: ConfigKind, address: str | None = None, hostname: str | None = None) -> dict[str, Any]:
    """The short config for beginners (upstream's ``--minconfig``)."""
    return _template_document(kind, kind.min_template, address, hostname)


def _template_document(kind: ConfigKind, name: str, address: str | None, hostname: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(templates.read_text(name))
    kind.fill_host(doc, address or host_address(), hostname or host_name())
    return doc


def dump(doc: Mapping[str, Any]) -> str:
    """YAML as upstream prints configs: keys sorted, block style."""
    return yaml.safe_dump(dict(doc), sort_keys=True, default_flow_style=False, allow_unicode=True)


# ------------------------------------------------------------------------------ loading
def load(kind: ConfigKind, path: str | Path) -> Config:
    """Read ``path`` (``/dev/stdin`` works), overlay it on the defaults and validate it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    return parse(kind, text, source=str(path))


def parse(kind: ConfigKind, text: str, source: str = "<config>") -> Config:
    try:
        user = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {error}") from None
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise ConfigError(f"{source}: a {kind.kind} config is a YAML mapping at the top level")
    _check_kind(kind, user, source)
    validate(kind.schema, user, source)
    merged = overlay(default_document(kind), user)
    merged["apiVersion"] = user.get("apiVersion") or kind.api_version
    merged["kind"] = kind.kind
    for key in ignored_keys(kind, user):
        log.debug("config key %s is accepted for compatibility with upstream but not used", key)
    return Config(merged, source)


def _check_kind(kind: ConfigKind, user: dict[str, Any], source: str) -> None:
    api_version = user.get("apiVersion")
    if api_version is not None and api_version not in kind.api_versions:
        accepted = ", ".join(kind.api_versions)
        raise ConfigError(f"{source}: apiVersion {api_version!r} is not a {kind.kind} config (accepted: {accepted})")
    declared = user.get("kind")
    if declared is not None and declared != kind.kind:
        raise ConfigError(f"{source}: kind {declared!r} is not {kind.kind}; is this the other side's config?")


def overlay(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over a copy of ``base``: mappings merge, lists and scalars replace, None keeps ``base``."""
    result = copy.deepcopy(base)
    for key, value in top.items():
        if value is None and key in result:
            continue
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = overlay(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# ------------------------------------------------------------------------------ validation
def validate(schema: dict[str, Any], doc: Mapping[str, Any], source: str, prefix: str = "") -> None:
    """Check every key of ``doc`` against ``schema``; raise :class:`ConfigError` naming the first bad path."""
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(f"{source}: key {path!r} is not a string")
        if key not in schema:
            raise ConfigError(f"{source}: unknown key {path}{_suggestion(key, schema)}")
        if value is not None:
            _check_value(schema[key], value, source, path)


def _suggestion(key: str, schema: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(schema), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


_SCALAR_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "duration": (lambda v: isinstance(v, str) and bool(_GO_DURATION.match(v)), 'a duration such as "10s" or "5m0s"'),
    "list[str]": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "a list of strings"),
    "list[any]": (lambda v: isinstance(v, list), "a list"),
    "any": (lambda v: True, "anything"),
}


def _check_value(expected: Any, value: Any, source: str, path: str) -> None:
    if isinstance(expected, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {path} must be a mapping, not {_describe(value)}")
        validate(expected, value, source, path + ".")
    elif isinstance(expected, list):
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {path} must be a list, not {_describe(value)}")
        for index, item in enumerate(value):
            _check_value(expected[0], item, source, f"{path}[{index}]")
    elif expected.startswith("map["):
        _check_map(expected[4:-1], value, source, path)
    else:
        check, wanted = _SCALAR_CHECKS[expected]
        if not check(value):
            raise ConfigError(f"{source}: {path} must be {wanted}, not {_describe(value)}")


def _check_map(value_type: str, value: Any, source: str, path: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {path} must be a mapping, not {_describe(value)}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: {path} has a key {key!r} that is not a string")
        _check_value(value_type, item, source, f"{path}.{key}")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def ignored_keys(kind: ConfigKind, doc: Mapping[str, Any]) -> list[str]:
    """The leaf key paths in ``doc`` that this project accepts but does not act on."""
    return [
        path
        for path in _leaf_paths(doc)
        if any(_under(path, p) for p in kind.ignored) and not any(_under(path, h) for h in kind.honoured)
    ]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def _leaf_paths(doc: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


# ------------------------------------------------------------------------------ --set
def set_path(doc: dict[str, Any], dotted: str, raw_value: str, schema: dict[str, Any]) -> None:
    """Apply ``--set a.b.c=value``: the value is parsed as YAML and checked against the schema."""
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"--set {dotted}: empty key in the path")
    try:
        value = yaml.safe_load(raw_value) if raw_value != "" else ""
    except yaml.YAMLError:
        value = raw_value
    node: Any = schema
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(keys[: depth + 1])
            hint = _suggestion(key, node) if isinstance(node, dict) else ""
            raise ConfigError(f"--set {dotted}: unknown key {where}{hint}")
        node = node[key]
    if isinstance(node, str) and node == "str" and not isinstance(value, str):
        value = raw_value  # `--set x=123` on a string key means the text "123"
    _check_value(node, value, "--set", dotted)
    target = doc
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


# ------------------------------------------------------------------------------ access
class Section(Mapping[str, Any]):
    """Read-only attribute access over a config mapping: ``cfg.modules.cloudHub.nodeLimit``."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self._data = data
        self._path = path

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {self._path}{name}") from None

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if isinstance(value, Mapping):
            return Section(value, f"{self._path}{key}.")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class Config(Section):
    """A validated config with its defaults applied, and where it came from."""

    __slots__ = ("document", "source")

    def __init__(self, document: dict[str, Any], source: str) -> None:
        super().__init__(document)
        self.document = document
        self.source = source

    def enabled_modules(self) -> list[str]:
        """Module keys under ``modules:`` whose ``enable`` is true, in file order."""
        modules = self.document.get("modules") or {}
        return [name for name, section in modules.items() if isinstance(section, Mapping) and section.get("enable")]
