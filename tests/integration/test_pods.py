"""Pods at the edge on a real containerd: Edged driven through the real MetaManager.

Each test runs, in its own event loop, a beehive Context with our real MetaManager and Edged
and a stand-in for EdgeHub (module ``websocket``) that answers as the cloud does (upstream's
reply shapes: podpatch -> ``{"Object", "Err"}``, configmap query -> the bare object, pod
delete -> ``"OK"``) and records every request. Cloud pushes go to MetaManager as EdgeHub hands them over
(``edgecontroller/resource insert|update|delete <ns>/pod/<name>``); MetaManager commits them and
forwards them to Edged (``metamanager/meta``, content the object).
Everything a test creates is labelled with its own node name and removed through CRI at the end.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cores.beehive import Context, Message, ModuleRunner
from cores.common import layout as layouts
from cores.common.config import Config
from cores.edge.cri import CriClient, api, labels_for_node
from cores.edge.edged import Edged
from cores.edge.metamanager import MetaManager
from cores.runtime import BUSYBOX_IMAGE, Containerd
from tests.timeouts import scaled

pytestmark = pytest.mark.slow
SERVE_FOREVER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


class FakeCloud:
    """Module ``websocket``: answers MetaManager's remote requests like cloudcore, records them."""

    name = "websocket"
    group = "hub"

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}     # "<ns>/<kind>/<name>" -> object the cloud has
        self.statuses: dict[str, dict[str, Any]] = {}    # "<ns>/<name>" -> last reported status
        self.patches: list[dict[str, Any]] = []
        self.deletes: list[tuple[str, Any]] = []
        self.token_requests: list[tuple[str, dict[str, Any]]] = []  # (resource, TokenRequest) asked for
        self.created_pods: list[dict[str, Any]] = []  # pods the node created: mirror pods
        self.events: list[tuple[str, Any]] = []  # (operation, content) of the events the node reported

    async def start(self, ctx: Context) -> None:
        while True:
            message = await ctx.receive(self.name)
            if message.parent_msg_id:
                continue  # acks
            if "/event/" in message.route.resource:
                self.events.append((message.route.operation, message.content))
                continue  # upstream's cloud does not reply to events
            # as EdgeHub hands a cloud reply over: to MetaManager, which finishes the request
            await ctx.send_to_group("meta", message.response(self.answer(message)))

    def answer(self, message: Message) -> Any:
        route = message.route
        namespace, kind, name = (route.resource.split("/") + ["", "", ""])[:3]
        if route.operation == "patch" and kind == "podpatch":
            patch = json.loads(message.content)
            self.patches.append(patch)
            self.statuses[f"{namespace}/{name}"] = patch["status"]
            pod = copy.deepcopy(self.objects.get(f"{namespace}/pod/{name}") or {"metadata": {"name": name, "namespace": namespace}})
            pod["status"] = {k: v for k, v in patch["status"].items() if not k.startswith("$")}
            return {"Object": pod, "Err": None}
        if route.operation == "delete" and kind == "pod":
            self.deletes.append((route.resource, message.content))
            return "OK"
        if route.operation == "query" and kind in ("configmap", "secret"):
            found = self.objects.get(route.resource)
            return found if found is not None else {"ErrStatus": {"status": "Failure", "reason": "NotFound", "code": 404,
                                                                  "message": f'{kind}s "{name}" not found'}}
        if route.operation == "query" and kind == "serviceaccounttoken":
            request = copy.deepcopy(message.content)
            self.token_requests.append((route.resource, request))
            lifetime = int(request["spec"]["expirationSeconds"])
            expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime)
            request["status"] = {"token": f"token-{len(self.token_requests)}", "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
            return request  # upstream's reply: the filled TokenRequest itself
        if route.operation == "query":
            return {"Object": None, "Err": {"ErrStatus": {"status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}}}
        content = message.content if isinstance(message.content, dict) else {}
        body = copy.deepcopy(content)
        body.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
        if route.operation == "insert" and kind == "pod":
            self.created_pods.append(body)
            self.objects[route.resource] = body
        return {"Object": body, "Err": None}


class Edge:
    """One in-process EdgeCore (MetaManager + Edged + the stand-in cloud link)."""

    def __init__(self, base: Path, node: str, endpoint: str) -> None:
        self.node = node
        self.base = base
        layout = layouts.Layout(base / "etc", base / "var", base / "log")
        document = layouts.edgecore_document(layout, node_name=node, cloud_host="127.0.0.1", token="",
                                             node_ip="127.0.0.1", runtime_endpoint=endpoint)
        document["modules"]["edged"]["tailoredKubeletConfig"]["fileCheckFrequency"] = "1s"
        document["modules"]["edged"]["reportEvent"] = True
        self.manifests = Path(document["modules"]["edged"]["tailoredKubeletConfig"]["staticPodPath"])
        self.config = Config(document, str(layout.edgecore_config))
        self.root = Path(document["modules"]["edged"]["rootDirectory"])
        self.endpoint = endpoint
        self.cloud = FakeCloud()
        self.ctx = Context()
        self.edged = Edged(self.config)
        self.metamanager = MetaManager(self.config)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, connected: bool = True) -> None:
        runner = ModuleRunner(self.ctx, [self.cloud, self.metamanager, self.edged])
        self._task = asyncio.create_task(runner.run(self._stop))
        await asyncio.sleep(0.05)
        if connected:
            await self.set_connected(True)

    async def set_connected(self, connected: bool) -> None:
        content = "cloud_connected" if connected else "cloud_disconnected"
        for module in ("metamanager", "edged"):
            await self.ctx.send(module, Message.new(source="edgehub", group="", operation="connect",
                                                    resource="node/connection", content=content))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, scaled(30))

    async def push(self, operation: str, obj: dict[str, Any]) -> None:
        """A cloud push as EdgeHub hands it to MetaManager, which commits it, acks it and forwards it to Edged."""
        meta = obj["metadata"]
        kind = {"Pod": "pod", "ConfigMap": "configmap", "Secret": "secret"}[obj["kind"]]
        resource = f"{meta['namespace']}/{kind}/{meta['name']}"
        if operation == "delete":
            self.cloud.objects.pop(resource, None)
        else:
            self.cloud.objects[resource] = obj
        await self.ctx.send("metamanager", Message.new(source="edgecontroller", group="resource", operation=operation,
                                                       resource=resource, content=obj, resource_version=meta.get("resourceVersion", "")))

    def status(self, pod: dict[str, Any]) -> dict[str, Any]:
        return self.cloud.statuses.get(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}", {})

    async def wait_status(self, pod: dict[str, Any], check: Callable[[dict[str, Any]], bool], timeout: float = 20,
                          what: str = "") -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + scaled(timeout)
        while asyncio.get_running_loop().time() < deadline:
            status = self.status(pod)
            try:
                if status and check(status):
                    return status
            except (KeyError, IndexError, TypeError):
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"status of {pod['metadata']['name']} never {what or 'matched'}: {json.dumps(self.status(pod), indent=1)}")


def make_pod(node: str, name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4()), "resourceVersion": "1",
                     "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": name}},
        "spec": {"containers": [{"image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": SERVE_FOREVER,
                                 "terminationMessagePath": "/dev/termination-log", **c} for c in containers],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 5, "nodeName": node,
                 "dnsPolicy": "ClusterFirst", "hostNetwork": True, **spec},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def deleting(pod: dict[str, Any], grace: int = 5) -> dict[str, Any]:
    doomed = copy.deepcopy(pod)
    doomed["metadata"].update(deletionTimestamp="2026-01-01T00:10:00Z", deletionGracePeriodSeconds=grace, resourceVersion="9")
    return doomed


