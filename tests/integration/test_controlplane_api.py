"""The embedded control plane through real HTTPS, read and written by the official kubernetes client."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from cores.controlplane.launcher import ControlPlane
from tests.integration.conftest import VIEWER_TOKEN
from tests.captures import UPSTREAM


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def raw_request(plane: ControlPlane, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    request = urllib.request.Request(plane.url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def admin_request(plane: ControlPlane, method: str, path: str) -> dict[str, Any]:
    """A request with the admin's client certificate, for endpoints the client library has no method for."""
    pki = plane.ca_file.parent
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    with urllib.request.urlopen(urllib.request.Request(plane.url + path, method=method), context=context, timeout=10) as reply:
        return dict(json.loads(reply.read()))


def test_system_namespaces_exist(api_client: Any) -> None:
    names = {ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease", "kubeedge"} <= names
    default = client.CoreV1Api(api_client).read_namespace("default")
    assert default.status.phase == "Active" and default.metadata.labels["kubernetes.io/metadata.name"] == "default"


def test_anonymous_gets_401_and_non_admin_403(controlplane: ControlPlane) -> None:
    code, status = raw_request(controlplane, "/api/v1/namespaces")
    assert code == 401 and status["reason"] == "Unauthorized"
    code, status = raw_request(controlplane, "/api/v1/namespaces/default/pods", token=VIEWER_TOKEN)
    assert code == 403 and status["reason"] == "Forbidden"
    assert status["message"] == 'pods is forbidden: User "viewer" cannot list resource "pods" in API group "" in the namespace "default"'
    assert raw_request(controlplane, "/api/v1/namespaces", token="wrong")[0] == 401
    assert raw_request(controlplane, "/version")[0] == 200  # public, as on a real cluster


def test_discovery(controlplane: ControlPlane, api_client: Any) -> None:
    resources = client.CoreV1Api(api_client).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert by_name["pods"].namespaced and "po" in by_name["pods"].short_names
    assert "pods/status" in by_name and "pods/binding" in by_name and not by_name["nodes"].namespaced
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"coordination.k8s.io", "apiextensions.k8s.io"} <= groups
    assert client.VersionApi(api_client).get_code().major == "1"


def test_configmap_crud_and_conflict(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    name = unique("cm")
    created = core.create_namespaced_config_map("default", {"metadata": {"name": name}, "data": {"a": "1"}})
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"
    stale = created
    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map(name, "default", created)
    assert int(updated.metadata.resource_version) > int(stale.metadata.resource_version)
    stale.data = {"a": "3"}
    stale.metadata.resource_version = str(int(updated.metadata.resource_version) - 1)
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map(name, "default", stale)
    assert conflict.value.status == 409 and json.loads(conflict.value.body)["reason"] == "Conflict"
    core.delete_namespaced_config_map(name, "default")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map(name, "default")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == f'configmaps "{name}" not found'


def test_create_in_missing_namespace_is_404(api_client: Any) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api_client).create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    assert caught.value.status == 404 and json.loads(caught.value.body)["message"] == 'namespaces "nope" not found'


def test_invalid_name_is_422_with_causes(api_client: Any) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api_client).create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    status = json.loads(caught.value.body)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "metadata.name"


