"""OpenAPI documents (``/openapi/v3``, ``/openapi/v3/<gv>``, ``/openapi/v2``) and strict field validation.

What kubectl 1.32 needs, found by watching its requests: ``apply``/``create`` (``--validate=strict``,
the default) first GET ``/openapi/v3`` and the group version's document, look there for a PATCH
operation of the object's kind (``x-kubernetes-group-version-kind``) with a ``fieldValidation``
query parameter, and if it is there leave validation to the server: the write then carries
``?fieldValidation=Strict`` and the server must refuse unknown fields (:func:`unknown_fields`,
:func:`strict_error_message`). Without that, kubectl falls back to ``/openapi/v2``, which it asks
for in protobuf only (``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``; encoded by
:mod:`cores.controlplane.openapi_v2proto`). kubectl 1.20 knows no v3: it validates manifests
client-side and runs ``explain`` with that v2 document. ``kubectl explain`` in 1.32 reads the v3
documents (paths for the kind, then ``components.schemas`` with property descriptions).

PATCH operations deliberately do not offer ``application/strategic-merge-patch+json``: the v3
schemas have no ``x-kubernetes-patch-merge-key``, so kubectl would compute list-replacing patches
from them; without it kubectl uses its own compiled-in patch strategies for built-in kinds, the
same ones kube-apiserver publishes. kubectl 1.20 takes them from v2 whatever the operation
offers, so the v2 definitions carry them (:data:`PATCH_STRATEGIES`).

Schemas come from ``schemas/definitions.json.gz`` (made by ``scripts/gen_openapi_schemas.py`` from
the ``kubernetes`` client's models), loaded on the first OpenAPI or validation request only.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

DEFINITIONS_FILE = Path(__file__).parent / "schemas" / "definitions.json.gz"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = META + "ObjectMeta"
LIST_META = META + "ListMeta"
STATUS = META + "Status"
DELETE_OPTIONS = META + "DeleteOptions"
V3_PREFIX = "#/components/schemas/"
V2_PREFIX = "#/definitions/"
SERVER_VERSION = "v1.32.0"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

Schema = dict[str, Any]


class Resource(Protocol):
    """What is needed of a served resource type (``registry.ResourceType`` fits).

    Read-only members, so that a frozen dataclass fits.
    """

    @property
    def group(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def plural(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def namespaced(self) -> bool: ...
    @property
    def subresources(self) -> frozenset[str]: ...
    @property
    def verbs(self) -> tuple[str, ...]: ...


# ----------------------------------------------------------------------------------------------
# the generated definitions
# ----------------------------------------------------------------------------------------------

@functools.cache
def definitions() -> dict[str, Schema]:
    """Built-in definitions by upstream name (``io.k8s.api.core.v1.Pod``); refs are bare names."""
    with gzip.open(DEFINITIONS_FILE, "rb") as stream:
        return dict(json.load(stream)["definitions"])


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            # Status and DeleteOptions are listed under every group: the first (core) name wins
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def schema_name(group: str, version: str, kind: str) -> str | None:
    """The definition name of a built-in kind, e.g. ``("", "v1", "Pod")`` -> ``io.k8s.api.core.v1.Pod``."""
    return _gvk_index().get((group, version, kind))


def custom_schema_name(group: str, version: str, kind: str) -> str:
    """kube-apiserver's name for a custom resource's schema: reversed group, version, kind."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _bare(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("$ref"), str):
            yield _bare(schema["$ref"])
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def closure(names: Iterable[str], extra: Mapping[str, Schema] = {}) -> list[str]:
    """``names`` and every definition they reference, transitively, sorted."""
    known = {**definitions(), **extra}
    seen: set[str] = set()
    pending = [n for n in names if n in known]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(r for r in _refs(known[name]) if r in known and r not in seen)
    return sorted(seen)