def container(status: dict[str, Any], name: str = "main") -> dict[str, Any]:
    return next(c for c in status["containerStatuses"] if c["name"] == name)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


async def node_containers(endpoint: str, node: str, uid: str | None = None) -> list[api.Container]:
    labels = labels_for_node(node) | ({"io.kubernetes.pod.uid": uid} if uid else {})
    async with CriClient(endpoint) as cri:
        return await cri.list_containers(labels=labels)


async def remove_node_pods(endpoint: str, node: str) -> None:
    async with CriClient(endpoint, timeout=scaled(30)) as cri:
        for item in await cri.list_containers(labels=labels_for_node(node)):
            try:
                await cri.stop_container(item.id, 0)
            except Exception:  # noqa: BLE001 - best effort
                pass
            await cri.remove_container(item.id)
        for sandbox in await cri.list_pod_sandbox(labels=labels_for_node(node)):
            await cri.stop_pod_sandbox(sandbox.id)
            await cri.remove_pod_sandbox(sandbox.id)


async def exec_in(endpoint: str, container_id: str, *cmd: str) -> str:
    async with CriClient(endpoint) as cri:
        result = await cri.exec_sync(container_id, list(cmd), timeout=10)
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode()


@pytest.fixture()
async def edge(tmp_path: Path, containerd: Containerd) -> AsyncIterator[Edge]:
    node = f"pods-{uuid.uuid4().hex[:6]}"
    instance = Edge(tmp_path / node, node, containerd.endpoint)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()
        await remove_node_pods(containerd.endpoint, node)


