"""CloudCore's one adapter to the Kubernetes API: the only cloud module that imports ``kubernetes``.

Objects go in and out as plain JSON dicts (``_preload_content=False``), never as client models,
so what CloudCore sends the edge is what the API server returned, field for field. Calls are
blocking in the client library; every public method here is async and runs the call on a
thread, so the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from pathlib import Path
from typing import Any

# Concurrent API calls: asyncio's default executor has only cpu+4 threads, which serialised
# CloudCore behind a handful of in-flight requests under load (found profiling the density run).
API_CONCURRENCY = 32

log = logging.getLogger("kubeedge.kube")


class KubeError(Exception):
    """An error status from the API server, with the ``Status`` object it sent."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", "Kubernetes API error"))
        self.status = status

    @property
    def code(self) -> int:
        return int(self.status.get("code") or 0)

    @property
    def reason(self) -> str:
        return str(self.status.get("reason") or "")


class Kube:
    """A connection to one cluster, from a kubeconfig file (or in-cluster config when none).

    Requests go through the client's transport (its TLS, auth and proxy handling) with JSON
    bodies as they are: the typed API methods validate bodies against client models, which
    would reject partial objects and reshape what CloudCore relays.
    """

    def __init__(self, kubeconfig: str = "", master: str = "") -> None:
        from kubernetes import client, config

        if kubeconfig:
            self.api_client = config.new_client_from_config(config_file=kubeconfig)
        else:
            config.load_incluster_config()
            self.api_client = client.ApiClient()
        if master:
            self.api_client.configuration.host = master
        self.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = API_CONCURRENCY
        self._pool = concurrent.futures.ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api_client.close()

    async def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                      query: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One API call; the decoded JSON reply, or :class:`KubeError` with the server's Status."""
        data = await self.request_raw(method, path, body, content_type=content_type, query=query, headers=headers)
        try:
            decoded = json.loads(data or b"{}")
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise KubeError({"kind": "Status", "status": "Failure", "code": 502, "reason": "BadGateway",
                             "message": f"{method} {path}: the answer is not a JSON object: {data[:200]!r}"})
        return decoded

    async def request_raw(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                          query: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None) -> bytes:
        """One API call; the reply's bytes as they came (discovery, health), or :class:`KubeError`.

        ``headers`` are sent as they are: the DynamicController's ``Impersonate-User`` and
        ``Impersonate-Group``, so the API server authorises the call as the node that asked.
        """

        def call() -> bytes:
            sent = {"Accept": "application/json", **(headers or {})}
            if body is not None:
                sent["Content-Type"] = content_type
            serialized = self.api_client.param_serialize(
                method, path, query_params=query or [], header_params=sent, body=body, auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(*serialized, _request_timeout=30)
            response.read()
            data = bytes(response.data or b"")
            if response.status < 400:
                return data
            try:
                status = json.loads(data)
            except ValueError:
                # kube-apiserver answers "404 page not found" in plain text for a path it does not
                # serve yet (a CRD just created): an error like any other, never a crash
                status = None
            text = data[:200].decode("utf-8", "replace").strip()
            raise KubeError(status if isinstance(status, dict) and status.get("kind") == "Status" else {
                "kind": "Status", "status": "Failure", "code": response.status, "reason": response.reason or "",
                "message": f"{method} {path}: {response.status} {response.reason}: {text}"})

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    # secrets --------------------------------------------------------------------------------
    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except KubeError as error:
            if error.code == 404:
                return None
            raise

    async def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
        """Create or update an Opaque secret; ``data`` values are base64 already."""
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque", "data": data}
        try:
            return await self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)
        except KubeError as error:
            if error.code != 409:
                raise
        return await self.request("PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}", {"data": data},
                                  content_type="application/merge-patch+json")

    async def ensure_namespace(self, name: str) -> None:
        try:
            await self.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except KubeError as error:
            if error.code != 409:
                raise

    # nodes ----------------------------------------------------------------------------------
    async def get_node(self, name: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/v1/nodes/{name}")

    async def create_node(self, node: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", **node})

    async def patch_node(self, name: str, patch: dict[str, Any], content_type: str = "application/merge-patch+json") -> dict[str, Any]:
        return await self.request("PATCH", f"/api/v1/nodes/{name}", patch, content_type=content_type)

    async def patch_node_status(self, name: str, patch: Any) -> dict[str, Any]:
        return await self.request("PATCH", f"/api/v1/nodes/{name}/status", patch,
                                  content_type="application/strategic-merge-patch+json")

    # leases ---------------------------------------------------------------------------------
    async def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")

    async def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", **lease}
        return await self.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body)

    async def update_lease(self, namespace: str, name: str, lease: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", **lease}
        return await self.request("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", body)


def kubeconfig_path(configured: str) -> str:
    """The kubeconfig CloudCore uses: the configured one, when it exists."""
    if configured and not Path(configured).exists():
        raise FileNotFoundError(f"kubeconfig {configured} does not exist (kubeAPIConfig.kubeConfig in cloudcore.yaml)")
    return configured
