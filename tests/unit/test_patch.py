"""Patch application: kubelet/edged strategic merge patches replayed against what kube-apiserver answered,
every strategic directive, RFC 6902 operations and errors, the RFC 7386 appendix, and input immutability."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest

from cores.controlplane.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
    supports_strategic,
)
from tests.captures import UPSTREAM

CAPTURES = ["pod.jsonl", "pod-cni-failed.jsonl", "join.jsonl", "capture1-full.jsonl", "capture2-full.jsonl"]


# --- replaying real patches -------------------------------------------------------------------


def _frames(name: str) -> Iterator[tuple[str, str, str, str, Any]]:
    """(direction, operation, type, object name, content) for each frame with an object resource."""
    for line in (UPSTREAM / name).read_text().splitlines():
        frame = json.loads(line).get("frame")
        if not isinstance(frame, dict):
            continue
        route = frame.get("route", {})
        parts = route.get("resource", "").split("/")
        if len(parts) == 3:
            yield json.loads(line)["dir"], route.get("operation"), parts[1], parts[2], frame.get("content")


def _without_nulls(value: Any) -> Any:
    # The real server re-encodes through Go structs, which writes zero times as null
    # ("lastProbeTime": null) even after the patch deleted them; null and absent mean the same.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _replay(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Apply each edge podpatch/nodepatch to the server's object as last seen; pair it with the reply."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    ours: dict[tuple[str, str], dict[str, Any]] = {}
    pairs = []
    for direction, operation, kind, obj, content in _frames(name):
        if direction == "cloud->edge" and kind in ("pod", "node") and operation in ("insert", "update"):
            latest[(kind, obj)] = content
        elif direction == "cloud->edge" and kind == "node" and operation == "response" and content.get("Object"):
            latest[(kind, obj)] = content["Object"]
        elif direction == "edge->cloud" and operation == "patch" and kind in ("podpatch", "nodepatch"):
            base = kind.removesuffix("patch")
            patch = json.loads(content)  # the content is a JSON string holding the patch
            ours[(base, obj)] = strategic_merge_patch(latest[(base, obj)], patch, base.capitalize())
        elif direction == "cloud->edge" and operation == "response" and kind in ("podpatch", "nodepatch"):
            base = kind.removesuffix("patch")
            assert content["Err"] is None
            pairs.append((ours.pop((base, obj)), content["Object"]))
            latest[(base, obj)] = content["Object"]
    return pairs


@pytest.mark.parametrize("name", CAPTURES)
def test_replayed_patches_match_kube_apiserver(name: str) -> None:
    pairs = _replay(name)
    assert pairs, name
    for ours, theirs in pairs:
        assert _without_nulls(ours["status"]) == _without_nulls(theirs["status"])
        assert ours.get("spec") == theirs.get("spec")
        assert ours["metadata"]["uid"] == theirs["metadata"]["uid"]


def test_replay_covers_set_element_order_and_null_deletes() -> None:
    pairs = _replay("pod.jsonl")
    running = pairs[1][1]["status"]
    assert [c["type"] for c in running["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled",
    ]
    ready = next(c for c in pairs[1][0]["status"]["conditions"] if c["type"] == "Ready")
    assert "reason" not in ready and "message" not in ready  # "reason": null in the patch deleted it
    assert pairs[1][0]["status"]["qosClass"] == "BestEffort"  # untouched server-only field kept


# --- strategic merge patch --------------------------------------------------------------------


def _pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def _names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [item[key] for item in items]


def test_maps_merge_and_null_deletes() -> None:
    original = {"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}}
    patch = {"metadata": {"labels": {"a": None, "c": "3", "absent": None}, "annotations": None}}
    result = strategic_merge_patch(original, patch, "ConfigMap")
    assert result == {"metadata": {"labels": {"b": "2", "c": "3"}}}


def test_conditions_merge_by_type_keeping_others() -> None:
    original = {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "NotYet"},
        {"type": "MemoryPressure", "status": "False"},
    ]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": None}]}}
    result = strategic_merge_patch(original, patch, "Node")
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"},
    ]


def test_ports_merge_key_depends_on_path() -> None:
    pod: dict[str, Any] = _pod(containers=[{"name": "c", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 81}]}])
    patch: dict[str, Any] = {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}
    ports = strategic_merge_patch(pod, patch, "Pod")["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 81}]

    service: dict[str, Any] = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
    patch = {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}
    assert strategic_merge_patch(service, patch, "Service")["spec"]["ports"] == [
        {"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443},
    ]
    with pytest.raises(PatchError, match="spec.ports"):
        strategic_merge_patch(service, {"spec": {"ports": [{"containerPort": 443}]}}, "Service")


def test_pod_spec_lists_under_workload_template() -> None:
    deployment = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "side", "image": "s1"},
    ]}}}}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "v2", "env": [{"name": "B", "value": "3"}]}]}}}}
    for kind in ("Deployment", "ReplicaSet"):
        containers = strategic_merge_patch(deployment, patch, kind)["spec"]["template"]["spec"]["containers"]
        assert containers[0]["image"] == "v2" and containers[1] == {"name": "side", "image": "s1"}
        assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]


def test_volume_mounts_merge_by_mount_path_and_volumes_by_name() -> None:
    pod = _pod(
        containers=[{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/a"}]}],
        volumes=[{"name": "v", "configMap": {"name": "cm"}}],
    )
    patch = {"spec": {
        "containers": [{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/a", "readOnly": True}]}],
        "volumes": [{"name": "w", "emptyDir": {}}],
    }}
    spec = strategic_merge_patch(pod, patch, "Pod")["spec"]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "v", "mountPath": "/a", "readOnly": True}]
    assert sorted(_names(spec["volumes"])) == ["v", "w"]


def test_lists_without_strategy_are_replaced() -> None:
    node: dict[str, Any] = {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]}}
    patch: dict[str, Any] = {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}
    assert strategic_merge_patch(node, patch, "Node")["spec"]["taints"] == [{"key": "b", "effect": "NoExecute"}]

    pod: dict[str, Any] = {"status": {"containerStatuses": [{"name": "a", "ready": True}, {"name": "b", "ready": True}]}}
    patch = {"status": {"containerStatuses": [{"name": "b", "ready": False}]}}
    assert strategic_merge_patch(pod, patch, "Pod")["status"]["containerStatuses"] == [{"name": "b", "ready": False}]

    pod = _pod(containers=[{"name": "c", "args": ["a", "b"]}])
    patch = {"spec": {"containers": [{"name": "c", "args": ["z"]}]}}
    assert strategic_merge_patch(pod, patch, "Pod")["spec"]["containers"][0]["args"] == ["z"]


def test_primitive_merge_lists_are_unioned() -> None:
    original = {"metadata": {"finalizers": ["a", "b"]}}
    result = strategic_merge_patch(original, {"metadata": {"finalizers": ["b", "c"]}}, "Namespace")
    assert result["metadata"]["finalizers"] == ["a", "b", "c"]
    # apimachinery's mergeSortedSlice puts patch items unknown to the server before the server-only ones.
    result = strategic_merge_patch(original, {"metadata": {"finalizers": ["c"]}}, "Secret")
    assert result["metadata"]["finalizers"] == ["c", "a", "b"]
    node = {"spec": {"podCIDRs": ["10.0.0.0/24"]}}
    assert strategic_merge_patch(node, {"spec": {"podCIDRs": ["10.0.0.0/24"]}}, "Node") == node


def test_owner_references_merge_by_uid() -> None:
    original = {"metadata": {"ownerReferences": [{"uid": "1", "kind": "Node"}, {"uid": "2", "kind": "Pod"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "controller": True}]}}
    refs = strategic_merge_patch(original, patch, "Lease")["metadata"]["ownerReferences"]
    assert refs == [{"uid": "1", "kind": "Node"}, {"uid": "2", "kind": "Pod", "controller": True}]


def test_patch_delete_removes_an_element() -> None:
    pod = _pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    patch = {"spec": {"containers": [{"$patch": "delete", "name": "b"}]}}
    assert _names(strategic_merge_patch(pod, patch, "Pod")["spec"]["containers"]) == ["a", "c"]
    with pytest.raises(PatchError, match="merge key 'name'"):
        strategic_merge_patch(pod, {"spec": {"containers": [{"$patch": "delete"}]}}, "Pod")


def test_patch_replace_in_list_and_map() -> None:
    pod: dict[str, Any] = _pod(containers=[{"name": "a"}, {"name": "b"}])
    patch: dict[str, Any] = {"spec": {"containers": [{"name": "z", "image": "i"}, {"$patch": "replace"}]}}
    assert strategic_merge_patch(pod, patch, "Pod")["spec"]["containers"] == [{"name": "z", "image": "i"}]
    patch = {"spec": {"containers": [{"$patch": "replace"}]}}
    assert strategic_merge_patch(pod, patch, "Pod")["spec"]["containers"] == []

    original: dict[str, Any] = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    patch = {"metadata": {"labels": {"$patch": "replace", "c": "3"}}}
    assert strategic_merge_patch(original, patch, "ConfigMap")["metadata"]["labels"] == {"c": "3"}
    patch = {"metadata": {"labels": {"$patch": "delete"}}}
    assert strategic_merge_patch(original, patch, "ConfigMap")["metadata"]["labels"] == {}
    patch = {"metadata": {"labels": {"$patch": "merge", "c": "3"}}}
    assert strategic_merge_patch(original, patch, "ConfigMap")["metadata"]["labels"] == {"a": "1", "b": "2", "c": "3"}


def test_patch_order_without_set_element_order() -> None:
    # apimachinery's "preserve the order from the patch in a merging list 2".
    pod = _pod(containers=[{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}])
    patch = {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}
    assert strategic_merge_patch(pod, patch, "Pod")["spec"]["containers"] == [
        {"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"},
    ]


def test_set_element_order() -> None:
    original: dict[str, Any] = {"status": {"conditions": [{"type": "A", "status": "1"}, {"type": "B"}, {"type": "C"}]}}
    patch: dict[str, Any] = {"status": {
        "$setElementOrder/conditions": [{"type": "C"}, {"type": "A"}],
        "conditions": [{"type": "A", "status": "2"}],
    }}
    result = strategic_merge_patch(original, patch, "Pod")
    # Items not named stay (apimachinery keeps server-only items), interleaved by server order.
    assert result["status"] == {"conditions": [{"type": "B"}, {"type": "C"}, {"type": "A", "status": "2"}]}

    # The directive alone reorders; an item it names that does not exist is ignored.
    original = {"spec": {"containers": [{"name": "1"}, {"name": "3"}]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}]}}
    assert strategic_merge_patch(original, patch, "Pod") == {"spec": {"containers": [{"name": "3"}, {"name": "1"}]}}

    # Primitive list, and a list the object does not have yet.
    original = {"metadata": {"finalizers": ["a", "b"]}}
    patch = {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}
    assert strategic_merge_patch(original, patch, "Pod")["metadata"]["finalizers"] == ["b", "c", "a"]
    patch = {"status": {"$setElementOrder/podIPs": [{"ip": "2"}, {"ip": "1"}], "podIPs": [{"ip": "2"}, {"ip": "1"}]}}
    assert strategic_merge_patch({}, patch, "Pod") == {"status": {"podIPs": [{"ip": "2"}, {"ip": "1"}]}}


def test_set_element_order_errors() -> None:
    original = {"spec": {"containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                      "containers": [{"name": "3"}, {"name": "1"}]}}
    with pytest.raises(PatchError, match="spec.containers: .*does not match"):
        strategic_merge_patch(original, patch, "Pod")
    with pytest.raises(PatchError, match="must be a list"):
        strategic_merge_patch(original, {"spec": {"$setElementOrder/containers": {}}}, "Pod")
    with pytest.raises(PatchError, match="spec.containers: object value must be a list"):
        strategic_merge_patch({"spec": {"containers": {}}}, {"spec": {"$setElementOrder/containers": []}}, "Pod")
    # Nothing to order when neither the object nor the patch has the list.
    assert strategic_merge_patch({}, {"spec": {"$setElementOrder/volumes": [{"name": "v"}]}}, "Pod") == {"spec": {}}
    with pytest.raises(PatchError, match="merge key 'name'"):
        strategic_merge_patch(original, {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}, "Pod")


def test_retain_keys() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge_patch(original, patch, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    bad = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}
    with pytest.raises(PatchError, match="spec.strategy: field 'rollingUpdate'"):
        strategic_merge_patch(original, bad, "Deployment")
    with pytest.raises(PatchError, match="retainKeys must be a list"):
        strategic_merge_patch(original, {"spec": {"strategy": {"$retainKeys": "type"}}}, "Deployment")


def test_delete_from_primitive_list() -> None:
    original = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"], "finalizers": ["d"]}}
    assert strategic_merge_patch(original, patch, "Pod")["metadata"]["finalizers"] == ["d", "a", "c"]
    patch = {"metadata": {"$deleteFromPrimitiveList/absent": ["b"]}}
    assert strategic_merge_patch(original, patch, "Pod") == original
    with pytest.raises(PatchError, match="must be a list"):
        strategic_merge_patch(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, "Pod")


def test_unknown_directives_are_rejected() -> None:
    pod = _pod(containers=[{"name": "a"}])
    with pytest.raises(PatchError, match=r"spec: unknown directive '\$foo'"):
        strategic_merge_patch(pod, {"spec": {"$foo": 1}}, "Pod")
    with pytest.raises(PatchError, match="unknown \\$patch directive 'bogus'"):
        strategic_merge_patch(pod, {"spec": {"$patch": "bogus"}}, "Pod")
    with pytest.raises(PatchError, match="spec.containers: unknown \\$patch directive"):
        strategic_merge_patch(pod, {"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}}, "Pod")


def test_type_changes_and_new_values() -> None:
    original = {"data": {"a": "1"}, "spec": {"containers": [{"name": "a"}]}}
    patch = {"data": "text", "binaryData": {"k": "djE=", "gone": None}}
    assert strategic_merge_patch(original, patch, "ConfigMap") == {
        "data": "text", "binaryData": {"k": "djE="}, "spec": {"containers": [{"name": "a"}]},
    }
    with pytest.raises(PatchError, match="spec.containers: list items must be objects"):
        strategic_merge_patch(original, {"spec": {"containers": ["a"]}}, "Pod")
    with pytest.raises(PatchError, match="metadata.finalizers: expected a list of primitive values"):
        strategic_merge_patch({}, {"metadata": {"finalizers": [{"a": 1}]}}, "Pod")


def test_unknown_kind() -> None:
    assert supports_strategic("Pod") and supports_strategic("Lease")
    assert not supports_strategic("Device")
    with pytest.raises(PatchError, match="not supported for kind 'Device'"):
        strategic_merge_patch({}, {}, "Device")
    with pytest.raises(PatchError, match="JSON objects"):
        strategic_merge_patch({}, [], "Pod")  # type: ignore[arg-type]


def test_strategic_inputs_not_mutated_and_result_not_shared() -> None:
    pod = _pod(containers=[{"name": "a", "env": [{"name": "X"}]}, {"name": "b"}])
    pod["metadata"]["finalizers"] = ["f"]
    patch = {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["f"], "labels": {"$patch": "replace", "a": "b"}},
        "spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                 "containers": [{"name": "a", "env": [{"name": "Y"}]}, {"$patch": "delete", "name": "zz"}]},
    }
    pod_before, patch_before = copy.deepcopy(pod), copy.deepcopy(patch)
    result = strategic_merge_patch(pod, patch, "Pod")
    assert pod == pod_before and patch == patch_before
    assert _names(result["spec"]["containers"]) == ["b", "a"]
    result["spec"]["containers"][0]["name"] = "changed"
    result["metadata"]["name"] = "changed"
    assert pod == pod_before


# --- JSON patch (RFC 6902) --------------------------------------------------------------------


def test_json_patch_operations() -> None:
    document = {"a": {"b": [1, 2, 3]}, "c/d": "slash", "e~f": "tilde"}
    operations = [
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 4},
        {"op": "remove", "path": "/a/b/0"},
        {"op": "replace", "path": "/c~1d", "value": "new"},
        {"op": "test", "path": "/e~0f", "value": "tilde"},
        {"op": "copy", "from": "/a/b", "path": "/copied"},
        {"op": "move", "from": "/e~0f", "path": "/moved"},
        {"op": "add", "path": "/a/x", "value": {"y": None}},
    ]
    assert json_patch(document, operations) == {
        "a": {"b": [9, 2, 3, 4], "x": {"y": None}}, "c/d": "new", "copied": [9, 2, 3, 4], "moved": "tilde",
    }
    assert json_patch(document, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    assert json_patch(document, [{"op": "add", "path": "", "value": {"z": 1}}]) == {"z": 1}
    assert json_patch(document, []) == document


def test_json_patch_rfc_appendix_examples() -> None:
    # RFC 6902 A.6, A.7, A.14, A.16
    assert json_patch({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
                      [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]) == \
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}
    assert json_patch({"foo": ["all", "grass", "cows", "eat"]},
                      [{"op": "move", "from": "/foo/1", "path": "/foo/3"}]) == {"foo": ["all", "cows", "eat", "grass"]}
    assert json_patch({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}]) == {"/": 9, "~1": 10}
    assert json_patch({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]) == \
        {"foo": ["bar", ["abc", "def"]]}


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ({"op": "add"}, "must be a list"),
        (["add"], "operation 0: must be an object"),
        ([{"op": "add", "value": 1}], "operation 0: needs string fields"),
        ([{"op": "frob", "path": "/a"}], r"operation 0 \(frob '/a'\): unknown op"),
        ([{"op": "add", "path": "a", "value": 1}], "must be empty or start with '/'"),
        ([{"op": "add", "path": "/a~2", "value": 1}], "bad '~' escape"),
        ([{"op": "add", "path": "/a/b"}], "missing 'value'"),
        ([{"op": "test", "path": "/a/0", "value": 1}, {"op": "remove", "path": "/a/5"}],
         r"operation 1 \(remove '/a/5'\): array index 5 out of range"),
        ([{"op": "add", "path": "/a/4", "value": 1}], "array index 4 out of range"),
        ([{"op": "add", "path": "/a/01", "value": 1}], "'01' is not an array index"),
        ([{"op": "replace", "path": "/a/-", "value": 1}], "'-' is not an array index"),
        ([{"op": "remove", "path": "/nope"}], r"operation 0 \(remove '/nope'\): path not found"),
        ([{"op": "replace", "path": "/nope", "value": 1}], "path not found"),
        ([{"op": "add", "path": "/nope/x", "value": 1}], "path not found"),
        ([{"op": "add", "path": "/s/x", "value": 1}], "parent is not an object or array"),
        ([{"op": "remove", "path": "/s/x"}], "path not found"),
        ([{"op": "test", "path": "/s/x", "value": 1}], "path not found"),
        ([{"op": "remove", "path": ""}], "cannot remove the whole document"),
        ([{"op": "test", "path": "/a/0", "value": True}], r"operation 0 \(test '/a/0'\): test failed"),
        ([{"op": "test", "path": "/a", "value": [1, 2]}], "test failed"),
        ([{"op": "move", "path": "/b"}], "missing string field 'from'"),
        ([{"op": "move", "from": "/m", "path": "/m/n"}], "into one of its own children"),
        ([{"op": "copy", "from": "/zz", "path": "/b"}], "path not found"),
    ],
)
def test_json_patch_errors(operations: Any, message: str) -> None:
    document = {"a": [1, 2, 3], "s": "str", "m": {}}
    with pytest.raises(PatchError, match=message):
        json_patch(document, operations)


def test_json_patch_test_op_uses_json_equality() -> None:
    document = {"a": [1, {"b": 2.0}], "t": True}
    assert json_patch(document, [{"op": "test", "path": "/a", "value": [1.0, {"b": 2}]}]) == document
    assert json_patch(document, [{"op": "test", "path": "/t", "value": True}]) == document
    with pytest.raises(PatchError, match="test failed"):
        json_patch(document, [{"op": "test", "path": "/a/1", "value": {"b": 2, "c": 3}}])


def test_json_patch_does_not_mutate() -> None:
    document = {"a": {"b": [1]}}
    value = {"v": [1]}
    operations = [{"op": "add", "path": "/a/c", "value": value}, {"op": "add", "path": "/a/b/-", "value": 2}]
    before, operations_before = copy.deepcopy(document), copy.deepcopy(operations)
    result = json_patch(document, operations)
    result["a"]["c"]["v"].append(2)
    assert document == before and operations == operations_before and value == {"v": [1]}


# --- JSON merge patch (RFC 7386) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [  # RFC 7386 Appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc_appendix(original: Any, patch: Any, expected: Any) -> None:
    before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    assert merge_patch(original, patch) == expected
    assert original == before and patch == patch_before


def test_merge_patch_result_not_shared() -> None:
    original = {"keep": {"x": [1]}}
    patch = {"new": {"y": [2]}}
    result = merge_patch(original, patch)
    result["keep"]["x"].append(9)
    result["new"]["y"].append(9)
    assert original == {"keep": {"x": [1]}} and patch == {"new": {"y": [2]}}
