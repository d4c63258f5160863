"""The Router's pure parts (rules, ingress paths, matching) and ServiceBus's request checks."""

from __future__ import annotations

import base64

import pytest

from cores.beehive import Message
from cores.cloud.router import _http_response, _servicebus_call
from cores.cloud.router.rules import (PathError, RuleError, compile_rule, endpoint_of, join_target, match_rest,
                                      parse_ingress)
from cores.edge.servicebus import answer_of, parse_request, parse_target
from cores.link import routing


def ep(name: str, kind: str, **properties: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"ruleEndpointType": kind, "properties": properties}}


ENDPOINTS = {(e.namespace, e.name): e for e in map(endpoint_of, [
    ep("rest", "rest"), ep("bus", "eventbus"), ep("sb", "servicebus", service_port="8080"),
    ep("sb-noport", "servicebus"), ep("odd", "carrier-pigeon")])}


def rule(source: str, source_resource: dict, target: str, target_resource: dict, name: str = "r") -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": "u1"},
            "spec": {"source": source, "sourceResource": source_resource, "target": target, "targetResource": target_resource}}


def test_the_four_flows_compile_with_upstreams_keys() -> None:
    route = compile_rule(rule("rest", {"path": "/a/{id}/"}, "bus", {"topic": "t"}), ENDPOINTS)
    assert (route.path, route.target_topic) == (("a", "{id}"), "t")
    route = compile_rule(rule("rest", {"path": "a"}, "sb", {"path": "/p/"}), ENDPOINTS)
    assert (route.target_path, route.service_port) == ("/p", 8080)
    route = compile_rule(rule("bus", {"topic": "test", "node_name": "edge-1"}, "rest", {"resource": "http://x/echo"}), ENDPOINTS)
    assert (route.node, route.topic, route.resource) == ("edge-1", "default/test", "http://x/echo")  # upstream subscribes <ns>/<topic>
    route = compile_rule(rule("sb", {"target_url": "http://x/y", "node_name": "edge-1"}, "rest", {"resource": "http://x/y"}), ENDPOINTS)
    assert route.target_url == "http://x/y"