def test_label_and_field_selectors(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    tag = unique("sel")
    for index, (tier, node) in enumerate([("web", "edge-a"), ("db", "edge-a"), ("web", "edge-b")]):
        core.create_namespaced_pod("default", {
            "metadata": {"name": f"{tag}-{index}", "labels": {"app": tag, "tier": tier}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        })
    web = core.list_namespaced_pod("default", label_selector=f"app={tag},tier=web").items
    assert sorted(p.metadata.name for p in web) == [f"{tag}-0", f"{tag}-2"]
    not_web = core.list_namespaced_pod("default", label_selector=f"app={tag},tier notin (web)").items
    assert [p.metadata.name for p in not_web] == [f"{tag}-1"]
    on_a = core.list_pod_for_all_namespaces(label_selector=f"app={tag}", field_selector="spec.nodeName=edge-a").items
    assert sorted(p.metadata.name for p in on_a) == [f"{tag}-0", f"{tag}-1"]
    assert core.list_namespaced_pod("default", label_selector=f"app={tag},!tier").items == []
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert caught.value.status == 400


def test_limit_and_continue(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    tag = unique("page")
    for index in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"{tag}-{index}", "labels": {"page": tag}}})
    seen, token = [], None
    while True:
        page = core.list_namespaced_config_map("default", label_selector=f"page={tag}", limit=2, _continue=token)
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"{tag}-{i}" for i in range(5)]