def cid(status: dict[str, Any], name: str = "main") -> str:
    return container(status, name)["containerID"].removeprefix("containerd://")


# -- tests -------------------------------------------------------------------------------------------

async def test_busybox_pod_runs_ready_then_graceful_delete_removes_everything(edge: Edge) -> None:
    pod = make_pod(edge.node, "busy", [{"name": "main"}])
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: s["phase"] == "Running" and condition(s, "Ready")["status"] == "True",
                                    what="Running/Ready")
    main = container(status)
    assert main["ready"] is True and main["started"] is True and main["restartCount"] == 0
    assert main["state"]["running"]["startedAt"].endswith("Z") and main["lastState"] == {}
    assert main["image"] == BUSYBOX_IMAGE and main["imageID"].startswith("sha256:")
    assert main["containerID"].startswith("containerd://")
    assert status["podIP"] == status["hostIP"] == "127.0.0.1" and status["podIPs"] == [{"ip": "127.0.0.1"}]
    assert [c["type"] for c in status["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                        "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in status["conditions"])
    assert status["$setElementOrder/conditions"] == [{"type": c["type"]} for c in status["conditions"]]
    first = edge.cloud.patches[0]
    assert first["metadata"] == {"uid": pod["metadata"]["uid"]}

    labels = (await node_containers(edge.endpoint, edge.node, pod["metadata"]["uid"]))[0].labels
    assert labels["io.kubernetes.pod.name"] == "busy" and labels["io.kubernetes.pod.namespace"] == "default"
    assert labels["io.kubernetes.container.name"] == "main" and labels["kubeedge.io/node-name"] == edge.node

    # graceful delete: the cloud's update carries deletionTimestamp; the trap makes it exit 0 at once
    started = asyncio.get_running_loop().time()
    await edge.push("update", deleting(pod, grace=5))
    status = await edge.wait_status(pod, lambda s: s["phase"] == "Succeeded", what="Succeeded")
    assert container(status)["state"]["terminated"]["exitCode"] == 0
    assert condition(status, "Ready")["reason"] == "PodCompleted"
    deadline = started + scaled(10)
    while not edge.cloud.deletes and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert edge.cloud.deletes == [("default/pod/busy", {"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}})]
    assert asyncio.get_running_loop().time() - started < 5, "stopped within the grace period"

    await edge.push("delete", deleting(pod))
    while await node_containers(edge.endpoint, edge.node, pod["metadata"]["uid"]):
        assert asyncio.get_running_loop().time() < deadline, "containers not removed"
        await asyncio.sleep(0.2)
    async with CriClient(edge.endpoint) as cri:
        assert not await cri.list_pod_sandbox(labels=labels_for_node(edge.node))
    assert not (edge.root / "pods" / pod["metadata"]["uid"]).exists()


async def test_configmap_secret_volumes_env_and_update(edge: Edge) -> None:
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cfg", "namespace": "default"},
          "data": {"greeting": "hello", "other": "x"}}
    secret = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "sec", "namespace": "default"},
              "type": "Opaque", "data": {"password": "czNjcjN0"}}  # s3cr3t
    edge.cloud.objects["default/configmap/cfg"] = cm   # known to the cloud only: Edged queries it
    await edge.push("update", secret)
    pod = make_pod(edge.node, "vols", [{
        "name": "main",
        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "BOTH", "value": "$(GREETING)-$(POD)"}],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/sec"},
                         {"name": "info", "mountPath": "/etc/info"}, {"name": "scratch", "mountPath": "/scratch"},
                         {"name": "all", "mountPath": "/etc/all"}],
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
    }], hostNetwork=False, volumes=[
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 256}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                                   {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}}]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "all", "projected": {"sources": [{"configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "g"}]}},
                                                  {"secret": {"name": "sec"}},
                                                  {"serviceAccountToken": {"path": "token"}}]}},
    ])
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: container(s)["ready"], what="ready")
    ident = cid(status)
    assert status["podIP"] and status["podIP"] != "127.0.0.1" and status["hostIP"] == "127.0.0.1"
    assert (await exec_in(edge.endpoint, ident, "cat", "/etc/cfg/greeting")) == "hello"
    assert (await exec_in(edge.endpoint, ident, "cat", "/etc/sec/password")) == "s3cr3t"
    assert (await exec_in(edge.endpoint, ident, "cat", "/etc/all/g", "/etc/all/password")) == "hellos3cr3t"
    assert (await exec_in(edge.endpoint, ident, "cat", "/etc/all/token")) == "token-1"
    assert (await exec_in(edge.endpoint, ident, "cat", "/etc/info/uid")) == pod["metadata"]["uid"]
    assert 'app="vols"' in await exec_in(edge.endpoint, ident, "cat", "/etc/info/labels")
    env = await exec_in(edge.endpoint, ident, "env")
    for line in ("PASSWORD=s3cr3t", "GREETING=hello", "POD=vols", f"NODE={edge.node}", f"IP={status['podIP']}",
                 "BOTH=hello-vols", "CFG_other=x"):
        assert line in env.splitlines(), line
    await exec_in(edge.endpoint, ident, "sh", "-c", "echo ok > /scratch/f")
    assert (edge.root / "pods" / pod["metadata"]["uid"] / "volumes" / "kubernetes.io~empty-dir" / "scratch" / "f").read_text() == "ok\n"
    assert (await exec_in(edge.endpoint, ident, "sh", "-c", "touch /etc/cfg/x 2>&1 || echo refused")).strip().endswith("refused")

    cm2 = copy.deepcopy(cm)
    cm2["data"]["greeting"] = "bonjour"
    await edge.push("update", cm2)
    deadline = asyncio.get_running_loop().time() + scaled(10)
    while (await exec_in(edge.endpoint, ident, "cat", "/etc/cfg/greeting")) != "bonjour":
        assert asyncio.get_running_loop().time() < deadline, "ConfigMap update never reached the mounted file"
        await asyncio.sleep(0.2)
    assert (await exec_in(edge.endpoint, ident, "cat", "/etc/all/g")) == "bonjour"
    assert cid(edge.status(pod)) == ident, "the container was not restarted for a ConfigMap update"


