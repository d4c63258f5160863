"""A Pod's spec as CRI asks for it: sandbox config, container config, env, resources, security.

Pure functions: given the Pod JSON, the objects it references (ConfigMaps, Secrets) and the
facts Edged knows (node name, host IP, pod IP, volume paths), they build the ``runtime.v1``
messages. The same pod always gives the same sandbox config, which is how a restarted Edged
creates new containers in a sandbox it adopted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from cores.edge.cri import api, labels_for_container, labels_for_pod

# kubelet's cgroup arithmetic (pkg/kubelet/cm/helpers_linux.go)
CPU_PERIOD = 100_000
MIN_SHARES = 2
MIN_QUOTA = 1000
DEFAULT_GRACE_SECONDS = 30
RESTART_COUNT_ANNOTATION = "io.kubernetes.container.restartCount"
HASH_ANNOTATION = "io.kubernetes.container.hash"

_SUFFIX: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


class SpecError(Exception):
    """The pod references something that is not there (a missing key, ConfigMap or Secret)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def quantity(text: Any) -> Decimal:
    """A Kubernetes quantity ("500m", "64Mi", "1.5", "1e3") as a number."""
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)", str(text).strip())
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    return Decimal(match.group(1)) * Decimal(_SUFFIX[match.group(2)])


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def pod_uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def host_network(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("hostNetwork"))


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """An init container with ``restartPolicy: Always``: it runs beside the app containers."""
    return container.get("restartPolicy") == "Always"


def grace_seconds(pod: Mapping[str, Any]) -> int:
    meta = pod.get("metadata") or {}
    if meta.get("deletionGracePeriodSeconds") is not None:
        return int(meta["deletionGracePeriodSeconds"])
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_SECONDS if value is None else int(value)


def log_directory(logs_root: str, pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{logs_root}/{meta.get('namespace') or 'default'}_{meta.get('name')}_{meta.get('uid')}"


def namespace_options(pod: Mapping[str, Any]) -> api.NamespaceOption:
    spec = pod.get("spec") or {}
    return api.NamespaceOption(
        network=api.NODE if spec.get("hostNetwork") else api.POD,
        pid=api.NODE if spec.get("hostPID") else (api.POD if spec.get("shareProcessNamespace") else api.CONTAINER),
        ipc=api.NODE if spec.get("hostIPC") else api.POD,
    )


def sandbox_config(pod: Mapping[str, Any], node: str, logs_root: str, attempt: int = 0) -> api.PodSandboxConfig:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    namespace, name, uid = meta.get("namespace") or "default", str(meta.get("name")), pod_uid(pod)
    security = spec.get("securityContext") or {}
    sandbox_security = api.LinuxSandboxSecurityContext(namespace_options=namespace_options(pod))
    if security.get("runAsUser") is not None:
        sandbox_security.run_as_user.value = int(security["runAsUser"])
    if security.get("runAsGroup") is not None:
        sandbox_security.run_as_group.value = int(security["runAsGroup"])
    sandbox_security.supplemental_groups.extend(int(g) for g in security.get("supplementalGroups") or [])
    ports = [port_mapping(port) for container in spec.get("containers") or [] for port in container.get("ports") or []]
    config = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=attempt),
        hostname="" if spec.get("hostNetwork") else str(spec.get("hostname") or name)[:63],
        log_directory=log_directory(logs_root, pod),
        port_mappings=ports,
        labels={**{k: str(v) for k, v in (meta.get("labels") or {}).items()}, **labels_for_pod(node, namespace, name, uid)},
        annotations={k: str(v) for k, v in (meta.get("annotations") or {}).items()},
        linux=api.LinuxPodSandboxConfig(security_context=sandbox_security,
                                         sysctls={s["name"]: str(s["value"]) for s in security.get("sysctls") or []}),
    )
    dns = spec.get("dnsConfig") or {}
    if spec.get("dnsPolicy") == "None" or dns:
        config.dns_config.CopyFrom(api.DNSConfig(servers=dns.get("nameservers") or [], searches=dns.get("searches") or [],
                                                 options=[o["name"] + (f":{o['value']}" if o.get("value") else "") for o in dns.get("options") or []]))
    return config


