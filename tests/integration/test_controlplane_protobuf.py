"""The embedded control plane speaks protobuf to Go clients on every verb, over real HTTPS.

client-go sends ``Content-Type: application/vnd.kubernetes.protobuf`` and ``Accept:
application/vnd.kubernetes.protobuf, */*`` for built-in kinds: create, update (upstream cloudcore
PUTs its CA Secret so at every start), delete with a protobuf ``DeleteOptions``, status updates,
list, get and watch. Custom resources are answered in JSON whatever is asked first, as
kube-apiserver does. The upstream cloudcore itself is run against us in test_upstream_peers.py.
"""

from __future__ import annotations

import http.client
import json
import ssl
import struct
import time
import uuid
from typing import Any

from cores.common import kubeproto as protobuf
from cores.controlplane import protoencode
from cores.controlplane.launcher import ControlPlane
from tests.timeouts import scaled

PROTOBUF = protobuf.CONTENT_TYPE
CLIENT_GO_ACCEPT = f"{PROTOBUF}, */*"


def call(plane: ControlPlane, method: str, path: str, body: bytes | None = None, content_type: str = PROTOBUF,
         accept: str = CLIENT_GO_ACCEPT) -> tuple[int, str, bytes]:
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    pki = plane.ca_file.parent
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    connection = http.client.HTTPSConnection("127.0.0.1", int(plane.config.server.port), context=context, timeout=scaled(10))
    try:
        headers = {"Accept": accept, "User-Agent": "client-go-pattern/test"}
        if body is not None:
            headers["Content-Type"] = content_type
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.getheader("Content-Type", ""), reply.read()
    finally:
        connection.close()


def read(content_type: str, data: bytes) -> Any:
    return protobuf.decode(data) if content_type.startswith(PROTOBUF) else json.loads(data)


