"""Reliable delivery through real CloudCore and EdgeCore processes: acks, ObjectSync, resync, NodeRestriction."""

from __future__ import annotations

import contextlib
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
from tests.timeouts import wait_for as wait_until


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
            # Other tests share the namespace (their pods and devices have ObjectSyncs too): this test's pods only.
            pod_syncs = [s for s in syncs if s.get("spec", {}).get("objectName") in names]
            return all(s["metadata"]["name"].rsplit(".", 1)[1] in pods for s in pod_syncs)

        wait_until(no_stale_syncs, 30, "ObjectSyncs left for deleted pods")
    finally:
        for edge in edges.values():
            edge.stop()
        core.delete_collection_namespaced_pod("default", label_selector="test=reliable", grace_period_seconds=0)


def pod_phases(core: client.CoreV1Api, selector: str) -> dict[str, str]:
    return {p.metadata.name: p.status.phase for p in core.list_namespaced_pod("default", label_selector=selector).items}


@pytest.mark.slow
def test_cloudcore_kill_9_while_pods_are_created(controlplane: ControlPlane, api: client.ApiClient, tmp_path: Path) -> None:
    """Every pod reaches its (hollow) edge exactly once and is reported Running, across a CloudCore crash."""
    from cores.common.supervision import start as start_service

    core = client.CoreV1Api(api)
    own_cloud = start_cloud(tmp_path / "cloud", controlplane)
    edge = start_edge(tmp_path / "edge", own_cloud, "rel-crash", own_cloud.token(controlplane.kubeconfig), hollow=True)
    try:
        wait_until(lambda: any(n.metadata.name == "rel-crash" for n in core.list_node().items), 30, "hollow node did not register")
        for index in range(50):
            core.create_namespaced_pod("default", pod(f"crash-{index}", "rel-crash", **{}) | {"metadata": {"name": f"crash-{index}", "labels": {"test": "crash"}}})
            if index == 20:
                pid = status(own_cloud.spec).pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda: not status(own_cloud.spec).running, 10, "cloudcore survived SIGKILL")
                own_cloud.spec.log_file.write_text("")
                start_service(own_cloud.spec, ready=lambda: "websocket server listening" in own_cloud.log())
        wait_until(lambda: set(pod_phases(core, "test=crash").values()) == {"Running"} and len(pod_phases(core, "test=crash")) == 50,
                   60, lambda: pod_phases(core, "test=crash"))
        assert len(stored(edge, "pod")) == 50
    finally:
        edge.stop()
        own_cloud.stop()
        core.delete_collection_namespaced_pod("default", label_selector="test=crash", grace_period_seconds=0)


@pytest.mark.slow
def test_link_cut_while_things_change(controlplane: ControlPlane, cloud: Cloud, api: client.ApiClient, tmp_path: Path) -> None:
    from tests.integration.tcp_proxy import TcpProxy

    core = client.CoreV1Api(api)
    cut_seconds = float(os.environ.get("KUBEEDGE_CUT_SECONDS", "60"))
    proxy = TcpProxy(cloud.websocket_port).start()
    edge = start_edge(tmp_path, cloud, "rel-cut", cloud.token(controlplane.kubeconfig), edged=False, websocket_port=proxy.port)
    try:
        edge_node(core, "rel-cut")
        core.create_namespaced_config_map("default", {"metadata": {"name": "cut-cm", "labels": {"test": "cut"}}, "data": {"v": "1"}})
        volume = [{"name": "cfg", "configMap": {"name": "cut-cm"}}]
        for name in ("cut-keep", "cut-change", "cut-gone"):
            core.create_namespaced_pod("default", {"metadata": {"name": name, "labels": {"test": "cut"}},
                                                   "spec": {"nodeName": "rel-cut", "volumes": volume,
                                                            "containers": [{"name": "c", "image": "localhost/busybox:local"}]}})
        wait_until(lambda: len(stored(edge, "pod")) == 3, 30, "pods did not arrive before the cut")
        proxy.reset_all()
        core.patch_namespaced_config_map("cut-cm", "default", {"data": {"v": "2"}})
        core.patch_namespaced_pod("cut-change", "default", {"metadata": {"labels": {"changed": "yes"}}})
        core.delete_namespaced_pod("cut-gone", "default", grace_period_seconds=0)
        core.create_namespaced_pod("default", {"metadata": {"name": "cut-new", "labels": {"test": "cut"}},
                                               "spec": {"nodeName": "rel-cut", "containers": [{"name": "c", "image": "x"}]}})
        time.sleep(cut_seconds)
        proxy.restore()

        def healed() -> bool:
            pods = stored(edge, "pod")
            configmaps = stored(edge, "configmap")
            return (set(pods) == {"default/pod/cut-keep", "default/pod/cut-change", "default/pod/cut-new"}
                    and pods["default/pod/cut-change"]["metadata"]["labels"].get("changed") == "yes"
                    and configmaps.get("default/configmap/cut-cm", {}).get("data") == {"v": "2"})

        wait_until(healed, 60, lambda: (sorted(stored(edge, "pod")), stored(edge, "configmap")))
    finally:
        edge.stop()
        proxy.stop()
        core.delete_collection_namespaced_pod("default", label_selector="test=cut", grace_period_seconds=0)
        core.delete_collection_namespaced_config_map("default", label_selector="test=cut")


