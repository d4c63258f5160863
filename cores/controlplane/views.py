"""What kubectl asks for beyond plain JSON: server-side tables, OpenAPI documents, field validation.

Glue between the HTTP server and :mod:`tables` / :mod:`openapi`: which requests get a Table,
how a watch line becomes a one-row Table, which OpenAPI document a path names, and how unknown
fields are refused (``fieldValidation=Strict``), warned about (``Warn``, the default) or dropped
(and never stored, as kube-apiserver's decoder drops them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cores.common import tables
from cores.controlplane import crdvalues, errors, openapi, openapi_v2proto, typecheck, validation
from cores.controlplane.registry import Registry, ResourceType

log = logging.getLogger("kubeedge.controlplane")


def resource_version_of(item: str) -> str:
    """metadata.resourceVersion of a stored object's JSON, "" when it has none (or no metadata object)."""
    metadata = json.loads(item).get("metadata") if item.startswith("{") else None
    value = metadata.get("resourceVersion", "") if isinstance(metadata, dict) else ""
    return value if isinstance(value, str) else ""


def printable(resource: ResourceType, obj: Any) -> bool:
    """Whether a stored object can go into a Table: a JSON object whose values have their schema's types.

    A stored object that fails (written before types were checked) is left out of tables and logged
    by name, so that one bad object never turns ``kubectl get`` of all the others into a 500.
    """
    if not isinstance(obj, dict):
        log.warning("not printing a stored %s: it is not a JSON object", resource.kind)
        return False
    definition = openapi.schema_name(resource.group, resource.version, resource.kind)
    problem = typecheck.first_problem(definition, obj) if definition else None
    if problem is not None:
        log.warning("not printing %s %s: the stored object is malformed: %s", resource.kind, tables.safe_name(obj), problem)
        return False
    return True


def is_custom(resource: ResourceType) -> bool:
    return bool(resource.served_versions)


def _printer_columns(resource: ResourceType) -> list[dict[str, Any]] | None:
    return list(resource.printer_columns) if is_custom(resource) else None


def _table_options(accept: str, query: Mapping[str, str]) -> tuple[str, str] | None:
    version = tables.table_version(accept)
    if version is None:
        return None
    try:
        include = tables.check_include_object(query.get("includeObject", ""))
    except ValueError as error:
        raise errors.bad_request(str(error)) from None
    return f"meta.k8s.io/{version}", include


def table_for(resource: ResourceType, accept: str, query: Mapping[str, str], items: list[str],
              list_meta: dict[str, Any]) -> dict[str, Any] | None:
    """The Table a get or list asked for, or None when it asked for plain JSON."""
    options = _table_options(accept, query)
    if options is None:
        return None
    api_version, include = options
    objects = [obj for obj in (json.loads(item) for item in items) if printable(resource, obj)]
    return tables.table(resource.kind, resource.group, objects, list_meta=list_meta, include_object=include,
                        printer_columns=_printer_columns(resource), api_version=api_version)


def watch_table_transform(resource: ResourceType, accept: str, query: Mapping[str, str]) -> Callable[[bytes], bytes] | None:
    """For ``kubectl get -w``: each watch line's object becomes a one-row Table (headers on the first)."""
    options = _table_options(accept, query)
    if options is None:
        return None
    api_version, include = options
    state = {"first": True}

    def transform(line: bytes) -> bytes:
        event = json.loads(line)
        if event["type"] not in ("BOOKMARK", "ERROR") and not printable(resource, event["object"]):
            return b""  # the event of a malformed object is left out of a table watch
        result = tables.watch_event_table(event["type"], event["object"], resource.kind, resource.group,
                                          include_object=include, printer_columns=_printer_columns(resource),
                                          first=state["first"], api_version=api_version)
        if event["type"] not in ("BOOKMARK", "ERROR"):
            state["first"] = False
        return (json.dumps(result, separators=(",", ":")) + "\n").encode()

    return transform


# OpenAPI --------------------------------------------------------------------------------------
def _crd_schemas(crds: Iterable[dict[str, Any]], group: str, version: str) -> dict[str, Any]:
    schemas = {}
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("group") == group:
            schemas[(spec.get("names") or {}).get("kind", "")] = openapi.crd_version_schema(crd, version)
    return schemas


