"""The tunnel-port record every CloudCore shares: which port the API server dials to reach a CloudCore's stream server.

On a real cluster kube-apiserver reaches an edge pod's logs and exec at
``<node InternalIP>:<kubeletEndpoint port>``. That address is never dialled as such: the iptables
manager DNATs every TCP connection to that port onto ``<CloudCore IP>:<streamPort>``. Several
CloudCores each need their own port, so, as upstream's ``NegotiateTunnelPort``
(``cloud/cmd/cloudcore/app/server.go``), each claims one in a record kept on a ConfigMap::

    ConfigMap kubeedge/tunnelport
      annotations["tunnelportrecord.kubeedge.io"] =
        {"ipTunnelPort": {"<CloudCore IP>": 10351, ...}, "port": {"10351": true, ...}}

A CloudCore keeps the port recorded for its IP, or claims the first free port above the base
(``commonConfig.tunnelPort``, 10350 by default, so the first CloudCore gets 10351, as upstream's,
and Edged's read-only 10350 on the edge is never caught by the DNAT). The record is upstream's
JSON exactly, so our CloudCores and upstream's share it.

Unlike upstream, a claim is an update with the ConfigMap's resourceVersion, retried on a conflict,
so two CloudCores starting together never take the same port. Entries that are not an IP address
and a port are garbage: they are left out when the record is read, and so when it is written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
from typing import Any

from cores.cloud.kube import Kube, KubeError

log = logging.getLogger("kubeedge.cloudstream")

NAMESPACE = "kubeedge"
CONFIGMAP = "tunnelport"
ANNOTATION = "tunnelportrecord.kubeedge.io"
PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
MAX_RECORD_BYTES = 256 * 1024  # an annotation's whole budget: far more CloudCores than anyone runs


class RecordError(ValueError):
    """The record is not upstream's JSON."""


@dataclasses.dataclass(frozen=True)
class TunnelPortRecord:
    ip_tunnel_port: dict[str, int]  # CloudCore IP -> the port DNATed to its stream server
    ports: frozenset[int]           # every port claimed

    def encode(self) -> str:
        """Upstream's JSON: Go marshals ``map[int]bool`` keys as strings, and sorts them."""
        return json.dumps({"ipTunnelPort": dict(sorted(self.ip_tunnel_port.items())),
                           "port": {str(port): True for port in sorted(self.ports)}}, separators=(",", ":"))


EMPTY = TunnelPortRecord({}, frozenset())


def valid_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def valid_ip(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(ipaddress.ip_address(value)) == value
    except ValueError:
        return False


def parse(text: str) -> TunnelPortRecord:
    """The record in ``text``; entries that are not an IP address and a port are left out."""
    if len(text) > MAX_RECORD_BYTES:
        raise RecordError(f"the tunnel-port record is {len(text)} bytes, more than {MAX_RECORD_BYTES}")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise RecordError(f"the tunnel-port record is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise RecordError("the tunnel-port record is not a JSON object")
    by_ip = document.get("ipTunnelPort")
    claimed = document.get("port")
    by_ip = {} if by_ip is None else by_ip  # Go writes a nil map as null
    claimed = {} if claimed is None else claimed
    if not isinstance(by_ip, dict) or not isinstance(claimed, dict):
        raise RecordError("the tunnel-port record's ipTunnelPort and port must be objects")
    ip_tunnel_port = {ip: port for ip, port in by_ip.items() if valid_ip(ip) and valid_port(port)}
    ports = {int(key) for key, taken in claimed.items()  # isdigit alone takes "²", which int() refuses
             if taken is True and key.isascii() and key.isdigit() and len(key) <= 5 and valid_port(int(key))}
    return TunnelPortRecord(ip_tunnel_port, frozenset(ports | set(ip_tunnel_port.values())))


def record_of(config_map: dict[str, Any] | None) -> TunnelPortRecord:
    if config_map is None:
        return EMPTY
    text = ((config_map.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    return parse(text) if isinstance(text, str) else EMPTY  # upstream panics here; nothing is claimed yet


def claim(record: TunnelPortRecord, ip: str, base: int) -> tuple[TunnelPortRecord, int]:
    """``ip``'s port: the one recorded, or the first unclaimed port above ``base`` (then added)."""
    if ip in record.ip_tunnel_port:
        return record, record.ip_tunnel_port[ip]
    port = base + 1
    while port in record.ports:
        port += 1
    if not valid_port(port):
        raise RecordError(f"no free tunnel port above {base}")
    return TunnelPortRecord({**record.ip_tunnel_port, ip: port}, record.ports | {port}), port


async def negotiate(kube: Kube, ip: str, base: int, attempts: int = 10) -> int:
    """Claim ``ip``'s tunnel port in the shared record (made when missing) and return it."""
    if not valid_ip(ip):
        raise RecordError(f"the tunnel port is recorded by IP address; {ip!r} is not one "
                          "(set modules.cloudHub.advertiseAddress)")
    for _ in range(attempts):
        try:
            current: dict[str, Any] | None = await kube.request("GET", f"{PATH}/{CONFIGMAP}")
        except KubeError as error:
            if error.code != 404:
                raise
            current = None
        existing = record_of(current)
        record, port = claim(existing, ip, base)
        if record is existing:
            return port  # claimed before (a restart keeps its port)
        try:
            if current is None:
                await kube.ensure_namespace(NAMESPACE)
                await kube.request("POST", PATH, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                    "name": CONFIGMAP, "namespace": NAMESPACE, "annotations": {ANNOTATION: record.encode()}}})
            else:
                updated = dict(current)
                metadata = dict(updated.get("metadata") or {})
                metadata["annotations"] = {**(metadata.get("annotations") or {}), ANNOTATION: record.encode()}
                updated["metadata"] = metadata  # keeps resourceVersion: a concurrent claim is a 409
                await kube.request("PUT", f"{PATH}/{CONFIGMAP}", updated)
        except KubeError as error:
            if error.code == 409:
                await asyncio.sleep(0.2)
                continue  # another CloudCore wrote first: read its claim and try again
            raise
        log.info("tunnel port %d claimed for %s in %s/%s", port, ip, NAMESPACE, CONFIGMAP)
        return port
    raise RecordError(f"could not claim a tunnel port in {NAMESPACE}/{CONFIGMAP} after {attempts} attempts")
