"""Server-side printing: objects as ``meta.k8s.io/v1`` ``Table`` documents, as kube-apiserver prints them.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` (with v1beta1 and
plain JSON as fallbacks) on list, get and watch, and shows what the server puts in the table: the
columns and cells here follow kube-apiserver's printers (``pkg/printers/internalversion/printers.go``),
custom resources follow their CRD's ``additionalPrinterColumns`` (apiextensions' table convertor),
and kinds without a printer get the default convertor's NAME / CREATED AT.

The server always fills every column, wide ones included (kube-apiserver prints with
``Wide: true``); kubectl hides priority-1 columns unless ``-o wide``. Ages are rendered here, as
strings, at the time of the request, exactly as the real server does.

Pure functions over JSON-shaped dicts; no I/O but a log line naming each object :func:`table` leaves
out because printing it failed (a malformed stored object never fails the whole table).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Callable
from typing import Any

log = logging.getLogger("kubeedge.controlplane")

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES = ("Object", "Metadata", "None")

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may "
    "allow a client to request the generation of an appropriate name automatically. Name is primarily intended "
    "for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
    "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
CONTAINERS_DESCRIPTION = "Names of each container in the template."
IMAGES_DESCRIPTION = "Images referenced by each container in the template."
NODE_UNREACHABLE_POD_REASON = "NodeLost"

Row = dict[str, Any]
Obj = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# content negotiation
# ----------------------------------------------------------------------------------------------

def parse_media_types(accept_header: str) -> list[tuple[str, dict[str, str]]]:
    """``a/b;x=1, c/d`` -> ``[("a/b", {"x": "1"}), ("c/d", {})]`` (lower-cased type, params as sent)."""
    result = []
    for part in accept_header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip()] = value.strip().strip('"')
        result.append((pieces[0].lower(), params))
    return result


def table_version(accept_header: str) -> str | None:
    """The meta.k8s.io version of the first acceptable Table media type (``v1`` or ``v1beta1``), if any.

    kube-apiserver takes the first media type it can serve, in the client's order; kubectl puts the
    Table types first and plain JSON last, so a Table is served whenever one is asked for.
    """
    for media_type, params in parse_media_types(accept_header):
        if media_type in ("application/json", "*/*", "application/*") and params.get("as") == "Table":
            if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return params["v"]
        elif media_type in ("application/json", "*/*", "application/*") and "as" not in params:
            return None
    return None


def wants_table(accept_header: str) -> bool:
    return table_version(accept_header) is not None


def check_include_object(value: str) -> str:
    """The ``includeObject`` query parameter, defaulted; ValueError with kube-apiserver's message if bad."""
    value = value or "Metadata"
    if value not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f'unrecognized includeObject value: "{value}"')
    return value


# ----------------------------------------------------------------------------------------------
# time
# ----------------------------------------------------------------------------------------------

def parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def human_duration(seconds_elapsed: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    seconds = int(seconds_elapsed)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime.datetime) -> str:
    """translateTimestampSince: ``<unknown>`` for a missing time, else the human duration until now."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


# ----------------------------------------------------------------------------------------------
# columns
# ----------------------------------------------------------------------------------------------

def column(name: str, description: str = "", *, type_: str = "string", format_: str = "", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}


NAME = column("Name", NAME_DESCRIPTION, format_="name")
AGE = column("Age", AGE_DESCRIPTION)


def _meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Obj) -> dict[str, Any]:
    return obj.get("status") or {}


def _age(obj: Obj, now: datetime.datetime) -> str:
    return since(_meta(obj).get("creationTimestamp"), now)


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: sorted ``k=v`` joined by commas, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def format_label_selector(selector: dict[str, Any] | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key."""
    if not selector:
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                "DoesNotExist": f"!{key}"}.get(operator)
        if text is None:
            return "<invalid>"
        requirements.append((key, text))
    return ",".join(text for _, text in sorted(requirements))


def _containers_cells(pod_spec: dict[str, Any]) -> list[str]:
    containers = pod_spec.get("containers") or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


# pods -----------------------------------------------------------------------------------------

