"""The verbs of the Kubernetes API over the store: get, list, create, update, patch, delete.

HTTP-free: the server turns requests into calls here and :class:`ApiError` into ``Status``
responses. Every write is one store transaction, so the read-check-write of a request (the
resourceVersion precondition, the existence check, the patch) is atomic and ordered.
"""

from __future__ import annotations

import builtins
import copy
import datetime
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cores.common.selectors import FIELD_SELECTORS, parse_field_selector, parse_label_selector
from cores.controlplane import defaults, errors, jsonbody, objects, openapi, patch, typecheck, validation
from cores.controlplane.limits import MAX_JSON_DEPTH, MAX_RESOURCE_VERSION
from cores.controlplane.objects import meta
from cores.controlplane.registry import CRD, Registry, ResourceType
from cores.controlplane.store import Row, Store, Transaction

log = logging.getLogger("kubeedge.controlplane")

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}
DEFAULT_FIELD_SELECTORS = ("metadata.name", "metadata.namespace")
TERMINAL_PHASES = ("Succeeded", "Failed")


def parse_json_body(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A request body's JSON value; 400 for invalid UTF-8, invalid JSON or nesting past ``max_depth``."""
    return jsonbody.parse(body, max_depth)


def parse_resource_version(value: str) -> int:
    """A resourceVersion as a revision ("" and "0": none); ValueError with strconv.ParseUint's words if invalid."""
    if value in ("", "0"):
        return 0
    if not value.isascii() or not value.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{value[:64]}": invalid syntax')
    if len(value) > 19 or int(value) > MAX_RESOURCE_VERSION:
        raise ValueError(f'strconv.ParseUint: parsing "{value[:64]}": value out of range')
    return int(value)


def check_types(resource: ResourceType, obj: Any) -> None:
    """400 BadRequest, in kube-apiserver's words, when a value of ``obj`` has a type its schema refuses;
    then, in place, null map values and list items become zero values as Go's decoder makes them.

    Kinds without a built-in schema (custom resources, reviews) pass unchanged.
    """
    name = openapi.schema_name(resource.group, resource.version, resource.kind)
    if name is not None:
        check_definition(name, obj)
        typecheck.fill_null_items(name, obj)


def check_definition(definition: str, obj: Any) -> None:
    """:func:`check_types` against a named definition (a Binding, DeleteOptions or TokenRequest body)."""
    problem = typecheck.first_problem(definition, obj)
    if problem is not None:
        package, _, kind = definition.rpartition(".")
        raise errors.bad_request(typecheck.decode_error_message(kind, package.rpartition(".")[2], problem))


Matcher = Callable[[dict[str, str], dict[str, str]], bool]
# A mutating admission step on create: (resource, object) -> None, may raise ApiError.
Admission = Callable[[ResourceType, dict[str, Any]], Awaitable[None]]


def selector_matcher(resource: ResourceType, label_selector: str, field_selector: str) -> Matcher | None:
    """A (labels, fields) predicate for the selectors of a list or watch, or None when there are none."""
    try:
        labels = parse_label_selector(label_selector) if label_selector else None
        allowed = FIELD_SELECTORS.get(resource.plural, DEFAULT_FIELD_SELECTORS)
        fields = parse_field_selector(field_selector, allowed) if field_selector else None
    except ValueError as error:
        raise errors.bad_request(str(error)) from None
    if labels is None and fields is None:
        return None

    def match(row_labels: dict[str, str], row_fields: dict[str, str]) -> bool:
        return (labels is None or labels.matches(row_labels)) and (fields is None or fields.matches_fields(row_fields))

    return match


def row_filter(matcher: Matcher | None) -> Callable[[Row], bool] | None:
    return None if matcher is None else (lambda row: matcher(row.labels, row.fields))


class Api:
    def __init__(self, store: Store, registry: Registry, service_cidr: str = "10.96.0.0/12",
                 max_json_depth: int = MAX_JSON_DEPTH) -> None:
        self.store = store
        self.registry = registry
        self.max_json_depth = max_json_depth
        self.service_network = ipaddress.ip_network(service_cidr)
        self.admission: list[Admission] = []

    # reads --------------------------------------------------------------------------------
    async def get(self, resource: ResourceType, namespace: str | None, name: str) -> str:
        value = await self.store.get(resource.key(namespace, name))
        if value is None:
            raise errors.not_found(resource.group, resource.plural, name)
        return self.render(resource, value)

    def render(self, resource: ResourceType, value: str) -> str:
        """The stored JSON as this version of the resource (CRDs serve one object under each version)."""
        if len(resource.served_versions) > 1 and f'"apiVersion":"{resource.api_version}"' not in value:
            obj = json.loads(value)
            obj["apiVersion"] = resource.api_version
            return json.dumps(obj, separators=(",", ":"))
        return value

    async def list(
        self, resource: ResourceType, namespace: str | None, *, label_selector: str = "", field_selector: str = "",
        limit: int = 0, continue_token: str = "",
    ) -> tuple[int, list[str], str]:
        """(revision, item JSON texts, continue token)."""
        after = ""
        if continue_token:
            after = _decode_continue(continue_token)
        prefix = resource.list_prefix(namespace)
        revision, rows, more = await self.store.list(
            prefix, after=after, limit=limit, match=row_filter(selector_matcher(resource, label_selector, field_selector))
        )
        token = _encode_continue(revision, more) if more else ""
        return revision, [self.render(resource, row.value) for row in rows], token

    # create -------------------------------------------------------------------------------
    async def create(self, resource: ResourceType, namespace: str | None, body: Any, dry_run: bool = False) -> dict[str, Any]:
        obj = self._check_body(resource, namespace, body)
        objects.prepare_create(resource, obj, namespace)
        defaults.apply_defaults(resource.kind, obj)
        self._admit_create(resource, obj)
        for admit in self.admission:
            await admit(resource, obj)
        self._validate(resource, obj, None)
        name = meta(obj)["name"]

        def work(txn: Transaction) -> dict[str, Any]:
            if resource.namespaced:
                self._require_live_namespace(txn, namespace or "")
            key = resource.key(namespace, name)
            if txn.get(key) is not None:
                raise errors.already_exists(resource.group, resource.plural, name)
            if resource.kind == "Service":
                self._allocate_cluster_ip(txn, obj)
            if dry_run:
                return obj
            return txn.put(key, obj)

        created = await self.store.transact(work)
        if resource is CRD or resource.plural == "customresourcedefinitions":
            self.registry.apply_crd(created)
        return created

    def _check_body(self, resource: ResourceType, namespace: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        check_types(resource, obj)  # before anything reads a field: every value has its schema's type
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != resource.kind or api_version and api_version.split("/")[0] not in (resource.group or "v1", resource.api_version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({resource.api_version})"
                if kind == resource.kind else f"{kind} in version \"{api_version}\" cannot be handled as a {resource.kind}"
            )
        body_namespace = meta(obj).get("namespace")
        if resource.namespaced and body_namespace and body_namespace != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        return obj

    def _admit_create(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        if resource.kind == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
            obj["status"] = {
                "acceptedNames": {k: names[k] for k in ("kind", "listKind", "plural", "singular", "shortNames", "categories") if k in names},
                "conditions": [
                    _condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                    _condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ],
                "storedVersions": storage,
            }
            obj["status"]["acceptedNames"].setdefault("listKind", f"{names.get('kind', '')}List")
        if resource.kind == "Namespace":
            obj.setdefault("status", {})["phase"] = "Active"

    def _validate(self, resource: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, status_only: bool = False) -> None:
        causes = (validation.validate_status_update(resource.kind, obj, old or {}) if status_only
                  else validation.validate(resource.kind, obj, old, namespaced=resource.namespaced))
        if causes:
            name = meta(obj).get("name") or meta(obj).get("generateName") or ""
            message = validation.format_invalid_message(resource.kind, name, causes, group=resource.group)
            raise errors.invalid(resource.group, resource.kind, name, message,
                                 [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes])

    def _require_live_namespace(self, txn: Transaction, namespace: str) -> None:
        ns = txn.get(f"/core/namespaces/{namespace}")
        if ns is None:
            raise errors.not_found("", "namespaces", namespace)
        if meta(ns).get("deletionTimestamp"):
            raise errors.forbidden(
                f'unable to create new content in namespace {namespace} because it is being terminated', "", "namespaces", namespace
            )

    def _allocate_cluster_ip(self, txn: Transaction, service: dict[str, Any]) -> None:
        spec = service.setdefault("spec", {})
        if spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName":
            return
        used = {s.get("spec", {}).get("clusterIP") for s in txn.scan("/core/services/")}
        if spec.get("clusterIP"):
            if spec["clusterIP"] in used:
                raise errors.invalid("", "Service", meta(service)["name"],
                                     f'Service "{meta(service)["name"]}" is invalid: spec.clusterIPs: Invalid value: []string{{"{spec["clusterIP"]}"}}: failed to allocate IP {spec["clusterIP"]}: provided IP is already allocated',
                                     [{"reason": "FieldValueInvalid", "message": "provided IP is already allocated", "field": "spec.clusterIPs"}])
        else:
            for host in self.service_network.hosts():
                if str(host) not in used:
                    spec["clusterIP"] = str(host)
                    break
        spec["clusterIPs"] = [spec["clusterIP"]]

    # update and patch ---------------------------------------------------------------------
    async def update(self, resource: ResourceType, namespace: str | None, name: str, body: Any,
                     subresource: str = "", dry_run: bool = False) -> dict[str, Any]:
        new = self._check_body(resource, namespace, body)
        if meta(new).get("name") != name:
            raise errors.bad_request("the name of the object does not match the name on the URL")
        expected = meta(new).get("resourceVersion")
        self._check_resource_version(resource, name, expected)

        def change(old: dict[str, Any]) -> dict[str, Any]:
            if expected and expected != meta(old).get("resourceVersion"):
                raise errors.stale_update(resource.group, resource.plural, name)
            return new

        return await self._write(resource, namespace, name, change, subresource, dry_run)

    async def patch(self, resource: ResourceType, namespace: str | None, name: str, body: bytes, content_type: str,
                    subresource: str = "", dry_run: bool = False,
                    check_fields: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Apply a patch; ``check_fields`` sees (and may refuse or prune) the patched object before it is stored."""
        kind = PATCH_TYPES.get(content_type)
        if kind is None:
            raise errors.unsupported_media_type(content_type, list(PATCH_TYPES))
        if kind == "strategic" and not patch.supports_strategic(resource.kind):
            raise errors.unsupported_media_type(content_type, ["application/json-patch+json", "application/merge-patch+json"])
        document = parse_json_body(body, self.max_json_depth)

        def change(old: dict[str, Any]) -> dict[str, Any]:
            try:
                if kind == "json":
                    patched = patch.json_patch(old, document)
                elif kind == "merge":
                    patched = patch.merge_patch(old, document)
                else:
                    patched = patch.strategic_merge_patch(old, document, resource.kind)
            except patch.PatchError as error:
                raise errors.invalid(resource.group, resource.kind, name, str(error), []) from None
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch made the object something other than a JSON object")
            check_types(resource, patched)  # the patched object, as kube-apiserver decodes it
            expected = meta(patched).get("resourceVersion")
            self._check_resource_version(resource, name, expected)
            if expected and expected != meta(old).get("resourceVersion"):
                raise errors.stale_update(resource.group, resource.plural, name)
            if check_fields is not None:
                check_fields(patched)
            return patched

        return await self._write(resource, namespace, name, change, subresource, dry_run)

    async def _write(self, resource: ResourceType, namespace: str | None, name: str,
                     change: Callable[[dict[str, Any]], dict[str, Any]], subresource: str, dry_run: bool) -> dict[str, Any]:
        key = resource.key(namespace, name)

        def work(txn: Transaction) -> dict[str, Any]:
            old = txn.get(key)
            if old is None:
                raise errors.not_found(resource.group, resource.plural, name)
            changed = change(copy.deepcopy(old))
            check_types(resource, changed)
            new = objects.prepare_update(resource, changed, old, subresource)
            if new is not changed:
                check_types(resource, new)  # what is kept of the stored object is checked too
            if subresource != "status":
                defaults.apply_defaults(resource.kind, new, on_create=False)
            elif resource.kind == "Pod":
                defaults.normalize_pod_status(new)
            self._validate(resource, new, old, status_only=subresource == "status")
            if objects.unchanged(new, old) or dry_run:
                return old if objects.unchanged(new, old) else new
            if self._finalized(new):
                return txn.delete(key, new)
            return txn.put(key, new)

        result = await self.store.transact(work)
        if resource.plural == "customresourcedefinitions" and resource.group == CRD.group:
            self.registry.apply_crd(result)
        return result

    @staticmethod
    def _check_resource_version(resource: ResourceType, name: str, value: Any) -> None:
        """422 Invalid for a metadata.resourceVersion that is no revision (kube-apiserver's versioner)."""
        if not value:
            return
        try:
            parse_resource_version(str(value))
        except ValueError as error:
            cause = validation.invalid("metadata.resourceVersion", str(value)[:64], str(error))
            message = validation.format_invalid_message(resource.kind, name, [cause], group=resource.group)
            raise errors.invalid(resource.group, resource.kind, name, message,
                                 [{"reason": cause.reason, "message": cause.message, "field": cause.field}]) from None

    @staticmethod
    def _finalized(obj: dict[str, Any]) -> bool:
        """A deleted object whose last finalizer just went, so it goes now.

        A pod still inside its grace period stays: its kubelet removes it with a zero grace.
        """
        metadata = meta(obj)
        if not metadata.get("deletionTimestamp") or metadata.get("finalizers"):
            return False
        return obj.get("kind") != "Pod" or metadata.get("deletionGracePeriodSeconds") == 0

    # delete -------------------------------------------------------------------------------
    async def delete(self, resource: ResourceType, namespace: str | None, name: str, options: dict[str, Any],
                     dry_run: bool = False) -> tuple[bool, dict[str, Any]]:
        """(removed now, object). Graceful pod deletion and finalizers keep the object, marked."""
        key = resource.key(namespace, name)

        def work(txn: Transaction) -> tuple[bool, dict[str, Any]]:
            obj = txn.get(key)
            if obj is None:
                raise errors.not_found(resource.group, resource.plural, name)
            self._check_preconditions(resource, obj, options.get("preconditions") or {})
            return self._delete_in(txn, resource, key, obj, options, dry_run)

        removed, obj = await self.store.transact(work)
        if removed and resource.plural == "customresourcedefinitions" and resource.group == CRD.group:
            await self._remove_crd_objects(obj)
        if removed:
            await self._collect_dependents(obj, options.get("propagationPolicy") or "Background")
        return removed, obj

    def _check_preconditions(self, resource: ResourceType, obj: dict[str, Any], preconditions: dict[str, Any]) -> None:
        metadata = meta(obj)
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = preconditions.get(field)
            if wanted and wanted != metadata.get(field):
                raise errors.conflict(
                    resource.group, resource.plural, metadata.get("name", ""),
                    f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {metadata.get(field)}",
                )

    def _delete_in(self, txn: Transaction, resource: ResourceType, key: str, obj: dict[str, Any],
                   options: dict[str, Any], dry_run: bool) -> tuple[bool, dict[str, Any]]:
        metadata = meta(obj)
        grace = self._grace_period(resource, obj, options)
        if resource.kind == "Namespace":
            if not metadata.get("deletionTimestamp"):
                metadata["deletionTimestamp"] = objects.now_rfc3339()
                obj.setdefault("status", {})["phase"] = "Terminating"
                return False, obj if dry_run else txn.put(key, obj)
            return False, obj
        if metadata.get("finalizers"):
            if not metadata.get("deletionTimestamp"):
                metadata["deletionTimestamp"] = objects.now_rfc3339(grace)
            metadata["deletionGracePeriodSeconds"] = grace
            return False, obj if dry_run else txn.put(key, obj)
        if grace > 0:
            current = metadata.get("deletionGracePeriodSeconds")
            if metadata.get("deletionTimestamp") and current is not None and current <= grace:
                return False, obj  # already going, at least as fast
            metadata["deletionTimestamp"] = objects.now_rfc3339(grace)
            metadata["deletionGracePeriodSeconds"] = grace
            return False, obj if dry_run else txn.put(key, obj)
        return True, obj if dry_run else txn.delete(key, obj)

    @staticmethod
    def _grace_period(resource: ResourceType, obj: dict[str, Any], options: dict[str, Any]) -> int:
        if resource.kind != "Pod":
            return 0
        spec, status = obj.get("spec"), obj.get("status")
        spec, status = spec if isinstance(spec, dict) else {}, status if isinstance(status, dict) else {}
        if not spec.get("nodeName") or status.get("phase") in TERMINAL_PHASES:
            return 0  # nothing runs it: kube-apiserver deletes unscheduled and finished pods at once
        requested = options.get("gracePeriodSeconds")
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        return max(requested, 0) if isinstance(requested, int) else 30

    async def delete_collection(self, resource: ResourceType, namespace: str | None, options: dict[str, Any],
                                label_selector: str = "", field_selector: str = "", dry_run: bool = False) -> builtins.list[dict[str, Any]]:
        _, items, _ = await self.list(resource, namespace, label_selector=label_selector, field_selector=field_selector)
        deleted = []
        for item in items:
            obj = json.loads(item)
            try:
                _, result = await self.delete(resource, meta(obj).get("namespace"), meta(obj)["name"], options, dry_run)
            except errors.ApiError as error:
                if error.code != 404:
                    raise
                continue
            deleted.append(result)
        return deleted

    async def _remove_crd_objects(self, crd: dict[str, Any]) -> None:
        types = self.registry.remove_crd(meta(crd)["name"])
        if not types:
            return
        prefix = types[0].key_prefix

        def work(txn: Transaction) -> None:
            for obj in txn.scan(prefix):
                txn.delete(types[0].key(meta(obj).get("namespace"), meta(obj)["name"]), obj)

        await self.store.transact(work)

    async def _collect_dependents(self, owner: dict[str, Any], policy: str) -> None:
        """Background/Foreground: delete objects the owner owned; Orphan: drop their reference to it."""
        uid = meta(owner).get("uid")
        if not uid:
            return
        for key, value in await self.store.containing(f'"uid":"{uid}"'):
            dependent = json.loads(value)
            resource = self.registry.by_key(key)
            if resource is not None and uid in objects.owner_uids(dependent):
                await self._release_or_delete(resource, dependent, uid, policy)

    async def _release_or_delete(self, resource: ResourceType, dependent: dict[str, Any], uid: str, policy: str) -> None:
        name, namespace = meta(dependent)["name"], meta(dependent).get("namespace")
        try:
            if policy == "Orphan":
                refs = [r for r in meta(dependent).get("ownerReferences") or [] if r.get("uid") != uid]
                await self.patch(resource, namespace, name, json.dumps({"metadata": {"ownerReferences": refs or None}}).encode(),
                                 "application/merge-patch+json")
            else:
                await self.delete(resource, namespace, name, {"propagationPolicy": policy})
        except errors.ApiError as error:
            if error.code != 404:
                log.warning("garbage collection of %s %s/%s failed: %s", resource.kind, namespace, name, error)

    # pods/binding -------------------------------------------------------------------------
    async def bind(self, resource: ResourceType, namespace: str, name: str, body: Any) -> None:
        check_definition("io.k8s.api.core.v1.Binding", body)
        target = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not target:
            raise errors.invalid("", "Binding", name, f'Binding "{name}" is invalid: target.name: Required value',
                                 [{"reason": "FieldValueRequired", "message": "Required value", "field": "target.name"}])
        key = resource.key(namespace, name)

        def work(txn: Transaction) -> None:
            pod = txn.get(key)
            if pod is None:
                raise errors.not_found("", "pods", name)
            if meta(pod).get("deletionTimestamp"):
                raise errors.conflict("", "pods", name, "pod is being deleted, cannot be assigned to a host")
            current = (pod.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict("", "pods", name, f'pod {name} is already assigned to node "{current}"')
            for part in ("spec", "status"):  # a stored object from before types were checked
                if not isinstance(pod.get(part), dict):
                    pod[part] = {}
            pod["spec"]["nodeName"] = target
            conditions = [c for c in (pod["status"].get("conditions") or [])
                          if isinstance(c, dict) and c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": objects.now_rfc3339()})
            pod["status"]["conditions"] = conditions
            txn.put(key, pod)

        await self.store.transact(work)

    # scale --------------------------------------------------------------------------------
    async def get_scale(self, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        return scale_of(json.loads(await self.get(resource, namespace, name)))

    async def write_scale(self, resource: ResourceType, namespace: str | None, name: str, body: bytes,
                          content_type: str, dry_run: bool = False) -> dict[str, Any]:
        """PUT (``content_type`` "") or PATCH of ``<resource>/<name>/scale``: only spec.replicas moves."""
        kind = PATCH_TYPES.get(content_type) if content_type else "update"
        if kind is None:
            raise errors.unsupported_media_type(content_type, list(PATCH_TYPES))
        document = parse_json_body(body, self.max_json_depth)

        def change(old: dict[str, Any]) -> dict[str, Any]:
            scale = scale_of(old)
            try:
                if kind == "update":
                    wanted = document
                elif kind == "json":
                    wanted = patch.json_patch(scale, document)
                else:
                    wanted = patch.merge_patch(scale, document)
            except patch.PatchError as error:
                raise errors.invalid("autoscaling", "Scale", name, str(error), []) from None
            if not isinstance(wanted, dict):
                raise errors.bad_request("the request body must be a Scale object")
            expected = meta(wanted).get("resourceVersion")
            if expected and expected != meta(old).get("resourceVersion"):
                raise errors.stale_update(resource.group, resource.plural, name)
            replicas = (wanted.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid("autoscaling", "Scale", name,
                                     f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                                     "must be greater than or equal to 0",
                                     [{"reason": "FieldValueInvalid", "message": "must be greater than or equal to 0",
                                       "field": "spec.replicas"}])
            old.setdefault("spec", {})["replicas"] = replicas
            meta(old).pop("resourceVersion", None)
            return old

        return scale_of(await self._write(resource, namespace, name, change, "", dry_run))


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a Deployment or ReplicaSet."""
    from cores.common.selectors import label_selector_from_dict

    metadata = meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector")
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in metadata},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0),
                   "selector": str(label_selector_from_dict(selector)) if selector else ""},
    }


def _condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "lastTransitionTime": objects.now_rfc3339(), "reason": reason, "message": message}


def _encode_continue(revision: int, last_key: str) -> str:
    import base64

    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> str:
    import base64

    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        start = json.loads(raw)["start"]
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)") from None
    if not isinstance(start, str):
        raise errors.bad_request("continue key is not valid")
    return start


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
