"""The three PATCH content types kube-apiserver accepts, applied to plain JSON values.

Owns ``application/merge-patch+json`` (RFC 7386), ``application/json-patch+json`` (RFC 6902) and
``application/strategic-merge-patch+json`` (apimachinery's ``strategicpatch``, applied the way
``StrategicMergeMapPatch`` does on the server: parallel lists merged, unmatched nulls ignored).
Strategic merge needs each list's patch strategy; Kubernetes reads it from Go struct tags, we read
it from ``_LIST_STRATEGIES`` below, a table of the fields that have one, per kind and field path.

Everything here is pure: no I/O, inputs are never mutated, results are new objects.
Every invalid patch raises ``PatchError`` with a one-line message naming the place.
"""

from __future__ import annotations

import copy
from typing import Any

# A list with patchStrategy "merge": the patchMergeKey, or None for a list of primitives (merged as a set).
MergeKey = str | None
# Where a value sits: its field names from the object's root, list indices left out.
Path = tuple[str, ...]

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """The patch is invalid or cannot be applied; the server answers 422 with this message."""


# ---------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def merge_patch(original: Any, patch: Any) -> Any:
    """Apply a JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    # RFC 7386: "If Target is not an Object, Target = {}".
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


# ---------------------------------------------------------------------------------------------
# RFC 6902 JSON patch


def json_patch(original: Any, operations: Any) -> Any:
    """Apply a list of JSON patch operations in order; the first failing one aborts the whole patch."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    document = copy.deepcopy(original)
    for index, operation in enumerate(operations):
        document = _apply_operation(document, operation, index)
    return document


def _apply_operation(document: Any, operation: Any, index: int) -> Any:
    if not isinstance(operation, dict):
        raise PatchError(f"json patch operation {index}: must be an object")
    op, path = operation.get("op"), operation.get("path")
    if not isinstance(op, str) or not isinstance(path, str):
        raise PatchError(f"json patch operation {index}: needs string fields 'op' and 'path'")
    where = f"json patch operation {index} ({op} {path!r})"
    tokens = _parse_pointer(path, where)
    if op in ("add", "replace", "test") and "value" not in operation:
        raise PatchError(f"{where}: missing 'value'")
    if op == "add":
        return _add(document, tokens, copy.deepcopy(operation["value"]), where)
    if op == "remove":
        return _remove(document, tokens, where)[0]
    if op == "replace":
        # RFC 6902 4.3: "The target location MUST exist"; removing then adding keeps list positions.
        _resolve(document, tokens, where)
        if not tokens:
            return copy.deepcopy(operation["value"])
        return _add(_remove(document, tokens, where)[0], tokens, copy.deepcopy(operation["value"]), where)
    if op == "test":
        if not _json_equal(_resolve(document, tokens, where), operation["value"]):
            raise PatchError(f"{where}: test failed, value differs")
        return document
    if op in ("move", "copy"):
        return _move_or_copy(document, operation, tokens, where)
    raise PatchError(f"{where}: unknown op {op!r}")


def _move_or_copy(document: Any, operation: dict[str, Any], tokens: list[str], where: str) -> Any:
    source = operation.get("from")
    if not isinstance(source, str):
        raise PatchError(f"{where}: missing string field 'from'")
    from_tokens = _parse_pointer(source, where)
    if operation["op"] == "copy":
        return _add(document, tokens, copy.deepcopy(_resolve(document, from_tokens, where)), where)
    # RFC 6902 4.4: "The 'from' location MUST NOT be a proper prefix of the 'path' location".
    if len(from_tokens) < len(tokens) and tokens[: len(from_tokens)] == from_tokens:
        raise PatchError(f"{where}: cannot move a value into one of its own children")
    document, value = _remove(document, from_tokens, where)
    return _add(document, tokens, value, where)


def _parse_pointer(pointer: str, where: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"{where}: JSON pointer must be empty or start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        # RFC 6901 3: "~" is only valid as "~0" or "~1".
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise PatchError(f"{where}: bad '~' escape in JSON pointer")
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _list_index(container: list[Any], token: str, where: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    # RFC 6901 4: array indexes are "0" or digits without a leading zero.
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"{where}: {token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"{where}: array index {index} out of range (length {len(container)})")
    return index


def _resolve(document: Any, tokens: list[str], where: str) -> Any:
    value = document
    for token in tokens:
        if isinstance(value, dict):
            if token not in value:
                raise PatchError(f"{where}: path not found")
            value = value[token]
        elif isinstance(value, list):
            value = value[_list_index(value, token, where, allow_end=False)]
        else:
            raise PatchError(f"{where}: path not found")
    return value


def _add(document: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(document, tokens[:-1], where)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, tokens[-1], where, allow_end=True), value)
    else:
        raise PatchError(f"{where}: parent is not an object or array")
    return document


def _remove(document: Any, tokens: list[str], where: str) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError(f"{where}: cannot remove the whole document")
    parent = _resolve(document, tokens[:-1], where)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"{where}: path not found")
        return document, parent.pop(tokens[-1])
    if isinstance(parent, list):
        return document, parent.pop(_list_index(parent, tokens[-1], where, allow_end=False))
    raise PatchError(f"{where}: path not found")