def _with_refs(schema: Any, prefix: str, wrap: bool) -> Any:
    """A copy with bare refs made ``prefix + name``; v3 wraps described refs in allOf, as upstream does."""
    if isinstance(schema, list):
        return [_with_refs(s, prefix, wrap) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _with_refs(v, prefix, wrap) for k, v in schema.items() if k != "$ref"}
    if isinstance(schema.get("$ref"), str):
        ref = prefix + _bare(schema["$ref"])
        if wrap and len(out) > 0:
            out["allOf"] = [{"$ref": ref}]
        else:
            out["$ref"] = ref
    return out


# ----------------------------------------------------------------------------------------------
# custom resources
# ----------------------------------------------------------------------------------------------

def crd_version_schema(crd: Mapping[str, Any], version: str) -> Schema | None:
    """The ``openAPIV3Schema`` of one version of a CRD (None when it declares none)."""
    for entry in (crd.get("spec") or {}).get("versions") or []:
        if entry.get("name") == version:
            schema = (entry.get("schema") or {}).get("openAPIV3Schema")
            return dict(schema) if isinstance(schema, dict) else None
    return None


def custom_resource_schema(group: str, version: str, kind: str, openapi_schema: Schema | None) -> Schema:
    """The published schema of a custom resource: its CRD schema plus apiVersion, kind, metadata and GVK."""
    schema = dict(openapi_schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    schema.setdefault("type", "object")
    properties = dict(schema.get("properties") or {})
    properties["apiVersion"] = {"type": "string", "description": _property_description("apiVersion")}
    properties["kind"] = {"type": "string", "description": _property_description("kind")}
    properties["metadata"] = {"$ref": OBJECT_META, "description": _property_description("metadata")}
    schema["properties"] = properties
    schema["x-kubernetes-group-version-kind"] = [{"group": group, "version": version, "kind": kind}]
    return schema


def custom_list_schema(group: str, version: str, kind: str) -> Schema:
    return {
        "description": f"{kind}List is a list of {kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _property_description("apiVersion")},
            "items": {"type": "array", "items": {"$ref": custom_schema_name(group, version, kind)},
                      "description": f"List of {kind.lower()}s."},
            "kind": {"type": "string", "description": _property_description("kind")},
            "metadata": {"$ref": LIST_META, "description": "Standard list metadata."},
        },
        "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": kind + "List"}],
    }


def _property_description(name: str) -> str:
    return str(definitions()["io.k8s.api.core.v1.Pod"]["properties"][name].get("description", ""))


# ----------------------------------------------------------------------------------------------
# paths
# ----------------------------------------------------------------------------------------------

def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": True}}


WRITE_PARAMETERS = [
    _query("dryRun", "When present, indicates that modifications should not be persisted."),
    _query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
    _query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request "
                              "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, "
                              "Warn, Strict (the default in v1.23+)."),
]
LIST_PARAMETERS = [
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\".", "boolean"),
    _query("continue", "The continue option should be set when retrieving more results from the server."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served "
                              "from."),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources and return them as a stream of add, update, "
                    "and remove notifications.", "boolean"),
]


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", ".").split(".") if part)


def _operation_id(verb: str, resource: Resource, namespaced: bool, suffix: str = "") -> str:
    group = _camel(resource.group.split(".")[0]) if resource.group else "Core"
    scope = "Namespaced" if namespaced else ""
    return f"{verb}{group}{_camel(resource.version)}{scope}{resource.kind}{suffix}"


def _content(schema_ref: str, types: Iterable[str] = ("application/json", "application/yaml")) -> dict[str, Any]:
    return {t: {"schema": {"$ref": schema_ref}} for t in types}


def _operation(action: str, resource: Resource, operation_id: str, response_ref: str, *,
               parameters: list[dict[str, Any]] = (), body: dict[str, Any] | None = None,  # type: ignore[assignment]
               created: bool = False) -> dict[str, Any]:
    responses = {"200": {"description": "OK", "content": _content(response_ref)},
                 "401": {"description": "Unauthorized"}}
    if created:
        responses["201"] = {"description": "Created", "content": _content(response_ref)}
        responses["202"] = {"description": "Accepted", "content": _content(response_ref)}
    operation: dict[str, Any] = {
        "tags": [f"{_camel(resource.group.split('.')[0]) if resource.group else 'core'}_{resource.version}"],
        "operationId": operation_id,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version,
                                            "kind": resource.kind},
    }
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = {"content": body, "required": True}
    return operation


