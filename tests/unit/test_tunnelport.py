"""The tunnel-port record (upstream's JSON, shared with upstream's cloudcore) and the DNAT rules made from it."""

from __future__ import annotations

import json

import pytest

from cores.cloud import tunnelport
from cores.cloud.iptablesmanager import rules

# What upstream's NegotiateTunnelPort writes for two cloudcores (Go: map[int]bool keys are strings).
UPSTREAM = '{"ipTunnelPort":{"10.0.0.5":10351,"10.0.0.6":10352},"port":{"10351":true,"10352":true}}'


def test_upstream_record_reads_and_writes_back_the_same() -> None:
    record = tunnelport.parse(UPSTREAM)
    assert record.ip_tunnel_port == {"10.0.0.5": 10351, "10.0.0.6": 10352}
    assert record.ports == {10351, 10352}
    assert record.encode() == UPSTREAM


def test_the_first_claim_is_10351_and_the_next_free_one_after_it() -> None:
    record, port = tunnelport.claim(tunnelport.EMPTY, "10.0.0.5", 10350)
    assert port == 10351  # as upstream: 10350 stays Edged's read-only port, never DNATed
    record, port = tunnelport.claim(record, "10.0.0.6", 10350)
    assert port == 10352
    again, port = tunnelport.claim(record, "10.0.0.5", 10350)
    assert (again, port) == (record, 10351)  # a restart keeps its port
    gap = tunnelport.parse('{"ipTunnelPort":{"10.0.0.9":10352},"port":{"10351":true,"10352":true}}')
    assert tunnelport.claim(gap, "10.0.0.5", 10350)[1] == 10353  # a claimed port is never reused


@pytest.mark.parametrize("text", ["", "[]", "{", '{"ipTunnelPort": []}', '{"port": "x"}', "[" * 100_000,
                                  "{" + " " * (tunnelport.MAX_RECORD_BYTES + 1) + "}"])
def test_a_record_that_is_not_upstreams_json_is_a_record_error(text: str) -> None:
    with pytest.raises(tunnelport.RecordError):
        tunnelport.parse(text)


def test_garbage_entries_are_left_out_never_put_in_a_rule() -> None:
    record = tunnelport.parse(json.dumps({
        "ipTunnelPort": {"10.0.0.5": 10351, "10.0.0.5 -j ACCEPT": 10352, "10.0.0.7": "10353", "10.0.0.8": 70000,
                         "010.0.0.9": 10354, "fd00::1": 10355, "10.0.0.10": True},
        "port": {"10351": True, "abc": True, "-1": True, "10360": False, "²": True, "9" * 5000: True}}))
    assert record.ip_tunnel_port == {"10.0.0.5": 10351, "fd00::1": 10355}
    assert record.ports == {10351, 10355}
    assert rules.dnat_rules(record, 10003) == {("-p", "tcp", "-j", "DNAT", "--dport", "10351", "--to", "10.0.0.5:10003")}


def test_a_config_map_without_the_annotation_holds_no_claim() -> None:
    assert tunnelport.record_of({"metadata": {"name": "tunnelport"}}) == tunnelport.EMPTY
    assert tunnelport.record_of(None) == tunnelport.EMPTY


def test_rules_are_upstreams_arguments() -> None:
    assert rules.jump_rule() == ("-m", "comment", "--comment", "kubeedge tunnel port", "-j", "TUNNEL-PORT")
    rule = rules.dnat_rule(10351, "10.0.0.5", 10003)
    assert rules.describe(rule) == "tcp dport 10351 -> 10.0.0.5:10003"