async def test_projected_service_account_token_bound_to_the_pod_and_renewed(edge: Edge) -> None:
    pod = make_pod(edge.node, "tokens", [{"name": "main", "volumeMounts": [{"name": "api", "mountPath": "/var/run/secrets/api"}]}],
                   serviceAccountName="robot", volumes=[{"name": "api", "projected": {"defaultMode": 420, "sources": [
                       {"serviceAccountToken": {"path": "token", "expirationSeconds": 10}},
                       {"serviceAccountToken": {"path": "vault-token", "audience": "vault", "expirationSeconds": 600}}]}}])
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: container(s)["ready"], what="ready")
    ident = cid(status)
    resources = {resource for resource, _ in edge.cloud.token_requests}
    assert resources == {"default/serviceaccounttoken/robot"}
    specs = sorted((r["spec"] for _, r in edge.cloud.token_requests), key=lambda spec: spec["expirationSeconds"])
    bound = {"kind": "Pod", "apiVersion": "v1", "name": "tokens", "uid": pod["metadata"]["uid"]}
    assert specs[0] == {"expirationSeconds": 10, "boundObjectRef": bound}
    assert specs[1] == {"expirationSeconds": 600, "audiences": ["vault"], "boundObjectRef": bound}
    first = await exec_in(edge.endpoint, ident, "cat", "/var/run/secrets/api/token")
    vault = await exec_in(edge.endpoint, ident, "cat", "/var/run/secrets/api/vault-token")
    assert first.startswith("token-") and vault.startswith("token-") and first != vault

    # 10 s tokens are renewed in their last 20%: the mounted file changes, the container stays
    deadline = asyncio.get_running_loop().time() + scaled(20)
    while (await exec_in(edge.endpoint, ident, "cat", "/var/run/secrets/api/token")) == first:
        assert asyncio.get_running_loop().time() < deadline, "the projected token was never renewed"
        await asyncio.sleep(0.5)
    assert (await exec_in(edge.endpoint, ident, "cat", "/var/run/secrets/api/vault-token")) == vault
    assert cid(edge.status(pod)) == ident and container(edge.status(pod))["restartCount"] == 0