def speak_as(cloud: Cloud, edge: Any, node: str, request: Any, reply_timeout: float = 10) -> Any:
    """Send one request over the node's own mTLS link, as its EdgeCore would; the content of the cloud's reply."""
    import asyncio
    import ssl

    import websockets

    from cores.wire import decode, encode

    paths = edge.layout.certificate_paths()
    context = ssl.create_default_context(cafile=paths["ca"])
    context.check_hostname = False
    context.load_cert_chain(paths["cert"], paths["key"])

    async def ask() -> Any:
        async with websockets.connect(
            f"wss://127.0.0.1:{cloud.websocket_port}/e632aba927ea4ac2b575ec1603d56f10/{node}/events", ssl=context,
            additional_headers=[("Connectionuse", "msg"), ("Node_id", node)], ping_interval=None,
        ) as ws:
            await ws.send(encode(request))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), scaled(reply_timeout)))
                # ack what the cloud pushes, as an edge does: its ack queue is serial per node
                await ws.send(encode(decode(json.dumps(reply)).response("OK")))
                if reply["header"].get("parent_msg_id") == request.msg_id:
                    return reply["content"]

    return asyncio.run(ask())


def test_node_restriction_for_secrets(controlplane: ControlPlane, cloud: Cloud, api: client.ApiClient, tmp_path: Path) -> None:
    from cores.beehive import Message

    core = client.CoreV1Api(api)
    edge = start_edge(tmp_path, cloud, "rel-secret", cloud.token(controlplane.kubeconfig), edged=False)
    edge.stop()  # keep its certificate; speak for it ourselves
    edge_node(core, "rel-secret")
    for name in ("mine", "theirs"):
        core.create_namespaced_secret("default", {"metadata": {"name": f"rs-{name}", "labels": {"test": "rs"}}, "stringData": {"k": name}})
    core.create_namespaced_pod("default", {"metadata": {"name": "rs-pod", "labels": {"test": "rs"}}, "spec": {
        "nodeName": "rel-secret", "containers": [{"name": "c", "image": "x", "env": [
            {"name": "K", "valueFrom": {"secretKeyRef": {"name": "rs-mine", "key": "k"}}}]}]}})

    def ask(secret: str) -> Any:
        return speak_as(cloud, edge, "rel-secret", Message.new(source="edged", group="meta", operation="query", resource=f"default/secret/{secret}"))

    try:
        time.sleep(1)  # EdgeController's pod cache sees the pod
        mine = ask("rs-mine")
        assert mine["kind"] == "Secret" and mine["metadata"]["name"] == "rs-mine"
        theirs = ask("rs-theirs")
        assert theirs["ErrStatus"]["reason"] == "Forbidden"
        assert "node rel-secret asked for query default/secret/rs-theirs, which is not its own: refused" in cloud.log()
    finally:
        core.delete_collection_namespaced_pod("default", label_selector="test=rs", grace_period_seconds=0)
        core.delete_collection_namespaced_secret("default", label_selector="test=rs")


