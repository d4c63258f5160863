"""What an edge may write, checked before CloudCore writes it: Kubernetes' NodeRestriction and types.

Every edge is a possible attacker holding a legitimate certificate. Beyond *which* objects a node
may reach (EdgeController's ``_entitled``), this module checks *what* it writes, in pure
functions that return the reason for a refusal ("" when the write may go):

- **names**: the name (and namespace) in a body must be those of the resource string it was
  sent on, so a node cannot create another node's Lease under its own resource;
- **labels**: a node may set the labels kubelet may set (``kubernetes.io/hostname``, arch, os,
  instance type, zone and region, the ``kubelet.kubernetes.io`` and ``node.kubernetes.io``
  namespaces, any label outside ``kubernetes.io``/``k8s.io``), plus KubeEdge's own
  ``node-role.kubernetes.io/edge`` and ``/agent``; never ``node-restriction.kubernetes.io/*`` nor
  any other ``node-role.kubernetes.io/*`` (``control-plane``, ``master``), as NodeRestriction rules;
- **service-account tokens**: only bound to one of the node's own pods (kind, name and uid), for
  that pod's service account, with a lifetime between 10 minutes and :data:`MAX_TOKEN_SECONDS`;
- **status patches**: a JSON object of ``status`` (and for pods ``metadata.uid``) whose every
  known field has the type the Kubernetes API gives it, so a poisoned status never reaches the
  API server, whichever it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from cores.common.objects import ObjectView, PodView

MAX_PATCH_BYTES = 1024 * 1024
MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS = 600, 48 * 3600
MAX_DEPTH = 32

# kubelet's own labels (k8s.io/kubelet/pkg/apis: KubeletLabels, KubeletLabelNamespaces)
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type", "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
KUBEEDGE_NODE_LABELS = frozenset({"node-role.kubernetes.io/edge", "node-role.kubernetes.io/agent"})


# -- names ----------------------------------------------------------------------------------------
def name_mismatch(body: Any, name: str, namespace: str | None) -> str:
    """Why ``body`` may not be written under ``name``/``namespace`` ("" when it names the same object)."""
    view = ObjectView(body)
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    if metadata is not None and not isinstance(metadata, Mapping):
        return "metadata must be an object"
    if view.name and view.name != name:
        return f"the body names {view.name!r}, the resource {name!r}"
    if namespace and view.namespace and view.namespace != namespace:
        return f"the body is in namespace {view.namespace!r}, the resource in {namespace!r}"
    return ""


# -- labels ---------------------------------------------------------------------------------------
def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _within(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def forbidden_labels(labels: Any) -> list[str]:
    """The labels of ``labels`` a node may not set on its own Node."""
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return ["<labels must be a map of strings>"]
    refused = []
    for key in labels:
        key = str(key)
        namespace = _label_namespace(key)
        if key in KUBELET_LABELS or key in KUBEEDGE_NODE_LABELS:
            continue
        if _within(namespace, "node-restriction.kubernetes.io") or namespace == "node-role.kubernetes.io":
            refused.append(key)
        elif any(_within(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES):
            continue
        elif _within(namespace, "kubernetes.io") or _within(namespace, "k8s.io"):
            refused.append(key)
    return sorted(refused)


def labels_refusal(body: Any) -> str:
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    refused = forbidden_labels(labels)
    return f"a node may not set these labels on itself: {', '.join(refused)}" if refused else ""


# -- service account tokens -----------------------------------------------------------------------
def token_refusal(body: Any, namespace: str, account: str, pod_of_node: Callable[[str, str], dict[str, Any] | None]) -> str:
    """Why this TokenRequest may not be issued for the node ("" when it may).

    ``pod_of_node(namespace, name)`` is the node's own pod of that name, or None.
    """
    spec = body.get("spec") if isinstance(body, Mapping) else None
    if not isinstance(spec, Mapping):
        return "a token request needs a spec"
    bound = spec.get("boundObjectRef")
    if not isinstance(bound, Mapping) or bound.get("kind") != "Pod" or not bound.get("name") or not bound.get("uid"):
        return "a node may only request tokens bound to one of its pods (boundObjectRef kind Pod, name and uid)"
    pod = pod_of_node(namespace, str(bound.get("name")))
    if pod is None or PodView(pod).uid != bound.get("uid"):
        return f"pod {namespace}/{bound.get('name')} (uid {bound.get('uid')}) is not a pod of this node"
    if (PodView(pod).service_account or "default") != account:
        return f"pod {namespace}/{bound.get('name')} runs as service account {PodView(pod).service_account or 'default'!r}, not {account!r}"
    seconds = spec.get("expirationSeconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not MIN_TOKEN_SECONDS <= seconds <= MAX_TOKEN_SECONDS:
        return f"expirationSeconds must be between {MIN_TOKEN_SECONDS} and {MAX_TOKEN_SECONDS}"
    return ""


# -- status types ---------------------------------------------------------------------------------
STR, INT, BOOL, QUANTITY, ANY = "string", "integer", "boolean", "quantity", "any"
Schema = Any  # a type name, {field: Schema} for an object, [Schema] for a list, ("map", Schema) for a map

_CONDITION: Schema = {"type": STR, "status": STR, "lastHeartbeatTime": STR, "lastTransitionTime": STR,
                      "lastProbeTime": STR, "reason": STR, "message": STR, "observedGeneration": INT}
_STATE: Schema = {
    "waiting": {"reason": STR, "message": STR},
    "running": {"startedAt": STR},
    "terminated": {"exitCode": INT, "signal": INT, "reason": STR, "message": STR, "startedAt": STR, "finishedAt": STR,
                   "containerID": STR},
}
_CONTAINER_STATUS: Schema = {
    "name": STR, "state": _STATE, "lastState": _STATE, "ready": BOOL, "restartCount": INT, "image": STR, "imageID": STR,
    "containerID": STR, "started": BOOL, "allocatedResources": ("map", QUANTITY), "resources": {}, "volumeMounts": [{}],
    "user": {}, "allocatedResourcesStatus": [{}], "stopSignal": STR,
}
POD_STATUS: Schema = {
    "phase": STR, "conditions": [_CONDITION], "message": STR, "reason": STR, "nominatedNodeName": STR, "hostIP": STR,
    "hostIPs": [{"ip": STR}], "podIP": STR, "podIPs": [{"ip": STR}], "startTime": STR, "qosClass": STR, "resize": STR,
    "initContainerStatuses": [_CONTAINER_STATUS], "containerStatuses": [_CONTAINER_STATUS],
    "ephemeralContainerStatuses": [_CONTAINER_STATUS], "resourceClaimStatuses": [{}], "observedGeneration": INT,
}
NODE_STATUS: Schema = {
    "capacity": ("map", QUANTITY), "allocatable": ("map", QUANTITY), "phase": STR, "conditions": [_CONDITION],
    "addresses": [{"type": STR, "address": STR}], "daemonEndpoints": {"kubeletEndpoint": {"Port": INT}},
    "nodeInfo": {"machineID": STR, "systemUUID": STR, "bootID": STR, "kernelVersion": STR, "osImage": STR,
                 "containerRuntimeVersion": STR, "kubeletVersion": STR, "kubeProxyVersion": STR,
                 "operatingSystem": STR, "architecture": STR, "swap": {"capacity": INT}},
    "images": [{"names": [STR], "sizeBytes": INT}], "volumesInUse": [STR],
    "volumesAttached": [{"name": STR, "devicePath": STR}], "config": {}, "runtimeHandlers": [{}], "features": {},
}

_GO_TYPES = {STR: "string", INT: "int64", BOOL: "bool", QUANTITY: "resource.Quantity"}


def type_error(value: Any, schema: Schema, path: str, depth: int = 0) -> str:
    """The first place where ``value`` does not have the type ``schema`` gives ("" when it does).

    ``null`` is accepted everywhere (in a patch it deletes); keys starting with ``$`` are
    strategic-merge-patch directives; unknown fields are left to the API server, as it drops them.
    """
    if depth > MAX_DEPTH:
        return f"{path}: nested deeper than {MAX_DEPTH} levels"
    if value is None:
        return ""
    if schema == ANY:
        return _depth_error(value, path, depth)
    if isinstance(schema, dict):
        if not isinstance(value, Mapping):
            return f"{path}: expected an object, got {_json_type(value)}"
        for key, item in value.items():
            if str(key).startswith("$"):
                continue
            error = (type_error(item, schema[key], f"{path}.{key}", depth + 1) if key in schema
                     else _depth_error(item, f"{path}.{key}", depth + 1))
            if error:
                return error
        return ""
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{path}: expected a list, got {_json_type(value)}"
        for index, item in enumerate(value):
            error = type_error(item, schema[0], f"{path}[{index}]", depth + 1)
            if error:
                return error
        return ""
    if isinstance(schema, tuple):
        if not isinstance(value, Mapping):
            return f"{path}: expected a map, got {_json_type(value)}"
        for key, item in value.items():
            error = type_error(item, schema[1], f"{path}[{key}]", depth + 1)
            if error:
                return error
        return ""
    return "" if _scalar_ok(value, schema) else f"{path}: expected {_GO_TYPES[schema]}, got {_json_type(value)}"


def _depth_error(value: Any, path: str, depth: int) -> str:
    """Fields we do not type are still bounded in depth (the API server would refuse worse)."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            return f"{path}: nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, Mapping):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return ""