POD_COLUMNS = [
    NAME,
    column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "The aggregate status of the containers in this pod."),
    column("Restarts", "The number of times the containers in this pod have been restarted and when the last "
                       "container in this pod has restarted."),
    AGE,
    column("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet "
                 "allocated.", priority=1),
    column("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
    column("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node.",
           priority=1),
    column("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.", priority=1),
]

POD_SUCCESS_CONDITIONS = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                           "message": "The pod has completed successfully."}]
POD_FAILED_CONDITIONS = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]


def _condition_true(conditions: list[dict[str, Any]], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _restartable(container: dict[str, Any] | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"  # type: ignore[union-attr]


def _later(current: datetime.datetime | None, state: dict[str, Any]) -> datetime.datetime | None:
    """The later of ``current`` and the finish time of a container's last termination."""
    finished = parse_time(((state.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
    if finished is None or (current is not None and finished <= current):
        return current
    return finished


def _terminated_reason(terminated: dict[str, Any], prefix: str) -> str:
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


class _PodSummary:
    """The READY / STATUS / RESTARTS of printPod, computed the way kube-apiserver does."""

    def __init__(self, pod: Obj) -> None:
        self.spec, self.status = _spec(pod), _status(pod)
        self.phase = self.status.get("phase", "")
        self.reason = self.status.get("reason") or self.phase
        self.ready = 0
        self.total = len(self.spec.get("containers") or [])
        self.restarts = 0
        self.last_restart: datetime.datetime | None = None
        self.conditions = self.status.get("conditions") or []
        for condition in self.conditions:
            if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
                self.reason = "SchedulingGated"
        initializing = self._init_containers()
        if not initializing or _condition_true(self.conditions, "Initialized"):
            self._containers()
        self._deletion(pod)

    def _init_containers(self) -> bool:
        specs = {c.get("name"): c for c in self.spec.get("initContainers") or []}
        self.total += sum(1 for c in specs.values() if _restartable(c))
        self.sidecar_restarts, self.sidecar_last_restart = 0, None
        statuses = self.status.get("initContainerStatuses") or []
        for index, container in enumerate(statuses):
            self.restarts += int(container.get("restartCount") or 0)
            self.last_restart = _later(self.last_restart, container)
            sidecar = _restartable(specs.get(container.get("name")))
            if sidecar:
                self.sidecar_restarts += int(container.get("restartCount") or 0)
                self.sidecar_last_restart = _later(self.sidecar_last_restart, container)
            state = container.get("state") or {}
            terminated, waiting = state.get("terminated"), state.get("waiting")
            if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
                continue
            if sidecar and container.get("started"):
                self.ready += 1 if container.get("ready") else 0
                continue
            if terminated is not None:
                self.reason = _terminated_reason(terminated, "Init:")
            elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
                self.reason = "Init:" + waiting["reason"]
            else:
                self.reason = f"Init:{index}/{len(specs)}"
            return True
        return False

    def _containers(self) -> None:
        self.restarts, self.last_restart = self.sidecar_restarts, self.sidecar_last_restart
        has_running = False
        # kube-apiserver walks the statuses backwards, so the first container's state wins
        for container in reversed(self.status.get("containerStatuses") or []):
            self.restarts += int(container.get("restartCount") or 0)
            self.last_restart = _later(self.last_restart, container)
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                self.reason = waiting["reason"]
            elif terminated is not None:
                self.reason = _terminated_reason(terminated, "")
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                self.ready += 1
        if self.reason == "Completed" and has_running:
            self.reason = "Running" if _condition_true(self.conditions, "Ready") else "NotReady"

    def _deletion(self, pod: Obj) -> None:
        if not _meta(pod).get("deletionTimestamp"):
            return
        if self.status.get("reason") == NODE_UNREACHABLE_POD_REASON:
            self.reason = "Unknown"
        elif self.phase not in ("Succeeded", "Failed"):
            self.reason = "Terminating"

    def restarts_cell(self, now: datetime.datetime) -> str:
        if self.restarts != 0 and self.last_restart is not None:
            return f"{self.restarts} ({human_duration((now - self.last_restart).total_seconds())} ago)"
        return str(self.restarts)


def _readiness_gates(spec: dict[str, Any], conditions: list[dict[str, Any]]) -> str:
    gates = spec.get("readinessGates") or []
    if not gates:
        return "<none>"
    by_type: dict[Any, dict[str, Any]] = {}
    for condition in conditions:
        by_type.setdefault(condition.get("type"), condition)
    true = sum(1 for g in gates if (by_type.get(g.get("conditionType")) or {}).get("status") == "True")
    return f"{true}/{len(gates)}"


def pod_cells(pod: Obj, now: datetime.datetime) -> list[Any]:
    summary = _PodSummary(pod)
    spec, status = summary.spec, summary.status
    # kube-apiserver's v1 conversion fills podIPs from a lone podIP (a status written with podIP only)
    pod_ips = status.get("podIPs") or [{"ip": status.get("podIP")}]
    pod_ip = pod_ips[0].get("ip") or "<none>"
    return [
        _meta(pod).get("name", ""), f"{summary.ready}/{summary.total}", summary.reason, summary.restarts_cell(now),
        _age(pod, now), pod_ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
        _readiness_gates(spec, summary.conditions),
    ]


def pod_row_conditions(pod: Obj) -> list[dict[str, Any]] | None:
    phase = _status(pod).get("phase")
    return {"Succeeded": POD_SUCCESS_CONDITIONS, "Failed": POD_FAILED_CONDITIONS}.get(phase or "")


# nodes ----------------------------------------------------------------------------------------

NODE_COLUMNS = [
    NAME,
    column("Status", "The status of the node"),
    column("Roles", "The roles of the node"),
    AGE,
    column("Version", "Kubelet Version reported by the node."),
    column("Internal-IP", "List of addresses reachable to the node.", priority=1),
    column("External-IP", "List of addresses reachable to the node.", priority=1),
    column("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
           priority=1),
    column("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
           priority=1),
    column("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API "
                                "(e.g. containerd://1.4.2).", priority=1),
]


def node_roles(labels: dict[str, str]) -> list[str]:
    """``node-role.kubernetes.io/<role>`` labels and the ``kubernetes.io/role`` label, sorted."""
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def node_status(node: Obj) -> str:
    ready = [c for c in _status(node).get("conditions") or [] if c.get("type") == "Ready"]
    status = ["Ready" if ready[-1].get("status") == "True" else "NotReady"] if ready else ["Unknown"]
    if _spec(node).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_address(node: Obj, kind: str) -> str:
    for address in _status(node).get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


def node_cells(node: Obj, now: datetime.datetime) -> list[Any]:
    info = _status(node).get("nodeInfo") or {}
    return [
        _meta(node).get("name", ""), node_status(node), ",".join(node_roles(_meta(node).get("labels") or {})) or "<none>",
        _age(node, now), info.get("kubeletVersion", ""), _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"), info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>",
    ]


# services and endpoints -----------------------------------------------------------------------

SERVICE_COLUMNS = [
    NAME,
    column("Type", "type determines how the Service is exposed."),
    column("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    column("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
                          "traffic for this service."),
    column("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    column("Selector", "Route service traffic to pods with label keys and values matching this selector.", priority=1),
]


def _load_balancer_ips(service: Obj, wide: bool) -> str:
    ingress = ((_status(service).get("loadBalancer") or {}).get("ingress")) or []
    addresses = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
    text = ",".join(str(a) for a in addresses)
    if not wide and len(text) > 16:
        return text[:13] + "..."
    return text


def service_external_ip(service: Obj, wide: bool = True) -> str:
    spec = _spec(service)
    kind, external = spec.get("type") or "ClusterIP", spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        balancer = _load_balancer_ips(service, wide)
        if external:
            return ",".join(([*balancer.split(",")] if balancer else []) + list(external))
        return balancer or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def service_ports(ports: list[dict[str, Any]]) -> str:
    pieces = []
    for port in ports:
        protocol = port.get("protocol", "TCP")
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or "<none>"


def service_cells(service: Obj, now: datetime.datetime) -> list[Any]:
    spec = _spec(service)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        _meta(service).get("name", ""), spec.get("type", ""), cluster_ips[0] if cluster_ips else "<none>",
        service_external_ip(service), service_ports(spec.get("ports") or []), _age(service, now),
        format_labels(spec.get("selector")),
    ]


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(endpoints: Obj) -> str:
    """formatEndpoints: the first three addresses (``ip:port``), then ``+ N more...``."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count, limit = 0, 3
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        for port in ports or [None]:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    break
                ip = address.get("ip", "")
                shown.append(ip if port is None else _host_port(ip, port.get("port")))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if count > limit else text


# workloads ------------------------------------------------------------------------------------

DEPLOYMENT_COLUMNS = [
    NAME,
    column("Ready", "Number of the pod with ready state"),
    column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired "
                         "template spec."),
    column("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this "
                        "deployment."),
    AGE,
    column("Containers", CONTAINERS_DESCRIPTION, priority=1),
    column("Images", IMAGES_DESCRIPTION, priority=1),
    column("Selector", "Label selector for pods.", priority=1),
]

REPLICA_SET_COLUMNS = [
    NAME,
    column("Desired", "Replicas is the number of desired pods.", type_="integer"),
    column("Current", "Replicas is the most recently observed number of non-terminating pods.", type_="integer"),
    column("Ready", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
           type_="integer"),
    AGE,
    column("Containers", CONTAINERS_DESCRIPTION, priority=1),
    column("Images", IMAGES_DESCRIPTION, priority=1),
    column("Selector", "Selector is a label query over pods that should match the replica count.", priority=1),
]


def _template_spec(obj: Obj) -> dict[str, Any]:
    return (_spec(obj).get("template") or {}).get("spec") or {}


def deployment_cells(deployment: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = _spec(deployment), _status(deployment)
    desired = spec.get("replicas", 1) if spec.get("replicas") is not None else 1
    return [
        _meta(deployment).get("name", ""), f"{int(status.get('readyReplicas') or 0)}/{int(desired)}",
        int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0), _age(deployment, now),
        *_containers_cells(_template_spec(deployment)), format_label_selector(spec.get("selector")),
    ]


def replica_set_cells(replica_set: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = _spec(replica_set), _status(replica_set)
    desired = spec.get("replicas", 1) if spec.get("replicas") is not None else 1
    return [
        _meta(replica_set).get("name", ""), int(desired), int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0), _age(replica_set, now),
        *_containers_cells(_template_spec(replica_set)), format_label_selector(spec.get("selector")),
    ]


DAEMON_SET_COLUMNS = [
    NAME,
    column("Desired", "The total number of nodes that should be running the daemon pod (including nodes correctly "
                      "running the daemon pod).", type_="integer"),
    column("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run the "
                      "daemon pod.", type_="integer"),
    column("Ready", "numberReady is the number of nodes that should be running the daemon pod and have one or more "
                    "of the daemon pod running with a Ready Condition.", type_="integer"),
    column("Up-to-date", "The total number of nodes that are running updated daemon pod", type_="integer"),
    column("Available", "The number of nodes that should be running the daemon pod and have one or more of the "
                        "daemon pod running and available (ready for at least spec.minReadySeconds)", type_="integer"),
    column("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector "
                            "which must match a node's labels for the pod to be scheduled on that node."),
    AGE,
    column("Containers", CONTAINERS_DESCRIPTION, priority=1),
    column("Images", IMAGES_DESCRIPTION, priority=1),
    column("Selector", "A label query over pods that are managed by the daemon set.", priority=1),
]


def daemon_set_cells(daemon_set: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = _spec(daemon_set), _status(daemon_set)
    selector = _template_spec(daemon_set).get("nodeSelector") or {}
    node_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) if isinstance(selector, dict) else ""
    return [
        _meta(daemon_set).get("name", ""), int(status.get("desiredNumberScheduled") or 0),
        int(status.get("currentNumberScheduled") or 0), int(status.get("numberReady") or 0),
        int(status.get("updatedNumberScheduled") or 0), int(status.get("numberAvailable") or 0),
        node_selector or "<none>", _age(daemon_set, now),
        *_containers_cells(_template_spec(daemon_set)), format_label_selector(spec.get("selector")),
    ]


STATEFUL_SET_COLUMNS = [
    NAME,
    column("Ready", "Number of the pod with ready state"),
    AGE,
    column("Containers", CONTAINERS_DESCRIPTION, priority=1),
    column("Images", IMAGES_DESCRIPTION, priority=1),
]


def stateful_set_cells(stateful_set: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = _spec(stateful_set), _status(stateful_set)
    replicas = spec.get("replicas", 1) if spec.get("replicas") is not None else 1
    return [_meta(stateful_set).get("name", ""), f"{int(status.get('readyReplicas') or 0)}/{replicas}",
            _age(stateful_set, now), *_containers_cells(_template_spec(stateful_set))]


JOB_COLUMNS = [
    NAME,
    column("Status", "Status of the job."),
    column("Completions", "The desired number of successfully finished pods the job should be run with."),
    column("Duration", "Time required to complete the job."),
    AGE,
    column("Containers", CONTAINERS_DESCRIPTION, priority=1),
    column("Images", IMAGES_DESCRIPTION, priority=1),
    column("Selector", "A label query over pods that should match the pod count.", priority=1),
]


def job_status(job: Obj) -> str:
    """printJob's STATUS: the first of Failed, Complete, Suspended, FailureTarget, SuccessCriteriaMet, else Running."""
    conditions = _status(job).get("conditions") or []
    for kind in ("Failed", "Complete", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _condition_true(conditions, kind):
            return kind
    return "Terminating" if _meta(job).get("deletionTimestamp") else "Running"


def job_cells(job: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = _spec(job), _status(job)
    succeeded = int(status.get("succeeded") or 0)
    completions = spec.get("completions")
    if completions is not None:
        done = f"{succeeded}/{completions}"
    else:
        parallelism = spec.get("parallelism") or 0
        done = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    started, ended = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = "" if started is None else human_duration(((ended or now) - started).total_seconds())
    return [_meta(job).get("name", ""), job_status(job), done, duration, _age(job, now),
            *_containers_cells(_template_spec(job)), format_label_selector(spec.get("selector"))]


CRON_JOB_COLUMNS = [
    NAME,
    column("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    column("Timezone", "The time zone name for the given schedule, see "
                       "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    column("Suspend", "This flag tells the controller to suspend subsequent executions, it does not apply to "
                      "already started executions.  Defaults to false.", type_="boolean"),
    column("Active", "A list of pointers to currently running jobs.", type_="integer"),
    column("Last Schedule", "Information when was the last time the job was successfully scheduled."),
    AGE,
    column("Containers", CONTAINERS_DESCRIPTION, priority=1),
    column("Images", IMAGES_DESCRIPTION, priority=1),
    column("Selector", "A label query over pods that should match the pod count.", priority=1),
]


def cron_job_cells(cron_job: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = _spec(cron_job), _status(cron_job)
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    last = status.get("lastScheduleTime")
    return [_meta(cron_job).get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "True" if spec.get("suspend") else "False", len(status.get("active") or []),  # printBoolPtr since(last, now) if last else "<none>",
            _age(cron_job, now), *_containers_cells((job_spec.get("template") or {}).get("spec") or {}),
            format_label_selector(job_spec.get("selector"))]


# events ---------------------------------------------------------------------------------------

EVENT_COLUMNS = [
    column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    column("Reason", "This should be a short, machine understandable string that gives the reason for the "
                     "transition into the object's current status."),
    column("Object", "The object that this event is about."),
    column("Subobject", "If referring to a piece of an object instead of an entire object, this string should "
                        "contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
           priority=1),
    column("Source", "The component reporting this event. Should be a short machine understandable string.",
           priority=1),
    column("Message", "A human-readable description of the status of this operation."),
    column("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
           priority=1),
    column("Count", "The number of times this event has occurred.", priority=1),
    {**NAME, "priority": 1},
]


def _event_source(event: Obj) -> str:
    """formatEventSource: ``component, host``; the reporting controller/instance for new-style events."""
    source = event.get("source") or {}
    component, host = source.get("component", ""), source.get("host", "")
    if not component:
        component, host = event.get("reportingComponent", ""), event.get("reportingInstance", "")
    if not host:
        return component
    return f"{component}, {host}"


def event_cells(event: Obj, now: datetime.datetime) -> list[Any]:
    first = since(event.get("firstTimestamp"), now)
    if not event.get("firstTimestamp"):
        first = since(event.get("eventTime"), now)
    last = since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = int(event.get("count") or 0)
    series = event.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events don't have a count set in the new API
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last, event.get("type", ""), event.get("reason", ""), target, involved.get("fieldPath", ""),
        _event_source(event), str(event.get("message", "")).strip(), first, count, _meta(event).get("name", ""),
    ]


# the simple kinds -----------------------------------------------------------------------------

NAMESPACE_COLUMNS = [NAME, column("Status", "The status of the namespace"), AGE]
CONFIG_MAP_COLUMNS = [NAME, column("Data", "Data contains the configuration data."), AGE]
SECRET_COLUMNS = [NAME, column("Type", "Used to facilitate programmatic handling of secret data."),
                  column("Data", "Data contains the secret data."), AGE]
SERVICE_ACCOUNT_COLUMNS = [NAME, column("Secrets", "Secrets is a list of the secrets in the same namespace that pods "
                                                   "running using this ServiceAccount are allowed to use."), AGE]
ENDPOINTS_COLUMNS = [NAME, column("Endpoints", "The set of all endpoints is the union of all subsets."), AGE]
LEASE_COLUMNS = [NAME, column("Holder", "holderIdentity contains the identity of the holder of a current lease."),
                 AGE]
DEFAULT_COLUMNS = [NAME, AGE]
CREATED_AT_COLUMNS = [NAME, column("Created At", AGE_DESCRIPTION, type_="date")]


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def safe_name(obj: Any) -> str:
    """``namespace/name`` of any stored value, for a log line (never raises, never long)."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return "<no metadata>"
    name, namespace = metadata.get("name"), metadata.get("namespace")
    text = f"{namespace}/{name}" if isinstance(namespace, str) and namespace else str(name)
    return text[:253]


CellsFunction = Callable[[Obj, datetime.datetime], list[Any]]

PRINTERS: dict[tuple[str, str], tuple[list[dict[str, Any]], CellsFunction]] = {
    ("", "Pod"): (POD_COLUMNS, pod_cells),
    ("", "Node"): (NODE_COLUMNS, node_cells),
    ("", "Namespace"): (NAMESPACE_COLUMNS, lambda o, now: [_name(o), _status(o).get("phase", ""), _age(o, now)]),
    ("", "ConfigMap"): (CONFIG_MAP_COLUMNS, lambda o, now: [
        _name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o, now)]),
    ("", "Secret"): (SECRET_COLUMNS, lambda o, now: [_name(o), o.get("type", ""), len(o.get("data") or {}),
                                                     _age(o, now)]),
    ("", "Service"): (SERVICE_COLUMNS, service_cells),
    ("", "Endpoints"): (ENDPOINTS_COLUMNS, lambda o, now: [_name(o), format_endpoints(o), _age(o, now)]),
    ("", "Event"): (EVENT_COLUMNS, event_cells),
    ("", "ServiceAccount"): (SERVICE_ACCOUNT_COLUMNS, lambda o, now: [_name(o), len(o.get("secrets") or []),
                                                                      _age(o, now)]),
    ("coordination.k8s.io", "Lease"): (LEASE_COLUMNS, lambda o, now: [
        _name(o), _spec(o).get("holderIdentity") or "", _age(o, now)]),
    ("apps", "Deployment"): (DEPLOYMENT_COLUMNS, deployment_cells),
    ("apps", "ReplicaSet"): (REPLICA_SET_COLUMNS, replica_set_cells),
    ("apps", "DaemonSet"): (DAEMON_SET_COLUMNS, daemon_set_cells),
    ("apps", "StatefulSet"): (STATEFUL_SET_COLUMNS, stateful_set_cells),
    ("batch", "Job"): (JOB_COLUMNS, job_cells),
    ("batch", "CronJob"): (CRON_JOB_COLUMNS, cron_job_cells),
    # rest.NewDefaultTableConvertor: what kube-apiserver uses for kinds without a printer (CRDs among them)
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (CREATED_AT_COLUMNS, lambda o, now: [
        _name(o), _meta(o).get("creationTimestamp") or ""]),
}


# ----------------------------------------------------------------------------------------------
# custom resources: additionalPrinterColumns
# ----------------------------------------------------------------------------------------------

def crd_columns(printer_columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NAME, then the CRD version's columns; a CRD without columns gets ``Age`` (serveDefaultColumnsIfEmpty)."""
    if not printer_columns:
        printer_columns = [{"name": "Age", "type": "date", "description": AGE_DESCRIPTION,
                            "jsonPath": ".metadata.creationTimestamp"}]
    columns = [NAME]
    for declared in printer_columns:
        description = declared.get("description") or \
            f"Custom resource definition column (in JSONPath format): {declared.get('jsonPath', '')}"
        columns.append(column(declared.get("name", ""), description, type_=declared.get("type", "string"),
                              format_=declared.get("format", ""), priority=int(declared.get("priority") or 0)))
    return columns


_SEGMENT = re.compile(
    r"""\.(?P<field>(?:[^.\[\\]|\\.)+)"""           # .field (dots escaped as \.)
    r"""|\[(?P<quoted>'[^']*'|"[^"]*")\]"""         # ['key'] or ["key"]
    r"""|\[(?P<index>-?\d+|\*)\]"""                  # [0] or [*]
    r"""|\[\?\(@(?P<path>(?:\.[\w-]+)+)\s*(?P<op>==|!=)\s*(?P<value>'[^']*'|"[^"]*"|[^)\s]+)\)\]"""  # filters
    r"""|\.\.(?P<recursive>[\w-]+)"""
)


def _filter_value(token: str) -> Any:
    if token[:1] in "'\"":
        return token[1:-1]
    try:
        return json.loads(token)
    except ValueError:
        return token


def _lookup(value: Any, dotted: str) -> Any:
    for key in dotted.strip(".").split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


_MISSING = object()


def _step(values: list[Any], match: re.Match[str]) -> list[Any]:
    out: list[Any] = []
    groups = match.groupdict()
    for value in values:
        if groups["field"] is not None or groups["quoted"] is not None:
            key = groups["field"].replace("\\.", ".") if groups["field"] is not None else groups["quoted"][1:-1]
            if isinstance(value, dict) and key in value:
                out.append(value[key])
        elif groups["index"] is not None:
            if groups["index"] == "*":
                out.extend(value if isinstance(value, list) else (value.values() if isinstance(value, dict) else []))
            elif isinstance(value, list) and -len(value) <= int(groups["index"]) < len(value):
                out.append(value[int(groups["index"])])
        elif groups["path"] is not None:
            wanted, equal = _filter_value(groups["value"]), groups["op"] == "=="
            for item in value if isinstance(value, list) else []:
                found = _lookup(item, groups["path"])
                if found is not _MISSING and (found == wanted) == equal:
                    out.append(item)
    return out


def json_path(obj: Any, path: str) -> list[Any]:
    """The results of a simple JSONPath (as CRD printer columns use) on ``obj``; missing keys give none."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    values, position = [obj], 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            raise ValueError(f"unrecognized column definition {path!r}")
        values = _step(values, match)
        position = match.end()
    return values


def _print_json_value(value: Any) -> str:
    """How the jsonpath printer writes a value: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def crd_cell(column_type: str, value: Any, now: datetime.datetime) -> Any:
    """cellForJSONValue of apiextensions' table convertor."""
    if value is None:
        return None
    if column_type == "string":
        return _print_json_value(value)
    if column_type == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if column_type == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        moment = parse_time(value)
        return "<invalid>" if moment is None else human_duration((now - moment).total_seconds())
    return None


def crd_cells(obj: Obj, printer_columns: list[dict[str, Any]], now: datetime.datetime) -> list[Any]:
    columns = printer_columns or [{"type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    cells: list[Any] = [_name(obj)]
    for declared in columns:
        try:
            results = json_path(obj, declared.get("jsonPath", ""))
        except ValueError:
            results = []
        cells.append(crd_cell(declared.get("type", "string"), results[0], now) if results else None)
    return cells


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------

def printer_for(kind: str, group: str, printer_columns: list[dict[str, Any]] | None
                ) -> tuple[list[dict[str, Any]], CellsFunction]:
    """Columns and a cells function: built-in printers, else CRD columns (when given), else NAME / AGE."""
    if printer_columns is not None:
        declared = list(printer_columns)
        return crd_columns(declared), lambda obj, now: crd_cells(obj, declared, now)
    found = PRINTERS.get((group, kind))
    if found is not None:
        return found
    return DEFAULT_COLUMNS, lambda obj, now: [_name(obj), _age(obj, now)]


def partial_object_metadata(obj: Obj, api_version: str = TABLE_API_VERSION) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": _meta(obj)}


def row(obj: Obj, cells: list[Any], include_object: str, api_version: str = TABLE_API_VERSION) -> Row:
    result: Row = {"cells": cells}
    if include_object == "Object":
        result["object"] = obj
    elif include_object == "Metadata":
        result["object"] = partial_object_metadata(obj, api_version)
    return result


def table(kind: str, group: str, items: list[Obj], *, list_meta: dict[str, Any], include_object: str = "Metadata",
          printer_columns: list[dict[str, Any]] | None = None, headers: bool = True,
          api_version: str = TABLE_API_VERSION, now: datetime.datetime | None = None) -> dict[str, Any]:
    """A ``Table`` of ``items`` (objects of ``kind`` in ``group``), as kube-apiserver answers a list or get.

    ``printer_columns`` is the served CRD version's ``additionalPrinterColumns`` for custom resources
    (an empty list for a CRD without any; None for built-ins). ``list_meta`` is the list's metadata
    (``resourceVersion``, ``continue``) or, for a single object, ``{"resourceVersion": <its rv>}``.
    ``headers`` False leaves out the column definitions (``columnDefinitions: null``), as on watch
    events after the first. ``api_version`` is ``meta.k8s.io/v1`` or ``meta.k8s.io/v1beta1``, the
    Table version the client asked for; it is also used for the PartialObjectMetadata of rows.
    """
    include_object = check_include_object(include_object)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    columns, cells = printer_for(kind, group, printer_columns)
    rows = []
    for obj in items:
        try:
            if not isinstance(obj, dict) or not isinstance(obj.get("metadata") or {}, dict):
                raise TypeError("the object or its metadata is not a JSON object")
            printed = row(obj, cells(obj, now), include_object, api_version)
            if (group, kind) == ("", "Pod"):
                conditions = pod_row_conditions(obj)
                if conditions:
                    printed["conditions"] = conditions
        except Exception as error:  # noqa: BLE001 - one malformed object is left out, the others print
            log.warning("not printing %s %s: %s: %s", kind, safe_name(obj), type(error).__name__, error)
            continue
        rows.append(printed)
    metadata = {key: list_meta[key] for key in ("resourceVersion", "continue", "remainingItemCount")
                if list_meta.get(key) not in (None, "")}
    return {"kind": "Table", "apiVersion": api_version, "metadata": metadata,
            "columnDefinitions": [dict(c) for c in columns] if headers else None, "rows": rows}


def watch_event_table(event_type: str, obj: Obj, kind: str, group: str, *, include_object: str = "Metadata",
                      printer_columns: list[dict[str, Any]] | None = None, first: bool = True,
                      api_version: str = TABLE_API_VERSION, now: datetime.datetime | None = None) -> dict[str, Any]:
    """A watch event whose object is a one-row ``Table``, as kube-apiserver streams to ``kubectl get -w``.

    Only the first event of a watch carries the column definitions (``first``); later ones have
    ``columnDefinitions: null`` (kube-apiserver sets NoHeaders after the first transform). BOOKMARK
    and ERROR events are not tables: pass their object through unchanged.
    """
    if event_type in ("BOOKMARK", "ERROR"):
        return {"type": event_type, "object": obj}
    rv = _meta(obj).get("resourceVersion", "")
    printed = table(kind, group, [obj], list_meta={"resourceVersion": rv}, include_object=include_object,
                    printer_columns=printer_columns, headers=first, api_version=api_version, now=now)
    return {"type": event_type, "object": printed}