def _path_parameters(namespaced: bool, named: bool) -> list[dict[str, Any]]:
    parameters = []
    if named:
        parameters.append({"name": "name", "in": "path", "required": True, "description": "name of the object",
                           "schema": {"type": "string", "uniqueItems": True}})
    if namespaced:
        parameters.append({"name": "namespace", "in": "path", "required": True,
                           "description": "object name and auth scope, such as for teams and projects",
                           "schema": {"type": "string", "uniqueItems": True}})
    parameters.append({"name": "pretty", "in": "query", "description": "If 'true', then the output is pretty printed.",
                       "schema": {"type": "string", "uniqueItems": True}})
    return parameters


def _patch_body() -> dict[str, Any]:
    return {t: {"schema": {"$ref": V3_PREFIX + META + "Patch"}} for t in PATCH_TYPES}


def _item_operations(resource: Resource, ref: str, namespaced: bool, sub: str = "") -> dict[str, Any]:
    verbs, suffix = set(resource.verbs), _camel(sub)
    operations: dict[str, Any] = {"parameters": _path_parameters(namespaced, True)}
    if "get" in verbs or sub:
        operations["get"] = _operation("get", resource, _operation_id("read", resource, namespaced, suffix), ref)
    if "update" in verbs or sub:
        operations["put"] = _operation("put", resource, _operation_id("replace", resource, namespaced, suffix), ref,
                                       parameters=WRITE_PARAMETERS, body=_content(ref, ("*/*",)), created=True)
    if "patch" in verbs or sub:
        force = _query("force", "Force is going to \"force\" Apply requests.", "boolean")
        operations["patch"] = _operation("patch", resource, _operation_id("patch", resource, namespaced, suffix),
                                         ref, parameters=[*WRITE_PARAMETERS, force], body=_patch_body(),
                                         created=True)
    if "delete" in verbs and not sub:
        operations["delete"] = _operation("delete", resource, _operation_id("delete", resource, namespaced), ref,
                                          parameters=[WRITE_PARAMETERS[0]],
                                          body=_content(V3_PREFIX + DELETE_OPTIONS, ("*/*",)))
    return operations


def _collection_operations(resource: Resource, ref: str, list_ref: str, namespaced: bool) -> dict[str, Any]:
    verbs = set(resource.verbs)
    operations: dict[str, Any] = {"parameters": _path_parameters(namespaced, False)}
    if "list" in verbs:
        operations["get"] = _operation("list", resource, _operation_id("list", resource, namespaced), list_ref,
                                       parameters=LIST_PARAMETERS)
    if "create" in verbs:
        operations["post"] = _operation("post", resource, _operation_id("create", resource, namespaced), ref,
                                        parameters=WRITE_PARAMETERS, body=_content(ref, ("*/*",)), created=True)
    if "deletecollection" in verbs:
        operations["delete"] = _operation("deletecollection", resource,
                                          _operation_id("deleteCollection", resource, namespaced),
                                          V3_PREFIX + STATUS, parameters=LIST_PARAMETERS)
    return operations


def resource_paths(resource: Resource, schema: str, list_schema: str | None) -> dict[str, Any]:
    """The v3 paths of one resource: collection, object and status, namespaced and across namespaces."""
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    ref, list_ref = V3_PREFIX + schema, V3_PREFIX + (list_schema or schema)
    scoped = f"{base}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{base}/{resource.plural}"
    paths = {scoped: _collection_operations(resource, ref, list_ref, resource.namespaced),
             f"{scoped}/{{name}}": _item_operations(resource, ref, resource.namespaced)}
    if "status" in resource.subresources:
        paths[f"{scoped}/{{name}}/status"] = _item_operations(resource, ref, resource.namespaced, "status")
    if resource.namespaced and "list" in resource.verbs:
        across = _collection_operations(resource, ref, list_ref, False)
        across.pop("post", None)
        across.pop("delete", None)
        across["get"]["operationId"] = _operation_id("list", resource, False, "ForAllNamespaces")
        paths[f"{base}/{resource.plural}"] = across
    return {key: {k: v for k, v in value.items() if v} for key, value in paths.items() if len(value) > 1}


