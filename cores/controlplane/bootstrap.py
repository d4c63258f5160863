"""Objects every cluster has from its first start: the system namespaces, the ``kubernetes`` Service,
and RBAC's default roles and bindings."""

from __future__ import annotations

import ipaddress
import logging

from cores.common.config import Config
from cores.controlplane import errors
from cores.controlplane import rbac
from cores.controlplane.api import Api

log = logging.getLogger("kubeedge.controlplane")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "kubeedge")


async def _ensure(api: Api, plural: str, namespace: str | None, body: dict, group: str = "") -> None:
    resource = api.registry.get(group, "v1", plural)
    assert resource is not None
    try:
        await api.create(resource, namespace, body)
        log.info("created %s %s", resource.kind, body["metadata"]["name"])
    except errors.ApiError as error:
        if error.code != 409:
            raise


async def bootstrap_objects(api: Api, config: Config) -> None:
    for name in SYSTEM_NAMESPACES:
        await _ensure(api, "namespaces", None, {"metadata": {"name": name}})
    service_ip = str(next(ipaddress.ip_network(config.serviceClusterIPRange).hosts()))
    labels = {"component": "apiserver", "provider": "kubernetes"}
    port = int(config.server.port)
    await _ensure(api, "services", "default", {
        "metadata": {"name": "kubernetes", "labels": labels},
        "spec": {"clusterIP": service_ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    })
    await _ensure(api, "endpoints", "default", {
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": config.server.advertiseAddress}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    })
    for plural, obj in rbac.bootstrap_objects():
        await _ensure(api, plural, None, obj, rbac.GROUP)
