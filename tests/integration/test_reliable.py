"""Reliable delivery through real CloudCore and EdgeCore processes: acks, ObjectSync, resync, NodeRestriction."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from cores.common.supervision import status
from cores.controlplane.launcher import ControlPlane
from tests.integration.edgecloud import Cloud, Core, start_cloud, start_edge
from tests.timeouts import scaled


@pytest.fixture(scope="module")
def cloud(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    core = start_cloud(tmp_path_factory.mktemp("reliable-cloud"), controlplane)
    try:
        yield core
    finally:
        core.stop()


@pytest.fixture(scope="module")
def api(controlplane: ControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def edge_node(core: client.CoreV1Api, name: str) -> None:
    """The Node of an edge whose Edged is off here (the store and the link are under test)."""
    try:
        core.create_node({"metadata": {"name": name, "labels": {"node-role.kubernetes.io/edge": ""}}})
    except client.ApiException as error:
        if error.status != 409:
            raise


def stored(edge: Core, kind: str) -> dict[str, dict[str, Any]]:
    database = edge.layout.data_dir / "edgecore.db"
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT key, value FROM meta WHERE type = ?", (kind,)).fetchall()
    return {key: json.loads(value) for key, value in rows}


def wait_until(check: Any, timeout: float, message: Any) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(message() if callable(message) else message)


def pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"test": "reliable"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "localhost/busybox:local"}], **spec}}


def test_pods_reach_their_edges_and_deletes_leave_no_objectsync(controlplane: ControlPlane, cloud: Cloud,
                                                                  api: client.ApiClient, tmp_path: Path) -> None:
    core = client.CoreV1Api(api)
    token = cloud.token(controlplane.kubeconfig)
    edges = {name: start_edge(tmp_path / name, cloud, name, token, edged=False) for name in ("rel-a", "rel-b")}
    try:
        for name in edges:
            edge_node(core, name)
        names = [f"loop-{i}" for i in range(100)]
        for index, pod_name in enumerate(names):
            core.create_namespaced_pod("default", pod(pod_name, "rel-a" if index % 2 else "rel-b"))
        for pod_name in names[::3]:
            core.delete_namespaced_pod(pod_name, "default", grace_period_seconds=0)
        expected = {
            node: {f"default/pod/{n}" for i, n in enumerate(names) if n not in names[::3] and ("rel-a" if i % 2 else "rel-b") == node}
            for node in edges
        }

        def converged() -> bool:
            return all(set(stored(edge, "pod")) == expected[node] for node, edge in edges.items())

        wait_until(converged, 60, lambda: {n: len(stored(e, "pod")) for n, e in edges.items()})
        custom = client.CustomObjectsApi(api)

        def no_stale_syncs() -> bool:
            syncs = custom.list_namespaced_custom_object("reliablesyncs.kubeedge.io", "v1alpha1", "default", "objectsyncs")["items"]
            pods = {p.metadata.uid for p in core.list_namespaced_pod("default", label_selector="test=reliable").items}
            return all(s["metadata"]["name"].rsplit(".", 1)[1] in pods for s in syncs)

        wait_until(no_stale_syncs, 30, "ObjectSyncs left for deleted pods")
    finally:
        for edge in edges.values():
            edge.stop()
        core.delete_collection_namespaced_pod("default", label_selector="test=reliable", grace_period_seconds=0)