# ----------------------------------------------------------------------------------------------
# v3 documents
# ----------------------------------------------------------------------------------------------

def group_version_path(group: str, version: str) -> str:
    """``api/v1`` or ``apis/<group>/<version>``: the keys of the v3 root."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def document_hash(document: Mapping[str, Any]) -> str:
    """The ``hash`` of a document's URL (kube-apiserver: upper-case hex SHA-512 of its JSON)."""
    return hashlib.sha512(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest().upper()


def openapi_v3_root(groups: Mapping[str, Iterable[str]], hashes: Mapping[str, str] = {}) -> dict[str, Any]:
    """``/openapi/v3``: a ``serverRelativeURL`` per group version (``groups``: group -> versions).

    ``hashes`` maps ``api/v1``-style keys to :func:`document_hash` of the current document; kubectl
    caches documents by URL on disk, so the hash must change whenever the document does (CRDs).
    """
    paths = {}
    for group, versions in sorted(groups.items()):
        for version in versions:
            key = group_version_path(group, version)
            url = f"/openapi/v3/{key}"
            if hashes.get(key):
                url += f"?hash={hashes[key]}"
            paths[key] = {"serverRelativeURL": url}
    return {"paths": paths}


def openapi_v3_document(group: str, version: str, resources: Iterable[Resource],
                        crd_schemas: Mapping[str, Schema | None] = {}) -> dict[str, Any] | None:
    """The v3 document of one group version, or None when it serves nothing.

    ``resources`` are the types served in it (``registry.in_group_version``); ``crd_schemas`` maps a
    custom resource's kind to its CRD ``openAPIV3Schema`` for this version (:func:`crd_version_schema`).
    A kind that is neither built-in nor in ``crd_schemas`` is published with a preserve-unknown-fields schema.
    """
    resources = [r for r in resources if r.group == group and r.version == version]
    if not resources:
        return None
    extra: dict[str, Schema] = {}
    paths: dict[str, Any] = {}
    for resource in resources:
        name, list_name = _resource_schemas(resource, crd_schemas, extra)
        paths.update(resource_paths(resource, name, list_name))
    roots = [*{_bare(r) for p in paths.values() for r in _refs(p)}, STATUS, DELETE_OPTIONS]
    known = {**definitions(), **extra}
    schemas = {n: _with_refs(known[n], V3_PREFIX, True) for n in closure(roots, extra)}
    schemas[META + "Patch"] = {"description": "Patch is provided to give a concrete name and type to the Kubernetes "
                                              "PATCH request body.", "type": "object"}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())),
                       "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                           "name": "authorization", "in": "header"}}},
    }


def _resource_schemas(resource: Resource, crd_schemas: Mapping[str, Schema | None],
                      extra: dict[str, Schema]) -> tuple[str, str | None]:
    """The (object, list) schema names of a resource; custom ones are added to ``extra``."""
    name = schema_name(resource.group, resource.version, resource.kind)
    if name is not None and resource.kind not in crd_schemas:
        return name, schema_name(resource.group, resource.version, resource.kind + "List")
    name = custom_schema_name(resource.group, resource.version, resource.kind)
    extra[name] = custom_resource_schema(resource.group, resource.version, resource.kind,
                                         crd_schemas.get(resource.kind))
    extra[name + "List"] = custom_list_schema(resource.group, resource.version, resource.kind)
    return name, name + "List"


# ----------------------------------------------------------------------------------------------
# v2
# ----------------------------------------------------------------------------------------------

