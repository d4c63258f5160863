"""``keadm ctl``: a person at the edge machine looks at this node's pods and devices, reads their
logs and runs commands in them, with the cloud reachable or not.

``get`` and ``describe`` read from EdgeCore's MetaServer (``metaManager.metaServer.server``, as
upstream's keadm ctl does), so they see exactly what the node's apps see; only objects of this
node are shown. ``logs`` and ``exec`` go to the container runtime (CRI) directly: they need
neither the cloud nor MetaServer.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

from cores.common import tables
from cores.install.debug import EdgeSite
from cores.install.debug.get import render

REQUEST_TIMEOUT = 10.0
KINDS = {"pod": ("", "v1", "pods", ("", "Pod")), "device": ("devices.kubeedge.io", "v1beta1", "devices",
                                                             ("devices.kubeedge.io", "Device"))}
ALIASES = {"pod": "pod", "pods": "pod", "po": "pod", "device": "device", "devices": "device"}


class CtlError(Exception):
    """What went wrong, in one line, with what to do."""


def kind_of(resource: str) -> str:
    kind = ALIASES.get(resource.lower())
    if kind is None:
        raise CtlError(f"keadm ctl knows pods and devices, not {resource!r}")
    return kind


class MetaServerClient:
    def __init__(self, address: str, tls: tuple[str, str, str] | None = None) -> None:
        """``tls``: (MetaServer's CA, the node's certificate, its key) with ``requireAuthorization``,
        where MetaServer speaks HTTPS and knows the node by its certificate, as upstream's keadm ctl."""
        host, _, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port or 10550)
        self.tls = tls
        self.scheme = "https" if tls else "http"

    def _connection(self) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        import ssl

        ca, cert, key = self.tls
        context = ssl.create_default_context(cafile=ca)
        try:
            context.load_cert_chain(cert, key)
        except OSError as error:
            raise CtlError(f"cannot read the node's certificate {cert} ({error}): keadm ctl runs as root on a joined "
                           "node") from None
        return http.client.HTTPSConnection(self.host, self.port, timeout=REQUEST_TIMEOUT, context=context)

    def get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        return self.call("GET", path + ("?" + urllib.parse.urlencode(query) if query else ""))

    def call(self, method: str, target: str, body: Any = None, raw: str | None = None) -> dict[str, Any]:
        connection = self._connection()
        payload = raw.encode() if raw is not None else None if body is None else json.dumps(body).encode()
        try:
            connection.request(method, target, body=payload, headers={
                "Accept": "application/json", **({"Content-Type": "application/json"} if payload else {})})
            response = connection.getresponse()
            body = response.read(64 * 1024 * 1024)
        except (OSError, http.client.HTTPException) as error:
            raise CtlError(f"MetaServer does not answer at {self.scheme}://{self.host}:{self.port} ({error}): set "
                           "metaManager.metaServer.enable: true in edgecore.yaml and restart EdgeCore") from None
        finally:
            connection.close()
        try:
            data = json.loads(body)
        except ValueError:
            raise CtlError(f"MetaServer answered {response.status} with a body that is not JSON") from None
        if response.status >= 400:
            raise CtlError(str(data.get("message") if isinstance(data, dict) else data) or f"MetaServer answered {response.status}")
        if not isinstance(data, dict):
            raise CtlError("MetaServer answered with JSON that is not an object")
        return data


