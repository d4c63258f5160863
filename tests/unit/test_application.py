"""Upstream's Application on the link: Go's JSON (base64 []byte, StatusError), keys, discovery paths."""

from __future__ import annotations

import json

import pytest

from cores.link import application
from cores.link.application import Application, ApplicationError


def test_wire_form_is_gos() -> None:
    app = Application("/core/v1/pods/default/null", "list", "edge-1", option=b'{"labelSelector":"a=b"}')
    wire = app.wire()
    assert set(wire) == {"ID", "Key", "Verb", "Nodename", "Option", "ReqBody", "Subresource", "RespBody", "Status",
                         "Reason", "Error", "Timestamp"}
    assert wire["Option"] == "eyJsYWJlbFNlbGVjdG9yIjoiYT1iIn0=" and wire["ReqBody"] is None and wire["RespBody"] is None
    assert wire["Error"] == {"ErrStatus": {"metadata": {}}} and wire["Timestamp"] == "0001-01-01T00:00:00Z"
    assert len(wire["ID"]) == 64 and wire["Status"] == "PreApplying"
    back = Application.from_wire(json.dumps(wire))
    assert back.option_json() == {"labelSelector": "a=b"} and back.error == {} and back.id == wire["ID"]


def test_a_rejection_carries_the_status() -> None:
    wire = Application("/core/v1/configmaps/default/x", "get", "n").wire()
    wire.update(Status="Rejected", Error={"ErrStatus": {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403}})
    assert Application.from_wire(wire).error["code"] == 403


@pytest.mark.parametrize("content", ["", "[]", '{"Key": 3}', '{"Option": "***"}', b"\xff", 7, '{"Key": "/' + "a" * 2000 + '"}'])
def test_what_is_not_an_application_is_an_error(content: object) -> None:
    with pytest.raises(ApplicationError):
        Application.from_wire(content)


def test_keys_as_upstream() -> None:
    assert application.build_key("", "v1", "pods", "default", "") == "/core/v1/pods/default/null"
    assert application.build_key("apps", "v1", "deployments", None, "x") == "/apps/v1/deployments/null/x"
    assert application.build_key("", "v1", "namespaces", "ns", "ns") == "/core/v1/namespaces/null/ns"
    target = application.parse_key("/core/v1/pods/default/web")
    assert (target.group, target.resource, target.namespace, target.name) == ("", "pods", "default", "web")
    assert target.api_path("status") == "/api/v1/namespaces/default/pods/web/status"
    assert application.parse_key("/apps/v1/deployments/null/null").api_path() == "/apis/apps/v1/deployments"
    assert application.parse_key("/core/v1/nodes").api_path() == "/api/v1/nodes"
    for bad in ("core/v1/pods", "/core/v1/pods/../x", "/core/v1/pods/a?b=c/x", "/core/v1//x", "/a/b/c/d/e/f/g"):
        with pytest.raises(ApplicationError):
            application.parse_key(bad)


def test_discovery_paths() -> None:
    assert application.is_discovery("/version", "get") and application.is_discovery("/apis/apps", "get")
    assert application.is_discovery("/api/v1", "get") and application.is_discovery("/apis/apps/v1", "get")
    assert not application.is_discovery("/version", "create") and not application.is_discovery("/core/v1/pods/default/x", "get")
