"""Generate ``cores/controlplane/schemas/definitions.json.gz`` from the ``kubernetes`` client's models.

Run by hand (``python scripts/gen_openapi_schemas.py``) when the served kinds change; the control
plane itself never imports ``kubernetes`` (43 MB): it reads the committed file, lazily.

The client's pydantic models carry each property's JSON name, type, description and whether it
is required; the class docstring is the type's description. Definition names follow kube-apiserver
(``io.k8s.api.core.v1.Pod``) so ``kubectl explain`` and the OpenAPI documents look as upstream.
References are written as bare definition names (``{"$ref": "io.k8s.api.core.v1.PodSpec"}``);
``cores.controlplane.openapi`` turns them into v2 or v3 references.
"""

from __future__ import annotations

import datetime
import gzip
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any

import kubernetes.client as client

OUT = Path(__file__).resolve().parent.parent / "cores" / "controlplane" / "schemas" / "definitions.json.gz"

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
COORDINATION = "io.k8s.api.coordination.v1."
POLICY = "io.k8s.api.policy.v1."
BATCH = "io.k8s.api.batch.v1."
DISCOVERY = "io.k8s.api.discovery.v1."
DISCOVERY_TYPES = {"EndpointSlice", "EndpointSliceList", "Endpoint", "EndpointConditions", "EndpointHints", "ForZone",
                   "ForNode"}
AUTHENTICATION = "io.k8s.api.authentication.v1."
RBAC = "io.k8s.api.rbac.v1."
AUTHORIZATION = "io.k8s.api.authorization.v1."
RBAC_PREFIXES = ("Role", "ClusterRole", "PolicyRule", "AggregationRule")
AUTHORIZATION_PREFIXES = ("SubjectAccessReview", "SelfSubjectAccessReview", "ResourceAttributes", "NonResourceAttributes",
                          "FieldSelectorAttributes", "LabelSelectorAttributes")
APIEXTENSIONS = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = META + "Time"

# The kinds this server serves (and what their requests and subresources carry), with their group/version.
ROOTS: dict[str, tuple[str, str, str]] = {
    "V1Pod": ("", "v1", "Pod"), "V1PodList": ("", "v1", "PodList"),
    "V1Node": ("", "v1", "Node"), "V1NodeList": ("", "v1", "NodeList"),
    "V1Namespace": ("", "v1", "Namespace"), "V1NamespaceList": ("", "v1", "NamespaceList"),
    "V1ConfigMap": ("", "v1", "ConfigMap"), "V1ConfigMapList": ("", "v1", "ConfigMapList"),
    "V1Secret": ("", "v1", "Secret"), "V1SecretList": ("", "v1", "SecretList"),
    "V1Service": ("", "v1", "Service"), "V1ServiceList": ("", "v1", "ServiceList"),
    "V1Endpoints": ("", "v1", "Endpoints"), "V1EndpointsList": ("", "v1", "EndpointsList"),
    "CoreV1Event": ("", "v1", "Event"), "CoreV1EventList": ("", "v1", "EventList"),
    "V1ServiceAccount": ("", "v1", "ServiceAccount"), "V1ServiceAccountList": ("", "v1", "ServiceAccountList"),
    "V1Binding": ("", "v1", "Binding"),
    "V1Lease": ("coordination.k8s.io", "v1", "Lease"), "V1LeaseList": ("coordination.k8s.io", "v1", "LeaseList"),
    "V1CustomResourceDefinition": ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    "V1CustomResourceDefinitionList": ("apiextensions.k8s.io", "v1", "CustomResourceDefinitionList"),
    "V1Deployment": ("apps", "v1", "Deployment"), "V1DeploymentList": ("apps", "v1", "DeploymentList"),
    "V1ReplicaSet": ("apps", "v1", "ReplicaSet"), "V1ReplicaSetList": ("apps", "v1", "ReplicaSetList"),
    "V1DaemonSet": ("apps", "v1", "DaemonSet"), "V1DaemonSetList": ("apps", "v1", "DaemonSetList"),
    "V1StatefulSet": ("apps", "v1", "StatefulSet"), "V1StatefulSetList": ("apps", "v1", "StatefulSetList"),
    "V1Job": ("batch", "v1", "Job"), "V1JobList": ("batch", "v1", "JobList"),
    "V1EndpointSlice": ("discovery.k8s.io", "v1", "EndpointSlice"),
    "V1EndpointSliceList": ("discovery.k8s.io", "v1", "EndpointSliceList"),
    "V1CronJob": ("batch", "v1", "CronJob"), "V1CronJobList": ("batch", "v1", "CronJobList"),
    "V1Eviction": ("policy", "v1", "Eviction"),
    "AuthenticationV1TokenRequest": ("authentication.k8s.io", "v1", "TokenRequest"),
    "V1Role": ("rbac.authorization.k8s.io", "v1", "Role"), "V1RoleList": ("rbac.authorization.k8s.io", "v1", "RoleList"),
    "V1RoleBinding": ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    "V1RoleBindingList": ("rbac.authorization.k8s.io", "v1", "RoleBindingList"),
    "V1ClusterRole": ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    "V1ClusterRoleList": ("rbac.authorization.k8s.io", "v1", "ClusterRoleList"),
    "V1ClusterRoleBinding": ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    "V1ClusterRoleBindingList": ("rbac.authorization.k8s.io", "v1", "ClusterRoleBindingList"),
    "V1SubjectAccessReview": ("authorization.k8s.io", "v1", "SubjectAccessReview"),
    "V1SelfSubjectAccessReview": ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
    "V1Status": ("", "v1", "Status"),
    "V1DeleteOptions": ("", "v1", "DeleteOptions"),
}
META_TYPES = {"ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement", "ManagedFieldsEntry",
              "OwnerReference", "Status", "StatusDetails", "StatusCause", "DeleteOptions", "Preconditions", "Condition"}