def test_list_then_watch_resumes_from_resource_version(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    tag = unique("w")
    core.create_namespaced_config_map("default", {"metadata": {"name": f"{tag}-before", "labels": {"w": tag}}})
    listed = core.list_namespaced_config_map("default", label_selector=f"w={tag}")
    since = listed.metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": f"{tag}-after", "labels": {"w": tag}}})
    core.patch_namespaced_config_map(f"{tag}-after", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map(f"{tag}-before", "default")
    events = []
    for event in watch.Watch().stream(core.list_namespaced_config_map, "default", label_selector=f"w={tag}",
                                      resource_version=since, timeout_seconds=2):
        events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", f"{tag}-after"), ("MODIFIED", f"{tag}-after"), ("DELETED", f"{tag}-before")]


def test_live_watch_sees_changes_and_label_transitions(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    tag = unique("live")
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def watcher() -> None:
        w = watch.Watch()
        started.set()
        for event in w.stream(core.list_namespaced_config_map, "default", label_selector=f"live={tag}", timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                w.stop()

    thread = threading.Thread(target=watcher)
    thread.start()
    started.wait()
    time.sleep(0.5)
    core.create_namespaced_config_map("default", {"metadata": {"name": tag, "labels": {"live": tag}}})
    core.patch_namespaced_config_map(tag, "default", {"data": {"a": "b"}})
    core.patch_namespaced_config_map(tag, "default", {"metadata": {"labels": {"live": "other"}}})  # leaves the selector
    thread.join(10)
    assert seen == [("ADDED", tag), ("MODIFIED", tag), ("DELETED", tag)]


def test_watch_from_compacted_revision_is_410(controlplane: ControlPlane, api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    first = core.create_namespaced_config_map("default", {"metadata": {"name": unique("old")}})
    core.create_namespaced_config_map("default", {"metadata": {"name": unique("new")}})
    compacted = admin_request(controlplane, "POST", "/admin/compact?keepRevisions=0")
    assert compacted["compactedRevision"] == compacted["revision"] >= int(first.metadata.resource_version)
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=first.metadata.resource_version, timeout_seconds=2):
            pass
    assert caught.value.status == 410


def _pod_from_capture() -> tuple[dict[str, Any], list[str]]:
    """The pod upstream's cloud pushed to the edge and the kubelet status patches that followed."""
    pod, patches = None, []
    for line in (UPSTREAM / "pod.jsonl").read_text().splitlines():
        frame = json.loads(line)["frame"]
        route = frame["route"]
        if route.get("operation") == "insert" and route.get("resource") == "default/pod/cap-pod" and pod is None:
            pod = frame["content"]
        if route.get("operation") == "patch" and route.get("resource") == "default/podpatch/cap-pod":
            patches.append(frame["content"])
    assert pod is not None and patches
    return pod, patches


def test_kubelet_status_patches_from_upstream(api_client: Any) -> None:
    captured, patches = _pod_from_capture()
    core = client.CoreV1Api(api_client)
    name = unique("cap-pod")
    spec = captured["spec"]
    created = core.create_namespaced_pod("default", {"metadata": {"name": name, "labels": captured["metadata"].get("labels", {})},
                                                     "spec": spec})
    for text in patches:
        document = json.loads(text)
        document["metadata"]["uid"] = created.metadata.uid
        result = core.patch_namespaced_pod_status(name, "default", document, _content_type="application/strategic-merge-patch+json")
    final = json.loads(patches[-1])["status"]
    assert result.status.phase == final.get("phase", result.status.phase)
    conditions = {c.type: c.status for c in result.status.conditions}
    for condition in final.get("conditions", []):
        if "status" in condition:
            assert conditions[condition["type"]] == condition["status"]
    assert result.spec.containers[0].image == spec["containers"][0]["image"]  # spec untouched by /status


def test_binding_and_graceful_pod_delete(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    name = unique("bind")
    core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    core.create_namespaced_binding("default", {"metadata": {"name": name}, "target": {"kind": "Node", "name": "edge-x"}},
                                   _preload_content=False)
    pod = core.read_namespaced_pod(name, "default")
    assert pod.spec.node_name == "edge-x"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    core.delete_namespaced_pod(name, "default")
    marked = core.read_namespaced_pod(name, "default")  # bound: waits for its kubelet
    assert marked.metadata.deletion_timestamp is not None and marked.metadata.deletion_grace_period_seconds == 30
    with pytest.raises(ApiException) as wrong_uid:
        core.delete_namespaced_pod(name, "default", body={"gracePeriodSeconds": 0, "preconditions": {"uid": "not-it"}})
    assert wrong_uid.value.status == 409
    core.delete_namespaced_pod(name, "default", body={"gracePeriodSeconds": 0, "preconditions": {"uid": marked.metadata.uid}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod(name, "default")
    assert gone.value.status == 404


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.kubeedge.io"},
    "spec": {
        "group": "test.kubeedge.io",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                      "subresources": {"status": {}}}],
    },
}


def test_crd_and_custom_objects(api_client: Any) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(CRD)
    crd = extensions.read_custom_resource_definition("widgets.test.kubeedge.io")
    assert {c.type for c in crd.status.conditions} >= {"Established", "NamesAccepted"}
    custom = client.CustomObjectsApi(api_client)
    args = ("test.kubeedge.io", "v1", "default", "widgets")
    body = {"apiVersion": "test.kubeedge.io/v1", "kind": "Widget", "metadata": {"name": "w1", "labels": {"c": "red"}},
            "spec": {"size": 3}, "status": {"ignored": True}}
    created = custom.create_namespaced_custom_object(*args, body)
    assert created["metadata"]["generation"] == 1 and "status" not in created
    assert custom.get_namespaced_custom_object(*args, "w1")["spec"] == {"size": 3}
    assert [o["metadata"]["name"] for o in custom.list_namespaced_custom_object(*args, label_selector="c=red")["items"]] == ["w1"]
    patched = custom.patch_namespaced_custom_object(*args, "w1", {"spec": {"size": 4}})
    assert patched["spec"]["size"] == 4 and patched["metadata"]["generation"] == 2
    status = custom.patch_namespaced_custom_object_status(*args, "w1", {"status": {"ready": True}})
    assert status["status"] == {"ready": True} and status["metadata"]["generation"] == 2
    events = []
    for event in watch.Watch().stream(custom.list_namespaced_custom_object, *args, resource_version=created["metadata"]["resourceVersion"],
                                      timeout_seconds=1):
        events.append(event["type"])
    assert events == ["MODIFIED", "MODIFIED"]
    custom.delete_namespaced_custom_object(*args, "w1")
    custom.create_namespaced_custom_object(*args, {**body, "metadata": {"name": "w2"}})
    extensions.delete_custom_resource_definition("widgets.test.kubeedge.io")
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object(*args)
    assert caught.value.status == 404  # the resource went with its definition
    extensions.create_custom_resource_definition(CRD)
    assert custom.list_namespaced_custom_object(*args)["items"] == []  # and so did its objects
    extensions.delete_custom_resource_definition("widgets.test.kubeedge.io")


def test_generate_name_finalizers_and_deletecollection(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    tag = unique("fin")
    made = core.create_namespaced_config_map("default", {"metadata": {"generateName": f"{tag}-", "labels": {"f": tag},
                                                                        "finalizers": ["example.com/hold"]}})
    name = made.metadata.name
    assert name.startswith(f"{tag}-") and len(name) == len(tag) + 6
    core.delete_namespaced_config_map(name, "default")
    held = core.read_namespaced_config_map(name, "default")  # a finalizer keeps it, marked
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map(name, "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map(name, "default")
    assert gone.value.status == 404
    for index in range(3):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"{tag}-{index}", "labels": {"f": tag}}})
    core.delete_collection_namespaced_config_map("default", label_selector=f"f={tag}")
    assert core.list_namespaced_config_map("default", label_selector=f"f={tag}").items == []


def test_owner_references_are_garbage_collected(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": unique("owner")}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}
    kept = core.create_namespaced_config_map("default", {"metadata": {"name": unique("orphan"), "ownerReferences": [reference]}})
    core.delete_namespaced_config_map(owner.metadata.name, "default", propagation_policy="Orphan")
    assert not core.read_namespaced_config_map(kept.metadata.name, "default").metadata.owner_references
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": unique("owner")}})
    reference["uid"], reference["name"] = owner.metadata.uid, owner.metadata.name
    dependent = core.create_namespaced_config_map("default", {"metadata": {"name": unique("dep"), "ownerReferences": [reference]}})
    core.delete_namespaced_config_map(owner.metadata.name, "default")  # Background by default
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map(dependent.metadata.name, "default")
    assert gone.value.status == 404


def test_namespace_deletion_removes_its_contents(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    name = unique("ns")
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "inside"}})
    core.delete_namespace(name)
    assert core.read_namespace(name).status.phase == "Terminating"
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map(name, {"metadata": {"name": "late"}})
    assert refused.value.status == 403
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except ApiException as error:
            assert error.status == 404
            break
        time.sleep(0.2)
    else:
        pytest.fail("namespace was not removed")
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("inside", name)


def test_oversized_body_is_413(api_client: Any) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api_client).create_namespaced_config_map(
            "default", {"metadata": {"name": unique("big")}, "data": {"x": "y" * (4 * 1024 * 1024)}})
    assert caught.value.status == 413


def test_watch_bookmarks_and_timeout(controlplane: ControlPlane) -> None:
    pki = controlplane.ca_file.parent
    context = ssl.create_default_context(cafile=str(controlplane.ca_file))
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    start = time.monotonic()
    url = controlplane.url + "/api/v1/namespaces/kube-public/secrets?watch=true&allowWatchBookmarks=true&timeoutSeconds=3"
    with urllib.request.urlopen(url, context=context, timeout=10) as reply:
        assert reply.headers["Content-Type"] == "application/json"
        lines = reply.read().splitlines()
    assert 2.9 <= time.monotonic() - start < 6
    events = [json.loads(line) for line in lines]
    # no secret in kube-public (its one configmap is kube-root-ca.crt): only the bookmark shortly before the timeout
    assert [e["type"] for e in events] == ["BOOKMARK"]
    assert events[0]["object"]["kind"] == "Secret" and int(events[0]["object"]["metadata"]["resourceVersion"]) > 0


def test_the_kubelet_client_certificate_is_nobody_on_the_api(controlplane: ControlPlane) -> None:
    """What the control plane presents to CloudCore's stream server is not the admin: 403 on the API."""
    pki = controlplane.ca_file.parent
    context = ssl.create_default_context(cafile=str(controlplane.ca_file))
    context.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(controlplane.url + "/api/v1/namespaces/kubeedge/secrets", context=context, timeout=10)
    assert refused.value.code == 403
    assert 'User "kube-apiserver-kubelet-client"' in json.loads(refused.value.read())["message"]