def _json_equal(left: Any, right: Any) -> bool:
    # Python says True == 1; JSON does not.
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right))
    return (type(left) is type(right) or _both_numbers(left, right)) and bool(left == right)


def _both_numbers(left: Any, right: Any) -> bool:
    return isinstance(left, (int, float)) and isinstance(right, (int, float))


# ---------------------------------------------------------------------------------------------
# Patch strategies of the built-in kinds (k8s.io/api struct tags), by field path without indices

_OBJECT_META: dict[str, MergeKey] = {"ownerReferences": "uid", "finalizers": None}
_CONTAINER: dict[str, MergeKey] = {
    "ports": "containerPort", "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
}
_POD_SPEC: dict[str, MergeKey] = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "imagePullSecrets": "name", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name", "schedulingGates": "name",
}
# containerStatuses, initContainerStatuses and ephemeralContainerStatuses have no patchStrategy in
# core/v1 types.go, so they are replaced wholesale (the kubelet always sends the full list).
_POD_STATUS: dict[str, MergeKey] = {
    "conditions": "type", "podIPs": "ip", "hostIPs": "ip", "resourceClaimStatuses": "name",
}


def _under(prefix: str, table: dict[str, MergeKey]) -> dict[str, MergeKey]:
    return {f"{prefix}.{path}": key for path, key in table.items()}


def _pod_spec(prefix: str) -> dict[str, MergeKey]:
    table = dict(_POD_SPEC)
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        table.update(_under(containers, _CONTAINER))
    return _under(prefix, table)


def _kind(*tables: dict[str, MergeKey]) -> dict[Path, MergeKey]:
    merged: dict[str, MergeKey] = _under("metadata", _OBJECT_META)
    for table in tables:
        merged.update(table)
    return {tuple(path.split(".")): key for path, key in merged.items()}


def _workload() -> dict[Path, MergeKey]:
    return _kind(
        _under("spec.template.metadata", _OBJECT_META), _pod_spec("spec.template.spec"),
        {"status.conditions": "type"},
    )


_LIST_STRATEGIES: dict[str, dict[Path, MergeKey]] = {
    "Pod": _kind(_pod_spec("spec"), _under("status", _POD_STATUS)),
    # spec.taints, status.images and status.volumesAttached have no patchStrategy: replaced.
    "Node": _kind({"spec.podCIDRs": None, "status.conditions": "type", "status.addresses": "type"}),
    "Namespace": _kind({"status.conditions": "type"}),
    "ConfigMap": _kind(),
    "Secret": _kind(),
    "Service": _kind({"spec.ports": "port", "status.conditions": "type"}),
    "Endpoints": _kind(),
    "Event": _kind(),
    "ServiceAccount": _kind({"secrets": "name"}),
    "Lease": _kind(),
    "Deployment": _workload(),
    "ReplicaSet": _workload(),
    "DaemonSet": _workload(),
    "StatefulSet": _workload(),
    "Job": _workload(),
    "CronJob": _kind(),
}


def supports_strategic(kind: str) -> bool:
    """Whether strategic merge patch is defined for this kind (custom resources get HTTP 415)."""
    return kind in _LIST_STRATEGIES


# ---------------------------------------------------------------------------------------------
# Strategic merge patch


def strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to an object of a built-in kind."""
    if not supports_strategic(kind):
        raise PatchError(f"strategic merge patch is not supported for kind {kind!r}")
    if not isinstance(original, dict) or not isinstance(patch, dict):
        raise PatchError("strategic merge patch and object must both be JSON objects")
    return _Merger(_LIST_STRATEGIES[kind]).merge_map(copy.deepcopy(original), patch, ())


class _Merger:
    """Walks original and patch together, knowing the field path to look up list strategies."""

    def __init__(self, strategies: dict[Path, MergeKey]) -> None:
        self.strategies = strategies

    def strategy(self, path: Path) -> tuple[bool, MergeKey]:
        """(merge?, merge key) for the list at path; lists not in the table are replaced."""
        return path in self.strategies, self.strategies.get(path)

    def merge_map(self, original: dict[str, Any], patch: dict[str, Any], path: Path) -> dict[str, Any]:
        if _DIRECTIVE in patch:
            rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
            directive = patch[_DIRECTIVE]
            if directive == "delete":
                return {}
            if directive == "replace":
                return self.merge_map({}, rest, path)
            if directive != "merge":
                raise PatchError(f"{_where(path)}: unknown $patch directive {directive!r}")
            patch = rest
        result = dict(original)
        patch = self.retain_keys(result, patch, path)
        patch = self.set_element_orders(result, patch, path)
        patch = self.delete_from_primitive_lists(result, patch, path)
        for key, value in patch.items():
            if key.startswith("$"):
                raise PatchError(f"{_where(path)}: unknown directive {key!r}")
            if value is None:
                # IgnoreUnmatchedNulls: null deletes the key, or does nothing if it is absent.
                result.pop(key, None)
            else:
                result[key] = self.merge_value(result.get(key), value, path + (key,))
        return result

    def merge_value(self, original: Any, patch: Any, path: Path) -> Any:
        # apimachinery replaces the value whenever original and patch differ in JSON type.
        if isinstance(patch, dict):
            return self.merge_map(original if isinstance(original, dict) else {}, patch, path)
        if isinstance(patch, list):
            return self.merge_list(original if isinstance(original, list) else [], patch, path)
        return patch

    def merge_list(self, original: list[Any], patch: list[Any], path: Path) -> list[Any]:
        merge, key = self.strategy(path)
        if not merge:
            return [self.merge_value(None, item, path) for item in patch]
        if key is None:
            return _merge_primitives(original, patch, path)
        return self.merge_keyed(original, patch, key, path)

    def merge_keyed(self, original: list[Any], patch: list[Any], key: str, path: Path) -> list[Any]:
        _require_maps(original, key, path)
        # A {"$patch": "replace"} item names no element, so it alone may lack the merge key.
        _require_maps([p for p in patch if not isinstance(p, dict) or p.get(_DIRECTIVE) != "replace"], key, path)
        remaining: list[dict[str, Any]] = []
        for item in patch:
            directive = item.get(_DIRECTIVE, "merge")
            if directive == "delete":
                original = [old for old in original if not _json_equal(old.get(key), item[key])]
            elif directive == "replace":
                # Kubernetes: the list becomes exactly the patch's other (non-directive) items.
                return [self.merge_map({}, p, path) for p in patch if _DIRECTIVE not in p]
            elif directive == "merge":
                remaining.append({k: v for k, v in item.items() if k != _DIRECTIVE})
            else:
                raise PatchError(f"{_where(path)}: unknown $patch directive {directive!r}")
        merged = list(original)
        for item in remaining:
            at = _find(merged, key, item[key])
            if at is None:
                merged.append(self.merge_map({}, item, path))
            else:
                merged[at] = self.merge_map(merged[at], item, path)
        return _enforce_order(merged, remaining, original, key, path)

    def retain_keys(self, result: dict[str, Any], patch: dict[str, Any], path: Path) -> dict[str, Any]:
        """Drop the object's fields not listed in $retainKeys (Kubernetes uses it for union fields)."""
        if _RETAIN_KEYS not in patch:
            return patch
        retained = patch[_RETAIN_KEYS]
        if not isinstance(retained, list):
            raise PatchError(f"{_where(path)}: $retainKeys must be a list of field names")
        patch = {k: v for k, v in patch.items() if k != _RETAIN_KEYS}
        for key, value in patch.items():
            # apimachinery: every field set in the patch must be in the $retainKeys list.
            if value is not None and not key.startswith((_DELETE_FROM, _SET_ORDER)) and key not in retained:
                raise PatchError(f"{_where(path)}: field {key!r} is set but not listed in $retainKeys")
        for key in [k for k in result if k not in retained]:
            del result[key]
        return patch

    def set_element_orders(
        self, result: dict[str, Any], patch: dict[str, Any], path: Path
    ) -> dict[str, Any]:
        """Merge each list named by a $setElementOrder/<field> and put it in that order."""
        rest = dict(patch)
        for directive, order in patch.items():
            if not directive.startswith(_SET_ORDER):
                continue
            del rest[directive]
            field = directive[len(_SET_ORDER):]
            where = path + (field,)
            if not isinstance(order, list):
                raise PatchError(f"{_where(where)}: {directive} must be a list")
            patch_list = rest.pop(field, None)
            original_list = result.get(field)
            if patch_list is None and original_list is None:
                continue
            for value, name in ((patch_list, "patch"), (original_list, "object")):
                if value is not None and not isinstance(value, list):
                    raise PatchError(f"{_where(where)}: {name} value must be a list to use {directive}")
            key = self.strategy(where)[1]
            if key is not None:
                _require_maps(order, key, where)
            _check_order_matches(patch_list or [], order, key, where)
            merged = original_list if patch_list is None else self.merge_list(original_list or [], patch_list, where)
            result[field] = _enforce_order(merged or [], order, original_list or [], key, where)
        return rest

    def delete_from_primitive_lists(
        self, result: dict[str, Any], patch: dict[str, Any], path: Path
    ) -> dict[str, Any]:
        """Remove the values named by each $deleteFromPrimitiveList/<field>; done before the
        field's own merge so that a patch deleting some values and adding others is deterministic."""
        rest: dict[str, Any] = {}
        for directive, values in patch.items():
            if not directive.startswith(_DELETE_FROM):
                rest[directive] = values
                continue
            where = path + (directive[len(_DELETE_FROM):],)
            if not isinstance(values, list):
                raise PatchError(f"{_where(where)}: {directive} must be a list")
            current = result.get(where[-1])
            if isinstance(current, list):
                doomed = {_token(v, where) for v in values}
                result[where[-1]] = [v for v in current if _token(v, where) not in doomed]
        return rest