APPS_PREFIXES = ("Deployment", "ReplicaSet", "RollingUpdateDeployment", "DaemonSet", "RollingUpdateDaemonSet",
                 "StatefulSet", "RollingUpdateStatefulSetStrategy")
COORDINATION_TYPES = {"Lease", "LeaseSpec", "LeaseList"}
APIEXTENSIONS_PREFIXES = ("CustomResource", "JSONSchemaProps", "ExternalDocumentation", "ValidationRule",
                          "SelectableField", "WebhookConversion")
AUTHENTICATION_PREFIXES = ("TokenRequest", "BoundObjectReference")
BATCH_PREFIXES = ("Job", "CronJob", "PodFailurePolicy", "SuccessPolicy", "UncountedTerminatedPods")
QUANTITY_MAPS = {"limits", "requests", "capacity", "allocatable", "overhead", "hard", "used"}
QUANTITY_FIELDS = {("V1EmptyDirVolumeSource", "sizeLimit"), ("V1ResourceFieldSelector", "divisor")}


def definition_name(class_name: str) -> str:
    """The upstream definition name of a client model class (its package is not in the class name)."""
    for prefix, package in (("CoreV1", CORE), ("ApiextensionsV1", APIEXTENSIONS), ("AuthenticationV1", AUTHENTICATION),
                            ("DiscoveryV1", DISCOVERY), ("RbacV1", RBAC)):
        if class_name.startswith(prefix):
            return package + class_name[len(prefix):]
    if class_name.startswith("V1alpha3"):  # scheduling's alpha types, which Jobs refer to
        return "io.k8s.api.scheduling.v1alpha3." + class_name[len("V1alpha3"):]
    short = class_name[2:]  # drop "V1"
    if short in META_TYPES:
        return META + short
    if short in COORDINATION_TYPES:
        return COORDINATION + short
    if short in DISCOVERY_TYPES:
        return DISCOVERY + short
    if short == "Eviction":
        return POLICY + short
    for prefixes, package in ((APPS_PREFIXES, APPS), (APIEXTENSIONS_PREFIXES, APIEXTENSIONS),
                              (AUTHENTICATION_PREFIXES, AUTHENTICATION), (BATCH_PREFIXES, BATCH), (RBAC_PREFIXES, RBAC),
                              (AUTHORIZATION_PREFIXES, AUTHORIZATION)):
        if short.startswith(prefixes):
            return package + short
    return CORE + short