def openapi_v2(resources: Iterable[Resource], crd_schemas: Mapping[tuple[str, str, str], Schema | None] = {}
               ) -> dict[str, Any]:
    """``/openapi/v2`` as JSON (Swagger 2.0): every served resource, definitions named as upstream.

    ``crd_schemas`` maps (group, version, kind) of custom resources to their ``openAPIV3Schema``.
    kubectl (1.20 and 1.32 alike) asks for this document in protobuf only: the server encodes it
    with :mod:`cores.controlplane.openapi_v2proto`. kubectl 1.20 validates manifests and explains
    kinds with it; 1.32 reads the PATCH operation's ``consumes`` (no strategic merge patch here, so it
    keeps its compiled-in patch strategies).
    """
    paths: dict[str, Any] = {}
    extra: dict[str, Schema] = {}
    for resource in resources:
        by_kind = {resource.kind: crd_schemas.get((resource.group, resource.version, resource.kind))} \
            if (resource.group, resource.version, resource.kind) in crd_schemas else {}
        name, list_name = _resource_schemas(resource, by_kind, extra)
        for path, operations in resource_paths(resource, name, list_name).items():
            paths[path] = _v2_path(operations)
    roots = [*{_bare(r) for p in paths.values() for r in _refs(p)}, STATUS, DELETE_OPTIONS]
    known = {**definitions(), **extra}
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": {n: _with_refs(_v2_custom(known[n]) if n in extra else _with_patch_strategies(n, known[n]),
                                      V2_PREFIX, False)
                        for n in closure(roots, extra)},
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }


# Patch strategies of k8s.io/api's struct tags (``patchStrategy``/``patchMergeKey``), as kube-apiserver
# publishes them in v2: kubectl 1.20 computes apply's strategic merge patches from these (a list
# without a merge key is replaced in the patch, and the server, which knows the keys, would then
# merge it: a container removed from a manifest would stay). The server side is ``patch.py``.
_CONTAINER_STRATEGIES: dict[str, tuple[str, str | None]] = {"ports": ("merge", "containerPort"), "env": ("merge", "name"),
                         "volumeMounts": ("merge", "mountPath"), "volumeDevices": ("merge", "devicePath")}
_CONDITIONS: dict[str, tuple[str, str | None]] = {"conditions": ("merge", "type")}
PATCH_STRATEGIES: dict[str, dict[str, tuple[str, str | None]]] = {
    OBJECT_META: {"finalizers": ("merge", None), "ownerReferences": ("merge", "uid")},
    "io.k8s.api.core.v1.Container": _CONTAINER_STRATEGIES,
    "io.k8s.api.core.v1.EphemeralContainer": _CONTAINER_STRATEGIES,
    "io.k8s.api.core.v1.PodSpec": {
        "containers": ("merge", "name"), "initContainers": ("merge", "name"), "ephemeralContainers": ("merge", "name"),
        "volumes": ("merge,retainKeys", "name"), "imagePullSecrets": ("merge", "name"), "hostAliases": ("merge", "ip"),
        "topologySpreadConstraints": ("merge", "topologyKey"), "resourceClaims": ("merge,retainKeys", "name"),
        "schedulingGates": ("merge", "name")},
    "io.k8s.api.core.v1.PodStatus": {**_CONDITIONS, "podIPs": ("merge", "ip"), "hostIPs": ("merge", "ip"),
                                     "resourceClaimStatuses": ("merge,retainKeys", "name")},
    "io.k8s.api.core.v1.NodeSpec": {"podCIDRs": ("merge", None)},
    "io.k8s.api.core.v1.NodeStatus": {**_CONDITIONS, "addresses": ("merge", "type")},
    "io.k8s.api.core.v1.NamespaceStatus": _CONDITIONS,
    "io.k8s.api.core.v1.ServiceSpec": {"ports": ("merge", "port")},
    "io.k8s.api.core.v1.ServiceStatus": _CONDITIONS,
    "io.k8s.api.core.v1.ServiceAccount": {"secrets": ("merge", "name")},
    "io.k8s.api.apps.v1.DeploymentSpec": {"strategy": ("retainKeys", None)},
    "io.k8s.api.apps.v1.DeploymentStatus": _CONDITIONS,
    "io.k8s.api.apps.v1.ReplicaSetStatus": _CONDITIONS,
    "io.k8s.api.apps.v1.DaemonSetSpec": {"updateStrategy": ("retainKeys", None)},
    "io.k8s.api.apps.v1.DaemonSetStatus": _CONDITIONS,
    "io.k8s.api.apps.v1.StatefulSetStatus": _CONDITIONS,
    "io.k8s.api.batch.v1.JobStatus": _CONDITIONS,
}