@pytest.mark.parametrize("spec, reason", [
    (("rest", {"path": "/a"}, "missing", {"topic": "t"}), "target ruleendpoint default/missing does not exist"),
    (("rest", {"route": "/a"}, "bus", {"topic": "t"}), "sourceResource lacks path"),
    (("bus", {"topic": "t", "node_name": "e"}, "bus", {"topic": "t"}), "cannot feed"),
    (("rest", {"path": "/a"}, "sb-noport", {"path": "/p"}), "service_port"),
    (("rest", {"path": "/../etc"}, "bus", {"topic": "t"}), "dot segment"),
    (("rest", {"path": "/a"}, "bus", {"topic": "t/#"}), "wildcards"),
    (("bus", {"topic": "t", "node_name": "../x"}, "rest", {"resource": "http://x"}), "node name"),
    (("rest", {"path": "/a"}, "odd", {"topic": "t"}), "ruleEndpointType"),
    (("sb", {"target_url": "file:///etc/passwd", "node_name": "e"}, "rest", {"resource": "http://x"}), "http(s) URL"),
])
def test_rules_that_cannot_work_say_why(spec: tuple, reason: str) -> None:
    with pytest.raises(RuleError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        compile_rule(rule(*spec), ENDPOINTS)


def test_ingress_paths() -> None:
    path = parse_ingress("/edge-1/default/a/b?x=1")
    assert (path.node, path.namespace, path.segments, path.query) == ("edge-1", "default", ("a", "b"), "x=1")
    for raw, status in [("http://evil/edge-1/default/a", 400), ("//evil/x", 400), ("/edge-1/default/a/../../x", 400),
                        ("/edge-1/default/%2e%2e/x", 400), ("/edge-1/default/a%2fb", 400), ("/edge-1/default/a\\b", 400),
                        ("/Edge_1/default/a", 404), ("/edge-1/default", 404), ("/edge-1/default/a b", 400),
                        ("/edge-1/default/a//b", 400)]:
        with pytest.raises(PathError) as refused:
            parse_ingress(raw)
        assert refused.value.status == status, raw


def test_matching_prefers_literal_then_longest_and_keeps_the_remainder() -> None:
    routes = [compile_rule(rule("rest", {"path": p}, "bus", {"topic": "t"}, name=n), ENDPOINTS)
              for n, p in [("short", "/a"), ("long", "/a/b"), ("param", "/a/{x}"), ("other", "/ab")]]
    found = match_rest(routes, parse_ingress("/n/default/a/b/c?q=1"))
    assert found is not None and found[0].rule == "long" and found[1] == "/c?q=1"
    found = match_rest(routes, parse_ingress("/n/default/a/z"))
    assert found is not None and found[0].rule == "param" and found[1] == ""
    found = match_rest(routes, parse_ingress("/n/default/abc"))
    assert found is None  # segment-wise: /a does not match /abc (upstream's unanchored regex did)
    assert match_rest(routes, parse_ingress("/n/other-ns/a")) is None
    assert join_target("/p/", "/c?q=1") == "/p/c?q=1" and join_target("t", "") == "t"


def test_servicebus_targets_never_leave_loopback() -> None:
    assert parse_target("8080:/url?a=1") == (8080, "/url?a=1")
    for resource in ["8080", "x:/a", "70000:/a", "8080:http://evil/", "8080://evil/x", "8080:/a/../b",
                     "8080:/a b", "8080:/a#f", "8080:/%2e%2e/x", "8080:/a\r\nHost: evil"]:
        with pytest.raises(ValueError):
            parse_target(resource)


def test_servicebus_requests_drop_redirecting_headers_and_bound_bodies() -> None:
    body = base64.b64encode(b"hello").decode()
    method, headers, raw = parse_request({"method": "post", "body": body, "header": {
        "Host": ["evil"], "X-Forwarded-Host": ["evil"], "User": ["me"], "Transfer-Encoding": ["chunked"]}}, "POST", 100)
    assert (method, headers, raw) == ("POST", [("User", "me")], b"hello")
    with pytest.raises(OverflowError):
        parse_request({"method": "POST", "body": base64.b64encode(b"x" * 101).decode()}, "POST", 100)
    for bad in [{"method": "CONNECT"}, {"method": "GET", "header": {"A": ["x\r\nB: y"]}}, {"method": "GET", "body": "!!"},
                {"method": "GET", "header": {"bad name": ["x"]}}, "not json"]:
        with pytest.raises(ValueError):
            parse_request(bad, "GET", 100)


def test_answers_both_ways() -> None:
    status, headers, body = _http_response({"header": {"A": ["1"]}, "status_code": 418, "body": base64.b64encode(b"tea").decode()})
    assert (status, headers, body) == (418, {"A": ["1"]}, b"tea")
    assert _http_response({"status_code": 42})[0] == 502 and _http_response("junk")[0] == 502
    # upstream's edge puts the app's request on the link as a Go []byte (base64 text)
    wrapped = base64.b64encode(b'{"method":"PUT","targetURL":"http://x","payload":"ping"}')
    assert _servicebus_call(wrapped) == ("PUT", b"ping")
    assert _servicebus_call(b"plain text") == ("POST", b"plain text")
    upload = Message.new(source="servicebus", group="user", operation="upload", resource="http://x", content="b")
    assert answer_of(upload.response("Hello World")) == (200, "Hello World")
    assert answer_of(upload.response({"code": 504, "msg": "late"}, operation="response_error")) == (504, "late")


def test_user_traffic_goes_to_the_router_with_the_node_prefix() -> None:
    answer = Message.new(source="servicebus", group="user", operation="upload", resource="", content={},
                         parent_msg_id="p1")
    decision = routing.from_edge("edge-1", answer)
    assert (decision.group, decision.message.route.resource) == ("router", "node/edge-1/")
    upstream_error = Message.new(source="servicebus", group="user", operation="", resource="", parent_msg_id="p2")
    assert routing.from_edge("edge-1", upstream_error).group == "router"
    upload = Message.new(source="bus", group="user", operation="upload", resource="default/test", content="x")
    assert routing.from_edge("edge-1", upload).message.route.resource == "node/edge-1/default/test"
    reply = Message.new(source="servicebus", group="user", operation="response", resource="http://x", parent_msg_id="p3")
    assert routing.from_cloud(reply).group == "servicebus"


def test_servicebus_https_needs_a_server_certificate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import ssl

    from certs import x509 as certs
    from cores.edge.servicebus import _tls_context

    ca_cert, ca_key = certs.create_ca()
    files = {}
    for kind in ("server", "client"):
        key = certs.generate_key()
        cert = (certs.create_server_cert(ca_cert, ca_key, key, ip_addresses=["127.0.0.1"], dns_names=[]) if kind == "server"
                else certs.create_client_cert(ca_cert, ca_key, key, common_name="system:node:edge-1", organizations=["system:nodes"]))
        (tmp_path / f"{kind}.crt").write_bytes(certs.cert_to_pem(cert))
        (tmp_path / f"{kind}.key").write_bytes(certs.key_to_pem(key))
        files[kind] = (str(tmp_path / f"{kind}.crt"), str(tmp_path / f"{kind}.key"))
    assert _tls_context("", "") is None
    assert isinstance(_tls_context(*files["server"]), ssl.SSLContext)
    with pytest.raises(ValueError, match="serverAuth"):
        _tls_context(*files["client"])  # the node's client certificate cannot serve HTTPS, as upstream checks
    with pytest.raises(ValueError, match="together"):
        _tls_context(files["server"][0], "")