def _scalar_ok(value: Any, kind: str) -> bool:
    if kind == STR:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))  # quantity


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def parse_patch(content: Any) -> tuple[Any, str]:
    """A status patch as sent (JSON text or object) -> (object, refusal)."""
    if isinstance(content, str):
        if len(content.encode()) > MAX_PATCH_BYTES:
            return None, f"the patch exceeds {MAX_PATCH_BYTES} bytes"
        try:
            content = json.loads(content)
        except ValueError:
            return None, "the patch is not JSON"
    if not isinstance(content, Mapping):
        return None, "the patch must be a JSON object"
    return content, ""


def status_patch_refusal(patch: Any, kind: str) -> str:
    """Why a node's ``nodepatch``/``podpatch`` (already parsed) may not be applied."""
    schema = NODE_STATUS if kind == "node" else POD_STATUS
    allowed = {"status", "metadata"}
    extra = sorted(str(k) for k in patch if k not in allowed and not str(k).startswith("$"))
    if extra:
        return f"a status patch may only change status, not {', '.join(extra)}"
    metadata = patch.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            return "metadata: expected an object"
        if kind == "pod":
            unexpected = sorted(str(k) for k in metadata if k != "uid")
            if unexpected:
                return f"a pod status patch may only name metadata.uid, not {', '.join(unexpected)}"
        else:
            refusal = labels_refusal(patch)
            if refusal:
                return refusal
    return type_error(patch.get("status"), schema, "status")