def test_node_restriction_for_pod_creation(controlplane: ControlPlane, cloud: Cloud, api: client.ApiClient, tmp_path: Path) -> None:
    """A node may create one kind of pod: the mirror of its own static pod."""
    from cores.beehive import Message

    core = client.CoreV1Api(api)
    edge = start_edge(tmp_path, cloud, "rel-mirror", cloud.token(controlplane.kubeconfig), edged=False)
    edge.stop()
    edge_node(core, "rel-mirror")

    def create(name: str, node: str, mirror: bool) -> Any:
        annotations = {"kubernetes.io/config.mirror": "abc", "kubernetes.io/config.source": "file"} if mirror else {}
        pod = {"metadata": {"name": name, "namespace": "default", "labels": {"test": "rm"}, "annotations": annotations},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}
        return speak_as(cloud, edge, "rel-mirror", Message.new(source="edged", group="meta", operation="insert", resource=f"default/pod/{name}",
                                                 content=pod))

    try:
        created = create("rm-mine", "rel-mirror", mirror=True)
        assert created["Err"] is None and created["Object"]["metadata"]["uid"]
        assert core.read_namespaced_pod("rm-mine", "default").spec.node_name == "rel-mirror"
        assert not any(v.projected for v in core.read_namespaced_pod("rm-mine", "default").spec.volumes or []), \
            "mirror pods get no service account volume"
        for name, node, mirror in (("rm-plain", "rel-mirror", False), ("rm-other", "someone-else", True)):
            refused = create(name, node, mirror)
            assert (refused.get("Err") or {}).get("ErrStatus", {}).get("reason") == "Forbidden", (name, refused)
        assert {p.metadata.name for p in core.list_namespaced_pod("default", label_selector="test=rm").items} == {"rm-mine"}

        # events: about its own pods and itself only; no reply comes back, so the listing tells
        def report(name: str, involved: dict[str, Any]) -> None:
            event = {"metadata": {"name": name, "namespace": "default"}, "involvedObject": involved, "reason": "Started",
                     "message": "Started container c", "type": "Normal", "count": 1, "source": {"component": "kubelet"}}
            request = Message.new(source="edged", group="meta", operation="insert", resource=f"default/event/{name}", content=event)
            with contextlib.suppress(TimeoutError):
                speak_as(cloud, edge, "rel-mirror", request, reply_timeout=1)

        time.sleep(1)  # EdgeController's pod cache sees rm-mine
        report("rm-ev-mine", {"kind": "Pod", "namespace": "default", "name": "rm-mine"})
        report("rm-ev-node", {"kind": "Node", "name": "rel-mirror"})
        report("rm-ev-theirs", {"kind": "Pod", "namespace": "default", "name": "someone-elses"})
        wait_until(lambda: {"rm-ev-mine", "rm-ev-node"} <= {e.metadata.name for e in core.list_namespaced_event("default").items},
                 10, "the node's own events were not recorded")
        assert "rm-ev-theirs" not in {e.metadata.name for e in core.list_namespaced_event("default").items}
        assert "node rel-mirror reported an event about an object that is not its own: dropped" in cloud.log()
    finally:
        core.delete_collection_namespaced_pod("default", label_selector="test=rm", grace_period_seconds=0)


@pytest.mark.slow
def test_edgecore_kill_9_keeps_every_acked_object(controlplane: ControlPlane, cloud: Cloud, api: client.ApiClient,
                                                  tmp_path: Path) -> None:
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    token = cloud.token(controlplane.kubeconfig)
    edge = start_edge(tmp_path, cloud, "rel-burst", token, edged=False)
    edge_node(core, "rel-burst")
    try:
        for index in range(60):
            core.create_namespaced_pod("default", {"metadata": {"name": f"burst-{index}", "labels": {"test": "burst"}},
                                                   "spec": {"nodeName": "rel-burst", "containers": [{"name": "c", "image": "x"}]}})
        time.sleep(0.5)
        pid = status(edge.spec).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        syncs = custom.list_namespaced_custom_object("reliablesyncs.kubeedge.io", "v1alpha1", "default", "objectsyncs")["items"]
        uids = {p.metadata.uid: p.metadata.name for p in core.list_namespaced_pod("default", label_selector="test=burst").items}
        acked = {uids[s["metadata"]["name"].rsplit(".", 1)[1]] for s in syncs
                 if s["metadata"]["name"].startswith("rel-burst.") and s["metadata"]["name"].rsplit(".", 1)[1] in uids
                 and int((s.get("status") or {}).get("objectResourceVersion") or 0) > 0}
        assert acked, "nothing was acked before the kill"
        have = {key.rsplit("/", 1)[1] for key in stored(edge, "pod")}
        assert acked <= have, f"acked but not stored: {sorted(acked - have)}"
    finally:
        edge.stop()
        core.delete_collection_namespaced_pod("default", label_selector="test=burst", grace_period_seconds=0)