def openapi_v3(registry: Registry, crds: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """``/openapi/v3`` (the index, with content hashes) or ``/openapi/v3/<api|apis>/...`` (one document)."""
    relative = path[len("/openapi/v3"):].strip("/")
    if not relative:
        hashes = {}
        for group, versions in registry.groups().items():
            for version in versions:
                document = _document(registry, crds, group, version)
                if document is not None:
                    hashes[openapi.group_version_path(group, version)] = openapi.document_hash(document)
        return openapi.openapi_v3_root(registry.groups(), hashes)
    parts = relative.split("/")
    if parts[0] == "api" and len(parts) == 2:
        return _document(registry, crds, "", parts[1])
    if parts[0] == "apis" and len(parts) == 3:
        return _document(registry, crds, parts[1], parts[2])
    return None


def _document(registry: Registry, crds: list[dict[str, Any]], group: str, version: str) -> dict[str, Any] | None:
    return openapi.openapi_v3_document(group, version, registry.in_group_version(group, version),
                                       _crd_schemas(crds, group, version))


def openapi_v2(registry: Registry, crds: list[dict[str, Any]]) -> dict[str, Any]:
    schemas: dict[tuple[str, str, str], Any] = {}
    for crd in crds:
        spec = crd.get("spec") or {}
        for entry in spec.get("versions") or []:
            key = (spec.get("group", ""), entry.get("name", ""), (spec.get("names") or {}).get("kind", ""))
            schemas[key] = openapi.crd_version_schema(crd, entry.get("name", ""))
    return openapi.openapi_v2(list(registry.all()), schemas)


def openapi_v2_protobuf(registry: Registry, crds: list[dict[str, Any]]) -> bytes:
    """``/openapi/v2`` as kubectl asks for it (gnostic protobuf), encoded once per set of served
    resource types and CRD specs (status changes of a CRD do not change the document)."""
    key = openapi_v2proto.cache_key([[repr(r) for r in registry.all()], [c.get("spec") for c in crds]])
    return openapi_v2proto.encode_cached(key, lambda: openapi_v2(registry, crds))


# field validation -----------------------------------------------------------------------------
def unknown_fields(resource: ResourceType, body: Mapping[str, Any], crds: list[dict[str, Any]]) -> list[str]:
    if is_custom(resource):
        for crd in crds:
            spec = crd.get("spec") or {}
            if spec.get("group") == resource.group and (spec.get("names") or {}).get("plural") == resource.plural:
                return openapi.unknown_fields_custom(openapi.crd_version_schema(crd, resource.version), body)
        return []
    name = openapi.schema_name(resource.group, resource.version, resource.kind)
    return openapi.unknown_fields(name, body) if name else []


def check_fields(resource: ResourceType, body: Any, query: Mapping[str, str], crds: list[dict[str, Any]]) -> list[str]:
    """Apply ``fieldValidation`` to a create/update body: raise (Strict) or drop the unknown fields
    from ``body`` in place; the ``Warning`` headers to send (Warn)."""
    if not isinstance(body, dict):
        return []
    try:
        mode = openapi.field_validation(query.get("fieldValidation", ""))
    except ValueError as error:
        raise errors.bad_request(str(error)) from None
    fields = unknown_fields(resource, body, crds)
    if fields and mode == "Strict":
        status = openapi.strict_error_status(resource.kind, resource.version, fields)
        raise errors.ApiError(400, "BadRequest", status["message"])
    for field in fields:
        drop_path(body, field)
    _check_custom_values(resource, body, crds)
    return openapi.warning_headers(fields) if fields and mode == "Warn" else []


def _check_custom_values(resource: ResourceType, body: dict[str, Any], crds: list[dict[str, Any]]) -> None:
    """A custom resource's values against its CRD version's schema (types, enums, required): 422 as
    apiextensions-apiserver answers (:mod:`.crdvalues`)."""
    if not is_custom(resource):
        return
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("group") == resource.group and (spec.get("names") or {}).get("plural") == resource.plural:
            causes = crdvalues.value_causes(openapi.crd_version_schema(crd, resource.version), body)
            if causes:
                name = str((body.get("metadata") or {}).get("name") or "")
                message = validation.format_invalid_message(resource.kind, name, causes, group=resource.group)
                raise errors.invalid(resource.group, resource.kind, name, message,
                                     [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes])
            return


def drop_path(document: dict[str, Any], path: str) -> None:
    """Remove ``a.b[2].c`` from ``document`` if it is there."""
    steps: list[str | int] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        if name:
            steps.append(name)
        for index in filter(None, rest.replace("]", "").split("[")) if rest else []:
            steps.append(int(index))
    node: Any = document
    for step in steps[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(steps[-1], None)
    elif isinstance(node, list) and isinstance(steps[-1], int) and steps[-1] < len(node):
        node.pop(steps[-1])