class Ctl:
    def __init__(self, site: EdgeSite) -> None:
        self.site = site
        server = site.config.modules.metaManager.get("metaServer") or {}
        tls = None
        if (site.config.get("featureGates") or {}).get("requireAuthorization"):
            from cores.common.layout import metaserver_serving_paths

            tls = (str(metaserver_serving_paths(server)["ca"]), str(server.get("tlsCertFile") or ""),
                   str(server.get("tlsPrivateKeyFile") or ""))
        self.metaserver = MetaServerClient(str(server.get("server") or "127.0.0.1:10550"), tls)

    def _path(self, kind: str, namespace: str | None, name: str = "") -> str:
        group, version, plural, _ = KINDS[kind]
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        scope = f"/namespaces/{urllib.parse.quote(namespace, safe='')}" if namespace is not None else ""
        return f"{base}{scope}/{plural}" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")

    def _ours(self, kind: str, obj: dict[str, Any]) -> bool:
        """A pod of this node (devices: bound to it); MetaServer holds nothing else, but say so plainly."""
        spec: dict[str, Any] = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
        node = spec.get("nodeName")
        return node in (None, "", self.site.node_name) if kind == "device" else node == self.site.node_name

    def objects(self, kind: str, names: list[str], *, namespace: str, all_namespaces: bool,
                selector: str = "") -> tuple[list[dict[str, Any]], list[str]]:
        """The objects asked for, and a line for each name that is not here."""
        missing: list[str] = []
        if names:
            found = []
            for name in names:
                try:
                    obj = self.metaserver.get(self._path(kind, namespace, name))
                except CtlError as error:
                    missing.append(str(error))
                    continue
                if self._ours(kind, obj):
                    found.append(obj)
                else:
                    missing.append(f'{kind} "{name}" is not on node {self.site.node_name}')
            return found, missing
        listed = self.metaserver.get(self._path(kind, None if all_namespaces else namespace),
                                     {"labelSelector": selector} if selector else None)
        return [obj for obj in listed.get("items") or [] if isinstance(obj, dict) and self._ours(kind, obj)], missing

    def get(self, resource: str, names: list[str], *, namespace: str, all_namespaces: bool, selector: str,
            output: str) -> tuple[str, list[str]]:
        kind = kind_of(resource)
        found, missing = self.objects(kind, names, namespace=namespace, all_namespaces=all_namespaces, selector=selector)
        if not found:
            return ("" if names else "No resources found" + ("" if all_namespaces else f" in {namespace} namespace") + "."), missing
        return render(found, KINDS[kind][3], output=output, all_namespaces=all_namespaces), missing

    def describe(self, resource: str, name: str, *, namespace: str) -> str:
        kind = kind_of(resource)
        found, missing = self.objects(kind, [name], namespace=namespace, all_namespaces=False)
        if not found:
            raise CtlError(missing[0] if missing else f'{kind} "{name}" not found')
        return describe_pod(found[0]) if kind == "pod" else describe_device(found[0])

    def restart(self, pods: list[str], *, namespace: str) -> tuple[list[str], list[str]]:
        """Upstream's pods/restart through MetaServer: (what was restarted, what failed)."""
        answer = self.metaserver.call("POST", f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/pods/restart",
                                      list(pods))
        return list(answer.get("LogMessages") or []), list(answer.get("errMessages") or [])

    def confirm(self) -> None:
        """Upstream's confirmation of a node upgrade waiting for it (NodeUpgradeJob requireConfirmation)."""
        try:
            self.metaserver.call("POST", "/api/v1/taskupgrade/confirm-upgrade")
        except CtlError as error:
            raise CtlError(f"failed to confirm node upgrade: {error}") from None

    def unhold_upgrade(self, resource: str, name: str, *, namespace: str) -> str:
        """Release pods held by ``edge.kubeedge.io/hold-upgrade``: one pod, or every one of this node."""
        if resource == "pod":
            self.metaserver.call("POST", "/api/v1/pods/unhold-upgrade", raw=f"{namespace}/{name}")
            return f"pod {namespace}/{name}: upgrade unheld"
        node = name or self.site.node_name
        self.metaserver.call("POST", "/api/v1/nodes/unhold-upgrade", raw=node)
        return f"node {node}: the upgrade of its held pods unheld"

    # -- through CRI ---------------------------------------------------------------------------
    async def _container(self, cri: Any, pod: str, namespace: str, container: str) -> Any:
        from cores.edge.cri import labels

        wanted = {labels.POD_NAME: pod, labels.POD_NAMESPACE: namespace}
        if container:
            wanted[labels.CONTAINER_NAME] = container
        found = sorted(await cri.list_containers(wanted), key=lambda c: c.created_at, reverse=True)
        if not found:
            raise CtlError(f'no container{" " + repr(container) if container else ""} of pod {namespace}/{pod} on this node')
        names = {c.labels.get(labels.CONTAINER_NAME, "") for c in found}
        if not container and len(names) > 1:
            raise CtlError(f"pod {namespace}/{pod} has {len(names)} containers ({', '.join(sorted(names))}): choose one with -c")
        return found[0]

    def logs(self, pod: str, *, namespace: str, container: str, tail: int | None, follow: bool, timestamps: bool,
             write: Callable[[bytes], None]) -> None:
        from cores.edge.cri.client import CriClient
        from cores.edge.edged import logs

        async def run() -> None:
            async with CriClient(self.site.runtime_endpoint) as cri:
                found = await self._container(cri, pod, namespace, container)
                status = (await cri.container_status(found.id)).status
                if not status.log_path:
                    raise CtlError(f"container {found.metadata.name} of pod {namespace}/{pod} has no log file")

                async def running() -> bool:
                    try:
                        return int((await cri.container_status(found.id)).status.state) == 1
                    except Exception:  # noqa: BLE001 - gone is not running
                        return False

                options = logs.LogOptions(follow=follow, timestamps=timestamps, tail_lines=tail)
                async for chunk in logs.stream_log(status.log_path, options, running):
                    write(chunk)

        _run_cri(run)

    def exec(self, pod: str, command: list[str], *, namespace: str, container: str, timeout: int) -> tuple[bytes, bytes, int]:
        from cores.edge.cri.client import CriClient

        async def run() -> tuple[bytes, bytes, int]:
            async with CriClient(self.site.runtime_endpoint, timeout=timeout + 10) as cri:
                found = await self._container(cri, pod, namespace, container)
                if int(found.state) != 1:
                    raise CtlError(f"container {found.metadata.name} of pod {namespace}/{pod} is not running")
                result = await cri.exec_sync(found.id, command, timeout=timeout)
                return bytes(result.stdout), bytes(result.stderr), int(result.exit_code)

        return _run_cri(run)


