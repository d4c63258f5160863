"""Objects already stored with wrong types (before writes were type-checked, or written around the API):
the controllers' reconcile functions and the table printers must survive every one of them.

Issue class 1 (status poisoning): a node that stored ``conditions`` as a string crash-looped the
scheduler and the node lifecycle controller and made ``kubectl get nodes`` a 500. Here, poisoned
objects are planted straight into the store, with a wrong type at every level (a string for a list,
a list for a map, a number for a string, nulls, no metadata), beside good ones; every controller
pass runs without raising, the good objects are reconciled and printed, the bad ones are skipped
and logged by name.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cores.common import tables
from cores.common.selectors import selector_fields
from cores.controlplane import errors, views
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.controllers.deployment import DeploymentController
from cores.controlplane.controllers.events import EventRecorder
from cores.controlplane.controllers.namespace import NamespaceController
from cores.controlplane.controllers.nodelifecycle import NodeLifecycleController
from cores.controlplane.controllers.replicaset import ReplicaSetController
from cores.controlplane.controllers.scheduler import ALL_PENDING, Scheduler
from cores.controlplane.registry import Registry, ResourceType
from cores.controlplane.store import Event, Store, Transaction

TIME = "2026-01-02T03:04:05Z"
NOW = datetime.datetime(2026, 1, 2, 4, 0, 0, tzinfo=datetime.timezone.utc)
POISONS: tuple[Any, ...] = (None, "poison", 7, [], {"a": 1}, ["x"])
READY = {"type": "Ready", "status": "True", "lastHeartbeatTime": TIME, "lastTransitionTime": TIME}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "uid": "node-uid", "labels": {"zone": "a"}, "creationTimestamp": TIME},
        "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]},
        "status": {"conditions": [READY], "allocatable": {"pods": "110"}, "capacity": {"pods": "110"},
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}], "nodeInfo": {"kubeletVersion": "v1"}}}
POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "p", "namespace": "default", "uid": "pod-uid", "labels": {"app": "web"}, "creationTimestamp": TIME},
       "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}],
                "nodeSelector": {"zone": "a"}, "tolerations": [{"operator": "Exists"}]},
       "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}],
                  "containerStatuses": [{"name": "c", "ready": False, "restartCount": 0, "image": "busybox", "imageID": "",
                                         "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
REPLICA_SET = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "rs", "namespace": "default", "uid": "rs-uid", "creationTimestamp": TIME},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
               "status": {"replicas": 0}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "d", "namespace": "default", "uid": "d-uid", "creationTimestamp": TIME, "generation": 1},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
                       "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}},
              "status": {"conditions": [{"type": "Available", "status": "False"}]}}
GROUPS = {"deployments": "apps", "replicasets": "apps", "leases": "coordination.k8s.io"}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def poisoned(sample: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, object) for every field of ``sample`` replaced by every poison, and deleted."""
    for path in paths(sample):
        for poison in (*POISONS, "<deleted>"):
            obj = copy.deepcopy(sample)
            node: Any = obj
            for step in path[:-1]:
                node = node[step]
            if poison == "<deleted>":
                del node[path[-1]]
            else:
                node[path[-1]] = copy.deepcopy(poison)
            yield f"{'.'.join(map(str, path))}={json.dumps(poison)}", obj


def kind(api: Api, plural: str) -> ResourceType:
    found = api.registry.get(GROUPS.get(plural, ""), "v1", plural)
    assert found is not None
    return found


async def plant(api: Api, plural: str, objects: list[tuple[str, dict[str, Any]]], namespace: str = "default") -> list[str]:
    """Write objects straight into the store, around every check of the API; their names, in order."""
    resource = kind(api, plural)
    names = [f"bad-{index}" for index in range(len(objects))]

    def work(txn: Transaction) -> None:
        for name, (_, obj) in zip(names, objects):
            txn.put(resource.key(namespace if resource.namespaced else None, name), copy.deepcopy(obj))

    await api.store.transact(work)
    return names


@pytest.fixture()
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = Store(tmp_path / "state.db", selector_fields)
    api = Api(store, Registry())
    try:
        for name in ("default", "kube-node-lease", "doomed"):
            await api.create(kind(api, "namespaces"), None, {"metadata": {"name": name}})
        yield api
    finally:
        store.close()


async def survives(reconcile: Any) -> None:
    """A reconcile pass may refuse to act (a 4xx from the API it writes through); it may not crash."""
    try:
        await reconcile
    except errors.ApiError as error:
        assert 400 <= error.code < 500, error


def skipped(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if "malformed" in r.getMessage())