async def test_an_expired_token_with_the_cloud_away_holds_nothing_up(edge: Edge) -> None:
    pod = make_pod(edge.node, "offline-token", [{"name": "main", "volumeMounts": [{"name": "api", "mountPath": "/var/run/api"}]}],
                   volumes=[{"name": "api", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 4}}]}}])
    await edge.push("insert", pod)
    ident = cid(await edge.wait_status(pod, lambda s: container(s)["ready"], what="ready"))
    await edge.set_connected(False)
    await asyncio.sleep(6)  # the token has expired and cannot be renewed
    await exec_in(edge.endpoint, ident, "kill", "-TERM", "1")  # exits 0; restartPolicy Always restarts it
    deadline = asyncio.get_running_loop().time() + scaled(20)
    while True:
        running = [c for c in await node_containers(edge.endpoint, edge.node, pod["metadata"]["uid"])
                   if c.state == api.CONTAINER_RUNNING and c.metadata.name == "main"]
        if running and running[0].id != ident:
            break
        assert asyncio.get_running_loop().time() < deadline, "the container was not restarted while the token could not be renewed"
        await asyncio.sleep(0.3)
    assert (await exec_in(edge.endpoint, running[0].id, "cat", "/var/run/api/token")).startswith("token-"), "the last token stays mounted"


async def test_static_pod_runs_from_its_manifest_and_shows_as_a_mirror_pod(edge: Edge) -> None:
    node = edge.node
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {"hostNetwork": True, "terminationGracePeriodSeconds": 2,
                         "containers": [{"name": "main", "image": BUSYBOX_IMAGE, "command": SERVE_FOREVER}]}}
    edge.manifests.mkdir(parents=True, exist_ok=True)
    (edge.manifests / "web.yaml").write_text(yaml.safe_dump(manifest))
    name = f"web-{node}"

    def mirrors() -> list[dict[str, Any]]:
        return [p for p in edge.cloud.created_pods if p["metadata"]["name"] == name]

    async def reported_to(uid: str) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + scaled(20)
        while True:
            found = [p for p in edge.cloud.patches if p["metadata"]["uid"] == uid and p["status"].get("phase") == "Running"
                     and condition(p["status"], "Ready")["status"] == "True"]
            if found:
                return found[-1]["status"]
            assert asyncio.get_running_loop().time() < deadline, f"no Running status reported to mirror {uid}"
            await asyncio.sleep(0.2)

    status = await reported_to(await _first(lambda: mirrors()[0]["metadata"]["uid"] if mirrors() else None))
    mirror = mirrors()[0]
    static_uid = mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"]
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.source"] == "file"
    assert mirror["spec"]["nodeName"] == node and mirror["metadata"]["namespace"] == "default"
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node" and mirror["metadata"]["ownerReferences"][0]["name"] == node
    running = await node_containers(edge.endpoint, node, static_uid)
    assert len(running) == 1 and cid(status) == running[0].id

    # the cloud sends the mirror back: never run as a pod of its own
    await edge.push("insert", mirror)
    await asyncio.sleep(2)
    assert len(await node_containers(edge.endpoint, node)) == 1

    # deleted in the cloud: the mirror comes back, the static pod's container stays
    await edge.push("delete", mirror)
    second = await _first(lambda: mirrors()[1]["metadata"]["uid"] if len(mirrors()) > 1 else None)
    await reported_to(second)
    assert [c.id for c in await node_containers(edge.endpoint, node)] == [running[0].id]

    # the manifest changes: a new pod replaces the old one, and its outdated mirror is deleted
    manifest["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": "2"}]
    (edge.manifests / "web.yaml").write_text(yaml.safe_dump(manifest))
    third = await _first(lambda: mirrors()[2]["metadata"]["uid"] if len(mirrors()) > 2 else None)
    new_uid = mirrors()[2]["metadata"]["annotations"]["kubernetes.io/config.mirror"]
    assert new_uid != static_uid
    assert ("default/pod/" + name, {"gracePeriodSeconds": 0, "preconditions": {"uid": second}}) in edge.cloud.deletes
    await reported_to(third)
    replaced = await node_containers(edge.endpoint, node, new_uid)
    assert len(replaced) == 1 and "VERSION=2" in (await exec_in(edge.endpoint, replaced[0].id, "env")).splitlines()
    deadline = asyncio.get_running_loop().time() + scaled(15)
    while await node_containers(edge.endpoint, node, static_uid):
        assert asyncio.get_running_loop().time() < deadline, "the old static pod's container was not removed"
        await asyncio.sleep(0.2)

    # the manifest is removed: the pod stops and its mirror is deleted
    (edge.manifests / "web.yaml").unlink()
    deadline = asyncio.get_running_loop().time() + scaled(15)
    while await node_containers(edge.endpoint, node) or ("default/pod/" + name, {"gracePeriodSeconds": 0, "preconditions": {"uid": third}}) not in edge.cloud.deletes:
        assert asyncio.get_running_loop().time() < deadline, "static pod or its mirror outlived the manifest"
        await asyncio.sleep(0.2)