def _merge_primitives(original: list[Any], patch: list[Any], path: Path) -> list[Any]:
    merged: list[Any] = []
    seen: set[Any] = set()
    for value in original + patch:
        if _token(value, path) not in seen:
            seen.add(_token(value, path))
            merged.append(value)
    return _enforce_order(merged, patch, original, None, path)


def _enforce_order(
    merged: list[Any], patch_order: list[Any], server_order: list[Any], key: MergeKey, path: Path
) -> list[Any]:
    """apimachinery's normalizeElementOrder: items named in patch_order come in that order, the
    others keep their server order, and the two runs are interleaved by server position.

    As in mergeSortedSlice, a server-only item goes first only when both it and the next patch
    item are in server_order and it comes earlier there; so patch items new to the list end up
    before the server-only items that follow them ("$setElementOrder > order in patch list >
    order in live list").
    """
    patch_ids = [_identity(item, key, path) for item in patch_order]
    server_ids = [_identity(item, key, path) for item in server_order]

    def position(ids: list[Any], item: Any) -> int:
        ident = _identity(item, key, path)
        return ids.index(ident) if ident in ids else len(ids)

    in_patch = [i for i in merged if _identity(i, key, path) in patch_ids]
    server_only = [i for i in merged if _identity(i, key, path) not in patch_ids]
    in_patch.sort(key=lambda i: position(patch_ids, i))
    server_only.sort(key=lambda i: position(server_ids, i))
    result: list[Any] = []
    while in_patch and server_only:
        left, right = position(server_ids, server_only[0]), position(server_ids, in_patch[0])
        both_known = left < len(server_ids) and right < len(server_ids)
        result.append(server_only.pop(0) if both_known and left < right else in_patch.pop(0))
    return result + in_patch + server_only


def _check_order_matches(patch_list: list[Any], order: list[Any], key: MergeKey, path: Path) -> None:
    """apimachinery's validatePatchWithSetOrderList: patch items must appear in $setElementOrder, in its order."""
    ids = [_identity(item, key, path) for item in order]
    at = 0
    for item in patch_list:
        if isinstance(item, dict) and _DIRECTIVE in item:
            continue
        ident = _identity(item, key, path)
        while at < len(ids) and ids[at] != ident:
            at += 1
        if at == len(ids):
            raise PatchError(f"{_where(path)}: the patch list order does not match $setElementOrder")
        at += 1


def _require_maps(items: list[Any], key: str, path: Path) -> None:
    for item in items:
        if not isinstance(item, dict):
            raise PatchError(f"{_where(path)}: list items must be objects merged by {key!r}")
        if key not in item:
            raise PatchError(f"{_where(path)}: list item has no merge key {key!r}")


def _find(items: list[dict[str, Any]], key: str, value: Any) -> int | None:
    for index, item in enumerate(items):
        if key in item and _json_equal(item[key], value):
            return index
    return None


def _token(value: Any, path: Path) -> tuple[bool, Any]:
    """A hashable stand-in for a primitive list value (keeping JSON's true != 1)."""
    if isinstance(value, (dict, list)):
        raise PatchError(f"{_where(path)}: expected a list of primitive values")
    return isinstance(value, bool), value


def _identity(item: Any, key: MergeKey, path: Path) -> Any:
    """What list items are matched by: the value itself, or the value of the merge key."""
    if key is None:
        return _token(item, path)
    value = item.get(key) if isinstance(item, dict) else None
    return _token(value, path) if not isinstance(value, (dict, list)) else repr(value)


def _where(path: Path) -> str:
    return ".".join(path) if path else "<root>"