def _with_patch_strategies(name: str, schema: Schema) -> Schema:
    """A copy of a built-in definition with ``x-kubernetes-patch-strategy``/``-merge-key`` added (v2 only)."""
    strategies = PATCH_STRATEGIES.get(name)
    if not strategies or not isinstance(schema.get("properties"), dict):
        return schema
    properties = dict(schema["properties"])
    for field, (strategy, key) in strategies.items():
        if field in properties:
            properties[field] = {**properties[field], "x-kubernetes-patch-strategy": strategy,
                                 **({"x-kubernetes-patch-merge-key": key} if key else {})}
    return {**schema, "properties": properties}


def _v2_custom(schema: Any) -> Any:
    """A custom resource's schema as kube-apiserver publishes it in v2 (apiextensions'
    ``ToStructuralOpenAPIV2``): kubectl 1.20 validates with it and would refuse what the CRD allows.

    Junctors go; a nullable value loses its type, properties and items; a value that preserves
    unknown fields loses properties and items; an array left without items loses its type; a
    nullable property is no longer required.
    """
    if isinstance(schema, list):
        return [_v2_custom(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in ("allOf", "anyOf", "oneOf", "not")}
    if out.pop("nullable", False):
        for key in ("type", "properties", "items"):
            out.pop(key, None)
    if out.get("x-kubernetes-preserve-unknown-fields") is True:
        out.pop("properties", None)
        out.pop("items", None)
    if out.get("type") == "array" and "items" not in out:
        out.pop("type")
    properties = out.get("properties")
    if isinstance(properties, dict):
        nullable = {k for k, v in properties.items() if isinstance(v, dict) and v.get("nullable")}
        if nullable and isinstance(out.get("required"), list):
            out["required"] = [r for r in out["required"] if r not in nullable]
        out["properties"] = {k: _v2_custom(v) for k, v in properties.items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), (dict, list)):
            out[key] = _v2_custom(out[key])
    return out


def _v2_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    result = {k: v for k, v in parameter.items() if k != "schema"}
    result.update({k: v for k, v in (parameter.get("schema") or {}).items()})
    return result