async def _first(probe: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while (value := probe()) is None:
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)
    return value


async def test_changed_container_spec_restarts_that_container_only(edge: Edge) -> None:
    pod = make_pod(edge.node, "setimage", [{"name": "main"}, {"name": "side"}], restartPolicy="Never")
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: all(c["ready"] for c in s["containerStatuses"]), what="ready")
    main, side = cid(status, "main"), cid(status, "side")
    changed = copy.deepcopy(pod)
    changed["metadata"]["resourceVersion"] = "2"
    changed["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": "2"}]  # as `kubectl set image` changes image
    await edge.push("update", changed)
    status = await edge.wait_status(pod, lambda s: container(s, "main")["restartCount"] == 1 and container(s, "main")["ready"],
                                    what="main restarted with the new spec")
    assert cid(status, "main") != main and cid(status, "side") == side and container(status, "side")["restartCount"] == 0
    assert container(status, "main")["lastState"]["terminated"]["exitCode"] == 0
    assert "VERSION=2" in (await exec_in(edge.endpoint, cid(status, "main"), "env")).splitlines()
    await asyncio.sleep(2)
    assert cid(edge.status(pod), "main") == cid(status, "main"), "restarted once, not again"


async def test_termination_messages_from_the_file_and_from_the_logs(edge: Edge) -> None:
    pod = make_pod(edge.node, "lastwords", [
        {"name": "file", "command": ["sh", "-c", "printf 'saved the world' > /dev/termination-log; exit 3"]},
        {"name": "custom", "terminationMessagePath": "/tmp/why", "command": ["sh", "-c", "echo disk full > /tmp/why; exit 0"]},
        {"name": "logs", "terminationMessagePolicy": "FallbackToLogsOnError", "command": ["sh", "-c", "echo starting >&2; echo oops >&2; exit 1"]},
        {"name": "quiet", "terminationMessagePolicy": "FallbackToLogsOnError", "command": ["sh", "-c", "echo fine; exit 0"]},
    ], restartPolicy="Never")
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: s["phase"] == "Failed", what="Failed")
    terminated = {c["name"]: c["state"]["terminated"] for c in status["containerStatuses"]}
    assert terminated["file"]["message"] == "saved the world" and terminated["file"]["exitCode"] == 3
    assert terminated["custom"]["message"] == "disk full\n"
    assert terminated["logs"]["message"] == "starting\noops\n" and terminated["logs"]["reason"] == "Error"
    assert "message" not in terminated["quiet"], "logs are only the fallback after a failure"


async def test_fs_group_owns_the_volumes_and_joins_the_containers_groups(edge: Edge) -> None:
    secret = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "owned", "namespace": "default"},
              "type": "Opaque", "data": {"password": "czNjcjN0"}}
    await edge.push("update", secret)
    pod = make_pod(edge.node, "fsgroup", [{"name": "main", "volumeMounts": [{"name": "sec", "mountPath": "/etc/sec"},
                                                                           {"name": "scratch", "mountPath": "/scratch"}]}],
                   securityContext={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000, "supplementalGroups": [3000]},
                   volumes=[{"name": "sec", "secret": {"secretName": "owned", "defaultMode": 0o400}},
                            {"name": "scratch", "emptyDir": {}}])
    await edge.push("insert", pod)
    ident = cid(await edge.wait_status(pod, lambda s: container(s)["ready"], what="ready"))
    assert (await exec_in(edge.endpoint, ident, "id", "-u")).strip() == "1000"
    assert {"1000", "2000", "3000"} <= set((await exec_in(edge.endpoint, ident, "id", "-G")).split())
    # mode 0400 for root alone, but group 2000 may read it: that is what fsGroup is for
    assert (await exec_in(edge.endpoint, ident, "cat", "/etc/sec/password")) == "s3cr3t"
    await exec_in(edge.endpoint, ident, "sh", "-c", "echo x > /scratch/made")
    assert (await exec_in(edge.endpoint, ident, "stat", "-c", "%g", "/scratch/made")).strip() == "2000", "setgid directory"


