"""Server-side printing: Table shape, column sets and the cells kube-apiserver prints."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from cores.common import tables
from tests.captures import UPSTREAM

NOW = datetime.datetime(2026, 11, 26, 1, 0, 0, tzinfo=datetime.timezone.utc)


def ago(seconds: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def captured(file: str, kind: str) -> dict[str, Any]:
    for line in (UPSTREAM / file).read_text().splitlines():
        content = json.loads(line)["frame"].get("content")
        if isinstance(content, str):
            try:
                content = json.loads(content)
            except ValueError:
                continue
        if isinstance(content, dict):
            for candidate in (content, content.get("Object")):
                if isinstance(candidate, dict) and candidate.get("kind") == kind and candidate.get("status"):
                    return candidate
    raise AssertionError(f"no {kind} with a status in {file}")


def names(table: dict[str, Any], priority: int | None = None) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"] if priority is None or c["priority"] == priority]


def cells(kind: str, obj: dict[str, Any], group: str = "", **kwargs: Any) -> list[Any]:
    table = tables.table(kind, group, [obj], list_meta={}, now=NOW, **kwargs)
    return table["rows"][0]["cells"]


# negotiation ----------------------------------------------------------------------------------

KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                  "application/json")


@pytest.mark.parametrize("accept, version", [
    (KUBECTL_ACCEPT, "v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json", "v1beta1"),
    ("application/json; as=Table; g=meta.k8s.io; v=v1", "v1"),
    ("application/json", None),
    ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", None),
    ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", None),
    ("", None),
    ("*/*", None),
])
def test_table_version(accept: str, version: str | None) -> None:
    assert tables.table_version(accept) == version
    assert tables.wants_table(accept) is (version is not None)


def test_include_object_values() -> None:
    assert tables.check_include_object("") == "Metadata"
    with pytest.raises(ValueError, match='unrecognized includeObject value: "Bogus"'):
        tables.check_include_object("Bogus")


# durations ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (182, "3m2s"), (600, "10m"),
    (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 300, "3h5m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (2 * 86400, "2d"), (2 * 86400 + 3 * 3600, "2d3h"), (8 * 86400, "8d"), (800 * 86400, "2y70d"),
    (3 * 365 * 86400, "3y"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


# table shape ----------------------------------------------------------------------------------

def pod(**status: Any) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "p", "namespace": "default", "resourceVersion": "7", "creationTimestamp": ago(65)},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": status}


def test_table_shape_and_include_object() -> None:
    obj = pod(phase="Running")
    table = tables.table("Pod", "", [obj], list_meta={"resourceVersion": "9", "continue": "abc"}, now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "9", "continue": "abc"}
    assert table["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                          "metadata": obj["metadata"]}
    full = tables.table("Pod", "", [obj], list_meta={}, include_object="Object", now=NOW)
    assert full["rows"][0]["object"] is obj and full["metadata"] == {}
    none = tables.table("Pod", "", [obj], list_meta={}, include_object="None", now=NOW)
    assert "object" not in none["rows"][0]
    beta = tables.table("Pod", "", [obj], list_meta={}, api_version="meta.k8s.io/v1beta1", now=NOW)
    assert beta["apiVersion"] == beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    for definition in table["columnDefinitions"]:
        assert set(definition) == {"name", "type", "format", "description", "priority"}


def test_watch_event_table() -> None:
    obj = pod(phase="Running")
    first = tables.watch_event_table("ADDED", obj, "Pod", "", now=NOW)
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Table"
    assert first["object"]["metadata"] == {"resourceVersion": "7"}
    assert len(first["object"]["rows"]) == 1 and first["object"]["columnDefinitions"]
    later = tables.watch_event_table("MODIFIED", obj, "Pod", "", first=False, now=NOW)
    assert later["object"]["columnDefinitions"] is None
    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "8"}}
    assert tables.watch_event_table("BOOKMARK", bookmark, "Pod", "") == {"type": "BOOKMARK", "object": bookmark}


@pytest.mark.parametrize("kind, group, default, wide", [
    ("Pod", "", ["Name", "Ready", "Status", "Restarts", "Age"], ["IP", "Node", "Nominated Node", "Readiness Gates"]),
    ("Node", "", ["Name", "Status", "Roles", "Age", "Version"],
     ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]),
    ("Namespace", "", ["Name", "Status", "Age"], []),
    ("ConfigMap", "", ["Name", "Data", "Age"], []),
    ("Secret", "", ["Name", "Type", "Data", "Age"], []),
    ("Service", "", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"]),
    ("Endpoints", "", ["Name", "Endpoints", "Age"], []),
    ("Event", "", ["Last Seen", "Type", "Reason", "Object", "Message"],
     ["Subobject", "Source", "First Seen", "Count", "Name"]),
    ("ServiceAccount", "", ["Name", "Secrets", "Age"], []),
    ("Lease", "coordination.k8s.io", ["Name", "Holder", "Age"], []),
    ("Deployment", "apps", ["Name", "Ready", "Up-to-date", "Available", "Age"], ["Containers", "Images", "Selector"]),
    ("ReplicaSet", "apps", ["Name", "Desired", "Current", "Ready", "Age"], ["Containers", "Images", "Selector"]),
    ("CustomResourceDefinition", "apiextensions.k8s.io", ["Name", "Created At"], []),
    ("Binding", "", ["Name", "Age"], []),
])
def test_columns(kind: str, group: str, default: list[str], wide: list[str]) -> None:
    obj = {"metadata": {"name": "x", "creationTimestamp": ago(10)}}
    table = tables.table(kind, group, [obj], list_meta={}, now=NOW)
    assert names(table, 0) == default
    assert names(table, 1) == wide
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])


# pods -----------------------------------------------------------------------------------------

def running(name: str = "c", ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": ago(60)}},
            **extra}


def waiting(reason: str, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": "c", "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(reason: str = "", exit_code: int = 0, name: str = "c", **extra: Any) -> dict[str, Any]:
    state = {"exitCode": exit_code, **({"reason": reason} if reason else {})}
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}, **extra}


LAST_FAILURE = {"lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(125)}}}
READY = [{"type": "Ready", "status": "True"}]


@pytest.mark.parametrize("status, meta, init, expected", [
    ({"phase": "Pending"}, {}, [], ("0/1", "Pending", "0")),
    ({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}, {}, [], ("0/1", "ContainerCreating", "0")),
    ({"phase": "Running", "containerStatuses": [running()]}, {}, [], ("1/1", "Running", "0")),
    ({"phase": "Running", "containerStatuses": [running(ready=False)]}, {}, [], ("0/1", "Running", "0")),
    ({"phase": "Succeeded", "containerStatuses": [terminated("Completed")]}, {}, [], ("0/1", "Completed", "0")),
    ({"phase": "Failed", "containerStatuses": [terminated("Error", 1)]}, {}, [], ("0/1", "Error", "0")),
    ({"phase": "Failed", "containerStatuses": [terminated("", 137)]}, {}, [], ("0/1", "ExitCode:137", "0")),
    ({"phase": "Running", "containerStatuses": [waiting("CrashLoopBackOff", 4, **LAST_FAILURE)]}, {}, [],
     ("0/1", "CrashLoopBackOff", "4 (2m5s ago)")),
    ({"phase": "Running", "containerStatuses": [running(restarts=2)]}, {}, [], ("1/1", "Running", "2")),
    ({"phase": "Pending", "containerStatuses": [waiting("ImagePullBackOff")]}, {}, [], ("0/1", "ImagePullBackOff", "0")),
    ({"phase": "Pending", "containerStatuses": [waiting("ErrImagePull")]}, {}, [], ("0/1", "ErrImagePull", "0")),
    ({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}, "restartCount": 0}]},
     {}, ["i"], ("0/1", "Init:0/1", "0")),
    ({"phase": "Pending", "initContainerStatuses": [waiting("CrashLoopBackOff", 3) | {"name": "i"}]}, {}, ["i"],
     ("0/1", "Init:CrashLoopBackOff", "3")),
    ({"phase": "Pending", "initContainerStatuses": [terminated("Error", 1, name="i")]}, {}, ["i"],
     ("0/1", "Init:Error", "0")),
    ({"phase": "Pending", "initContainerStatuses": [terminated("Completed", 0, name="i")],
      "containerStatuses": [waiting("PodInitializing")]}, {}, ["i"], ("0/1", "PodInitializing", "0")),
    ({"phase": "Running", "containerStatuses": [running()]}, {"deletionTimestamp": ago(1)}, [],
     ("1/1", "Terminating", "0")),
    ({"phase": "Running", "reason": "NodeLost", "containerStatuses": [running()]}, {"deletionTimestamp": ago(1)}, [],
     ("1/1", "Unknown", "0")),
    ({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}, {}, [],
     ("0/1", "Evicted", "0")),
    ({"phase": "Running", "containerStatuses": [terminated("Completed"), running(name="d")],
      "conditions": [{"type": "Ready", "status": "False"}]}, {}, [], ("1/1", "NotReady", "0")),
    ({"phase": "Running", "containerStatuses": [terminated("Completed"), running(name="d")], "conditions": READY},
     {}, [], ("1/1", "Running", "0")),
    ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]},
     {}, [], ("0/1", "SchedulingGated", "0")),
])
def test_pod_status(status: dict[str, Any], meta: dict[str, Any], init: list[str], expected: tuple[str, str, str]) -> None:
    obj = pod(**status)
    obj["metadata"].update(meta)
    if init:
        obj["spec"]["initContainers"] = [{"name": n, "image": "busybox"} for n in init]
    if len(status.get("containerStatuses") or []) == 2:
        obj["spec"]["containers"] = [{"name": "c", "image": "x"}, {"name": "d", "image": "y"}]
        expected = (expected[0].replace("/1", "/2"), *expected[1:])
    assert tuple(cells("Pod", obj)[1:4]) == expected


def test_pod_sidecar_counts_and_row_conditions() -> None:
    obj = pod(phase="Running", initContainerStatuses=[
        {"name": "side", "ready": True, "started": True, "restartCount": 1, "state": {"running": {}}}],
        containerStatuses=[running()], conditions=[{"type": "Initialized", "status": "True"}])
    obj["spec"]["initContainers"] = [{"name": "side", "image": "x", "restartPolicy": "Always"}]
    assert cells("Pod", obj)[1:4] == ["2/2", "Running", "1"]
    done = tables.table("Pod", "", [pod(phase="Succeeded")], list_meta={}, now=NOW)
    assert done["rows"][0]["conditions"][0]["type"] == "Completed"


def test_pod_wide_cells() -> None:
    obj = pod(phase="Running", podIP="10.0.0.5", podIPs=[{"ip": "10.0.0.5"}],
              conditions=[{"type": "gate/a", "status": "True"}])
    obj["spec"].update(nodeName="edge-1", readinessGates=[{"conditionType": "gate/a"}, {"conditionType": "gate/b"}])
    assert cells("Pod", obj)[4:] == ["65s", "10.0.0.5", "edge-1", "<none>", "1/2"]
    assert cells("Pod", pod())[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_captured_pod_and_node() -> None:
    captured_pod, captured_node = captured("pod.jsonl", "Pod"), captured("join.jsonl", "Node")
    row = cells("Pod", captured_pod)
    assert row[0] == captured_pod["metadata"]["name"] and row[1].count("/") == 1
    node_row = cells("Node", captured_node)
    assert node_row[0] == captured_node["metadata"]["name"]
    assert node_row[2] == "agent,edge"
    assert node_row[4] == captured_node["status"]["nodeInfo"]["kubeletVersion"]


# nodes and the rest ---------------------------------------------------------------------------

def node(ready: str | None = "True", unschedulable: bool = False, labels: dict[str, str] | None = None) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": {"name": "edge-1", "creationTimestamp": ago(2 * 86400 + 3 * 3600), "labels": labels or {}},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions, "addresses": [{"type": "InternalIP", "address": "192.168.1.5"},
                                                               {"type": "Hostname", "address": "edge-1"}],
                       "nodeInfo": {"kubeletVersion": "v1.29.5-kubeedge-v1.18.0", "osImage": "Ubuntu 22.04",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.2"}}}


@pytest.mark.parametrize("ready, unschedulable, status", [
    ("True", False, "Ready"), ("False", False, "NotReady"), ("Unknown", False, "NotReady"), (None, False, "Unknown"),
    ("True", True, "Ready,SchedulingDisabled"),
])
def test_node_status(ready: str | None, unschedulable: bool, status: str) -> None:
    assert cells("Node", node(ready, unschedulable))[1] == status


def test_node_cells() -> None:
    labels = {"node-role.kubernetes.io/edge": "", "node-role.kubernetes.io/agent": "", "kubernetes.io/role": "x"}
    assert cells("Node", node(labels=labels)) == [
        "edge-1", "Ready", "agent,edge,x", "2d3h", "v1.29.5-kubeedge-v1.18.0", "192.168.1.5", "<none>",
        "Ubuntu 22.04", "6.1.0", "containerd://1.7.2"]
    assert cells("Node", node())[2] == "<none>"


def test_service_cells() -> None:
    service = {"metadata": {"name": "web", "creationTimestamp": ago(30)},
               "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                        "selector": {"b": "2", "a": "1"}}}
    assert cells("Service", service) == ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "30s",
                                         "a=1,b=2"]
    balancer = {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"]}}
    assert cells("Service", balancer)[3:5] == ["<pending>", "<none>"]
    headless = {"metadata": {"name": "h"}, "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}}
    assert cells("Service", headless)[2] == "None"
    external = {"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}
    assert cells("Service", external)[2:4] == ["<none>", "example.com"]


def test_simple_kinds() -> None:
    meta = {"name": "n", "creationTimestamp": ago(5)}
    assert cells("Namespace", {"metadata": meta, "status": {"phase": "Active"}}) == ["n", "Active", "5s"]
    assert cells("ConfigMap", {"metadata": meta, "data": {"a": "1"}, "binaryData": {"b": ""}}) == ["n", 2, "5s"]
    assert cells("Secret", {"metadata": meta, "type": "Opaque", "data": {"a": "MQ=="}}) == ["n", "Opaque", 1, "5s"]
    assert cells("ServiceAccount", {"metadata": meta}) == ["n", 0, "5s"]
    lease = {"metadata": meta, "spec": {"holderIdentity": "edge-1"}}
    assert cells("Lease", lease, "coordination.k8s.io") == ["n", "edge-1", "5s"]
    crd = {"metadata": {"name": "widgets.example.com", "creationTimestamp": "2026-11-26T00:00:00Z"}}
    assert cells("CustomResourceDefinition", crd, "apiextensions.k8s.io") == ["widgets.example.com",
                                                                               "2026-11-26T00:00:00Z"]
    assert cells("Binding", {"metadata": {"name": "b"}}) == ["b", "<unknown>"]


def test_endpoints() -> None:
    subsets = [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 5)], "ports": [{"port": 80}]}]
    assert tables.format_endpoints({"subsets": subsets}) == "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."
    assert tables.format_endpoints({}) == "<none>"
    assert tables.format_endpoints({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 443}]}]}) == \
        "[fd00::1]:443"
    assert tables.format_endpoints({"subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]}) == "10.0.0.9"


def test_events() -> None:
    event = {"metadata": {"name": "p.17"}, "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
             "reason": "Pulled", "message": " Pulled image \n", "type": "Normal", "count": 3,
             "firstTimestamp": ago(600), "lastTimestamp": ago(30), "source": {"component": "kubelet", "host": "edge-1"}}
    assert cells("Event", event) == ["30s", "Normal", "Pulled", "pod/p", "spec.containers{c}", "kubelet, edge-1",
                                     "Pulled image", "10m", 3, "p.17"]
    new_style = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}, "eventTime": ago(5),
                 "reportingComponent": "ctrl", "reportingInstance": "i-1"}
    assert cells("Event", new_style)[:6] == ["5s", "", "", "node", "", "ctrl, i-1"]
    assert cells("Event", new_style)[8] == 1


def test_workloads() -> None:
    template = {"spec": {"containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "busybox"}]}}
    selector = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In",
                                                                      "values": ["b", "a"]}]}
    deployment = {"metadata": {"name": "web", "creationTimestamp": ago(90)},
                  "spec": {"replicas": 3, "selector": selector, "template": template},
                  "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert cells("Deployment", deployment, "apps") == ["web", "2/3", 3, 2, "90s", "a,b", "nginx:1,busybox",
                                                       "app=web,tier in (a,b)"]
    replica_set = {"metadata": {"name": "web-1"}, "spec": {"replicas": 2, "template": template},
                   "status": {"replicas": 2, "readyReplicas": 1}}
    assert cells("ReplicaSet", replica_set, "apps")[:4] == ["web-1", 2, 2, 1]


# custom resources -----------------------------------------------------------------------------

def widget() -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "creationTimestamp": ago(300), "labels": {"a.b/c": "x"}},
            "spec": {"size": 3, "ratio": 0.5, "on": True, "tags": ["t1", "t2"], "owner": {"name": "o"}},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
                       "since": ago(3600)}}


def test_custom_resource_without_columns() -> None:
    table = tables.table("Widget", "example.com", [widget()], list_meta={}, printer_columns=[], now=NOW)
    assert names(table) == ["Name", "Age"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["w", "5m"]


def test_custom_resource_columns() -> None:
    columns = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
        {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Tag", "type": "string", "jsonPath": ".spec.tags[1]", "priority": 1},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
        {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
        {"name": "Label", "type": "string", "jsonPath": ".metadata.labels.a\\.b/c"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
        {"name": "Since", "type": "date", "jsonPath": ".status.since", "description": "when"},
    ]
    table = tables.table("Widget", "example.com", [widget()], list_meta={}, printer_columns=columns, now=NOW)
    assert names(table) == ["Name", *[c["name"] for c in columns]]
    assert table["columnDefinitions"][5]["priority"] == 1
    assert table["columnDefinitions"][1]["description"] == \
        "Custom resource definition column (in JSONPath format): .spec.size"
    assert table["columnDefinitions"][10]["description"] == "when"
    assert table["rows"][0]["cells"] == ["w", 3, 0.5, True, "True", "t2", '["t1","t2"]', '{"name":"o"}', "x", None,
                                         "60m"]


def test_json_path() -> None:
    obj = widget()
    assert tables.json_path(obj, "{.spec.tags[*]}") == ["t1", "t2"]
    assert tables.json_path(obj, ".status.conditions[?(@.type!='Ready')].type") == ["Synced"]
    assert tables.json_path(obj, ".metadata.labels['a.b/c']") == ["x"]
    assert tables.json_path(obj, ".spec.tags[-1]") == ["t2"]
    with pytest.raises(ValueError):
        tables.json_path(obj, "spec")