def _v2_path(operations: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": [_v2_parameter(p) for p in operations.get("parameters", [])]}
    for method, operation in operations.items():
        if method == "parameters":
            continue
        converted = {k: v for k, v in operation.items() if k not in ("requestBody", "responses", "parameters")}
        converted["parameters"] = [_v2_parameter(p) for p in operation.get("parameters", [])]
        body = operation.get("requestBody")
        if body:
            content = body["content"]
            ref = _bare(next(iter(content.values()))["schema"]["$ref"])
            converted["consumes"] = list(content)
            converted["parameters"].append({"name": "body", "in": "body", "required": True,
                                            "schema": {"$ref": V2_PREFIX + ref}})
        converted["produces"] = ["application/json", "application/yaml"]
        converted["schemes"] = ["https"]
        converted["responses"] = {
            code: {"description": r["description"],
                   **({"schema": {"$ref": V2_PREFIX + _bare(next(iter(r["content"].values()))["schema"]["$ref"])}}
                      if "content" in r else {})}
            for code, r in operation["responses"].items()}
        out[method] = converted
    return out


# ----------------------------------------------------------------------------------------------
# strict field validation
# ----------------------------------------------------------------------------------------------

def _resolve(schema: Schema, known: Mapping[str, Schema]) -> Schema:
    """Follow ``$ref`` and single-element ``allOf`` to the schema that has the structure."""
    for _ in range(32):
        if isinstance(schema.get("$ref"), str):
            schema = known.get(_bare(schema["$ref"]), {})
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1 and "properties" not in schema:
            schema = schema["allOf"][0]
        else:
            break
    return schema


class _Walker:
    """Collects the paths of fields a schema does not declare, in document order.

    ``structural`` is for CRD schemas: there an object with neither ``properties`` nor
    ``additionalProperties`` (nor preserve-unknown-fields) declares no field at all, as apiextensions'
    pruning sees it, while for built-ins such a schema is an opaque value (RawExtension, FieldsV1).
    """

    def __init__(self, known: Mapping[str, Schema], structural: bool) -> None:
        self.known, self.structural = known, structural
        self.found: list[str] = []

    def walk(self, value: Any, schema: Schema, path: str) -> None:
        schema = _resolve(schema, self.known)
        if isinstance(value, dict):
            self._object(value, schema, path)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                self.walk(item, schema["items"], f"{path}[{index}]")

    def _object(self, value: dict[str, Any], schema: Schema, path: str) -> None:
        if schema.get("x-kubernetes-int-or-string"):
            return
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        if properties is None and not isinstance(additional, dict):
            if self.structural and not preserve and not embedded and additional is not True:
                self.found.extend(_join(path, key) for key in value)
            return
        for key, item in value.items():
            if properties is not None and key in properties:
                self.walk(item, properties[key], _join(path, key))
            elif isinstance(additional, dict):
                self.walk(item, additional, _join(path, key))
            elif embedded and key in ("apiVersion", "kind", "metadata"):
                continue
            elif not preserve and additional is not True:
                self.found.append(_join(path, key))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def unknown_fields(kind_schema_name: str, obj: Mapping[str, Any]) -> list[str]:
    """Paths of the fields of ``obj`` that the built-in schema does not declare, in document order.

    ``kind_schema_name`` is a definition name (:func:`schema_name`), e.g. ``io.k8s.api.core.v1.Pod``;
    paths read like kube-apiserver's: ``spec.containers[0].imagePullPolicyy``, ``metadata.labelz``.
    """
    known = definitions()
    if kind_schema_name not in known:
        return []
    walker = _Walker(known, structural=False)
    walker.walk(dict(obj), known[kind_schema_name], "")
    return walker.found


def unknown_fields_custom(openapi_schema: Schema | None, obj: Mapping[str, Any]) -> list[str]:
    """The same for a custom resource against its CRD version's ``openAPIV3Schema`` (structural rules).

    ``apiVersion`` and ``kind`` are always allowed and ``metadata`` is checked as ObjectMeta.
    A CRD without a schema accepts anything.
    """
    if not openapi_schema:
        return []
    walker = _Walker(definitions(), structural=True)
    properties = dict(openapi_schema.get("properties") or {})
    properties.update({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"$ref": OBJECT_META}})
    walker.walk(dict(obj), {**openapi_schema, "type": "object", "properties": properties}, "")
    return walker.found


def strict_error_message(kind: str, version: str, fields: list[str], target_kind: str | None = None) -> str:
    """The message of the 400 BadRequest ``Status`` for ``fieldValidation=Strict`` (transformDecodeError).

    ``kind``/``version`` are what the body declared; ``target_kind`` the served kind (defaults to ``kind``).
    """
    detail = ", ".join(f'unknown field "{field}"' for field in fields)
    return f'{kind} in version "{version}" cannot be handled as a {target_kind or kind}: strict decoding error: {detail}'


def strict_error_status(kind: str, version: str, fields: list[str], target_kind: str | None = None) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": strict_error_message(kind, version, fields, target_kind), "reason": "BadRequest", "code": 400}


def warning_headers(fields: list[str]) -> list[str]:
    """``Warning`` header values for ``fieldValidation=Warn``: one ``299 - "unknown field \\"x\\""`` each."""
    return [warning_header(f'unknown field "{field}"') for field in fields]


def warning_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def field_validation(query_value: str) -> str:
    """The ``fieldValidation`` directive of a write: kube-apiserver's default, when absent, is ``Warn``.

    kubectl 1.32 always sends it (``Strict`` unless ``--validate=warn|false``). ValueError if invalid.
    """
    value = query_value or "Warn"
    if value not in ("Ignore", "Warn", "Strict"):
        raise ValueError(f"fieldValidation must be one of Ignore, Warn, or Strict, got {query_value!r}")
    return value