async def test_sidecar_init_containers_run_beside_the_app(edge: Edge) -> None:
    sidecar = {"name": "proxy", "restartPolicy": "Always", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
               "command": SERVE_FOREVER, "terminationMessagePath": "/dev/termination-log"}
    setup = {"name": "setup", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["true"],
             "terminationMessagePath": "/dev/termination-log"}
    pod = make_pod(edge.node, "sidecars", [{"name": "main"}], initContainers=[sidecar, setup])
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: s["phase"] == "Running" and condition(s, "Ready")["status"] == "True",
                                    what="Running/Ready")
    inits = {c["name"]: c for c in status["initContainerStatuses"]}
    assert "running" in inits["proxy"]["state"] and inits["proxy"]["started"] and inits["proxy"]["ready"]
    assert inits["setup"]["state"]["terminated"]["reason"] == "Completed"
    assert condition(status, "Initialized")["status"] == "True"
    main = cid(status)

    # the sidecar exits: restarted beside the app, which keeps running
    await exec_in(edge.endpoint, inits["proxy"]["containerID"].removeprefix("containerd://"), "kill", "-TERM", "1")
    status = await edge.wait_status(pod, lambda s: next(c for c in s["initContainerStatuses"] if c["name"] == "proxy")["restartCount"] == 1
                                    and "running" in next(c for c in s["initContainerStatuses"] if c["name"] == "proxy")["state"],
                                    what="sidecar restarted")
    assert cid(status) == main and status["phase"] == "Running"

    # a finished app (restartPolicy Never) ends the pod; its sidecar is stopped
    job = make_pod(edge.node, "sidecar-job", [{"name": "main", "command": ["sh", "-c", "sleep 1"]}],
                   initContainers=[sidecar], restartPolicy="Never")
    await edge.push("insert", job)
    status = await edge.wait_status(job, lambda s: s["phase"] == "Succeeded", what="Succeeded")
    await edge.wait_status(job, lambda s: "terminated" in s["initContainerStatuses"][0]["state"], what="sidecar stopped")
    running = [c for c in await node_containers(edge.endpoint, edge.node, job["metadata"]["uid"]) if c.state == api.CONTAINER_RUNNING]
    assert running == []


async def test_exit_1_under_always_crash_loops_with_backoff(edge: Edge) -> None:
    pod = make_pod(edge.node, "crash", [{"name": "main", "command": ["sh", "-c", "echo bye; exit 1"]}])
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: container(s)["restartCount"] >= 2 and
                                    container(s)["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff",
                                    timeout=30, what="CrashLoopBackOff with restartCount >= 2")
    main = container(status)
    assert main["lastState"]["terminated"]["exitCode"] == 1 and main["lastState"]["terminated"]["reason"] == "Error"
    assert "back-off 20s restarting failed container=main" in main["state"]["waiting"]["message"]
    assert status["phase"] == "Running" and condition(status, "Ready")["status"] == "False"
    # only the latest dead instance is kept, for lastState
    assert len(await node_containers(edge.endpoint, edge.node, pod["metadata"]["uid"])) <= 2
    # what kubectl describe shows: kubelet's events, repeats counted
    inserted = [e for op, e in edge.cloud.events if op == "insert" and e["involvedObject"].get("uid") == pod["metadata"]["uid"]]
    reasons = [(e["type"], e["reason"], e["message"]) for e in inserted]
    assert reasons[:3] == [("Normal", "Pulled", f'Container image "{BUSYBOX_IMAGE}" already present on machine'),
                           ("Normal", "Created", "Created container: main"), ("Normal", "Started", "Started container main")]
    back_off = next(e for e in inserted if e["reason"] == "BackOff")
    assert back_off["type"] == "Warning" and back_off["message"].startswith("Back-off restarting failed container main in pod crash_default(")
    assert back_off["involvedObject"] == {"kind": "Pod", "namespace": "default", "name": "crash", "uid": pod["metadata"]["uid"],
                                          "apiVersion": "v1", "fieldPath": "spec.containers{main}"}
    assert back_off["source"] == {"component": "kubelet", "host": edge.node} and back_off["count"] == 1
    assert back_off["metadata"]["namespace"] == "default" and back_off["metadata"]["name"].startswith("crash.")
    assert len([r for r in reasons if r[1] == "Started"]) == 1, "a repeat is a patch of the first event, not a new one"
    repeats = [e for op, e in edge.cloud.events if op == "patch" and e["event"]["reason"] == "Started"]
    assert repeats and json.loads(repeats[0]["patchData"])["count"] >= 2


