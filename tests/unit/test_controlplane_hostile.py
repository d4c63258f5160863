"""Hostile bodies against the control plane's decoders, in process (the Api over a real SQLite store).

Which upstream vulnerability class each test covers:

* CVE-2022-31076 (a missing field or a ``null`` crashed a decoder of HTTP bodies):
  :func:`test_cve_2022_31076_every_write_of_every_kind_answers_4xx_never_crashes` mutates every
  field of a full object of each built-in kind (deleted, ``null``, a string, a number, a list, a map)
  and sends it through create, update, merge/JSON/strategic patch and the status subresource: each
  write succeeds or is refused with a 4xx ``ApiError``, and whatever is stored type-checks.
* Status poisoning (issue class 1): :func:`test_status_poisoning_is_refused_after_the_patch_is_applied`,
  with kube-apiserver's decode message.
* Malformed bodies (issue class 6): depth, UTF-8, NaN, huge numbers and resourceVersions
  (:func:`test_json_bodies_refused_before_they_cost_anything`, ``test_resource_version_*``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.common.selectors import selector_fields
from cores.controlplane import errors, jsonbody, openapi, typecheck
from cores.controlplane.api import Api, parse_resource_version
from cores.controlplane.registry import Registry, ResourceType
from cores.controlplane.store import Store

TIME = "2026-01-02T03:04:05Z"
CONDITION = {"type": "Ready", "status": "True", "lastHeartbeatTime": TIME, "lastTransitionTime": TIME,
             "reason": "KubeletReady", "message": "ready"}
CONTAINER = {
    "name": "app", "image": "busybox", "command": ["sh"], "args": ["-c", "sleep 1"],
    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
    "env": [{"name": "A", "value": "b"}],
    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "50m"}},
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
}
POD_SPEC = {
    "containers": [CONTAINER], "volumes": [{"name": "data", "emptyDir": {}}],
    "nodeSelector": {"zone": "a"}, "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
    "terminationGracePeriodSeconds": 5, "restartPolicy": "Always",
}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}
META = {"labels": {"app": "web"}, "annotations": {"note": "x"}}

SAMPLES: dict[str, dict[str, Any]] = {
    "namespaces": {"metadata": {**META}},
    "nodes": {"metadata": {**META}, "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
              "status": {"conditions": [CONDITION], "capacity": {"cpu": "2", "pods": "110"},
                         "allocatable": {"cpu": "2", "pods": "110"},
                         "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                         "nodeInfo": {"kubeletVersion": "v1.23.0", "architecture": "amd64"},
                         "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}},
    "pods": {"metadata": {**META}, "spec": POD_SPEC,
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": TIME}],
                        "podIP": "10.1.0.2", "startTime": TIME,
                        "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "image": "busybox",
                                               "imageID": "", "state": {"running": {"startedAt": TIME}}}]}},
    "configmaps": {"metadata": {**META}, "data": {"k": "v"}, "binaryData": {"b": "aGk="}},
    "secrets": {"metadata": {**META}, "type": "Opaque", "data": {"k": "dg=="}},
    "services": {"metadata": {**META}, "spec": {"selector": {"app": "web"},
                                                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
    "endpoints": {"metadata": {**META}, "subsets": [{"addresses": [{"ip": "10.1.0.2"}], "ports": [{"port": 80}]}]},
    "events": {"metadata": {**META}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "message": "m",
               "count": 1, "firstTimestamp": TIME, "lastTimestamp": TIME, "type": "Normal"},
    "serviceaccounts": {"metadata": {**META}, "secrets": [{"name": "s"}]},
    "leases": {"metadata": {**META}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": TIME}},
    "deployments": {"metadata": {**META}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}},
        "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": TIME}]}},
    "replicasets": {"metadata": {**META}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                                   "template": TEMPLATE}, "status": {"replicas": 1}},
}
POISONS: tuple[Any, ...] = (None, "poison", 7, [], {"a": 1})
GROUPS = {"leases": "coordination.k8s.io", "deployments": "apps", "replicasets": "apps"}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, parents before children."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def mutated(obj: dict[str, Any], path: tuple[Any, ...], replacement: Any, delete: bool = False) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    node: Any = result
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = replacement
    return result


def pointer(path: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(step).replace("~", "~0").replace("/", "~1") for step in path)


@pytest.fixture()
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = Store(tmp_path / "state.db", selector_fields)
    api = Api(store, Registry())
    try:
        await api.create(kind(api, "namespaces"), None, {"metadata": {"name": "default"}})
        yield api
    finally:
        store.close()


def kind(api: Api, plural: str) -> ResourceType:
    found = api.registry.get(GROUPS.get(plural, ""), "v1", plural)
    assert found is not None
    return found


async def outcome(write: Any, resource: ResourceType, what: str) -> str:
    """Run one write: "ok" (and what came back type-checks) or the 4xx reason; anything else fails the test."""
    try:
        result = await write
    except errors.ApiError as error:
        assert 400 <= error.code < 500, f"{what}: {error.code} {error.message}"
        assert error.message, what
        return error.reason
    except Exception as error:  # noqa: BLE001 - the point: report which input crashed which decoder
        pytest.fail(f"{what}: {type(error).__name__}: {error}")
    definition = openapi.schema_name(resource.group, resource.version, resource.kind)
    assert definition is not None
    problem = typecheck.first_problem(definition, result)
    assert problem is None, f"{what}: stored an undecodable object: {problem}"
    return "ok"


@pytest.mark.parametrize("plural", sorted(SAMPLES))
async def test_cve_2022_31076_every_write_of_every_kind_answers_4xx_never_crashes(api: Api, plural: str) -> None:
    """CVE-2022-31076: every decoder of bodies, fed missing fields, nulls and wrong types at every level."""
    resource = kind(api, plural)
    namespace = "default" if resource.namespaced else None
    sample = {**copy.deepcopy(SAMPLES[plural]), "metadata": {**SAMPLES[plural]["metadata"], "name": f"x-{plural}"}}
    assert await outcome(api.create(resource, namespace, copy.deepcopy(sample)), resource, "sample") == "ok"
    stored = json.loads(await api.get(resource, namespace, sample["metadata"]["name"]))
    reasons: set[str] = set()
    for path in paths(sample):
        if path[:2] == ("metadata", "name"):
            continue
        variants = [("deleted", mutated(sample, path, None, delete=True))]
        variants += [(json.dumps(p), mutated(sample, path, p)) for p in POISONS]
        for label, body in variants:
            what = f"{plural} {pointer(path)} {label}"
            reasons.add(await outcome(api.create(resource, namespace, copy.deepcopy(body), dry_run=True), resource,
                                      f"create {what}"))
            update = mutated(body, ("metadata",), {**stored["metadata"], **(body.get("metadata") or {})}) \
                if isinstance(body.get("metadata"), dict) else body
            reasons.add(await outcome(api.update(resource, namespace, stored["metadata"]["name"], update, dry_run=True),
                                      resource, f"update {what}"))
            if resource.has_status and path[0] == "status":
                reasons.add(await outcome(api.update(resource, namespace, stored["metadata"]["name"], update, "status",
                                                     dry_run=True), resource, f"update status {what}"))
        for poison in POISONS:
            what = f"{plural} {pointer(path)} = {json.dumps(poison)}"
            document = _nest(path, poison)
            if document is not None:
                for content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    subresources = ["", "status"] if resource.has_status and path[0] == "status" else [""]
                    for sub in subresources:
                        reasons.add(await outcome(api.patch(resource, namespace, stored["metadata"]["name"],
                                                            json.dumps(document).encode(), content_type, sub, dry_run=True),
                                                  resource, f"{content_type} {sub} {what}"))
            operations = [{"op": "replace", "path": pointer(path), "value": poison}]
            reasons.add(await outcome(api.patch(resource, namespace, stored["metadata"]["name"],
                                                json.dumps(operations).encode(), "application/json-patch+json",
                                                "status" if resource.has_status and path[0] == "status" else "",
                                                dry_run=True), resource, f"json patch {what}"))
    assert "BadRequest" in reasons  # the type checks did refuse something


def _nest(path: tuple[Any, ...], value: Any) -> dict[str, Any] | None:
    """A merge patch putting ``value`` at ``path`` (None when a list index is on the way: lists replace whole)."""
    if any(isinstance(step, int) for step in path):
        return None
    document: Any = value
    for step in reversed(path):
        document = {step: document}
    return dict(document)


async def test_status_poisoning_is_refused_after_the_patch_is_applied(api: Api) -> None:
    nodes, pods = kind(api, "nodes"), kind(api, "pods")
    await api.create(nodes, None, {"metadata": {"name": "n1"}, "status": SAMPLES["nodes"]["status"]})
    await api.create(pods, "default", {"metadata": {"name": "p1"}, "spec": POD_SPEC})
    cases = [
        (nodes, None, "n1", {"status": {"conditions": "poison"}},
         'Node in version "v1" cannot be handled as a Node: json: cannot unmarshal string into Go struct field '
         'NodeStatus.status.conditions of type []v1.NodeCondition'),
        (nodes, None, "n1", {"status": {"capacity": ["cpu"]}},
         "cannot unmarshal array into Go struct field NodeStatus.status.capacity of type map[string]resource.Quantity"),
        (nodes, None, "n1", {"status": {"conditions": [{"type": "Ready", "status": 1}]}},
         "cannot unmarshal number into Go struct field NodeCondition.status.conditions.status of type string"),
        (nodes, None, "n1", {"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "now"}]}},
         'parsing time "now"'),
        (nodes, None, "n1", {"status": {"capacity": {"cpu": "lots"}}}, "quantities must match the regular expression"),
        (nodes, None, "n1", {"status": "Ready"}, "Go struct field Node.status of type v1.NodeStatus"),
        (pods, "default", "p1", {"status": {"containerStatuses": {"app": {}}}},
         "cannot unmarshal object into Go struct field PodStatus.status.containerStatuses of type []v1.ContainerStatus"),
        (pods, "default", "p1", {"status": {"phase": 3}},
         "cannot unmarshal number into Go struct field PodStatus.status.phase of type string"),
        (pods, "default", "p1", {"status": {"containerStatuses": [{"name": "app", "restartCount": 1.5}]}},
         "cannot unmarshal number 1.5 into Go struct field ContainerStatus.status.containerStatuses.restartCount of type int64"),
    ]
    for resource, namespace, name, document, message in cases:
        before = await api.get(resource, namespace, name)
        for content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            with pytest.raises(errors.ApiError) as refused:
                await api.patch(resource, namespace, name, json.dumps(document).encode(), content_type, "status")
            assert (refused.value.code, refused.value.reason) == (400, "BadRequest")
            assert message in refused.value.message, refused.value.message
        operations = [{"op": "add", "path": "/status", "value": document["status"]}]
        with pytest.raises(errors.ApiError, match="cannot unmarshal|parsing time|quantities"):
            await api.patch(resource, namespace, name, json.dumps(operations).encode(), "application/json-patch+json", "status")
        current = json.loads(before)
        with pytest.raises(errors.ApiError, match="cannot unmarshal|parsing time|quantities"):
            await api.update(resource, namespace, name, {**current, "status": document["status"]}, "status")
        assert await api.get(resource, namespace, name) == before  # nothing invalid was stored


async def test_resource_version_in_a_body_must_be_a_revision(api: Api) -> None:
    configmaps = kind(api, "configmaps")
    created = await api.create(configmaps, "default", {"metadata": {"name": "c"}, "data": {"a": "b"}})
    for version, why in (("abc", "invalid syntax"), ("9" * 30, "value out of range"), ("99999999999999999999", "value out of range")):
        with pytest.raises(errors.ApiError) as refused:
            await api.update(configmaps, "default", "c", {**created, "metadata": {**created["metadata"], "resourceVersion": version}})
        assert refused.value.code == 422 and why in refused.value.message
        assert refused.value.message.startswith('ConfigMap "c" is invalid: metadata.resourceVersion: Invalid value:')
        with pytest.raises(errors.ApiError) as refused:
            await api.patch(configmaps, "default", "c", json.dumps({"metadata": {"resourceVersion": version}}).encode(),
                            "application/merge-patch+json")
        assert refused.value.code == 422 and why in refused.value.message
    with pytest.raises(errors.ApiError) as refused:
        await api.update(configmaps, "default", "c", {**created, "metadata": {**created["metadata"], "resourceVersion": 5}})
    assert refused.value.code == 400 and "ObjectMeta.metadata.resourceVersion of type string" in refused.value.message


def test_resource_version_parsing() -> None:
    assert parse_resource_version("") == 0 and parse_resource_version("0") == 0 and parse_resource_version("42") == 42
    assert parse_resource_version(str(2**63 - 1)) == 2**63 - 1
    for bad in ("-1", "1e3", "abc", "٣", " 1", str(2**63), "9" * 5000):
        with pytest.raises(ValueError, match="strconv.ParseUint"):
            parse_resource_version(bad)


@pytest.mark.parametrize("body, message", [
    (b"[" * 101 + b"]" * 101, "exceeded max depth: the request body nests 101 levels, more than the 100 allowed"),
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "exceeded max depth"),
    (b"[" * 1_000_000, "exceeded max depth"),
    (b'{"metadata":{"name":"\xff\xfe"}}', "invalid UTF-8 in the request body at byte offset 21"),
    (b'\xef\xbb\xbf{}', "BOM"),
    (b'{"data":{"a":NaN}}', "NaN is not JSON"),
    (b'{"data":{"a":-Infinity}}', "-Infinity is not JSON"),
    (b'{"spec":{"replicas":1e999}}', "number 1e999 is out of the range of a float64"),
    (b'{"spec":{"replicas":' + b"9" * 5000 + b"}}", "Exceeds the limit"),
    (b'{"a":', "Expecting value"),
    (b"", "Expecting value"),
])
def test_json_bodies_refused_before_they_cost_anything(body: bytes, message: str) -> None:
    with pytest.raises(errors.ApiError) as refused:
        jsonbody.parse(body)
    assert refused.value.code == 400 and refused.value.reason == "BadRequest"
    assert message in refused.value.message, refused.value.message


def test_json_bodies_that_are_fine() -> None:
    assert jsonbody.parse(b"[" * 100 + b"]" * 100) is not None
    assert jsonbody.parse(b'{"a":"[[[[[[[[[[' + b"[" * 200 + b'"}') == {"a": "[" * 210}  # brackets in strings do not nest
    assert jsonbody.parse(b'{"a":"\\"[[["}') == {"a": '"[[['}
    assert jsonbody.parse(b'{"a":"\\ud800x"}') == {"a": "\ufffdx"}  # a lone surrogate becomes U+FFFD, as in Go
    assert jsonbody.parse(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001F600"}
    assert jsonbody.nesting_depth('{"a":[{"b":[]}]}') == 4


def test_type_errors_name_the_struct_the_path_and_the_go_type() -> None:
    def problem(definition: str, obj: Any) -> str:
        found = typecheck.first_problem(definition, obj)
        return "" if found is None else str(found)

    pod = "io.k8s.api.core.v1.Pod"
    assert problem(pod, {"spec": {"containers": "x"}}) == \
        "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container"
    assert problem(pod, {"spec": {"containers": [{"ports": [{"containerPort": "80"}]}]}}) == \
        "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int64"
    assert problem(pod, {"metadata": {"labels": {"a": 1}}}) == \
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"
    assert problem(pod, {"metadata": {"labels": ["a"]}}) == \
        "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"
    assert problem(pod, {"spec": {"containers": [{"resources": {"limits": {"cpu": True}}}]}}).startswith(
        "json: cannot unmarshal bool into Go struct field ResourceRequirements.spec.containers.resources.limits "
        "of type resource.Quantity: quantities must match")
    assert problem(pod, {"spec": {"containers": [{"readinessProbe": {"httpGet": {"port": 1.5}}}]}}) == \
        "json: cannot unmarshal number 1.5 into Go struct field HTTPGetAction.spec.containers.readinessProbe.httpGet.port " \
        "of type intstr.IntOrString"
    assert problem(pod, {"spec": {"hostNetwork": "yes"}}) == \
        "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"
    assert problem(pod, {"kind": 5}) == "json: cannot unmarshal number into Go struct field Pod.kind of type string"
    assert problem(pod, []) == "json: cannot unmarshal array into Go value of type v1.Pod"
    assert problem(pod, {"spec": {"activeDeadlineSeconds": 2**63}}).startswith("json: cannot unmarshal number 9223372036854775808")
    # what Go accepts: nulls anywhere, unknown fields (strict validation is elsewhere), numbers as quantities
    assert problem(pod, {"metadata": None, "spec": {"containers": [None], "nodeSelector": None}, "status": None}) == ""
    assert problem(pod, {"spec": {"unknown": [1, 2]}, "extra": {}}) == ""
    assert problem("io.k8s.api.core.v1.Node", {"status": {"capacity": {"cpu": 2, "memory": "1.5Gi"}}}) == ""
    assert problem("io.k8s.api.core.v1.Event", {"eventTime": "2026-01-02T03:04:05.123456Z"}) == ""
    assert problem("io.k8s.api.core.v1.Event", {"eventTime": "2026-01-02T03:04:05+01:00"}) == ""
    assert problem("io.k8s.api.core.v1.Event", {"eventTime": "2026-13-02T03:04:05Z"}).endswith("not an RFC 3339 time")
    crd = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
    schema = {"type": "object", "additionalProperties": True, "default": 3, "items": {"type": "string"}}
    assert problem(crd, {"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}}) == ""
    assert problem("io.k8s.api.core.v1.NoSuchKind", "anything") == ""
