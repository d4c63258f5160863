"""What the iptables manager wants in the nat table, from the tunnel-port record: pure, no I/O.

Upstream's ``internal`` mode (``cloud/pkg/cloudstream/iptables/iptables.go``): a chain
``TUNNEL-PORT`` in table ``nat``, jumped to from ``OUTPUT`` (an API server on this host) and
``PREROUTING`` (one elsewhere routing through it), with one rule per CloudCore in the record::

    -A TUNNEL-PORT -p tcp -j DNAT --dport <tunnel port> --to <CloudCore IP>:<streamPort>

The destination address is not matched: the API server dials ``<node IP>:<tunnel port>`` for
whichever edge node, and every such connection belongs to that CloudCore's stream server, which
routes it by the pod's node. The arguments are upstream's, so a rule either manager made is one
the other recognises (``iptables -C``) and removes.
"""

from __future__ import annotations

import ipaddress

from cores.cloud.tunnelport import TunnelPortRecord

TABLE = "nat"
CHAIN = "TUNNEL-PORT"
JUMP_COMMENT = "kubeedge tunnel port"
JUMP_FROM = ("OUTPUT", "PREROUTING")

Rule = tuple[str, ...]


def jump_rule() -> Rule:
    """The rule, in ``OUTPUT`` and ``PREROUTING``, that sends every packet through ``TUNNEL-PORT``."""
    return ("-m", "comment", "--comment", JUMP_COMMENT, "-j", CHAIN)


def dnat_rule(tunnel_port: int, ip: str, stream_port: int) -> Rule:
    return ("-p", "tcp", "-j", "DNAT", "--dport", str(tunnel_port), "--to", f"{ip}:{stream_port}")


def dnat_rules(record: TunnelPortRecord, stream_port: int) -> set[Rule]:
    """One DNAT rule per IPv4 CloudCore in the record (iptables is IPv4 only, as upstream's manager)."""
    return {dnat_rule(port, ip, stream_port) for ip, port in record.ip_tunnel_port.items()
            if ipaddress.ip_address(ip).version == 4}


def describe(rule: Rule) -> str:
    """``tcp dport 10351 -> 10.0.0.5:10003`` for a DNAT rule, for the log."""
    fields = dict(zip(rule[::2], rule[1::2], strict=False))
    return f"tcp dport {fields.get('--dport')} -> {fields.get('--to')}"