def port_mapping(port: Mapping[str, Any]) -> api.PortMapping:
    protocol = {"TCP": api.TCP, "UDP": api.UDP, "SCTP": api.SCTP}.get(str(port.get("protocol") or "TCP"), api.TCP)
    return api.PortMapping(protocol=protocol, container_port=int(port.get("containerPort") or 0),
                           host_port=int(port.get("hostPort") or 0), host_ip=str(port.get("hostIP") or ""))


def linux_resources(container: Mapping[str, Any]) -> api.LinuxContainerResources:
    """requests.cpu -> shares, limits.cpu -> quota/period, limits.memory -> memory limit (kubelet's rules)."""
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    result = api.LinuxContainerResources()
    cpu_request = requests.get("cpu", limits.get("cpu"))
    if cpu_request is not None:
        result.cpu_shares = max(MIN_SHARES, int(quantity(cpu_request) * 1024))
    else:
        result.cpu_shares = MIN_SHARES
    if limits.get("cpu") is not None:
        result.cpu_period = CPU_PERIOD
        result.cpu_quota = max(MIN_QUOTA, int(quantity(limits["cpu"]) * CPU_PERIOD))
    if limits.get("memory") is not None:
        result.memory_limit_in_bytes = int(quantity(limits["memory"]))
    return result


def security_context(pod: Mapping[str, Any], container: Mapping[str, Any]) -> api.LinuxContainerSecurityContext:
    pod_security = (pod.get("spec") or {}).get("securityContext") or {}
    own = container.get("securityContext") or {}
    merged = {**pod_security, **own}
    result = api.LinuxContainerSecurityContext(
        namespace_options=namespace_options(pod),
        privileged=bool(own.get("privileged")),
        readonly_rootfs=bool(own.get("readOnlyRootFilesystem")),
        no_new_privs=own.get("allowPrivilegeEscalation") is False,
    )
    if merged.get("runAsUser") is not None:
        result.run_as_user.value = int(merged["runAsUser"])
    if merged.get("runAsGroup") is not None:
        result.run_as_group.value = int(merged["runAsGroup"])
    if pod_security.get("fsGroup") is not None:  # the group that owns the pod's volumes (see volumes.apply_fs_group)
        result.supplemental_groups.append(int(pod_security["fsGroup"]))
    result.supplemental_groups.extend(int(g) for g in pod_security.get("supplementalGroups") or [])
    capabilities = own.get("capabilities") or {}
    if capabilities:
        result.capabilities.CopyFrom(api.Capability(add_capabilities=capabilities.get("add") or [],
                                                    drop_capabilities=capabilities.get("drop") or []))
    return result


# -- environment --------------------------------------------------------------------------------

Lookup = Callable[[str, str], "Mapping[str, Any] | None"]  # (kind, name) -> ConfigMap/Secret or None


