"""Object validation with kube-apiserver's field paths and wording, for 422 Invalid answers.

Owns the create and update checks of the kinds the embedded control plane serves (object
metadata, Pod, ConfigMap, Secret, Service, Lease, Deployment, ReplicaSet; names only for the
rest), and the formatting of the resulting Status message. Causes carry apimachinery's
`field.Error` parts: `reason` is the StatusCause type, `message` is `ErrorBody()` (e.g.
`Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must ...`), `field` the path.

Objects are validated as kube-apiserver sees them: already defaulted (see defaults.py) and with
metadata.namespace set from the URL. Inputs are never modified.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from cores.controlplane.defaults import parse_quantity
from cores.common.selectors import (
    SelectorError,
    go_quote,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    label_selector_from_dict,
    max_len_error,
    regex_error,
)

# --- Causes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """One field error: `str(cause)` is Go's `field.Error.Error()` (`<field>: <message>`)."""

    reason: str
    message: str
    field: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_OMIT = object()  # field.OmitValueType: the message leaves the bad value out


def go_value(value: Any) -> str:
    """A bad value as `field.Error` prints it (%q for strings, %v for numbers, %#v otherwise)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        pairs = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + pairs + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _with_detail(head: str, detail: str) -> str:
    return f"{head}: {detail}" if detail else head


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", _with_detail("Required value", detail), field)


def invalid(field: str, value: Any, detail: str) -> Cause:
    head = "Invalid value" if value is _OMIT else f"Invalid value: {go_value(value)}"
    return Cause("FieldValueInvalid", _with_detail(head, detail), field)


def forbidden(field: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", _with_detail("Forbidden", detail), field)


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    listed = ", ".join(go_quote(item) for item in supported)
    detail = f"supported values: {listed}" if listed else ""
    return Cause("FieldValueNotSupported", _with_detail(f"Unsupported value: {go_value(value)}", detail), field)


def duplicate(field: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {go_value(value)}", field)


def not_found(field: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", f"Not found: {go_value(value)}", field)


def too_long(field: str, max_length: int) -> Cause:
    # Too long hides the value: "Too long: must have at most N bytes".
    return Cause("FieldValueTooLong", f"Too long: must have at most {max_length} bytes", field)


def type_invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueTypeInvalid", f"Invalid value: {go_value(value)}: {detail}", field)


# API groups of the kinds served, for the "<Kind>.<group>" of the message (GroupKind.String()).
KIND_GROUPS = {
    "Deployment": "apps", "ReplicaSet": "apps", "DaemonSet": "apps", "StatefulSet": "apps",
    "Lease": "coordination.k8s.io", "CustomResourceDefinition": "apiextensions.k8s.io",
    "Role": "rbac.authorization.k8s.io", "RoleBinding": "rbac.authorization.k8s.io",
    "ClusterRole": "rbac.authorization.k8s.io", "ClusterRoleBinding": "rbac.authorization.k8s.io",
}


def format_invalid_message(kind: str, name: str, causes: Iterable[Cause], group: str | None = None) -> str:
    """errors.NewInvalid's message: `Pod "x" is invalid: <field>: <message>`.

    Identical causes are reported once, and more than one distinct cause is wrapped in
    brackets (utilerrors.Aggregate). `group` defaults to KIND_GROUPS (core kinds have none).
    """
    group = KIND_GROUPS.get(kind, "") if group is None else group
    qualified = f"{kind}.{group}" if group else kind
    distinct = list(dict.fromkeys(str(cause) for cause in causes))
    head = f"{qualified} {go_quote(name)} is invalid"
    if not distinct:
        return head
    body = distinct[0] if len(distinct) == 1 else "[" + ", ".join(distinct) + "]"
    return f"{head}: {body}"


# --- Small helpers ----------------------------------------------------------------------------------------


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[dict[str, Any]]:
    """List entries as dicts (a non-dict entry reads as empty, so its fields come out required)."""
    return [item if isinstance(item, dict) else {} for item in value] if isinstance(value, list) else []


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _semantic(value: Any) -> Any:
    """Drop zero values, as Go compares structs: absent, null, "", 0, false, [] and {} are alike."""
    if isinstance(value, dict):
        cleaned = {key: _semantic(item) for key, item in value.items()}
        return {key: item for key, item in cleaned.items() if item not in (None, "", 0, False, [], {})}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"
PORT_RANGE = "must be between 1 and 65535, inclusive"
PROTOCOLS = ("SCTP", "TCP", "UDP")  # sets.List(supportedPortProtocols): sorted

# --- Names -------------------------------------------------------------------------------------------------

_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_ERR = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")


def is_dns1035_label(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append(max_len_error(63))
    if not re.fullmatch(_DNS1035_LABEL_FMT, value):
        errors.append(regex_error(_DNS1035_LABEL_ERR, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errors


def is_path_segment_name(value: str) -> list[str]:
    """apimachinery's ValidatePathSegmentName, RBAC's name rule ("system:basic-user" is valid)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


_NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "Namespace": is_dns1123_label,
    "Service": is_dns1035_label,
    "Role": is_path_segment_name, "RoleBinding": is_path_segment_name,
    "ClusterRole": is_path_segment_name, "ClusterRoleBinding": is_path_segment_name,
}

CLUSTER_SCOPED_KINDS = frozenset({
    "Namespace", "Node", "PersistentVolume", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleBinding", "StorageClass", "PriorityClass", "APIService", "RuntimeClass",
    "CertificateSigningRequest", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
})
NAMESPACED_KINDS = frozenset({
    "Pod", "ConfigMap", "Secret", "Service", "ServiceAccount", "Endpoints", "Event", "Lease",
    "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Role", "RoleBinding",
    "PersistentVolumeClaim", "EndpointSlice", "Job", "CronJob",
})


def _mask_trailing_dash(name: str) -> str:
    # A generateName may end in "-": the random suffix follows it (maskTrailingDash).
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def _name_causes(kind: str, metadata: dict[str, Any]) -> list[Cause]:
    rule = _NAME_RULES.get(kind, is_dns1123_subdomain)
    causes = []
    generate_name = metadata.get("generateName")
    if isinstance(generate_name, str) and generate_name:
        causes += [invalid("metadata.generateName", generate_name, message)
                   for message in rule(_mask_trailing_dash(generate_name))]
    name = metadata.get("name")
    if not name:
        # With generateName the server invents the name before validating; without, it's missing.
        if not generate_name:
            causes.append(required("metadata.name", "name or generateName is required"))
    elif isinstance(name, str):
        causes += [invalid("metadata.name", name, message) for message in rule(name)]
    return causes


def _namespace_causes(kind: str, metadata: dict[str, Any], namespaced: bool | None) -> list[Cause]:
    namespace = metadata.get("namespace")
    if namespaced is False:
        return [forbidden("metadata.namespace", "not allowed on this type")] if namespace else []
    if not namespace:
        return [required("metadata.namespace")] if namespaced else []
    return [invalid("metadata.namespace", namespace, message) for message in is_dns1123_label(str(namespace))]


def label_causes(labels: Any, field: str) -> list[Cause]:
    """ValidateLabels: every key a qualified name, every value a label value (path not keyed)."""
    causes = []
    for key, value in _mapping(labels).items():
        causes += [invalid(field, key, message) for message in is_qualified_name(key)]
        causes += [invalid(field, value, message) for message in is_valid_label_value(str(value))]
    return causes


TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def annotation_causes(annotations: Any, field: str) -> list[Cause]:
    """ValidateAnnotations: keys are qualified names (case-insensitively); 256 KiB in total."""
    causes = []
    total = 0
    for key, value in _mapping(annotations).items():
        # "The rule is QualifiedName except that case doesn't matter, so convert to lowercase."
        causes += [invalid(field, key, message) for message in is_qualified_name(key.lower())]
        total += len(key) + len(str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _is_namespaced(kind: str) -> bool | None:
    if kind in CLUSTER_SCOPED_KINDS:
        return False
    return True if kind in NAMESPACED_KINDS else None


def metadata_causes(kind: str, obj: Mapping[str, Any], namespaced: bool | None = None) -> list[Cause]:
    """ValidateObjectMeta: name or generateName, namespace, labels, annotations."""
    metadata = _mapping(obj.get("metadata"))
    scope = _is_namespaced(kind) if namespaced is None else namespaced
    return (_name_causes(kind, metadata) + _namespace_causes(kind, metadata, scope)
            + label_causes(metadata.get("labels"), "metadata.labels")
            + annotation_causes(metadata.get("annotations"), "metadata.annotations"))


def metadata_update_causes(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """ValidateObjectMetaUpdate's immutable fields.

    uid and creationTimestamp are compared only when the update carries them: kube-apiserver
    carries them over from the stored object when a client (kubectl replace) leaves them out.
    """
    new_meta, old_meta = _mapping(obj.get("metadata")), _mapping(old.get("metadata"))
    causes = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        new_value, old_value = new_meta.get(key) or "", old_meta.get(key) or ""
        if key in ("uid", "creationTimestamp") and not new_value:
            continue
        if new_value != old_value:
            causes.append(invalid(f"metadata.{key}", new_value, IMMUTABLE))
    return causes


# --- Pods ---------------------------------------------------------------------------------------------------


def _port_name_errors(name: str) -> list[str]:
    """IsValidPortName (IANA_SVC_NAME)."""
    errors = []
    if len(name) > 15:
        errors.append(max_len_error(15))
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errors.append("must contain at least one letter (a-z)")
    if "--" in name:
        errors.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def _port_number_causes(field: str, value: Any) -> list[Cause]:
    if not _is_int(value):
        return [type_invalid(field, value, "must be an integer")]
    return [] if 1 <= value <= 65535 else [invalid(field, value, PORT_RANGE)]


def _protocol_causes(field: str, protocol: Any) -> list[Cause]:
    # Defaulting fills an absent protocol with TCP, so only a wrong one is reported.
    if protocol is None:
        return []
    if protocol == "":
        return [required(field)]
    return [] if protocol in PROTOCOLS else [not_supported(field, protocol, PROTOCOLS)]


def _container_port_causes(ports: Any, path: str) -> list[Cause]:
    causes = []
    names: set[str] = set()
    for index, port in enumerate(_items(ports)):
        at = f"{path}[{index}]"
        name = port.get("name")
        if name:
            errors = _port_name_errors(str(name))
            causes += [invalid(f"{at}.name", name, message) for message in errors]
            if not errors and name in names:
                causes.append(duplicate(f"{at}.name", name))
            names.add(str(name))
        if not port.get("containerPort"):
            causes.append(required(f"{at}.containerPort"))
        else:
            causes += _port_number_causes(f"{at}.containerPort", port["containerPort"])
        if port.get("hostPort"):
            causes += _port_number_causes(f"{at}.hostPort", port["hostPort"])
        causes += _protocol_causes(f"{at}.protocol", port.get("protocol"))
    return causes


def _volume_mount_causes(mounts: Any, volume_names: set[str], path: str) -> list[Cause]:
    causes = []
    mount_paths: set[str] = set()
    for index, mount in enumerate(_items(mounts)):
        at = f"{path}[{index}]"
        name, mount_path = mount.get("name") or "", mount.get("mountPath") or ""
        if not name:
            causes.append(required(f"{at}.name"))
        if name not in volume_names:
            causes.append(not_found(f"{at}.name", name))
        if not mount_path:
            causes.append(required(f"{at}.mountPath"))
        if mount_path in mount_paths:
            causes.append(invalid(f"{at}.mountPath", mount_path, "must be unique"))
        mount_paths.add(mount_path)
    return causes


def _resource_causes(resources: Any, path: str) -> list[Cause]:
    resources = _mapping(resources)
    causes = []
    parsed: dict[str, dict[str, Any]] = {"limits": {}, "requests": {}}
    for section in ("limits", "requests"):
        for name, raw in _mapping(resources.get(section)).items():
            quantity = parse_quantity(raw)
            at = f"{path}.{section}[{name}]"
            if quantity is None:
                causes.append(invalid(at, str(raw), "quantities must match the regular expression "
                                      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
            elif quantity < 0:
                causes.append(invalid(at, str(raw), NEGATIVE))
            else:
                parsed[section][name] = (quantity, str(raw))
    for name, (request, raw_request) in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit[0]:
            causes.append(invalid(f"{path}.requests", raw_request,
                                  f"must be less than or equal to {name} limit of {limit[1]}"))
    return causes


_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def _container_causes(container: dict[str, Any], path: str, volume_names: set[str]) -> list[Cause]:
    """validateContainerCommon, for the parts this server checks."""
    causes = []
    name = container.get("name")
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes += [invalid(f"{path}.name", name, message) for message in is_dns1123_label(str(name))]
    if not container.get("image"):
        causes.append(required(f"{path}.image"))
    causes += _container_port_causes(container.get("ports"), f"{path}.ports")
    causes += _volume_mount_causes(container.get("volumeMounts"), volume_names, f"{path}.volumeMounts")
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in _PULL_POLICIES:
        causes.append(not_supported(f"{path}.imagePullPolicy", policy, _PULL_POLICIES))
    causes += _resource_causes(container.get("resources"), f"{path}.resources")
    return causes


def _containers_causes(spec: dict[str, Any], path: str, volume_names: set[str]) -> list[Cause]:
    """Containers then init containers; names are unique across both lists."""
    causes = []
    seen: set[str] = set()
    if not _items(spec.get("containers")):
        causes.append(required(f"{path}.containers"))
    for key in ("containers", "initContainers"):
        for index, container in enumerate(_items(spec.get(key))):
            at = f"{path}.{key}[{index}]"
            causes += _container_causes(container, at, volume_names)
            name = container.get("name")
            if name and name in seen:
                causes.append(duplicate(f"{at}.name", name))
            seen.add(str(name))
    return causes


def _volume_causes(volumes: Any, path: str) -> tuple[set[str], list[Cause]]:
    causes = []
    names: set[str] = set()
    for index, volume in enumerate(_items(volumes)):
        at = f"{path}[{index}]"
        sources = [key for key in volume if key != "name"]
        if not sources:
            causes.append(required(at, "must specify a volume type"))
        for extra in sources[1:]:
            causes.append(forbidden(f"{at}.{extra}", "may not specify more than 1 volume type"))
        name = volume.get("name")
        if not name:
            causes.append(required(f"{at}.name"))
        else:
            causes += [invalid(f"{at}.name", name, message) for message in is_dns1123_label(str(name))]
        if name in names:
            causes.append(duplicate(f"{at}.name", name))
        names.add(str(name or ""))
    return names, causes


_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")  # sorted


def _enum_causes(spec: dict[str, Any], key: str, path: str, allowed: tuple[str, ...]) -> list[Cause]:
    # Absent means "defaulting has not run": only a wrong or emptied value is reported.
    value = spec.get(key)
    if value is None:
        return []
    if value == "":
        return [required(f"{path}.{key}")]
    return [] if value in allowed else [not_supported(f"{path}.{key}", value, allowed)]


def _pod_spec_field_causes(spec: dict[str, Any], path: str) -> list[Cause]:
    causes = _enum_causes(spec, "restartPolicy", path, _RESTART_POLICIES)
    causes += _enum_causes(spec, "dnsPolicy", path, _DNS_POLICIES)
    causes += label_causes(spec.get("nodeSelector"), f"{path}.nodeSelector")
    for key in ("serviceAccountName", "nodeName"):
        if spec.get(key):
            causes += [invalid(f"{path}.{key}", spec[key], message)
                       for message in is_dns1123_subdomain(str(spec[key]))]
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not (_is_int(deadline) and 1 <= deadline <= 2**31 - 1):
        causes.append(invalid(f"{path}.activeDeadlineSeconds", deadline,
                              "must be between 1 and 2147483647, inclusive"))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and not _is_int(grace):
        causes.append(type_invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be an integer"))
    return causes


def pod_spec_causes(spec: Any, path: str = "spec") -> list[Cause]:
    """ValidatePodSpec's checks, with field paths under `path` (e.g. "spec.template.spec")."""
    spec = _mapping(spec)
    volume_names, causes = _volume_causes(spec.get("volumes"), f"{path}.volumes")
    causes += _containers_causes(spec, path, volume_names)
    causes += _pod_spec_field_causes(spec, path)
    return causes


_POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
POD_UPDATABLE_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)


def _validate_pod(obj: Mapping[str, Any]) -> list[Cause]:
    return pod_spec_causes(obj.get("spec"))


def _container_list_update_causes(new: Any, old: Any, path: str) -> tuple[list[Cause], bool]:
    new_items, old_items = _items(new), _items(old)
    if len(new_items) != len(old_items):
        return [forbidden(path, "pod updates may not add or remove containers")], True
    causes = []
    for index, container in enumerate(new_items):
        image = container.get("image")
        if isinstance(image, str) and image and image.strip() != image:
            causes.append(invalid(f"{path}[{index}].image", image, "must not have leading or trailing whitespace"))
    return causes, False


def _toleration_update_causes(new: Any, old: Any) -> list[Cause]:
    # "existing toleration can not be modified except its tolerationSeconds": each old
    # toleration must still be there, compared with tolerationSeconds ignored.
    def without_seconds(toleration: dict[str, Any]) -> Any:
        return _semantic({k: v for k, v in toleration.items() if k != "tolerationSeconds"})

    remaining = [without_seconds(t) for t in _items(new)]
    for toleration in _items(old):
        if without_seconds(toleration) not in remaining:
            detail = "existing toleration can not be modified except its tolerationSeconds"
            return [forbidden("spec.tolerations", detail)]
    return []


def _deadline_update_causes(new: Any, old: Any) -> list[Cause]:
    field = "spec.activeDeadlineSeconds"
    if new is None:
        return [invalid(field, None, "must not update from a positive integer to nil value")] if old is not None else []
    if not _is_int(new) or not 0 <= new <= 2**31 - 1:
        return [invalid(field, new, "must be between 0 and 2147483647, inclusive")]
    if _is_int(old) and old < new:
        return [invalid(field, new, "must be less than or equal to previous value")]
    return []


def _munged_pod_spec(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """The new spec with every updatable field copied from the old one (ValidatePodUpdate)."""
    munged = dict(new)
    for key in ("containers", "initContainers"):
        olds = _items(old.get(key))
        munged[key] = [{**container, "image": olds[index].get("image")}
                       for index, container in enumerate(_items(new.get(key)))]
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged[key] = old.get(key)
    old_grace, new_grace = old.get("terminationGracePeriodSeconds"), new.get("terminationGracePeriodSeconds")
    if _is_int(old_grace) and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def _spec_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    # Stands in for go-cmp's diff of core.PodSpec, which this server cannot reproduce exactly.
    lines = ["  core.PodSpec{"]
    old_clean, new_clean = _semantic(old), _semantic(new)
    for key in sorted(set(old_clean) | set(new_clean)):
        if old_clean.get(key) != new_clean.get(key):
            if key in old_clean:
                lines.append(f"- \t{key}: {json.dumps(old_clean[key], sort_keys=True)},")
            if key in new_clean:
                lines.append(f"+ \t{key}: {json.dumps(new_clean[key], sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines)


def _validate_pod_update(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    new_spec, old_spec = _mapping(obj.get("spec")), _mapping(old.get("spec"))
    causes: list[Cause] = []
    for key in ("containers", "initContainers"):
        found, stop = _container_list_update_causes(new_spec.get(key), old_spec.get(key), f"spec.{key}")
        causes += found
        if stop:
            return causes
    causes += _deadline_update_causes(new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds"))
    causes += _toleration_update_causes(new_spec.get("tolerations"), old_spec.get("tolerations"))
    munged = _munged_pod_spec(new_spec, old_spec)
    if _semantic(munged) != _semantic(old_spec):
        detail = ("pod updates may not change fields other than " + ",".join(POD_UPDATABLE_FIELDS)
                  + "\n" + _spec_diff(old_spec, munged))
        causes.append(forbidden("spec", detail))
    return causes


# --- ConfigMaps and Secrets -----------------------------------------------------------------------------

MAX_SECRET_SIZE = 1024 * 1024
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_ERR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"


def is_config_map_key(key: str) -> list[str]:
    errors = []
    if len(key) > 253:
        errors.append(max_len_error(253))
    if not re.fullmatch(_CONFIG_KEY_FMT, key):
        errors.append(regex_error(_CONFIG_KEY_ERR, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if key == ".":
        errors.append("must not be '.'")
    elif key == "..":
        errors.append("must not be '..'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def _key_causes(data: dict[str, Any], path: str) -> list[Cause]:
    return [invalid(f"{path}[{key}]", key, message) for key in data for message in is_config_map_key(key)]


def _base64_error(value: Any) -> str | None:
    """Why Go's StdEncoding would refuse `value` (JSON []byte), or None; offsets approximate Go's."""
    if not isinstance(value, str):
        return "must be a base64-encoded string"
    stripped = value.replace("\r", "").replace("\n", "")
    for index, char in enumerate(value):
        if not (char.isascii() and (char.isalnum() or char in "+/=\r\n")):
            return f"illegal base64 data at input byte {index}"
    try:
        base64.b64decode(stripped, validate=True)
    except binascii.Error:
        return f"illegal base64 data at input byte {len(stripped) - len(stripped) % 4}"
    return None


def _decoded_size(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value).replace("\r", "").replace("\n", ""), validate=True))
    except binascii.Error:
        return 0


def _validate_config_map(obj: Mapping[str, Any]) -> list[Cause]:
    data, binary = _mapping(obj.get("data")), _mapping(obj.get("binaryData"))
    causes = _key_causes(data, "data")
    causes += [invalid(f"data[{key}]", key, "duplicate of key present in binaryData") for key in data if key in binary]
    causes += _key_causes(binary, "binaryData")
    causes += [invalid(f"binaryData[{key}]", _OMIT, error)
               for key, value in binary.items() if (error := _base64_error(value))]
    total = sum(len(str(value).encode()) for value in data.values())
    total += sum(_decoded_size(value) for value in binary.values())
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("", MAX_SECRET_SIZE))
    return causes


def _validate_secret(obj: Mapping[str, Any]) -> list[Cause]:
    data = _mapping(obj.get("data"))
    causes = _key_causes(data, "data")
    causes += [invalid(f"data[{key}]", _OMIT, error) for key, value in data.items() if (error := _base64_error(value))]
    if sum(_decoded_size(value) for value in data.values()) > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    if obj.get("type") == "kubernetes.io/tls":
        causes += [required(f"data[{key}]") for key in ("tls.crt", "tls.key") if key not in data]
    return causes


def _immutable_data_causes(obj: Mapping[str, Any], old: Mapping[str, Any], keys: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    detail = "field is immutable when `immutable` is set"
    causes = [] if obj.get("immutable") is True else [forbidden("immutable", detail)]
    for key in keys:
        if _mapping(obj.get(key)) != _mapping(old.get(key)):
            causes.append(forbidden(key, detail))
    return causes


def _validate_config_map_update(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    return _immutable_data_causes(obj, old, ("data", "binaryData"))


def _validate_secret_update(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    causes = []
    if (obj.get("type") or "") != (old.get("type") or ""):
        causes.append(invalid("type", obj.get("type") or "", IMMUTABLE))
    return causes + _immutable_data_causes(obj, old, ("data",))


# --- Services and Leases ---------------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")  # sorted


def _target_port_causes(target: Any, field: str) -> list[Cause]:
    if target is None:
        return []
    if isinstance(target, str):
        return [invalid(field, target, message) for message in _port_name_errors(target)]
    return _port_number_causes(field, target)


def _service_port_causes(ports: list[dict[str, Any]]) -> list[Cause]:
    causes = []
    names: set[str] = set()
    for index, port in enumerate(ports):
        at = f"spec.ports[{index}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(required(f"{at}.name"))
        elif name:
            causes += [invalid(f"{at}.name", name, message) for message in is_dns1123_label(name)]
            if name in names:
                causes.append(duplicate(f"{at}.name", name))
            names.add(name)
        causes += _port_number_causes(f"{at}.port", port.get("port", 0))
        causes += _protocol_causes(f"{at}.protocol", port.get("protocol"))
        causes += _target_port_causes(port.get("targetPort"), f"{at}.targetPort")
    return causes


def _validate_service(obj: Mapping[str, Any]) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    service_type = spec.get("type")
    ports = _items(spec.get("ports"))
    causes = []
    if not ports and spec.get("clusterIP") != "None" and service_type != "ExternalName":
        causes.append(required("spec.ports"))
    causes += _service_port_causes(ports)
    causes += label_causes(spec.get("selector"), "spec.selector")
    if service_type is not None and service_type not in _SERVICE_TYPES:
        causes.append(not_supported("spec.type", service_type, _SERVICE_TYPES))
    return causes


def _validate_lease(obj: Mapping[str, Any]) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes = []
    for key in ("holderIdentity", "acquireTime", "renewTime"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            causes.append(type_invalid(f"spec.{key}", spec[key], "must be a string"))
    for key, minimum, detail in (("leaseDurationSeconds", 1, "must be greater than 0"),
                                 ("leaseTransitions", 0, "must be greater than or equal to 0")):
        value = spec.get(key)
        if value is None:
            continue
        if not _is_int(value):
            causes.append(type_invalid(f"spec.{key}", value, "must be an integer"))
        elif value < minimum:
            causes.append(invalid(f"spec.{key}", value, detail))
    return causes


# --- Deployments and ReplicaSets ----------------------------------------------------------------------------


def go_label_selector(selector: Any) -> str:
    """A metav1.LabelSelector as %#v prints it (the bad value of spec.selector errors)."""
    selector = _mapping(selector)
    labels = selector.get("matchLabels")
    labels_text = go_value(labels) if labels else "map[string]string(nil)"
    expressions = _items(selector.get("matchExpressions"))
    if not expressions:
        expressions_text = "[]v1.LabelSelectorRequirement(nil)"
    else:
        rendered = [f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key', '')))}, "
                    f"Operator:{go_quote(str(e.get('operator', '')))}, "
                    f"Values:{go_value(list(e['values'])) if e.get('values') else '[]string(nil)'}}}"
                    for e in expressions]
        expressions_text = "[]v1.LabelSelectorRequirement{" + ", ".join(rendered) + "}"
    return f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{expressions_text}}}"


def _invalid_selector(field: str, selector: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {go_label_selector(selector)}: {detail}", field)


def label_selector_causes(selector: Any, path: str) -> list[Cause]:
    """metav1 ValidateLabelSelector: matchLabels as labels, each expression's operator and values."""
    selector = _mapping(selector)
    causes = label_causes(selector.get("matchLabels"), f"{path}.matchLabels")
    for index, expression in enumerate(_items(selector.get("matchExpressions"))):
        at = f"{path}.matchExpressions[{index}]"
        operator, values = expression.get("operator"), expression.get("values") or []
        if operator in ("In", "NotIn") and not values:
            causes.append(required(f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist") and values:
            detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            causes.append(forbidden(f"{at}.values", detail))
        elif operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append(invalid(f"{at}.operator", operator, "not a valid selector operator"))
        key = str(expression.get("key", ""))
        causes += [invalid(f"{at}.key", key, message) for message in is_qualified_name(key)]
        for value_index, value in enumerate(values):
            causes += [invalid(f"{at}.values[{value_index}]", value, message)
                       for message in is_valid_label_value(str(value))]
    return causes


def _selector_causes(spec: dict[str, Any]) -> list[Cause]:
    selector = spec.get("selector")
    if selector is None:
        return [required("spec.selector")]
    causes = label_selector_causes(selector, "spec.selector")
    selector = _mapping(selector)
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        # The ReplicaSet check says "deployment" too: the message is shared in apps validation.
        causes.append(_invalid_selector("spec.selector", selector, "empty selector is invalid for deployment"))
    return causes


def _template_causes(spec: dict[str, Any]) -> list[Cause]:
    """ValidatePodTemplateSpecForReplicaSet."""
    try:
        selector = label_selector_from_dict(spec.get("selector"))
    except SelectorError:
        return [_invalid_selector("spec.selector", spec.get("selector"), "invalid label selector")]
    template = _mapping(spec.get("template"))
    metadata = _mapping(template.get("metadata"))
    labels = _mapping(metadata.get("labels"))
    causes = []
    if not selector.empty and not selector.matches(labels):
        causes.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    # ValidatePodTemplateSpec puts labels at "<template>.labels" (sic, no "metadata").
    causes += label_causes(metadata.get("labels"), "spec.template.labels")
    causes += annotation_causes(metadata.get("annotations"), "spec.template.annotations")
    template_spec = _mapping(template.get("spec"))
    causes += pod_spec_causes(template_spec, "spec.template.spec")
    restart_policy = template_spec.get("restartPolicy")
    if restart_policy is not None and restart_policy != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", restart_policy, ("Always",)))
    if template_spec.get("activeDeadlineSeconds") is not None:
        causes.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                                "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return causes


def _nonnegative_causes(spec: dict[str, Any], keys: tuple[str, ...]) -> list[Cause]:
    causes = []
    for key in keys:
        value = spec.get(key)
        if value is None:
            continue
        if not _is_int(value):
            causes.append(type_invalid(f"spec.{key}", value, "must be an integer"))
        elif value < 0:
            causes.append(invalid(f"spec.{key}", value, NEGATIVE))
    return causes


_PERCENT = re.compile(r"[0-9]+%")
PERCENT_ERROR = ("a valid percent string must be a numeric string followed by an ending '%' "
                 "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")


def _int_or_percent_causes(value: Any, field: str) -> list[Cause]:
    """ValidatePositiveIntOrPercent: a non-negative int, or a percent string."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT.fullmatch(value):
            return [invalid(field, value, PERCENT_ERROR)]
        return []
    return [invalid(field, value, NEGATIVE)] if _is_int(value) and value < 0 else []


def _strategy_causes(strategy: Any) -> list[Cause]:
    strategy = _mapping(strategy)
    kind = strategy.get("type")
    if kind == "Recreate" and strategy.get("rollingUpdate") is not None:
        return [forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
    if kind is not None and kind not in ("Recreate", "RollingUpdate"):
        return [not_supported("spec.strategy.type", kind, ("Recreate", "RollingUpdate"))]
    rolling = _mapping(strategy.get("rollingUpdate"))
    return (_int_or_percent_causes(rolling.get("maxUnavailable"), "spec.strategy.rollingUpdate.maxUnavailable")
            + _int_or_percent_causes(rolling.get("maxSurge"), "spec.strategy.rollingUpdate.maxSurge"))


def _validate_replica_set(obj: Mapping[str, Any]) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    return (_nonnegative_causes(spec, ("replicas", "minReadySeconds"))
            + _selector_causes(spec) + _template_causes(spec))


def _validate_daemon_set(obj: Mapping[str, Any]) -> list[Cause]:
    """ValidateDaemonSetSpec: the selector and template as a ReplicaSet's, and a known update strategy."""
    spec = _mapping(obj.get("spec"))
    causes = (_nonnegative_causes(spec, ("minReadySeconds", "revisionHistoryLimit"))
              + _selector_causes(spec) + _template_causes(spec))
    strategy = _mapping(spec.get("updateStrategy")).get("type")
    if strategy is not None and strategy not in ("RollingUpdate", "OnDelete"):
        causes.append(not_supported("spec.updateStrategy.type", strategy, ("OnDelete", "RollingUpdate")))
    return causes


def _validate_stateful_set(obj: Mapping[str, Any]) -> list[Cause]:
    """ValidateStatefulSetSpec: the selector and template as a ReplicaSet's, known policies."""
    spec = _mapping(obj.get("spec"))
    causes = (_nonnegative_causes(spec, ("replicas", "minReadySeconds", "revisionHistoryLimit"))
              + _selector_causes(spec) + _template_causes(spec))
    policy = spec.get("podManagementPolicy")
    if policy is not None and policy not in ("OrderedReady", "Parallel"):
        causes.append(not_supported("spec.podManagementPolicy", policy, ("OrderedReady", "Parallel")))
    strategy = _mapping(spec.get("updateStrategy")).get("type")
    if strategy is not None and strategy not in ("RollingUpdate", "OnDelete"):
        causes.append(not_supported("spec.updateStrategy.type", strategy, ("OnDelete", "RollingUpdate")))
    return causes


def _job_template_causes(spec: dict[str, Any], path: str) -> list[Cause]:
    template = _mapping(spec.get("template"))
    template_spec = _mapping(template.get("spec"))
    causes = pod_spec_causes(template_spec, f"{path}.template.spec")
    restart_policy = template_spec.get("restartPolicy")
    if restart_policy not in ("OnFailure", "Never"):
        causes.append(required(f"{path}.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"')
                      if restart_policy in (None, "Always") else
                      not_supported(f"{path}.template.spec.restartPolicy", restart_policy, ("OnFailure", "Never")))
    causes += _nonnegative_causes(spec, ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds",
                                         "ttlSecondsAfterFinished"))
    return causes


def _validate_job(obj: Mapping[str, Any]) -> list[Cause]:
    """ValidateJobSpec: a template that runs to completion, counts that are not negative, and
    (set by the strategy unless manualSelector) a selector that matches the template's labels."""
    spec = _mapping(obj.get("spec"))
    causes = _job_template_causes(spec, "spec")
    if spec.get("selector") is not None:
        causes += label_selector_causes(spec.get("selector"), "spec.selector")
        try:
            selector = label_selector_from_dict(spec.get("selector"))
            labels = _mapping(_mapping(_mapping(spec.get("template")).get("metadata")).get("labels"))
            if not selector.empty and not selector.matches(labels):
                causes.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
        except SelectorError:
            causes.append(_invalid_selector("spec.selector", spec.get("selector"), "invalid label selector"))
    return causes


def _validate_cron_job(obj: Mapping[str, Any]) -> list[Cause]:
    """ValidateCronJobSpec: a schedule that parses, a known concurrency policy, a Job template."""
    from cores.controlplane import cron

    spec = _mapping(obj.get("spec"))
    causes: list[Cause] = []
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(required("spec.schedule"))
    else:
        try:
            cron.parse(str(schedule))
        except cron.CronError as error:
            causes.append(invalid("spec.schedule", schedule, str(error)))
    policy = spec.get("concurrencyPolicy")
    if policy is not None and policy not in ("Allow", "Forbid", "Replace"):
        causes.append(not_supported("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace")))
    causes += _nonnegative_causes(spec, ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"))
    causes += _job_template_causes(_mapping(_mapping(spec.get("jobTemplate")).get("spec")), "spec.jobTemplate.spec")
    return causes


def _validate_deployment(obj: Mapping[str, Any]) -> list[Cause]:
    spec = _mapping(obj.get("spec"))
    causes = _nonnegative_causes(spec, ("replicas",)) + _selector_causes(spec) + _template_causes(spec)
    causes += _strategy_causes(spec.get("strategy"))
    causes += _nonnegative_causes(spec, ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"))
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if _is_int(deadline) and _is_int(min_ready) and deadline <= min_ready:
        causes.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    return causes


def _validate_selector_update(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    # apps/v1 forbids selector changes ("field is immutable").
    new_selector = _mapping(obj.get("spec")).get("selector")
    old_selector = _mapping(old.get("spec")).get("selector")
    if _semantic(new_selector) != _semantic(old_selector):
        return [_invalid_selector("spec.selector", new_selector, IMMUTABLE)]
    return []


# --- Entry points ----------------------------------------------------------------------------------------------

Validator = Callable[[Mapping[str, Any]], list[Cause]]
UpdateValidator = Callable[[Mapping[str, Any], Mapping[str, Any]], list[Cause]]

_VALIDATORS: dict[str, Validator] = {
    "Pod": _validate_pod,
    "ConfigMap": _validate_config_map,
    "Secret": _validate_secret,
    "Service": _validate_service,
    "Lease": _validate_lease,
    "Deployment": _validate_deployment,
    "ReplicaSet": _validate_replica_set,
    "DaemonSet": _validate_daemon_set,
    "StatefulSet": _validate_stateful_set,
    "Job": _validate_job,
    "CronJob": _validate_cron_job,
}
_UPDATE_VALIDATORS: dict[str, UpdateValidator] = {
    "Pod": _validate_pod_update,
    "ConfigMap": _validate_config_map_update,
    "Secret": _validate_secret_update,
    "Deployment": _validate_selector_update,
    "ReplicaSet": _validate_selector_update,
    "DaemonSet": _validate_selector_update,
    "StatefulSet": _validate_selector_update,
}


def validate(kind: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None,
             *, namespaced: bool | None = None) -> list[Cause]:
    """All causes that make `obj` invalid; `old` is the stored object on update.

    `namespaced` overrides the scope known for built-in kinds (pass it for custom resources;
    when unknown, metadata.namespace is only checked for format).
    """
    causes = metadata_causes(kind, obj, namespaced)
    validator = _VALIDATORS.get(kind)
    if validator is not None:
        causes += validator(obj)
    if old is not None:
        causes += metadata_update_causes(obj, old)
        update_validator = _UPDATE_VALIDATORS.get(kind)
        if update_validator is not None:
            causes += update_validator(obj, old)
    return causes


def validate_status_update(kind: str, obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """The checks of a `/status` write: immutable metadata, and for pods a known phase."""
    causes = metadata_update_causes(obj, old)
    if kind == "Pod":
        phase = _mapping(obj.get("status")).get("phase")
        if phase not in (None, "") and phase not in _POD_PHASES:
            causes.append(not_supported("status.phase", phase, _POD_PHASES))
    return causes
