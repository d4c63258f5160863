"""Namespaces: what every live namespace holds, and the deletion of a terminating one.

Three controllers of kube-controller-manager in one: the service-account controller (the
``default`` ServiceAccount), the root-CA publisher (the ``kube-root-ca.crt`` ConfigMap holding
the control plane's CA), both recreated when deleted or changed, and the namespace controller
(delete everything a Terminating namespace holds, then the namespace).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from cores.controlplane import errors
from cores.controlplane.api import Api
from cores.controlplane.controllers import base
from cores.controlplane.objects import meta
from cores.controlplane.registry import ResourceType
from cores.controlplane.serviceaccounts import ROOT_CA_CONFIGMAP
from cores.controlplane.store import Event, Transaction

log = logging.getLogger("kubeedge.controlplane.controllers")

DEFAULT_ACCOUNT = "default"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as "
    "the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters.")
TERMINATING_RECHECK = 1.0


class NamespaceController:
    def __init__(self, api: Api, ca_file: Path, resync: float) -> None:
        self.api = api
        self.ca_file = ca_file
        self.namespaces = base.resource(api, "", "namespaces")
        self.accounts = base.resource(api, "", "serviceaccounts")
        self.configmaps = base.resource(api, "", "configmaps")
        self.loop = base.KeyedLoop(api, "namespace-controller", self.keys_of, self.reconcile, self.all_keys, resync)
        self._ca = ""

    async def run(self) -> None:
        await self.loop.run()

    def keys_of(self, event: Event) -> Iterable[str]:
        _, plural, namespace, name = base.split_key(event.key)
        if plural == "namespaces":
            return (name,)
        if plural == "serviceaccounts" and name == DEFAULT_ACCOUNT and event.type == "DELETED":
            return (namespace,)
        if plural == "configmaps" and name == ROOT_CA_CONFIGMAP and event.type != "ADDED":
            return (namespace,)
        return ()

    async def all_keys(self) -> list[str]:
        return [meta(ns)["name"] for ns in await base.list_objects(self.api, self.namespaces)]

    async def reconcile(self, name: object) -> float | None:
        namespace = await base.get(self.api, self.namespaces, None, str(name))
        if namespace is None:
            return None
        if meta(namespace).get("deletionTimestamp"):
            return await self._finalize(str(name))
        await self._ensure_account(str(name))
        await self._ensure_root_ca(str(name))
        return None

    # a live namespace -------------------------------------------------------------------------------
    async def _create(self, kind: ResourceType, namespace: str, body: dict) -> None:
        try:
            await self.api.create(kind, namespace, body)
        except errors.ApiError as error:
            if error.code not in (403, 404, 409):  # 403/404: the namespace is going or gone
                raise

    async def _ensure_account(self, namespace: str) -> None:
        if await base.get(self.api, self.accounts, namespace, DEFAULT_ACCOUNT) is None:
            await self._create(self.accounts, namespace, {"metadata": {"name": DEFAULT_ACCOUNT}})

    def _ca_pem(self) -> str:
        if not self._ca:
            self._ca = self.ca_file.read_text()
        return self._ca

    async def _ensure_root_ca(self, namespace: str) -> None:
        data = {"ca.crt": self._ca_pem()}
        existing = await base.get(self.api, self.configmaps, namespace, ROOT_CA_CONFIGMAP)
        if existing is None:
            await self._create(self.configmaps, namespace, {
                "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": data})
            return

        def restore(obj: dict) -> bool:
            if obj.get("data") == data:
                return False
            obj["data"] = data
            return True

        await base.update(self.api, self.configmaps, existing, restore)

    # a terminating namespace ------------------------------------------------------------------------
    async def _finalize(self, name: str) -> float | None:
        """Delete what the namespace holds; once nothing is left, the namespace itself."""
        remaining = 0
        for kind in list(self.api.registry.all()):
            if not kind.namespaced:
                continue
            _, rows, _ = await self.api.store.list(kind.list_prefix(name))
            remaining += len(rows)
            for row in rows:
                obj = base.decode(self.api, kind, row.key, row.value)
                if obj is not None and meta(obj).get("deletionTimestamp"):
                    continue
                try:  # by the name in the key: a malformed object goes with its namespace too
                    await self.api.delete(kind, name, row.key.rsplit("/", 1)[-1], {})
                except errors.ApiError:
                    pass
        if remaining:
            return TERMINATING_RECHECK
        key = self.namespaces.key(None, name)

        def work(txn: Transaction) -> None:
            obj = txn.get(key)
            if obj is not None:
                txn.delete(key, obj)

        await self.api.store.transact(work)
        log.info("namespace %s deleted", name)
        return None
