"""Defaults a real kube-apiserver fills in on write, so clients and kubectl see what they expect.

Owns the scheme defaulting of the kinds the embedded control plane serves (core/v1 and apps/v1
`SetDefaults_*`), the few admission-plugin and strategy effects a client can observe on a fresh
object (DefaultTolerationSeconds, Priority, ServiceAccount's name, pod and namespace status on
create, the Secret `stringData` merge of v1 conversion), pod QoS classification and resource
quantity parsing.

The single entry point, `apply_defaults`, mutates the object in place, as decoding does in the
API server. Call it on every create and update, before validation (kube-apiserver defaults while
decoding, then validates); pass `on_create=False` on updates so create-only effects (the
namespace's "kubernetes" finalizer, a pod's initial status) are not re-applied.
"""

from __future__ import annotations

import base64
import re
from fractions import Fraction
from typing import Any

DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"  # a static pod's mirror, created by its node
# Built-in PriorityClasses (scheduling/v1 SystemPriorityClasses); anything else is the server's.
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
_VOLUME_MODE_DEFAULT = 0o644  # "DefaultMode ... Defaults to 0644" (420 in JSON)


def _unset(value: Any) -> bool:
    # Go cannot tell an absent string or pointer from its zero value, so "" counts as unset.
    return value is None or value == ""


def _set_default(obj: dict[str, Any], key: str, value: Any) -> None:
    if _unset(obj.get(key)):
        obj[key] = value