def secret(name: str, value: str, resource_version: str = "") -> dict[str, Any]:
    metadata = {"name": name, "namespace": "default", **({"resourceVersion": resource_version} if resource_version else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque",
            "data": {"cadata": value}}


def test_create_update_get_list_delete_all_in_protobuf(controlplane: ControlPlane) -> None:
    name = f"casecret-{uuid.uuid4().hex[:6]}"
    base = "/api/v1/namespaces/default/secrets"
    status, content_type, data = call(controlplane, "POST", base, protoencode.encode(secret(name, "AAEC")))
    assert status == 201 and content_type.startswith(PROTOBUF), data[:200]
    created = protobuf.decode(data)
    assert created["data"] == {"cadata": "AAEC"} and created["metadata"]["uid"]

    # cloudcore's PUT of an existing Secret, as at every start (the case that made it exit)
    updated_body = protoencode.encode(secret(name, "AwQF", created["metadata"]["resourceVersion"]))
    status, content_type, data = call(controlplane, "PUT", f"{base}/{name}", updated_body)
    assert status == 200, data[:300]
    assert protobuf.decode(data)["data"] == {"cadata": "AwQF"}

    status, content_type, data = call(controlplane, "GET", f"{base}/{name}")
    assert (status, content_type) == (200, PROTOBUF)
    as_json = json.loads(call(controlplane, "GET", f"{base}/{name}", accept="application/json")[2])
    assert protobuf.decode(data)["metadata"] == as_json["metadata"]

    status, content_type, data = call(controlplane, "GET", base)
    listed = protobuf.decode(data)
    assert status == 200 and listed["kind"] == "SecretList" and name in {i["metadata"]["name"] for i in listed["items"]}

    options = protoencode.encode({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                  "preconditions": {"uid": created["metadata"]["uid"]}})
    status, content_type, data = call(controlplane, "DELETE", f"{base}/{name}", options)
    assert status == 200, data[:300]
    status, content_type, data = call(controlplane, "GET", f"{base}/{name}")
    assert status == 404 and read(content_type, data)["reason"] == "NotFound"  # errors are protobuf Status too


def test_delete_options_in_protobuf_are_honoured(controlplane: ControlPlane) -> None:
    name = f"pb-{uuid.uuid4().hex[:6]}"
    base = "/api/v1/namespaces/default/configmaps"
    created = read(*call(controlplane, "POST", base, protoencode.encode(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}))[1:])
    wrong = protoencode.encode({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "not-its-uid"}})
    status, content_type, data = call(controlplane, "DELETE", f"{base}/{name}", wrong)
    assert status == 409 and "precondition" in read(content_type, data)["message"].lower()
    right = protoencode.encode({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": created["metadata"]["uid"]}})
    assert call(controlplane, "DELETE", f"{base}/{name}", right)[0] == 200


def test_status_update_in_protobuf(controlplane: ControlPlane) -> None:
    name = f"pb-node-{uuid.uuid4().hex[:6]}"
    node = read(*call(controlplane, "POST", "/api/v1/nodes", protoencode.encode(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))[1:])
    node["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                      "lastHeartbeatTime": "2026-12-03T10:00:00Z", "lastTransitionTime": "2026-12-03T10:00:00Z"}],
                      "capacity": {"cpu": "2", "memory": "4Gi"}}
    status, content_type, data = call(controlplane, "PUT", f"/api/v1/nodes/{name}/status", protoencode.encode(node))
    assert status == 200, data[:300]
    stored = json.loads(call(controlplane, "GET", f"/api/v1/nodes/{name}", accept="application/json")[2])
    assert stored["status"]["capacity"] == {"cpu": "2", "memory": "4Gi"}
    assert stored["status"]["conditions"][0]["reason"] == "KubeletReady"


def test_watch_in_protobuf_frames(controlplane: ControlPlane) -> None:
    name = f"pb-watch-{uuid.uuid4().hex[:6]}"
    base = "/api/v1/namespaces/default/configmaps"
    _, _, data = call(controlplane, "GET", base)
    revision = protobuf.decode(data)["metadata"]["resourceVersion"]
    call(controlplane, "POST", base, protoencode.encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}))
    status, content_type, data = call(controlplane, "GET", f"{base}?watch=true&resourceVersion={revision}&timeoutSeconds=1"
                                                           f"&fieldSelector=metadata.name%3D{name}")
    assert status == 200 and content_type == f"{PROTOBUF};stream=watch"
    events, at = [], 0
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        fields = dict(protobuf.fields(data[at + 4:at + 4 + length]))
        raw = dict(protobuf.fields(fields[2]))[1]
        events.append((fields[1].decode(), protobuf.decode(raw)))
        at += 4 + length
    assert [(kind, obj["metadata"]["name"]) for kind, obj in events] == [("ADDED", name)]


def test_custom_resources_and_tables_stay_json(controlplane: ControlPlane) -> None:
    plural = f"pbwidgets{uuid.uuid4().hex[:6]}"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"{plural}.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": plural, "singular": plural[:-1], "kind": "PbWidget", "listKind": "PbWidgetList"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    status, content_type, data = call(controlplane, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                      protoencode.encode(crd))
    assert status == 201 and content_type == PROTOBUF, data[:300]  # a built-in kind: protobuf both ways
    assert protobuf.decode(data)["spec"]["names"]["plural"] == plural
    widget = json.dumps({"apiVersion": "example.com/v1", "kind": "PbWidget", "metadata": {"name": "w"}}).encode()
    deadline = time.monotonic() + scaled(10)
    while (status := call(controlplane, "POST", f"/apis/example.com/v1/namespaces/default/{plural}", widget,
                          content_type="application/json")[0]) == 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 201
    status, content_type, data = call(controlplane, "GET", f"/apis/example.com/v1/namespaces/default/{plural}/w")
    assert status == 200 and content_type.startswith("application/json") and json.loads(data)["kind"] == "PbWidget"
    status, content_type, _ = call(controlplane, "GET", "/api/v1/nodes",
                                   accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert status == 200 and content_type.startswith("application/json")
    call(controlplane, "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.example.com")