async def test_scheduler_binds_the_good_pod_among_poisoned_nodes_and_pods(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    await api.create(kind(api, "nodes"), None, {**copy.deepcopy(NODE), "metadata": {"name": "good", "labels": {"zone": "a"}}})
    await plant(api, "nodes", list(poisoned(NODE)))
    bad_pods = list(poisoned({**POD, "spec": {**POD["spec"], "nodeName": ""}}))
    await plant(api, "pods", bad_pods)
    good = await api.create(kind(api, "pods"), "default", {"metadata": {"name": "good"}, "spec": POD["spec"]})
    scheduler = Scheduler(api, EventRecorder(api), 30)
    assert await scheduler.reconcile(ALL_PENDING) is None
    for index in range(len(bad_pods)):
        await survives(scheduler.reconcile(f"default/bad-{index}"))
    bound = json.loads(await api.get(kind(api, "pods"), "default", "good"))
    assert bound["spec"]["nodeName"], bound.get("status")
    assert meta_name(good) == "good"
    assert "/core/nodes/bad-" in skipped(caplog) and "/core/pods/default/bad-" in skipped(caplog)
    assert "NodeStatus.status.conditions" in skipped(caplog)
    # the keys of a poisoned node's event are read without raising
    planted = await api.store.get("/core/nodes/bad-1")
    assert planted is not None
    event = Event(99, "MODIFIED", "/core/nodes/bad-1", planted, {}, {})
    assert list(scheduler.loop._keys_of(event)) in ([], [ALL_PENDING])
    broken = Event(100, "MODIFIED", "/core/nodes/bad-2", '{"metadata": "x", "spec": []}', {}, {})
    assert list(scheduler.loop._keys_of(broken)) in ([], [ALL_PENDING])


def meta_name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


async def test_node_lifecycle_marks_the_silent_good_node_and_skips_the_poisoned(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    await api.create(kind(api, "nodes"), None, {**copy.deepcopy(NODE), "metadata": {"name": "good"}})
    names = await plant(api, "nodes", list(poisoned(NODE)))
    await plant(api, "leases", [("lease", {"metadata": {"name": "good"}, "spec": {"renewTime": ["x"]}}),
                                ("lease", {"metadata": "x"})], namespace="kube-node-lease")
    controller = NodeLifecycleController(api, EventRecorder(api), grace=0.0, period=1.0)
    await controller.monitor()
    controller.health = {name: dataclass_replace(health) for name, health in controller.health.items()}
    await controller.monitor()  # now every node is past its grace period
    node = json.loads(await api.get(kind(api, "nodes"), None, "good"))
    assert base.condition(node, "Ready") == {**base.condition(node, "Ready"), "status": "Unknown"}  # type: ignore[dict-item]
    assert "/core/nodes/bad-" in skipped(caplog)
    assert len(names) > 100


def dataclass_replace(health: Any) -> Any:
    import dataclasses

    return dataclasses.replace(health, probed=health.probed - 3600)


async def test_replicaset_and_deployment_reconcile_good_ones_and_skip_poisoned(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    recorder = EventRecorder(api)
    replica_sets = ReplicaSetController(api, recorder, 30)
    deployments = DeploymentController(api, recorder, 30)
    bad_sets = await plant(api, "replicasets", list(poisoned(REPLICA_SET)))
    bad_deployments = await plant(api, "deployments", list(poisoned(DEPLOYMENT)))
    owned = copy.deepcopy(POD)
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "good",
                                             "uid": "rs-uid", "controller": True}]
    await plant(api, "pods", list(poisoned(owned))[:200])
    good_set = await api.create(kind(api, "replicasets"), "default", {"metadata": {"name": "good"}, "spec": REPLICA_SET["spec"]})
    good_deployment = await api.create(kind(api, "deployments"), "default", {"metadata": {"name": "web"}, "spec": DEPLOYMENT["spec"]})
    for name in bad_sets:
        await survives(replica_sets.reconcile(f"default/{name}"))
    for name in bad_deployments:
        await survives(deployments.reconcile(f"default/{name}"))
    # and as their loops run them: every key handled, nothing raised
    await replica_sets.loop._reconcile_all({f"default/{name}" for name in bad_sets})
    await deployments.loop._reconcile_all({f"default/{name}" for name in bad_deployments})
    await replica_sets.reconcile(f"default/{meta_name(good_set)}")
    await deployments.reconcile(f"default/{meta_name(good_deployment)}")
    _, pods, _ = await api.list(kind(api, "pods"), "default")
    assert any(f'"uid":"{good_set["metadata"]["uid"]}"' in pod for pod in pods)  # the good ReplicaSet made its pod
    _, sets, _ = await api.list(kind(api, "replicasets"), "default")
    names = [str((json.loads(item).get("metadata") or {}).get("name", "")) for item in sets
             if isinstance(json.loads(item).get("metadata"), dict)]  # the poisoned ones are listed too
    assert any(name.startswith("web-") for name in names)  # the Deployment made its ReplicaSet
    assert "/apps/replicasets/default/bad-" in skipped(caplog) and "/apps/deployments/default/bad-" in skipped(caplog)
    keys = set(await replica_sets.all_keys())  # what the resync walks: good ones, no malformed ones
    assert f"default/{meta_name(good_set)}" in keys and any(key.startswith("default/web-") for key in keys)
    for key in keys:
        if key.startswith("default/bad-"):
            assert await _decodes(api, "replicasets", key.split("/", 1)[1]), key


async def _decodes(api: Api, plural: str, name: str) -> bool:
    return await base.get(api, kind(api, plural), "default", name) is not None


async def test_namespace_deletion_removes_poisoned_objects_too(api: Api, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    await plant(api, "pods", [("x", {"metadata": "poison"}), ("y", {"spec": []}), *list(poisoned(POD))[:30]], namespace="doomed")
    await plant(api, "configmaps", [("x", {"metadata": {"name": 5}, "data": []})], namespace="doomed")
    controller = NamespaceController(api, ca, 30)
    await api.delete(kind(api, "namespaces"), None, "doomed", {})
    for _ in range(5):
        if await controller.reconcile("doomed") is None:
            break
    assert await api.store.get("/core/namespaces/doomed") is None
    _, rows, _ = await api.store.list("/core/pods/doomed/")
    assert rows == []


# table printers ------------------------------------------------------------------------------

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default", "creationTimestamp": TIME},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
                    "selector": {"app": "web"}, "externalIPs": ["1.2.3.4"]},
           "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}}
EVENT = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default", "creationTimestamp": TIME},
         "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "message": "m", "count": 2, "type": "Normal",
         "firstTimestamp": TIME, "lastTimestamp": TIME, "source": {"component": "c", "host": "h"}}