def _child(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """obj[key] as a dict, created when absent (a non-pointer struct always serializes)."""
    value = obj.get(key)
    if not isinstance(value, dict):
        value = {}
        obj[key] = value
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# --- Resource quantities --------------------------------------------------------------------------

# Decimal exponents beyond this are refused (Go's inf.Dec keeps them; nothing real needs them).
MAX_QUANTITY_EXPONENT = 1000
_QUANTITY_RE = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)")
_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
    "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def parse_quantity(value: Any) -> Fraction | None:
    """resource.ParseQuantity as an exact number, or None when the server would reject it."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = _QUANTITY_RE.fullmatch(str(value))
    if not match:
        return None
    number, suffix = match.groups()
    try:
        amount = Fraction(number)
    except ValueError:
        return None
    if suffix in _SUFFIXES:
        return amount * _SUFFIXES[suffix]
    exponent = re.fullmatch(r"[eE]([-+]?[0-9]{1,6})", suffix)
    if exponent is None or abs(int(exponent.group(1))) > MAX_QUANTITY_EXPONENT:
        return None  # "1e999999999" would build a billion-digit number: refused as unparsable
    return amount * Fraction(10) ** int(exponent.group(1))


# --- QoS --------------------------------------------------------------------------------------------

_QOS_RESOURCES = ("cpu", "memory")


def _positive_quantities(resources: Any) -> dict[str, Fraction]:
    found = {}
    for name, raw in (resources or {}).items() if isinstance(resources, dict) else ():
        quantity = parse_quantity(raw)
        if name in _QOS_RESOURCES and quantity is not None and quantity > 0:
            found[name] = quantity
    return found


def qos_class(pod_spec: dict[str, Any]) -> str:
    """BestEffort, Burstable or Guaranteed, as qos.GetPodQOS computes it.

    Missing requests are taken from limits first, as Pod defaulting does before the
    computation, so the answer is the same for a defaulted or an undefaulted spec.
    """
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    containers = _dicts(pod_spec.get("containers")) + _dicts(pod_spec.get("initContainers"))
    for container in containers:
        raw_resources = container.get("resources")
        resources: dict[str, Any] = raw_resources if isinstance(raw_resources, dict) else {}
        container_limits = _positive_quantities(resources.get("limits"))
        container_requests = {**container_limits, **_positive_quantities(resources.get("requests"))}
        _accumulate(requests, container_requests)
        _accumulate(limits, container_limits)
        # "Guaranteed" needs both a cpu and a memory limit on every container.
        if not set(_QOS_RESOURCES) <= set(container_limits):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _accumulate(total: dict[str, Fraction], amounts: dict[str, Fraction]) -> None:
    for name, quantity in amounts.items():
        total[name] = total.get(name, Fraction(0)) + quantity


# --- Containers ---------------------------------------------------------------------------------------

def image_tag(image: str) -> str | None:
    """The tag ParseImageName reports: "latest" when neither tag nor digest, None if unparsable."""
    if not image or image != image.strip() or any(char.isspace() for char in image):
        return None
    name, _, digest = image.partition("@")
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1:] if colon > last_slash else ""
    repository = name[:colon] if colon > last_slash else name
    # Docker references forbid upper case in the repository path (the domain may have it).
    path = repository.split("/", 1)[1] if "/" in repository and _looks_like_domain(repository) else repository
    if path != path.lower():
        return None
    return "latest" if not tag and not digest else tag


def _looks_like_domain(repository: str) -> bool:
    first = repository.split("/", 1)[0]
    return "." in first or ":" in first or first == "localhost"


def _default_image_pull_policy(image: Any) -> str:
    # "Always if :latest tag is specified, or IfNotPresent otherwise" (SetDefaults_Container).
    tag = image_tag(image) if isinstance(image, str) else None
    return "Always" if tag == "latest" else "IfNotPresent"


def _apply_probe_defaults(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _apply_http_get_defaults(probe.get("httpGet"))


def _apply_http_get_defaults(action: Any) -> None:
    if isinstance(action, dict):
        _set_default(action, "path", "/")
        _set_default(action, "scheme", "HTTP")


def _apply_field_ref_defaults(source: Any) -> None:
    # SetDefaults_ObjectFieldSelector: fieldRef.apiVersion "v1".
    if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
        _set_default(source["fieldRef"], "apiVersion", "v1")


def apply_container_defaults(container: dict[str, Any]) -> None:
    """SetDefaults_Container and friends, in place."""
    _set_default(container, "imagePullPolicy", _default_image_pull_policy(container.get("image")))
    _set_default(container, "terminationMessagePath", "/dev/termination-log")
    _set_default(container, "terminationMessagePolicy", "File")
    _child(container, "resources")
    for port in _dicts(container.get("ports")):
        _set_default(port, "protocol", "TCP")
    for env in _dicts(container.get("env")):
        _apply_field_ref_defaults(env.get("valueFrom"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _apply_probe_defaults(container.get(key))
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for handler in (lifecycle.get("postStart"), lifecycle.get("preStop")):
            if isinstance(handler, dict):
                _apply_http_get_defaults(handler.get("httpGet"))


# --- Volumes ------------------------------------------------------------------------------------------

def apply_volume_defaults(volume: dict[str, Any]) -> None:
    """SetDefaults_Volume and the volume source defaults, in place."""
    if not any(key != "name" for key in volume):
        # "If no volume source is given, default to an emptyDir."
        volume["emptyDir"] = {}
    for key in ("configMap", "secret", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, dict) and source.get("defaultMode") is None:
            source["defaultMode"] = _VOLUME_MODE_DEFAULT
    if isinstance(volume.get("hostPath"), dict) and volume["hostPath"].get("type") is None:
        volume["hostPath"]["type"] = ""
    if isinstance(volume.get("downwardAPI"), dict):
        for item in _dicts(volume["downwardAPI"].get("items")):
            _apply_field_ref_defaults(item)
    if isinstance(volume.get("projected"), dict):
        _apply_projection_defaults(volume["projected"])


def _apply_projection_defaults(projected: dict[str, Any]) -> None:
    for source in _dicts(projected.get("sources")):
        token = source.get("serviceAccountToken")
        if isinstance(token, dict) and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = 3600
        if isinstance(source.get("downwardAPI"), dict):
            for item in _dicts(source["downwardAPI"].get("items")):
                _apply_field_ref_defaults(item)


# --- Pods ----------------------------------------------------------------------------------------------

def apply_pod_spec_defaults(spec: dict[str, Any]) -> None:
    """SetDefaults_PodSpec plus container and volume defaults: what pod templates get too."""
    _set_default(spec, "dnsPolicy", "ClusterFirst")
    _set_default(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _set_default(spec, "schedulerName", "default-scheduler")
    for container in _dicts(spec.get("containers")) + _dicts(spec.get("initContainers")):
        apply_container_defaults(container)
    for volume in _dicts(spec.get("volumes")):
        apply_volume_defaults(volume)


def _default_requests_from_limits(container: dict[str, Any]) -> None:
    # "If limits are specified, but requests are not, default requests to limits" (pods only).
    resources = _child(container, "resources")
    limits = resources.get("limits")
    if isinstance(limits, dict) and limits:
        raw_requests = resources.get("requests")
        requests: dict[str, Any] = raw_requests if isinstance(raw_requests, dict) else {}
        resources["requests"] = {**limits, **requests}


def _default_host_network_ports(container: dict[str, Any]) -> None:
    for port in _dicts(container.get("ports")):
        if not port.get("hostPort"):
            port["hostPort"] = port.get("containerPort")


def _tolerates(tolerations: list[dict[str, Any]], taint_key: str) -> bool:
    # An empty key or effect tolerates everything of its kind (DefaultTolerationSeconds plugin).
    return any(t.get("key") in (None, "", taint_key) and t.get("effect") in (None, "", "NoExecute")
               for t in tolerations)


def _apply_default_tolerations(spec: dict[str, Any]) -> None:
    raw_tolerations = spec.get("tolerations")
    tolerations: list[Any] = raw_tolerations if isinstance(raw_tolerations, list) else []
    present = _dicts(tolerations)
    for taint_key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not _tolerates(present, taint_key):
            tolerations.append({"key": taint_key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    spec["tolerations"] = tolerations


def _apply_pod_admission_defaults(spec: dict[str, Any], mirror: bool = False) -> None:
    # ServiceAccount admission names the "default" account (never for a mirror pod, whose spec must
    # stay as its node wrote it); v1 mirrors it in the deprecated field.
    if not mirror:
        _set_default(spec, "serviceAccountName", spec.get("serviceAccount") or "default")
        _set_default(spec, "serviceAccount", spec["serviceAccountName"])
    # Priority admission resolves the class name (none: priority 0, PreemptLowerPriority).
    if spec.get("priority") is None:
        spec["priority"] = SYSTEM_PRIORITIES.get(spec.get("priorityClassName") or "", 0)
    _set_default(spec, "preemptionPolicy", "PreemptLowerPriority")
    _apply_default_tolerations(spec)


def apply_pod_defaults(pod: dict[str, Any], on_create: bool = True) -> None:
    """SetDefaults_Pod, the pod admission plugins, and (on create) the Pending status."""
    spec = _child(pod, "spec")
    containers = _dicts(spec.get("containers")) + _dicts(spec.get("initContainers"))
    for container in containers:
        _default_requests_from_limits(container)
        if spec.get("hostNetwork") is True:
            _default_host_network_ports(container)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    apply_pod_spec_defaults(spec)
    _apply_pod_admission_defaults(spec, MIRROR_ANNOTATION in (_child(pod, "metadata").get("annotations") or {}))
    if on_create:
        # Pod strategy PrepareForCreate: a new pod is Pending with its QoS class computed.
        status = _child(pod, "status")
        _set_default(status, "phase", "Pending")
        status["qosClass"] = qos_class(spec)


# --- Other kinds -------------------------------------------------------------------------------------

def _apply_template_defaults(obj: dict[str, Any]) -> None:
    template = _child(_child(obj, "spec"), "template")
    apply_pod_spec_defaults(_child(template, "spec"))


def apply_deployment_defaults(deployment: dict[str, Any], on_create: bool = True) -> None:
    """apps/v1 SetDefaults_Deployment, in place."""
    spec = _child(deployment, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _child(spec, "strategy")
    _set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        _set_default(rolling, "maxUnavailable", "25%")
        _set_default(rolling, "maxSurge", "25%")
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _apply_template_defaults(deployment)
    _child(deployment, "status")


def apply_replica_set_defaults(replica_set: dict[str, Any], on_create: bool = True) -> None:
    """apps/v1 SetDefaults_ReplicaSet, in place."""
    spec = _child(replica_set, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _apply_template_defaults(replica_set)
    # ReplicaSetStatus.replicas has no omitempty: real objects always carry it, and the
    # Python client refuses a V1ReplicaSetStatus without it.
    status = _child(replica_set, "status")
    if status.get("replicas") is None:
        status["replicas"] = 0


def apply_daemon_set_defaults(daemon_set: dict[str, Any], on_create: bool = True) -> None:
    """apps/v1 SetDefaults_DaemonSet, in place: RollingUpdate with maxUnavailable 1 and maxSurge 0,
    10 revisions kept; the status counts that have no omitempty start at 0."""
    spec = _child(daemon_set, "spec")
    strategy = _child(spec, "updateStrategy")
    _set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        _set_default(rolling, "maxUnavailable", 1)
        _set_default(rolling, "maxSurge", 0)
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _apply_template_defaults(daemon_set)
    status = _child(daemon_set, "status")
    for key in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"):
        if status.get(key) is None:
            status[key] = 0


def apply_stateful_set_defaults(stateful_set: dict[str, Any], on_create: bool = True) -> None:
    """apps/v1 SetDefaults_StatefulSet: one replica, OrderedReady, RollingUpdate from partition 0,
    10 revisions kept, claims retained; status.replicas has no omitempty."""
    spec = _child(stateful_set, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _set_default(spec, "podManagementPolicy", "OrderedReady")
    strategy = _child(spec, "updateStrategy")
    _set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _set_default(_child(strategy, "rollingUpdate"), "partition", 0)
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    retention = _child(spec, "persistentVolumeClaimRetentionPolicy")
    _set_default(retention, "whenDeleted", "Retain")
    _set_default(retention, "whenScaled", "Retain")
    _apply_template_defaults(stateful_set)
    status = _child(stateful_set, "status")
    if status.get("replicas") is None:
        status["replicas"] = 0


JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def apply_job_defaults(job: dict[str, Any], on_create: bool = True) -> None:
    """batch/v1 SetDefaults_Job, and on create the Job strategy's generated selector: the pods are
    labelled with the Job's uid and name, and selected by the uid (unless manualSelector)."""
    spec = _child(job, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _set_default(spec, "parallelism", 1)
    _set_default(spec, "backoffLimit", 6)
    _set_default(spec, "completionMode", "NonIndexed")
    _set_default(spec, "suspend", False)
    _set_default(spec, "podReplacementPolicy", "TerminatingOrFailed")
    metadata = _child(job, "metadata")
    if on_create and not spec.get("manualSelector") and metadata.get("uid"):
        labels = _child(_child(_child(spec, "template"), "metadata"), "labels")
        for key in JOB_UID_LABELS:
            labels[key] = metadata["uid"]
        for key in JOB_NAME_LABELS:
            labels[key] = metadata.get("name", "")
        spec["selector"] = {"matchLabels": {JOB_UID_LABELS[0]: metadata["uid"]}}
    _apply_template_defaults(job)
    _child(job, "status")


def apply_cron_job_defaults(cron_job: dict[str, Any], on_create: bool = True) -> None:
    """batch/v1 SetDefaults_CronJob: Allow, not suspended, 3 successful and 1 failed Jobs kept."""
    spec = _child(cron_job, "spec")
    _set_default(spec, "concurrencyPolicy", "Allow")
    _set_default(spec, "suspend", False)
    _set_default(spec, "successfulJobsHistoryLimit", 3)
    _set_default(spec, "failedJobsHistoryLimit", 1)
    job_spec = _child(_child(spec, "jobTemplate"), "spec")
    _set_default(job_spec, "backoffLimit", 6)
    _set_default(job_spec, "completionMode", "NonIndexed")
    _set_default(job_spec, "suspend", False)
    _set_default(job_spec, "podReplacementPolicy", "TerminatingOrFailed")
    if job_spec.get("completions") is None and job_spec.get("parallelism") is None:
        job_spec["completions"] = 1
    _set_default(job_spec, "parallelism", 1)
    apply_pod_spec_defaults(_child(_child(job_spec, "template"), "spec"))
    _child(cron_job, "status")


def apply_namespace_defaults(namespace: dict[str, Any], on_create: bool = True) -> None:
    """SetDefaults_Namespace (the name label, always rewritten) and, on create, the finalizer."""
    metadata = _child(namespace, "metadata")
    if metadata.get("name"):
        _child(metadata, "labels")["kubernetes.io/metadata.name"] = metadata["name"]
    if on_create:
        # "on create, we require the kubernetes value; we cannot use this in defaults conversion
        # because we let it get removed over life of object" (namespace strategy).
        finalizers = _child(namespace, "spec").get("finalizers")
        finalizers = finalizers if isinstance(finalizers, list) else []
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
        namespace["spec"]["finalizers"] = finalizers
    _set_default(_child(namespace, "status"), "phase", "Active")


def apply_secret_defaults(secret: dict[str, Any], on_create: bool = True) -> None:
    """SetDefaults_Secret, plus the v1 conversion that folds `stringData` into `data`."""
    _set_default(secret, "type", "Opaque")
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        # "StringData overwrites Data"; it is write-only and never returned.
        raw_data = secret.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        secret["data"] = data


def _externally_accessible(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("LoadBalancer", "NodePort") or (
        spec.get("type") == "ClusterIP" and bool(spec.get("externalIPs")))


def apply_service_defaults(service: dict[str, Any], on_create: bool = True) -> None:
    """SetDefaults_Service plus the IP family fields the service REST storage fills in."""
    spec = _child(service, "spec")
    _set_default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    _set_default(spec, "type", "ClusterIP")
    for port in _dicts(spec.get("ports")):
        _set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and port.get("port") is not None:
            port["targetPort"] = port["port"]
    if _externally_accessible(spec):
        _set_default(spec, "externalTrafficPolicy", "Cluster")
    if spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        _set_default(spec, "internalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if spec["type"] != "ExternalName":
        _set_default(spec, "ipFamilyPolicy", "SingleStack")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
    _child(_child(service, "status"), "loadBalancer")


# NodeSystemInfo fields are plain strings without omitempty: a real node always has them all,
# and the Python client's V1NodeSystemInfo refuses None for any of them.
_NODE_INFO_FIELDS = ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                     "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                     "operatingSystem", "architecture")


def apply_node_defaults(node: dict[str, Any], on_create: bool = True) -> None:
    """SetDefaults_NodeStatus (allocatable from capacity) and the always-present status parts."""
    status = _child(node, "status")
    if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])
    endpoint = _child(_child(status, "daemonEndpoints"), "kubeletEndpoint")
    if endpoint.get("Port") is None:
        endpoint["Port"] = 0
    info = _child(status, "nodeInfo")
    for key in _NODE_INFO_FIELDS:
        if info.get(key) is None:
            info[key] = ""


def _apply_pod(obj: dict[str, Any], on_create: bool = True) -> None:
    apply_pod_defaults(obj, on_create)


_DEFAULTERS = {
    "Pod": _apply_pod,
    "Deployment": apply_deployment_defaults,
    "ReplicaSet": apply_replica_set_defaults,
    "DaemonSet": apply_daemon_set_defaults,
    "StatefulSet": apply_stateful_set_defaults,
    "Job": apply_job_defaults,
    "CronJob": apply_cron_job_defaults,
    "Namespace": apply_namespace_defaults,
    "Secret": apply_secret_defaults,
    "Service": apply_service_defaults,
    "Node": apply_node_defaults,
}


def normalize_pod_status(obj: dict[str, Any]) -> None:
    """v1 -> internal conversion of a pod's status: podIP is authoritative for older kubelets, so
    podIPs (and likewise hostIPs) follow it when they are missing or disagree."""
    status = obj.get("status")
    if not isinstance(status, dict):
        return
    for single, plural in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        ip = status.get(single)
        listed = _dicts(status.get(plural))
        if ip and (not listed or listed[0].get("ip") != ip):
            status[plural] = [{"ip": ip}]


def apply_defaults(kind: str, obj: dict[str, Any], *, on_create: bool = True) -> None:
    """Fill in, in place, what kube-apiserver would for `kind`; unknown kinds are left alone.

    ConfigMap, ServiceAccount, Lease, Event, Endpoints and custom resources have no defaults.
    """
    defaulter = _DEFAULTERS.get(kind)
    if defaulter is not None:
        defaulter(obj, on_create)
    if kind == "Pod":
        normalize_pod_status(obj)
