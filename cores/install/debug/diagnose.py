"""``keadm debug diagnose``: what is wrong with this edge, the evidence, and the one thing to do.

Beyond upstream (which says "failed"), each check is a :class:`Finding` that names the cause
and its fix. All of them run with the cloud away: what needs the cloud says it cannot tell.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import email.utils
import hashlib
import json
import os
import re
import socket
import sqlite3
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cores.install.debug import EdgeSite

CERT_WARN_DAYS = 7
CLOCK_SKEW_SECONDS = 30.0
DISK_FREE_MIN = 100 * 1024 * 1024
DISK_FREE_PERCENT = 5.0
CRASH_WINDOW = 5   # starts in the log's tail: more means a crash loop
STUCK_REASONS = {
    "ErrImagePull": "the image cannot be pulled: load it with `ctr -n k8s.io images import` or fix the image name",
    "ImagePullBackOff": "the image cannot be pulled: load it with `ctr -n k8s.io images import` or fix the image name",
    "ErrImageNeverPull": "the image is not on this node and its pull policy is Never: import it with `ctr -n k8s.io images import`",
    "CrashLoopBackOff": "the container keeps exiting: read its log (`keadm ctl logs` / the pod's log directory) and fix its command",
    "CreateContainerConfigError": "the container's config is incomplete (a ConfigMap or Secret key it needs): create it in the cloud",
    "RunContainerError": "the runtime could not start the container: see the runtime's log",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    summary: str
    evidence: str = ""
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Check = Callable[[EdgeSite], list[Finding]]


# ------------------------------------------------------------------------------ the process
def edgecore_process(site: EdgeSite) -> list[Finding]:
    state = site.running()
    log = site.log_text()
    starts = log.count("edgecore starting with modules")
    failures = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line][-3:]
    if state.running:
        if starts > CRASH_WINDOW:
            return [Finding("edgecore", False, f"EdgeCore runs (pid {state.pid}) but has started {starts} times",
                            "\n".join(failures), "read the ERROR lines of its log and fix what they name")]
        return [Finding("edgecore", True, f"EdgeCore runs (pid {state.pid})")]
    why = "\n".join(failures) or "no error in its log"
    if starts > CRASH_WINDOW:
        return [Finding("edgecore", False, f"EdgeCore is crash-looping ({starts} starts in its log) and is not running now",
                        why, "read the ERROR lines of its log and fix what they name, then `keadm run edge` or restart its service")]
    return [Finding("edgecore", False, "EdgeCore is not running", why,
                    f"start it: systemctl start edgecore, or `keadm run edge --config {site.config_path}`")]


def node_name_taken(site: EdgeSite) -> list[Finding]:
    # CloudCore's refusal: "node name 'x' is already taken in the cluster" (the bootstrap server's 409)
    lines = [line for line in site.log_text().splitlines() if "already taken" in line or "is taken" in line or "NameTaken" in line]
    if lines:
        return [Finding("node name", False, f"the node name {site.node_name} is taken in the cluster", lines[-1],
                        "join with another name (`keadm join --edgenode-name ...`), or delete the old Node in the cloud")]
    return []


# ------------------------------------------------------------------------------ certificates
def _load_cert(path: str) -> Any:
    from cryptography import x509

    data = Path(path).read_bytes()
    return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)


def certificate(site: EdgeSite, now: datetime.datetime | None = None) -> list[Finding]:
    path = str(site.hub.tlsCertFile)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        cert = _load_cert(path)
    except FileNotFoundError:
        return [Finding("certificate", False, f"the node certificate {path} does not exist", "",
                        "join again: `keadm reset` then `keadm join` with a fresh token")]
    except (OSError, ValueError) as error:
        return [Finding("certificate", False, f"the node certificate {path} cannot be read", str(error),
                        "join again: `keadm reset` then `keadm join` with a fresh token")]
    expires = cert.not_valid_after_utc
    left = expires - now
    evidence = f"{path}: valid until {expires.isoformat()}"
    if left.total_seconds() <= 0:
        return [Finding("certificate", False, f"the node certificate expired {_ago(-left.total_seconds())} ago", evidence,
                        "EdgeCore renews it only while it is valid: `keadm reset`, then `keadm join` with a fresh token")]
    if left < datetime.timedelta(days=CERT_WARN_DAYS):
        return [Finding("certificate", False, f"the node certificate expires in {left.total_seconds() / 3600:.1f} h", evidence,
                        "let EdgeCore run connected so it renews it (it does before expiry); if it cannot reach the cloud, fix that first")]
    return [Finding("certificate", True, f"the node certificate is valid for {left.days} more day(s)", evidence)]


def _ago(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}(s)"
    return f"{int(seconds)} second(s)"


def token(site: EdgeSite, now: datetime.datetime | None = None) -> list[Finding]:
    value = str(site.hub.get("token") or "")
    if not value or "." not in value:
        return []  # blanked after a successful join: nothing to check
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        payload = value.split(".", 1)[1].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        expires = datetime.datetime.fromtimestamp(float(claims["exp"]), datetime.timezone.utc)
    except (IndexError, KeyError, TypeError, ValueError):
        return [Finding("token", False, "the join token in the config is malformed", "",
                        "get a new one in the cloud (`keadm gettoken`) and join again")]
    if expires <= now:
        return [Finding("token", False, f"the join token expired at {expires.isoformat()}", "",
                        "get a new one in the cloud (`keadm gettoken`) and join again")]
    return [Finding("token", True, f"the join token is valid until {expires.isoformat()}")]


# ------------------------------------------------------------------------------ the cloud
def cloud(site: EdgeSite) -> list[Finding]:
    """Reachability step by step (DNS, TCP, TLS with our CA), then the CA and the clock."""
    host, port = site.websocket_address
    where = f"{host}:{port}"
    try:
        socket.getaddrinfo(host, port)
    except OSError as error:
        return [Finding("cloud", False, f"the cloud's name {host} does not resolve", str(error),
                        "fix DNS (/etc/resolv.conf) or put the cloud's IP in modules.edgeHub.websocket.server")]
    try:
        raw = socket.create_connection((host, port), timeout=5)
    except ConnectionRefusedError as error:
        return [Finding("cloud", False, f"the cloud refuses connections on {where}", str(error),
                        "start CloudCore there (`keadm init`), or fix the port in modules.edgeHub.websocket.server")]
    except OSError as error:
        return [Finding("cloud", False, f"the cloud at {where} is unreachable", str(error),
                        "check the network path and firewalls between this edge and the cloud")]
    findings = []
    context = ssl.create_default_context(cafile=str(site.hub.tlsCaFile)) if Path(str(site.hub.tlsCaFile)).exists() \
        else ssl.create_default_context()
    context.check_hostname = False
    try:
        context.load_cert_chain(str(site.hub.tlsCertFile), str(site.hub.tlsPrivateKeyFile))
    except (OSError, ssl.SSLError):
        pass  # the certificate finding says why
    try:
        with context.wrap_socket(raw, server_hostname=host):
            pass
        findings.append(Finding("cloud", True, f"the cloud answers TLS on {where} with a certificate of our CA"))
    except ssl.SSLCertVerificationError as error:
        findings.append(Finding("cloud", False, f"the server on {where} is not signed by this node's CA", error.verify_message or str(error),
                                "if the cloud's CA changed, `keadm reset` and `keadm join` with a new token; else fix the address"))
    except (ssl.SSLError, OSError) as error:
        findings.append(Finding("cloud", False, f"TLS with the cloud on {where} fails", str(error),
                                "check the cloud's address and that it is CloudCore that listens there"))
    finally:
        raw.close()
    findings.extend(ca_and_clock(site))
    return findings


def ca_and_clock(site: EdgeSite) -> list[Finding]:
    host, port = site.https_address
    url = f"https://{host}:{port}/ca.crt"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # what we compare is the CA itself
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as reply:
            remote = reply.read(64 * 1024)
            date = reply.headers.get("Date")
    except (urllib.error.URLError, OSError) as error:
        return [Finding("cloud CA", True, f"the cloud's CA could not be fetched from {url}, so not compared", str(error))]
    findings = []
    try:
        local = Path(str(site.hub.tlsCaFile)).read_bytes()
    except OSError as error:
        return [Finding("cloud CA", False, f"this node's CA file {site.hub.tlsCaFile} cannot be read", str(error),
                        "`keadm reset` and `keadm join` again")]
    local_der = _der(local)
    if hashlib.sha256(local_der).hexdigest() != hashlib.sha256(_der(remote)).hexdigest():
        findings.append(Finding("cloud CA", False, "the cloud's CA changed: it is not the one this node joined with",
                                f"local {hashlib.sha256(local_der).hexdigest()[:16]}, cloud {hashlib.sha256(_der(remote)).hexdigest()[:16]}",
                                "`keadm reset`, then `keadm join` with a token from the cloud (`keadm gettoken`)"))
    else:
        findings.append(Finding("cloud CA", True, "the cloud's CA is the one this node joined with"))
    if date:
        try:
            remote_time = email.utils.parsedate_to_datetime(date)
            skew = (datetime.datetime.now(datetime.timezone.utc) - remote_time).total_seconds()
        except (TypeError, ValueError):
            skew = 0.0
        if abs(skew) > CLOCK_SKEW_SECONDS:
            findings.append(Finding("clock", False, f"this clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the cloud's",
                                    f"cloud Date: {date}", "sync the clock (chrony or systemd-timesyncd): certificates and tokens depend on it"))
        else:
            findings.append(Finding("clock", True, f"the clock agrees with the cloud's within {abs(skew):.0f} s"))
    return findings


def _der(data: bytes) -> bytes:
    if b"-----BEGIN" in data:
        body = b"".join(line for line in data.splitlines() if line and not line.startswith(b"-----"))
        return base64.b64decode(body)
    return data


# ------------------------------------------------------------------------------ the machine
def runtime(site: EdgeSite) -> list[Finding]:
    if not bool(site.config.modules.edged.enable):
        return []
    from cores.edge.cri.client import CriClient, socket_path

    endpoint = site.runtime_endpoint
    path = socket_path(endpoint)
    if not Path(path).exists():
        return [Finding("runtime", False, f"the runtime socket {path} does not exist", f"containerRuntimeEndpoint: {endpoint}",
                        "start containerd (systemctl start containerd), or fix modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint")]

    async def ask() -> tuple[str, Mapping[str, str]]:
        async with CriClient(endpoint, timeout=5) as cri:
            version = await cri.version()
            state = await cri.status(verbose=True)
        return f"{version.runtime_name} {version.runtime_version}", state.info

    try:
        name, info = asyncio.run(asyncio.wait_for(ask(), 10))
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return [Finding("runtime", False, f"the runtime on {path} does not answer", str(error) or type(error).__name__,
                        "restart containerd (systemctl restart containerd) and read its log (journalctl -u containerd)")]
    findings = [Finding("runtime", True, f"{name} answers on {path}")]
    runtime_driver = "systemd" if re.search(r'"SystemdCgroup":\s*true', info.get("config", "")) else "cgroupfs"
    if "config" in info and runtime_driver != site.cgroup_driver:
        findings.append(Finding("cgroup driver", False, f"EdgeCore uses {site.cgroup_driver} but the runtime uses {runtime_driver}",
                                "containerd's runc option SystemdCgroup", f"set modules.edged.tailoredKubeletConfig.cgroupDriver: {runtime_driver}"))
    return findings


def storage(site: EdgeSite) -> list[Finding]:
    findings = []
    directory = site.data_dir if site.data_dir.exists() else Path("/")
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    percent = 100.0 * stats.f_bavail / max(stats.f_blocks, 1)
    if free < DISK_FREE_MIN or percent < DISK_FREE_PERCENT:
        findings.append(Finding("disk", False, f"the disk of {directory} is full ({free // (1024 * 1024)} MB, {percent:.1f}% free)",
                                "", "free space there: old images (crictl rmi --prune), logs under /var/log/kubeedge"))
    else:
        findings.append(Finding("disk", True, f"{directory} has {free // (1024 * 1024)} MB free"))
    database = site.database
    if not database.exists():
        findings.append(Finding("database", False, f"the edge database {database} does not exist", "",
                                "start EdgeCore once (it creates it); if it was deleted, the node rebuilds from the cloud"))
        return findings
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2) as db:
            result = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            return [*findings, Finding("database", False, f"the edge database {database} is locked", str(error),
                                       "another process holds it: stop it (lsof " + str(database) + ")")]
        result = (str(error),)
    except sqlite3.DatabaseError as error:
        result = (str(error),)
    if result and result[0] == "ok":
        findings.append(Finding("database", True, f"the edge database {database} is intact"))
    else:
        findings.append(Finding("database", False, f"the edge database {database} is corrupt", str(result[0] if result else ""),
                                "stop EdgeCore, move the file away and start it again: the cloud sends everything anew"))
    return findings


def mqtt(site: EdgeSite) -> list[Finding]:
    bus = site.config.modules.eventBus
    if not bool(bus.enable) or int(bus.mqttMode) == 0:
        return []
    url = str(bus.mqttServerExternal)
    host, _, port = url.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except (OSError, ValueError) as error:
        return [Finding("mqtt", False, f"the MQTT broker {url} is unreachable", str(error),
                        "start the broker (systemctl start mosquitto), or use the embedded one: modules.eventBus.mqttMode: 0")]
    return [Finding("mqtt", True, f"the MQTT broker {url} accepts connections")]


# ------------------------------------------------------------------------------ pods
def stored_pod(site: EdgeSite, namespace: str, name: str) -> dict[str, Any] | None:
    from cores.install.debug.get import read

    found = read(site.database, "pod", namespace=namespace, name=name)
    return found[0] if found else None


def pod(site: EdgeSite, namespace: str, name: str) -> list[Finding]:
    from cores.install.debug.get import read

    obj = stored_pod(site, namespace, name)
    if obj is None:
        return [Finding("pod", False, f"pod {namespace}/{name} is not in the edge database", "",
                        "it was never bound to this node, or the cloud has not sent it yet: `kubectl get pod -o wide` in the cloud")]
    status = obj.get("status") or {}
    findings = []
    for kind in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(kind) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or ""
            if reason in STUCK_REASONS:
                findings.append(Finding("pod", False, f"container {container.get('name')} is stuck in {reason}",
                                        str(waiting.get("message") or "")[:500], STUCK_REASONS[reason]))
    local = {(o.get("metadata") or {}).get("name") for o in read(site.database, "configmap", namespace=namespace)}
    for volume in (obj.get("spec") or {}).get("volumes") or []:
        wanted = (volume.get("configMap") or {}).get("name")
        if wanted and wanted not in local and not (volume.get("configMap") or {}).get("optional"):
            findings.append(Finding("pod", False, f"ConfigMap {namespace}/{wanted} of volume {volume.get('name')} is not on this node",
                                    "", f"create it in the cloud (kubectl create configmap {wanted} -n {namespace}); the edge gets it once connected"))
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if not findings:
        ready = conditions.get("Ready") == "True"
        findings.append(Finding("pod", ready, f"pod {namespace}/{name} is {status.get('phase') or 'Unknown'}"
                                f"{', Ready' if ready else ', not Ready'}",
                                ", ".join(f"{k}={v}" for k, v in conditions.items()),
                                "" if ready else "see its events in the cloud (kubectl describe pod)"))
    return findings


NODE_CHECKS: tuple[Check, ...] = (edgecore_process, node_name_taken, certificate, token, storage, runtime, mqtt, cloud)


def node(site: EdgeSite, progress: Callable[[str], None] = lambda _: None) -> list[Finding]:
    findings: list[Finding] = []
    for check in NODE_CHECKS:
        progress(check.__name__)
        findings.extend(check(site))
    return findings