ENDPOINTS = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e", "namespace": "default", "creationTimestamp": TIME},
             "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
PRINTED = [
    ("", "Node", NODE), ("", "Pod", POD), ("", "Service", SERVICE), ("", "Event", EVENT), ("", "Endpoints", ENDPOINTS),
    ("apps", "Deployment", DEPLOYMENT), ("apps", "ReplicaSet", REPLICA_SET),
    ("", "Namespace", {"metadata": {"name": "ns", "creationTimestamp": TIME}, "status": {"phase": "Active"}}),
    ("", "ConfigMap", {"metadata": {"name": "c", "namespace": "default"}, "data": {"a": "b"}}),
    ("", "Secret", {"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque", "data": {"a": "Yg=="}}),
    ("", "ServiceAccount", {"metadata": {"name": "sa", "namespace": "default"}, "secrets": [{"name": "t"}]}),
    ("coordination.k8s.io", "Lease", {"metadata": {"name": "l", "namespace": "default"}, "spec": {"holderIdentity": "n"}}),
]


@pytest.mark.parametrize("group, kind_name, sample", PRINTED, ids=[p[1] for p in PRINTED])
def test_table_printers_survive_every_poisoned_object(group: str, kind_name: str, sample: dict[str, Any],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    bad = [obj for _, obj in poisoned(sample)]
    good = copy.deepcopy(sample)
    good["metadata"]["name"] = "the-good-one"
    for include in ("Object", "Metadata", "None"):
        table = tables.table(kind_name, group, [*bad, good, "not an object", None, []],  # type: ignore[list-item]
                             list_meta={}, include_object=include, now=NOW)
        last = table["rows"][-1]  # the junk after the good one is skipped
        if include == "None":
            assert "the-good-one" in last["cells"] or kind_name == "Event"  # kubectl's Event table has no name column
        else:
            assert last["object"]["metadata"]["name"] == "the-good-one"
        json.dumps(table)  # whatever was printed is JSON
        for row in table["rows"]:
            if include == "Metadata":
                assert isinstance(row["object"]["metadata"], dict)
    # custom resources: printer columns over poisoned objects
    columns = [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
               {"name": "Count", "type": "integer", "jsonPath": ".spec.replicas"},
               {"name": "Since", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    table = tables.table("Widget", "example.com", [*bad, good], list_meta={}, printer_columns=columns, now=NOW)
    assert table["rows"][-1]["cells"][0] == "the-good-one"
    json.dumps(table)


@pytest.mark.parametrize("plural", ["nodes", "pods"])
def test_kubectl_tables_leave_malformed_objects_out_and_name_them(plural: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    resource = Registry().get("", "v1", plural)
    assert resource is not None
    sample = NODE if plural == "nodes" else POD
    good = copy.deepcopy(sample)
    good["metadata"]["name"] = "the-good-one"
    bad = copy.deepcopy(sample)
    bad["metadata"]["name"] = "the-bad-one"
    bad["status"]["conditions"] = "poison"
    items = [json.dumps(bad), json.dumps(good), '"a string"', "[1]", json.dumps({"metadata": "x"})]
    table = views.table_for(resource, "application/json;as=Table;v=v1;g=meta.k8s.io", {}, items, {"resourceVersion": "5"})
    assert table is not None and [row["cells"][0] for row in table["rows"]] == ["the-good-one"]
    assert "the-bad-one" in caplog.text and "cannot unmarshal string into Go struct field" in caplog.text
    transform = views.watch_table_transform(resource, "application/json;as=Table;v=v1;g=meta.k8s.io", {})
    assert transform is not None
    assert transform(json.dumps({"type": "MODIFIED", "object": bad}).encode()) == b""
    assert json.loads(transform(json.dumps({"type": "ADDED", "object": good}).encode()))["object"]["rows"]