def _run_cri(run: Callable[[], Any]) -> Any:
    try:
        return asyncio.run(run())
    except CtlError:
        raise
    except (OSError, ConnectionError) as error:
        raise CtlError(f"the container runtime does not answer: {error} (is containerd running? "
                       "see modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint)") from None
    except Exception as error:  # noqa: BLE001 - a gRPC status from the runtime: its message is the reason
        message = getattr(error, "message", None) or str(error)
        raise CtlError(f"the container runtime refused: {message}") from None


# -- describe -----------------------------------------------------------------------------------
def _lines(pairs: list[tuple[str, Any]], indent: int = 0) -> list[str]:
    """``Key:   value`` rows with the values aligned, as kubectl describe prints them; a value of
    several lines continues under its first."""
    width = max((len(key) for key, _ in pairs), default=0) + 2
    out = []
    for key, value in pairs:
        first, *rest = str("" if value is None else value).split("\n")
        out.append((" " * indent + f"{key + ':':<{width}}{first}").rstrip())
        out += [" " * (indent + width) + line for line in rest]
    return out


def _map(values: Any) -> str:
    if not isinstance(values, dict) or not values:
        return "<none>"
    return "\n".join(f"{k}={v}" for k, v in sorted(values.items()))


def _state(state: dict[str, Any]) -> list[tuple[str, Any]]:
    for name, detail in (state or {}).items():
        pairs: list[tuple[str, Any]] = [("State", name.capitalize())]
        for key in ("reason", "exitCode", "startedAt", "finishedAt", "message"):
            if isinstance(detail, dict) and detail.get(key) not in (None, ""):
                pairs.append(("  " + key[0].upper() + key[1:], detail[key]))
        return pairs
    return [("State", "Waiting")]


def describe_pod(pod: dict[str, Any], now: datetime.datetime | None = None) -> str:
    """kubectl describe pod's first sections, from the object alone (no events: the edge keeps none)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    lines = _lines([("Name", meta.get("name")), ("Namespace", meta.get("namespace")), ("Node", spec.get("nodeName")),
                    ("Start Time", status.get("startTime")), ("Labels", _map(meta.get("labels"))),
                    ("Annotations", _map({k: v for k, v in (meta.get("annotations") or {}).items()
                                          if k != "kubectl.kubernetes.io/last-applied-configuration"})),
                    ("Status", status.get("phase")), ("IP", status.get("podIP")),
                    ("Age", tables.since(meta.get("creationTimestamp"), now))])
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or [] if isinstance(s, dict)}
    lines.append("Containers:")
    for container in spec.get("containers") or []:
        found = statuses.get(container.get("name"), {})
        lines.append(f"  {container.get('name')}:")
        pairs: list[tuple[str, Any]] = [("Container ID", found.get("containerID")), ("Image", container.get("image"))]
        if container.get("command"):
            pairs.append(("Command", " ".join(map(str, container["command"]))))
        pairs += _state(found.get("state") or {})
        pairs += [("Ready", str(bool(found.get("ready"))).capitalize()), ("Restart Count", found.get("restartCount", 0))]
        lines += _lines(pairs, 4)
    lines.append("Conditions:")
    lines += [f"  {c.get('type', ''):<26}{c.get('status', '')}" for c in status.get("conditions") or [] if isinstance(c, dict)]
    lines.append("Volumes:")
    for volume in spec.get("volumes") or []:
        source = next((k for k in volume if k != "name"), "")
        lines.append(f"  {volume.get('name')}: {source}")
    return "\n".join(lines)


def describe_device(device: dict[str, Any]) -> str:
    meta, spec, status = device.get("metadata") or {}, device.get("spec") or {}, device.get("status") or {}
    lines = _lines([("Name", meta.get("name")), ("Namespace", meta.get("namespace")), ("Labels", _map(meta.get("labels"))),
                    ("Node", spec.get("nodeName")), ("Model", (spec.get("deviceModelRef") or {}).get("name")),
                    ("Protocol", next(iter((spec.get("protocol") or {}).keys()), None))])
    lines.append("Properties:")
    for prop in spec.get("properties") or []:
        desired = (prop.get("desired") or {}).get("value") if isinstance(prop, dict) else None
        lines.append(f"  {prop.get('name')}: desired={desired}")
    lines.append("Twins:")
    for twin in status.get("twins") or []:
        if isinstance(twin, dict):
            lines.append(f"  {twin.get('propertyName')}: reported={(twin.get('reported') or {}).get('value')} "
                         f"observedDesired={(twin.get('observedDesired') or {}).get('value')}")
    return "\n".join(lines)


def write_stdout(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
