"""The node's pod set: a :class:`~cores.edge.edged.worker.PodWorker` per pod, fed by MetaManager.

:class:`PodManager` owns what is node-wide: the workers, the ConfigMap/Secret cache, projected
service account tokens, the mirror pods of static pods, back-off and events. Workers see it only
as the :class:`~cores.edge.edged.host.PodHost` they need.

Messages from MetaManager (``<ns>/pod/<name>`` insert/update/delete with the Pod JSON; ConfigMap
and Secret pushes) start, update and end workers. At start MetaManager replays every pod in
SQLite as ``insert``, so the set comes back without the cloud and each worker adopts the
sandbox and containers already running for its uid.

Like kubelet's PLEG, one node-wide relist per second (two CRI calls, whatever the number of pods)
tells which pods' sandboxes or containers changed state and wakes only their workers; otherwise a
worker looks at its pod every ``RESYNC_SECONDS``.

Housekeeping removes what this node created (label ``kubeedge.io/node-name``) for pods it no
longer has, once Edged has been up long enough for the replay to have arrived; sandboxes of
other nodes sharing the containerd are never listed, so never touched.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cores.beehive import Message
from cores.common.objects import PodView
from cores.edge.cri import POD_UID, CriClient, CriError, RuntimeUnavailable, api, labels_for_node
from cores.edge.edged import podspec, safety, static, volumes
from cores.edge.edged.backoff import Backoff
from cores.edge.edged.events import EventRecorder
from cores.edge.edged.worker import PodWorker
from cores.link.requests import CloudRequests
from cores.link.status import ALREADY_EXISTS, CONFLICT, FORBIDDEN, NOT_FOUND, RequestTimeout, StatusError

log = logging.getLogger("kubeedge.edged")

ORPHAN_GRACE_SECONDS = 30.0     # after start, before what no pod claims is removed
HOUSEKEEPING_SECONDS = 10.0
RELIST_SECONDS = 1.0
OBJECT_KINDS = ("configmap", "secret")
TOKEN_MAX_AGE_SECONDS = 24 * 3600   # kubelet renews a projected token after a day at the latest
TOKEN_REFRESH_FRACTION = 0.2        # ... or once into the last 20% of its lifetime
MIRROR_RETRY_SECONDS = 30
TOKEN_RETRY_SECONDS = 10.0          # between renewal attempts that brought nothing newer
# A mirror delete refused for these reasons is done: the mirror is gone, replaced, or no longer this node's.
MIRROR_GONE_REASONS = (NOT_FOUND, CONFLICT, FORBIDDEN)


HOLD_UPGRADE = "edge.kubeedge.io/hold-upgrade"


def held_for_upgrade(pod: dict[str, Any]) -> bool:
    """Upstream's rule: annotated hold-upgrade "true", not being deleted, and still Pending."""
    metadata: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
    annotations: dict[str, Any] = metadata["annotations"] if isinstance(metadata.get("annotations"), dict) else {}
    status: dict[str, Any] = pod["status"] if isinstance(pod.get("status"), dict) else {}
    return (annotations.get(HOLD_UPGRADE) == "true" and not metadata.get("deletionTimestamp")
            and (status.get("phase") or "Pending") == "Pending")