def test_token_queries_and_legacy_status_updates(controlplane: ControlPlane, cloud: Cloud, api: client.ApiClient,
                                                 tmp_path: Path) -> None:
    import asyncio
    import ssl

    import websockets

    from cores.beehive import Message
    from cores.wire import decode, encode

    core = client.CoreV1Api(api)
    edge = start_edge(tmp_path, cloud, "rel-token", cloud.token(controlplane.kubeconfig), edged=False)
    edge.stop()
    edge_node(core, "rel-token")
    core.create_namespaced_service_account("default", {"metadata": {"name": "rt-sa", "labels": {"test": "rt"}}})
    core.create_namespaced_pod("default", {"metadata": {"name": "rt-pod", "labels": {"test": "rt"}}, "spec": {
        "nodeName": "rel-token", "serviceAccountName": "rt-sa", "containers": [{"name": "c", "image": "x"}]}})
    paths = edge.layout.certificate_paths()
    context = ssl.create_default_context(cafile=paths["ca"])
    context.check_hostname = False
    context.load_cert_chain(paths["cert"], paths["key"])

    async def exchange(messages: list[Message], expect_reply: bool) -> Any:
        async with websockets.connect(
            f"wss://127.0.0.1:{cloud.websocket_port}/e632aba927ea4ac2b575ec1603d56f10/rel-token/events", ssl=context,
            additional_headers=[("Connectionuse", "msg"), ("Node_id", "rel-token")], ping_interval=None,
        ) as ws:
            for message in messages:
                await ws.send(encode(message))
            if not expect_reply:
                return None
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), scaled(10)))
                await ws.send(encode(decode(json.dumps(reply)).response("OK")))
                if reply["header"].get("parent_msg_id") == messages[-1].msg_id:
                    return reply["content"]

    pod_uid = core.read_namespaced_pod("rt-pod", "default").metadata.uid

    def token_query(account: str) -> Message:
        # a node may only ask for tokens bound to one of its own pods (NodeRestriction)
        bound = {"kind": "Pod", "apiVersion": "v1", "name": "rt-pod", "uid": pod_uid}
        return Message.new(source="edged", group="meta", operation="query", resource=f"default/serviceaccounttoken/{account}",
                           content={"spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 3600,
                                             "boundObjectRef": bound}})

    try:
        time.sleep(1)
        issued = asyncio.run(exchange([token_query("rt-sa")], True))
        assert issued["kind"] == "TokenRequest" and issued["status"]["token"].count(".") == 2
        refused = asyncio.run(exchange([token_query("default")], True))  # no pod of this node runs as "default"
        assert refused["ErrStatus"]["reason"] == "Forbidden"
        uid = core.read_namespaced_pod("rt-pod", "default").metadata.uid
        legacy = Message.new(source="edged", group="meta", operation="update", resource="default/podstatus/rt-pod",
                             content={"UID": uid, "Name": "rt-pod", "Status": {"phase": "Running"}})
        asyncio.run(exchange([legacy], False))
        wait_until(lambda: core.read_namespaced_pod("rt-pod", "default").status.phase == "Running", 10,
                   "legacy podstatus update not applied")
    finally:
        core.delete_collection_namespaced_pod("default", label_selector="test=rt", grace_period_seconds=0)
        core.delete_namespaced_service_account("rt-sa", "default")