async def test_restart_policies_never_and_onfailure(edge: Edge) -> None:
    never = make_pod(edge.node, "never", [{"name": "main", "command": ["sh", "-c", "exit 3"]}], restartPolicy="Never")
    done = make_pod(edge.node, "done", [{"name": "main", "command": ["true"]}], restartPolicy="OnFailure")
    await edge.push("insert", never)
    await edge.push("insert", done)
    status = await edge.wait_status(never, lambda s: s["phase"] == "Failed", what="Failed")
    assert container(status)["state"]["terminated"]["exitCode"] == 3 and container(status)["restartCount"] == 0
    status = await edge.wait_status(done, lambda s: s["phase"] == "Succeeded", what="Succeeded")
    assert container(status)["state"]["terminated"]["reason"] == "Completed"


async def test_liveness_restarts_and_readiness_keeps_unready(edge: Edge) -> None:
    pod = make_pod(edge.node, "probed", [
        {"name": "sick", "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2}},
        {"name": "shy", "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1}},
        {"name": "fine", "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
         "livenessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 60, "initialDelaySeconds": 60}},
    ], terminationGracePeriodSeconds=2)
    await edge.push("insert", pod)
    status = await edge.wait_status(pod, lambda s: container(s, "sick")["restartCount"] >= 1, timeout=30, what="sick restarted")
    assert container(status, "sick")["lastState"]["terminated"]["containerID"] != container(status, "sick").get("containerID")
    status = await edge.wait_status(pod, lambda s: container(s, "fine")["ready"], what="fine ready")
    assert container(status, "shy")["ready"] is False and container(status, "shy")["state"].get("running")
    assert container(status, "shy")["restartCount"] == 0
    assert condition(status, "Ready")["status"] == "False" and condition(status, "ContainersReady")["status"] == "False"
    assert "shy" in condition(status, "Ready")["message"] and status["phase"] == "Running"


async def test_missing_image_and_init_containers(edge: Edge) -> None:
    never = make_pod(edge.node, "noimage", [{"name": "main", "image": "localhost/nothing:here"}])
    pulled = make_pod(edge.node, "nopull", [{"name": "main", "image": "localhost/nothing:here", "imagePullPolicy": "IfNotPresent"}])
    init = make_pod(edge.node, "inits", [{"name": "main", "command": ["sh", "-c", "cat /work/order; " + SERVE_FOREVER[2]]}],
                    initContainers=[{"name": "one", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", "echo one >> /work/order"], "volumeMounts": [{"name": "w", "mountPath": "/work"}]},
                                    {"name": "two", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", "echo two >> /work/order"], "volumeMounts": [{"name": "w", "mountPath": "/work"}]}],
                    volumes=[{"name": "w", "emptyDir": {}}])
    init["spec"]["containers"][0]["volumeMounts"] = [{"name": "w", "mountPath": "/work"}]
    for pod in (never, pulled, init):
        await edge.push("insert", pod)
    status = await edge.wait_status(never, lambda s: container(s)["state"]["waiting"]["reason"] == "ErrImageNeverPull")
    assert status["phase"] == "Pending"
    await edge.wait_status(pulled, lambda s: container(s)["state"]["waiting"]["reason"] in ("ErrImagePull", "ImagePullBackOff"))
    status = await edge.wait_status(init, lambda s: container(s)["ready"], what="main ready after inits")
    assert [c["state"]["terminated"]["exitCode"] for c in status["initContainerStatuses"]] == [0, 0]
    assert condition(status, "Initialized")["status"] == "True"
    assert (await exec_in(edge.endpoint, cid(status), "cat", "/work/order")) == "one\ntwo\n"


async def test_http_and_tcp_probes_on_loopback_and_inside_the_pod(edge: Edge) -> None:
    from tests.integration.conftest import free_port

    port = free_port()
    serve = ["sh", "-c", f"mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www"]
    http = {"httpGet": {"path": "/index.html", "port": port}, "periodSeconds": 1}
    host = make_pod(edge.node, "web-host", [{"name": "main", "command": serve, "readinessProbe": http,
                                             "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}])
    inside = make_pod(edge.node, "web-pod", [{"name": "main", "command": serve, "readinessProbe": http,
                                              "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}],
                      hostNetwork=False)
    await edge.push("insert", host)
    await edge.push("insert", inside)
    for pod in (host, inside):
        status = await edge.wait_status(pod, lambda s: container(s)["ready"], what="ready by httpGet")
        assert container(status)["restartCount"] == 0
    await asyncio.sleep(3)  # liveness (tcpSocket) keeps passing: no restart
    assert container(edge.status(host))["restartCount"] == 0 and container(edge.status(inside))["restartCount"] == 0