class PodManager:
    def __init__(self, requests: CloudRequests, cri: CriClient, *, node_name: str, node_ip: str, root_directory: str,
                 logs_root: str, report_events: bool = False, api_service: tuple[str, int] | None = None,
                 api_ca_file: str = "") -> None:
        self.api_service = api_service  # MetaServer's address: the pods' KUBERNETES_SERVICE_HOST and _PORT
        self.api_ca_file = api_ca_file  # MetaServer's CA (HTTPS): added to kube-root-ca.crt's ca.crt for pods
        self.requests = requests
        self.events = EventRecorder(requests, node_name, report_events)
        self.cri = cri
        self.node_name = node_name
        self.node_ip = node_ip
        self.root_directory = root_directory
        self.logs_root = logs_root
        self.backoff = Backoff()
        self.workers: dict[str, PodWorker] = {}             # uid -> worker
        self.objects: dict[str, dict[str, Any]] = {}        # "<ns>/<kind>/<name>" -> ConfigMap/Secret
        self.tokens: dict[tuple[str, str], dict[str, Any]] = {}  # (pod uid, token key) -> issued TokenRequest
        self.renewals: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.next_renewal: dict[tuple[str, str], float] = {}     # loop time before which no renewal is tried again
        self.mirrors: dict[str, dict[str, Any]] = {}        # "<ns>/<name>" -> mirror pod of a static pod, as the cloud has it
        self.mirror_retry: dict[str, float] = {}            # static pod uid -> loop time of the next creation after a refusal
        self.held: dict[str, dict[str, Any]] = {}           # "<ns>/<name>" -> newest version of a pod held by hold-upgrade
        self.connected = asyncio.Event()
        self.started_at = asyncio.get_running_loop().time()
        self._background: set[asyncio.Task[None]] = set()
        self._held_reports: dict[str, asyncio.Task[None]] = {}  # "<ns>/<name>" -> its HeldUpgrade report
        self.housekeeper = asyncio.create_task(self._housekeeping(), name="edged-housekeeping")
        self.relister = asyncio.create_task(self._relist(), name="edged-relist")

    def pod_labels(self, uid: str) -> dict[str, str]:
        return {**labels_for_node(self.node_name), POD_UID: uid}

    async def stop(self) -> None:
        self.housekeeper.cancel()
        self.relister.cancel()
        for renewal in self.renewals.values():
            renewal.cancel()
        for task in list(self._background):
            task.cancel()
        for worker in list(self.workers.values()):
            worker.cancel()

    # -- messages from MetaManager -----------------------------------------------------------------
    def connection(self, connected: bool) -> None:
        if connected:
            self.connected.set()
            for worker in self.workers.values():
                worker.reconnected()
        else:
            self.connected.clear()

    async def wait_connected_or(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        if self.connected.is_set():
            await asyncio.sleep(seconds)  # connected yet refused: do not spin

    def handle(self, message: Message) -> None:
        """A push from MetaManager. Whatever the cloud sent, a bad one is logged and dropped: it never
        stops Edged (a malicious response crashing the peer, CVE-2022-31077's class)."""
        try:
            self._handle(message)
        except Exception:  # noqa: BLE001 - one bad message must not stop the node's pods
            log.exception("dropped a malformed push %s", message.describe())

    def _handle(self, message: Message) -> None:
        parts = message.route.resource.split("/")
        if len(parts) != 3:
            return
        namespace, kind, name = parts
        content = message.content
        if isinstance(content, (str, bytes)):
            try:
                content = json.loads(content)
            except ValueError:
                content = None
        if kind == "pod":
            self._pod(message.route.operation, content if isinstance(content, dict) else {}, namespace, name)
        elif kind in OBJECT_KINDS:
            self._object(message.route.operation, kind, namespace, name, content if isinstance(content, dict) else None)

    def _pod(self, operation: str, pod: dict[str, Any], namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        if static.is_mirror(pod) or (operation == "delete" and key in self.mirrors):
            self._mirror(operation, key, pod)  # the cloud's view of a static pod: never run
            return
        uid = podspec.pod_uid(pod)
        node = PodView(pod).node_name
        if node and node != self.node_name:
            log.debug("pod %s/%s is bound to %s, not this node", namespace, name, node)
            return
        worker = self.workers.get(uid) if uid else None
        refusal = safety.identity_error(pod) if operation != "delete" and worker is None else ""
        if refusal:
            log.warning("pod %s/%s refused: %s", namespace, name, refusal)  # its names would become host paths
            return
        if operation == "delete":
            self.held.pop(key, None)
            if worker is None and not uid:
                worker = next((w for w in self.workers.values() if w.key == key and not w.static), None)
            if worker is not None and not worker.static:
                worker.delete()
            return
        if not uid or not isinstance(pod.get("spec"), dict) or not pod["spec"]:
            return
        if worker is not None:
            worker.update(pod)
            return
        if held_for_upgrade(pod) and not volumes.pod_dir(self.root_directory, uid).exists():
            # (a pod with a directory here ran before: unheld, then the cloud never heard of it)
            first = key not in self.held
            self.held[key] = pod  # the newest version runs once unheld
            if first:
                log.info("pod %s/%s held: annotated %s=true and still Pending (keadm ctl unhold-upgrade releases it)",
                         namespace, name, HOLD_UPGRADE)
                self._held_report(key, self._held_condition(namespace, name, uid, held=True))
            return
        self.held.pop(key, None)
        log.info("pod %s/%s (%s) added", namespace, name, uid)
        self.workers[uid] = PodWorker(self, pod)

    def unhold(self, namespace: str, name: str) -> bool:
        """Start a pod held by hold-upgrade (MetaServer's unhold-upgrade); False when none is held."""
        key = f"{namespace}/{name}"
        pod = self.held.pop(key, None)
        if pod is None:
            log.info("unhold-upgrade: no pod %s is held here", key)
            return False
        uid = podspec.pod_uid(pod)
        self._held_report(key, self._held_condition(namespace, name, uid, held=False))
        if uid in self.workers:
            return True
        log.info("pod %s (%s) unheld: starting it", key, uid)
        self.workers[uid] = PodWorker(self, pod)
        return True

    def _held_report(self, key: str, coroutine: Any) -> None:
        """One report of a pod's HeldUpgrade condition at a time: a newer one replaces one still retrying."""
        previous = self._held_reports.pop(key, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(coroutine, name=f"held-upgrade-{key}")
        self._held_reports[key] = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda done: self._held_reports.pop(key, None) if self._held_reports.get(key) is done else None)

    async def _held_condition(self, namespace: str, name: str, uid: str, *, held: bool) -> None:
        """Upstream's HeldUpgrade pod condition, True while held; set False when released (upstream leaves it)."""
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {"type": "HeldUpgrade", "status": "True" if held else "False",
                     "reason": "HoldUpgradeEnabled" if held else "HoldUpgradeReleased",
                     "message": "Upgrade is currently held due to edge-hold-upgrade annotation" if held
                     else "Upgrade released by unhold-upgrade", "lastTransitionTime": now}
        while True:  # until the cloud has it, however long it is away
            try:
                await self.requests.patch(f"{namespace}/podpatch/{name}", json.dumps(
                    {"metadata": {"uid": uid}, "status": {"conditions": [condition]}}, separators=(",", ":")))
                return
            except StatusError as error:
                log.debug("pod %s/%s: HeldUpgrade condition not reported yet: %s", namespace, name, error)
                await self.wait_connected_or(5)

    def _mirror(self, operation: str, key: str, pod: dict[str, Any]) -> None:
        if operation == "delete":
            known = (self.mirrors.get(key) or {}).get("metadata", {}).get("uid")
            gone = (pod.get("metadata") or {}).get("uid")
            if gone and known and gone != known:
                return  # a late delete of the mirror this one replaced
            self.mirrors.pop(key, None)
        else:
            self.mirrors[key] = pod
        for worker in self.workers.values():
            if worker.static and worker.key == key:
                worker.mirror_changed()

    # -- static pods -------------------------------------------------------------------------------
    def sync_static(self, pods: dict[str, dict[str, Any]]) -> None:
        """Make the static pods those of the manifests (by UID: a changed file is a new pod)."""
        for uid, pod in pods.items():
            refusal = safety.identity_error(pod) if uid not in self.workers else ""
            if refusal:
                log.warning("static pod %s refused: %s", podspec.pod_key(pod), refusal)
                continue
            if uid not in self.workers:
                log.info("static pod %s (%s) added", podspec.pod_key(pod), uid)
                self.workers[uid] = PodWorker(self, pod, static=True)
        for uid, worker in list(self.workers.items()):
            if worker.static and uid not in pods and not worker.removed:
                log.info("static pod %s (%s): manifest gone, stopping it", worker.key, uid)
                worker.delete()

    async def sync_mirrors(self, node_uid: str) -> None:
        """Mirror pods in the cloud for the running static pods; outdated, orphaned and deleted ones removed."""
        wanted = {w.key: w for w in self.workers.values() if w.static and not w.removed}
        for key, mirror in list(self.mirrors.items()):
            worker = wanted.get(key)
            current = worker is not None and static.pod_hash(worker.pod) == _mirror_hash(mirror)
            if not current or (mirror.get("metadata") or {}).get("deletionTimestamp"):
                # as kubelet: a mirror being deleted goes at once (grace 0), to be created afresh
                await self._delete_mirror(key, mirror)
        now = asyncio.get_running_loop().time()
        for key, worker in wanted.items():
            if key not in self.mirrors and now >= self.mirror_retry.get(worker.uid, 0.0):
                await self._create_mirror(worker, node_uid)

    async def _create_mirror(self, worker: PodWorker, node_uid: str) -> None:
        body = static.mirror_pod(worker.pod, self.node_name, node_uid)
        try:
            obj = await self.requests.insert(f"{worker.namespace}/pod/{worker.name}", body)
        except StatusError as error:
            if error.reason != ALREADY_EXISTS:  # AlreadyExists: not a refusal, the next sync looks again
                self._mirror_refused(worker, str(error))
            return
        if not isinstance(obj, dict):
            self._mirror_refused(worker, "the reply holds no pod")
            return
        log.info("static pod %s: mirror pod created (uid %s)", worker.key, (obj.get("metadata") or {}).get("uid"))
        self._mirror("insert", worker.key, obj)

    def _mirror_refused(self, worker: PodWorker, why: str) -> None:
        # refused (a manifest naming a service account, say): the pod runs here all the same
        self.mirror_retry[worker.uid] = asyncio.get_running_loop().time() + MIRROR_RETRY_SECONDS
        log.warning("static pod %s: mirror pod not created (next try in %ds): %s", worker.key, MIRROR_RETRY_SECONDS, why)

    async def _delete_mirror(self, key: str, mirror: dict[str, Any]) -> None:
        namespace, name = key.split("/", 1)
        uid = (mirror.get("metadata") or {}).get("uid")
        reason = ""
        try:
            await self.requests.delete(f"{namespace}/pod/{name}", {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
        except StatusError as error:
            if error.reason not in MIRROR_GONE_REASONS:
                return  # the next sync tries again
            reason = error.reason
        # gone, replaced, or no longer this node's to delete: in any case not ours to wait for
        log.info("mirror pod %s (%s) deleted: its static pod is gone or changed%s", key, uid, f" ({reason})" if reason else "")
        self._mirror("delete", key, mirror)

    def _object(self, operation: str, kind: str, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        key = f"{namespace}/{kind}/{name}"
        if operation == "delete" or obj is None:
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        for worker in self.workers.values():
            if worker.namespace == namespace and (kind, name) in volumes.referenced_objects(worker.pod):
                worker.object_changed()

    def mirror(self, key: str) -> dict[str, Any] | None:
        return self.mirrors.get(key)

    def forget(self, uid: str) -> None:
        """The worker of ``uid`` ended: drop it, its tokens and renewals (a live worker is never dropped)."""
        worker = self.workers.get(uid)
        if worker is None or not worker.done.is_set():
            return
        del self.workers[uid]
        self.mirror_retry.pop(uid, None)
        for key in [key for key in {*self.tokens, *self.renewals, *self.next_renewal} if key[0] == uid]:
            self.tokens.pop(key, None)
            self.next_renewal.pop(key, None)
            renewal = self.renewals.pop(key, None)
            if renewal is not None:
                renewal.cancel()

    # -- ConfigMaps and Secrets --------------------------------------------------------------------
    async def fetch_objects(self, namespace: str, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        found: dict[tuple[str, str], dict[str, Any] | None] = {}
        for kind, name in wanted:
            key = f"{namespace}/{kind}/{name}"
            if key not in self.objects:
                obj = await self._query(key)
                if obj is not None:
                    self.objects[key] = obj
            found[(kind, name)] = self._with_api_ca(kind, name, self.objects.get(key))
        return found

    def _with_api_ca(self, kind: str, name: str, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """``kube-root-ca.crt`` as pods here see it: the cluster's CA and MetaServer's, which their
        in-cluster clients reach (the service-account volume's ``ca.crt`` comes from it)."""
        if kind != "configmap" or name != "kube-root-ca.crt" or obj is None or not self.api_ca_file:
            return obj
        try:
            extra = Path(self.api_ca_file).read_text()
        except OSError:
            return obj
        data = dict(obj.get("data") or {})
        if extra.strip() and extra.strip() not in str(data.get("ca.crt") or ""):
            data["ca.crt"] = str(data.get("ca.crt") or "").rstrip("\n") + "\n" + extra
        return {**obj, "data": data}

    # -- projected service account tokens --------------------------------------------------------
    async def service_account_tokens(self, pod: dict[str, Any], wake: Callable[[], None]
                                     ) -> dict[tuple[str, str], dict[str, Any] | None]:
        """("serviceaccounttoken", token key) -> the pod's issued TokenRequest.

        Only a pod's first mount waits for its token. Renewal (as kubelet: older than a day, or in
        the last 20% of its life) runs aside and calls ``wake`` when a newer token came; until then,
        and with the cloud away for as long as it takes, the pod keeps the token it has, expired or
        not, so nothing it runs is held up. An edge restarted with the cloud away gets the last
        token from MetaManager's store.
        """
        namespace, name = podspec.pod_key(pod).split("/", 1)
        account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        uid = podspec.pod_uid(pod)
        resource = f"{namespace}/serviceaccounttoken/{account}"
        found: dict[tuple[str, str], dict[str, Any] | None] = {}
        for source in volumes.token_sources(pod):
            key = (uid, volumes.token_key(source))
            issued = self.tokens.get(key)
            if issued is None:
                fresh = await self._query(resource, volumes.token_request(pod, source))
                if fresh is not None and _token_expiry(fresh) is not None:
                    issued = self.tokens[key] = fresh
                    log.info("pod %s/%s: service account token for %s, valid until %s", namespace, name, account,
                             (fresh.get("status") or {}).get("expirationTimestamp"))
            elif _token_due(issued, datetime.datetime.now(datetime.timezone.utc)) and key not in self.renewals:
                now = asyncio.get_running_loop().time()
                if now >= self.next_renewal.get(key, 0.0):
                    self.next_renewal[key] = now + TOKEN_RETRY_SECONDS
                    self.renewals[key] = asyncio.create_task(self._renew_token(key, resource, volumes.token_request(pod, source), wake))
            found[("serviceaccounttoken", key[1])] = issued
        return found

    async def _renew_token(self, key: tuple[str, str], resource: str, request: dict[str, Any], wake: Callable[[], None]) -> None:
        try:
            fresh = await self._query(resource, request)
            current = self.tokens.get(key)
            expiry = _token_expiry(fresh) if fresh is not None else None
            if expiry is not None and current is not None and expiry > (_token_expiry(current) or expiry):
                self.tokens[key] = fresh  # type: ignore[assignment]
                log.info("%s: token renewed, valid until %s", resource, (fresh or {}).get("status", {}).get("expirationTimestamp"))
                wake()
        finally:
            self.renewals.pop(key, None)

    async def _query(self, resource: str, content: Any = None) -> dict[str, Any] | None:
        """The object the cloud (or MetaManager's store) has; None on any refusal or failure."""
        try:
            found = await self.requests.query(resource, content)
        except RequestTimeout as error:
            log.warning("%s", error)
            return None
        except StatusError:
            return None
        return found if isinstance(found, dict) and found.get("metadata") is not None else None

    # -- runtime changes ---------------------------------------------------------------------------
    async def _relist(self) -> None:
        previous: dict[str, tuple[tuple[str, int], ...]] = {}
        mine = labels_for_node(self.node_name)
        while True:
            await asyncio.sleep(RELIST_SECONDS)
            try:
                containers = await self.cri.list_containers(labels=mine)
                sandboxes = await self.cri.list_pod_sandbox(labels=mine)
            except CriError as error:
                log.debug("relist: %s", error)  # node presence reports a runtime that is down
                continue
            except Exception:  # noqa: BLE001 - keep relisting
                log.exception("relist failed")
                continue
            seen: dict[str, list[tuple[str, int]]] = {}
            listed: list[api.Container | api.PodSandbox] = [*containers, *sandboxes]
            for item in listed:
                seen.setdefault(item.labels.get(POD_UID, ""), []).append((item.id, int(item.state)))
            current = {uid: tuple(sorted(states)) for uid, states in seen.items()}
            for uid, worker in self.workers.items():
                if current.get(uid) != previous.get(uid):
                    worker.wake.set()
            previous = current

    # -- housekeeping ------------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            if asyncio.get_running_loop().time() - self.started_at < ORPHAN_GRACE_SECONDS:
                continue
            try:
                await self.remove_orphans()
            except RuntimeUnavailable as error:
                log.debug("housekeeping: %s", error)  # node presence reports the runtime down
            except CriError as error:
                log.warning("housekeeping: %s", error)
            except Exception:  # noqa: BLE001 - keep housekeeping alive
                log.exception("housekeeping failed")

    async def remove_orphans(self) -> list[str]:
        """Remove sandboxes, containers and pod directories of this node that no pod claims."""
        known = set(self.workers) | {podspec.pod_uid(pod) for pod in self.held.values()}
        removed: list[str] = []
        mine = labels_for_node(self.node_name)
        for container in await self.cri.list_containers(labels=mine):
            if container.labels.get(POD_UID) not in known:
                if container.state in (api.CONTAINER_RUNNING, api.CONTAINER_CREATED):
                    await _quietly(self.cri.stop_container(container.id, 0))
                await _quietly(self.cri.remove_container(container.id))
                removed.append(container.id)
        for sandbox in await self.cri.list_pod_sandbox(labels=mine):
            if sandbox.labels.get(POD_UID) not in known:
                await _quietly(self.cri.stop_pod_sandbox(sandbox.id))
                await _quietly(self.cri.remove_pod_sandbox(sandbox.id))
                removed.append(sandbox.id)
                meta = sandbox.metadata
                await asyncio.to_thread(shutil.rmtree, f"{self.logs_root}/{meta.namespace}_{meta.name}_{meta.uid}", True)
        pods_dir = Path(self.root_directory) / "pods"
        if pods_dir.is_dir():
            for entry in await asyncio.to_thread(lambda: list(pods_dir.iterdir())):
                if entry.name not in known:
                    await asyncio.to_thread(shutil.rmtree, entry, True)
        if removed:
            log.info("housekeeping removed %d orphan sandbox(es)/container(s) of node %s", len(removed), self.node_name)
        return removed


def _mirror_hash(mirror: dict[str, Any]) -> str:
    return str(((mirror.get("metadata") or {}).get("annotations") or {}).get(static.CONFIG_MIRROR) or "")


def _token_expiry(issued: dict[str, Any]) -> datetime.datetime | None:
    stamp = (issued.get("status") or {}).get("expirationTimestamp")
    if not (issued.get("status") or {}).get("token") or not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


def _token_due(issued: dict[str, Any], now: datetime.datetime) -> bool:
    """Upstream's rule (``requiresRefresh``): older than a day, or in the last 20% of its lifetime."""
    expiry = _token_expiry(issued)
    lifetime = int((issued.get("spec") or {}).get("expirationSeconds") or 0)
    if expiry is None or lifetime <= 0:
        return True
    issued_at = expiry - datetime.timedelta(seconds=lifetime)
    return (now >= issued_at + datetime.timedelta(seconds=TOKEN_MAX_AGE_SECONDS)
            or now >= expiry - datetime.timedelta(seconds=lifetime * TOKEN_REFRESH_FRACTION))


async def _quietly(call: Any) -> None:
    try:
        await call
    except CriError as error:
        if not error.not_found:
            log.warning("housekeeping: %s", error)