def class_description(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.split("Attributes:")[0].strip()


def strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return args[0]
    return annotation


def base_type(annotation: Any) -> Any:
    """``Annotated[str, Strict]`` -> ``str``."""
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def property_schema(annotation: Any, pending: list[type]) -> dict[str, Any]:
    annotation = base_type(strip_optional(annotation))
    origin = typing.get_origin(annotation)
    args = [base_type(a) for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Union:
        if set(args) == {int, str}:
            return {"$ref": INT_OR_STRING}
        if set(args) <= {int, float}:
            return {"type": "number"}
        return {"type": "object"}  # JSONSchemaPropsOrBool and the like: free-form
    if origin in (list, typing.List):
        return {"type": "array", "items": property_schema(args[0], pending)}
    if origin in (dict, typing.Dict):
        value = args[1] if len(args) > 1 else typing.Any
        if value is typing.Any:
            return {"type": "object"}  # RawExtension, FieldsV1, JSON: opaque
        return {"type": "object", "additionalProperties": property_schema(value, pending)}
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer", "format": "int64"}
    if annotation is float:
        return {"type": "number", "format": "double"}
    if annotation is datetime.datetime:
        return {"$ref": TIME}
    if annotation is typing.Any or annotation is object:
        return {"type": "object"}
    if inspect.isclass(annotation) and hasattr(annotation, "model_fields"):
        pending.append(annotation)
        return {"$ref": definition_name(annotation.__name__)}
    raise TypeError(f"unhandled annotation {annotation!r}")


def model_schema(cls: Any, pending: list[type]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for attribute, field in cls.model_fields.items():
        name = field.serialization_alias or field.alias or attribute
        schema = property_schema(field.annotation, pending)
        if name in QUANTITY_MAPS and schema.get("additionalProperties") == {"type": "string"}:
            schema["additionalProperties"] = {"$ref": QUANTITY}
        if (cls.__name__, name) in QUANTITY_FIELDS:
            schema = {"$ref": QUANTITY}
        description = field.description or _referenced_description(field.annotation)
        if description:
            schema["description"] = description
        properties[name] = schema
        if field.is_required():
            required.append(name)
    result: dict[str, Any] = {"description": class_description(cls), "type": "object", "properties": properties}
    if required:
        result["required"] = sorted(required)
    if cls.__name__ in ROOTS:
        group, version, kind = ROOTS[cls.__name__]
        result["x-kubernetes-group-version-kind"] = [{"group": group, "version": version, "kind": kind}]
    return result


def _referenced_description(annotation: Any) -> str:
    """The client drops the descriptions of properties typed by a model: fall back to the model's own."""
    annotation = base_type(strip_optional(annotation))
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (list, typing.List, dict, typing.Dict) and args:
        annotation = base_type(args[-1])
    if inspect.isclass(annotation) and hasattr(annotation, "model_fields"):
        return class_description(annotation)
    return ""


def special_definitions() -> dict[str, Any]:
    return {
        QUANTITY: {"description": "Quantity is a fixed-point representation of a number, e.g. 100m or 1Gi.",
                   "type": "string"},
        INT_OR_STRING: {"description": "IntOrString is a type that can hold an int32 or a string.",
                        "type": "string", "format": "int-or-string"},
        TIME: {"description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and "
                              "JSON. Wrappers are provided for many of the factory methods that the time package offers.",
               "type": "string", "format": "date-time"},
    }


def generate() -> dict[str, Any]:
    definitions = special_definitions()
    pending: list[type] = [getattr(client, name) for name in ROOTS]
    seen: set[str] = set()
    while pending:
        cls = pending.pop()
        if cls.__name__ in seen:
            continue
        seen.add(cls.__name__)
        definitions[definition_name(cls.__name__)] = model_schema(cls, pending)
    # Status and DeleteOptions are served in every group version: kube-apiserver lists them all.
    for name in (META + "Status", META + "DeleteOptions"):
        definitions[name]["x-kubernetes-group-version-kind"] = [
            {"group": group, "version": "v1", "kind": name.rsplit(".", 1)[1]}
            for group in ("", "apps", "coordination.k8s.io", "apiextensions.k8s.io", "policy", "authentication.k8s.io")
        ]
    return dict(sorted(definitions.items()))


def main() -> int:
    definitions = generate()
    data = json.dumps({"source": f"kubernetes python client {client.__version__ if hasattr(client, '__version__') else ''}",
                       "definitions": definitions}, separators=(",", ":"), sort_keys=True).encode()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(gzip.compress(data, 9, mtime=0))
    print(f"{OUT}: {len(definitions)} definitions, {len(data)} bytes, {OUT.stat().st_size} gzipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