def object_data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The string values of a ConfigMap (data, binaryData) or Secret (base64 data, stringData)."""
    if kind == "secret":
        values = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}
        values.update(obj.get("stringData") or {})
        return values
    values = dict(obj.get("data") or {})
    values.update({k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("binaryData") or {}).items()})
    return values


def field_value(pod: Mapping[str, Any], path: str, host_ip: str, pod_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"), "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"), "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": host_ip, "status.hostIPs": host_ip, "status.podIP": pod_ip, "status.podIPs": pod_ip,
    }
    if path in ("metadata.labels", "metadata.annotations"):
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get(path.split(".")[1]) or {}).items()))
    if path not in simple:
        raise SpecError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def resource_value(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    resource = str(ref.get("resource") or "")
    section, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(name)
    if value is None:
        return "0"
    divisor = quantity(ref.get("divisor") or "1")
    number = quantity(value) / divisor
    return str(int(number) if number == int(number) else int(number) + 1)  # kubelet rounds up


def _referenced(lookup: Lookup, kind: str, ref: Mapping[str, Any]) -> dict[str, str] | None:
    obj = lookup(kind, str(ref.get("name")))
    if obj is None:
        if ref.get("optional"):
            return None
        label = "configmap" if kind == "configmap" else "secret"
        raise SpecError("CreateContainerConfigError", f'{label} "{ref.get("name")}" not found')
    return object_data(kind, obj)


def environment(pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup, host_ip: str, pod_ip: str,
                api_service: tuple[str, int] | None = None) -> list[tuple[str, str]]:
    """The container's env as kubelet builds it: the API service's variables (here MetaServer's
    address, so in-cluster clients at the edge reach it), envFrom, then env, $(VAR) expanded."""
    values: dict[str, str] = {}
    if api_service is not None:
        host, port = api_service
        values.update({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
                       "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": f"tcp://{host}:{port}",
                       f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}", f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
                       f"KUBERNETES_PORT_{port}_TCP_PORT": str(port), f"KUBERNETES_PORT_{port}_TCP_ADDR": host})
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            if source.get(key):
                data = _referenced(lookup, kind, source[key]) or {}
                for name, value in data.items():
                    values[prefix + name] = value
    for entry in container.get("env") or []:
        name = str(entry["name"])
        source = entry.get("valueFrom")
        if not source:
            values[name] = expand(str(entry.get("value") or ""), values)
            continue
        if source.get("fieldRef"):
            values[name] = field_value(pod, str(source["fieldRef"].get("fieldPath")), host_ip, pod_ip)
        elif source.get("resourceFieldRef"):
            values[name] = resource_value(container, source["resourceFieldRef"])
        else:
            kind, ref = ("configmap", source["configMapKeyRef"]) if source.get("configMapKeyRef") else ("secret", source.get("secretKeyRef") or {})
            referenced = _referenced(lookup, kind, ref)
            if referenced is None:
                continue
            if ref.get("key") not in referenced:
                if ref.get("optional"):
                    continue
                raise SpecError("CreateContainerConfigError", f"couldn't find key {ref.get('key')} in {kind} {pod_key(pod).split('/')[0]}/{ref.get('name')}")
            values[name] = referenced[str(ref["key"])]
    return list(values.items())


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names replaced, $$ escapes, unknown references kept."""
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, text)


def container_config(pod: Mapping[str, Any], container: Mapping[str, Any], node: str, attempt: int,
                     env: list[tuple[str, str]], mounts: list[api.Mount], image_ref: str) -> api.ContainerConfig:
    meta = pod.get("metadata") or {}
    name = str(container["name"])
    variables = dict(env)
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=attempt),
        image=api.ImageSpec(image=image_ref or str(container.get("image"))),
        command=[expand(str(c), variables) for c in container.get("command") or []],
        args=[expand(str(a), variables) for a in container.get("args") or []],
        working_dir=str(container.get("workingDir") or ""),
        envs=[api.KeyValue(key=k, value=v) for k, v in env],
        mounts=mounts,
        labels=labels_for_container(node, str(meta.get("namespace") or "default"), str(meta.get("name")), pod_uid(pod), name),
        annotations={RESTART_COUNT_ANNOTATION: str(attempt), HASH_ANNOTATION: container_hash(container),
                     "io.kubernetes.container.terminationMessagePath": str(container.get("terminationMessagePath") or "/dev/termination-log")},
        log_path=f"{name}/{attempt}.log",
        stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")), tty=bool(container.get("tty")),
        linux=api.LinuxContainerConfig(resources=linux_resources(container), security_context=security_context(pod, container)),
    )


def container_hash(container: Mapping[str, Any]) -> str:
    """What a running container was made from (kubelet's ``io.kubernetes.container.hash``): when the
    pod's spec for it changes (``kubectl set image``), the container is restarted. Resources are left
    out, so a resize does not restart it."""
    spec = {k: v for k, v in container.items() if k != "resources"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def pull_policy(container: Mapping[str, Any]) -> str:
    """imagePullPolicy, defaulted as the API server does (Always for :latest or no tag)."""
    if container.get("imagePullPolicy"):
        return str(container["imagePullPolicy"])
    image = str(container.get("image") or "")
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    return "Always" if ":" not in tail or tail.endswith(":latest") else "IfNotPresent"
