"""Discovery documents (``/api``, ``/apis``, ``/api/v1`` ...) as kube-apiserver serves them.

kubectl and the clients find resources, short names and verbs here. Only the legacy (non
aggregated) form is served; kubectl falls back to it when it asks for the aggregated one.
"""

from __future__ import annotations

from typing import Any

from cores.controlplane.registry import Registry, ResourceType

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kubeedge-py",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

_SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "binding": ("create",),
    "token": ("create",),
    "scale": ("get", "patch", "update"),
}
_SUBRESOURCE_KINDS = {"binding": ("Binding", "", "v1"), "token": ("TokenRequest", "authentication.k8s.io", "v1"),
                      "scale": ("Scale", "autoscaling", "v1")}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_document(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group_document(name, versions) for name, versions in sorted(registry.groups().items()) if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_document(name, versions)}


def _resource_entry(resource: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.singular_name,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    return entry


def _subresource_entries(resource: ResourceType) -> list[dict[str, Any]]:
    entries = []
    for sub in sorted(resource.subresources):
        verbs = _SUBRESOURCE_VERBS.get(sub)
        if verbs is None:
            continue
        entry: dict[str, Any] = {"name": f"{resource.plural}/{sub}", "singularName": "",
                                 "namespaced": resource.namespaced, "kind": resource.kind, "verbs": list(verbs)}
        if sub in _SUBRESOURCE_KINDS:
            kind, group, version = _SUBRESOURCE_KINDS[sub]
            entry["kind"] = kind
            if group:
                entry["group"], entry["version"] = group, version
        entries.append(entry)
    return entries


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    entries: list[dict[str, Any]] = []
    for resource in sorted(resources, key=lambda r: r.plural):
        entries.append(_resource_entry(resource))
        entries.extend(_subresource_entries(resource))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
