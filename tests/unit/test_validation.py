"""Validation: every rule with a passing and a failing case, and kube-apiserver's exact wording where kubectl users read it."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from cores.controlplane.defaults import apply_defaults
from cores.controlplane.validation import (
    Cause,
    format_invalid_message,
    go_label_selector,
    go_value,
    validate,
    validate_status_update,
)

SUBDOMAIN_HINT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def pod(**spec: Any) -> dict[str, Any]:
    body = {"containers": [{"name": "app", "image": "nginx"}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": body}


def defaulted(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    return obj


def fields(causes: list[Cause]) -> list[str]:
    return [cause.field for cause in causes]


def reasons(causes: list[Cause]) -> dict[str, str]:
    return {cause.field: cause.reason for cause in causes}


# --- messages ------------------------------------------------------------------------------------


def test_bad_pod_name_message() -> None:
    bad = pod()
    bad["metadata"]["name"] = "Foo_Bar"
    causes = validate("Pod", defaulted("Pod", bad))
    assert causes == [Cause("FieldValueInvalid", 'Invalid value: "Foo_Bar": ' + SUBDOMAIN_HINT, "metadata.name")]
    assert format_invalid_message("Pod", "Foo_Bar", causes) == (
        'Pod "Foo_Bar" is invalid: metadata.name: Invalid value: "Foo_Bar": ' + SUBDOMAIN_HINT)


def test_missing_image_message() -> None:
    bad = pod(containers=[{"name": "app"}])
    causes = validate("Pod", defaulted("Pod", bad))
    assert causes == [Cause("FieldValueRequired", "Required value", "spec.containers[0].image")]
    assert format_invalid_message("Pod", "web", causes) == 'Pod "web" is invalid: spec.containers[0].image: Required value'


def test_several_causes_are_bracketed_and_deduplicated() -> None:
    one = Cause("FieldValueRequired", "Required value", "a")
    two = Cause("FieldValueRequired", "Required value", "b")
    assert format_invalid_message("Pod", "x", [one, two, one]) == 'Pod "x" is invalid: [a: Required value, b: Required value]'
    assert format_invalid_message("Pod", "x", [one, one]) == 'Pod "x" is invalid: a: Required value'
    assert format_invalid_message("Pod", "x", []) == 'Pod "x" is invalid'
    assert format_invalid_message("Deployment", "d", [one]).startswith('Deployment.apps "d" is invalid')
    assert format_invalid_message("Widget", "w", [one], group="example.com").startswith('Widget.example.com "w"')


def test_pod_spec_change_message() -> None:
    old = defaulted("Pod", pod())
    new = copy.deepcopy(old)
    new["spec"]["restartPolicy"] = "Never"
    causes = validate("Pod", new, old)
    assert fields(causes) == ["spec"] and causes[0].reason == "FieldValueForbidden"
    assert causes[0].message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
        "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)\n  core.PodSpec{\n")
    assert '- \trestartPolicy: "Always",' in causes[0].message
    assert '+ \trestartPolicy: "Never",' in causes[0].message


def test_go_value_rendering() -> None:
    assert go_value(None) == "null"
    assert go_value(True) == "true"
    assert go_value(70000) == "70000"
    assert go_value(3.0) == "3"
    assert go_value({"b": "2", "a": "1"}) == 'map[string]string{"a":"1", "b":"2"}'
    assert go_value(["x", "y"]) == '[]string{"x", "y"}'
    assert go_label_selector({}) == (
        "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}")


# --- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Pod", "ConfigMap", "Secret", "Node", "Lease", "ServiceAccount", "Event",
                                  "Endpoints", "Deployment", "ReplicaSet", "Widget"])
def test_subdomain_names(kind: str) -> None:
    obj = {"metadata": {"name": "a.b-c", "namespace": "ns"}}
    assert "metadata.name" not in fields(validate(kind, obj))
    obj["metadata"]["name"] = "A"
    assert "metadata.name" in fields(validate(kind, obj))


def test_namespace_and_service_names() -> None:
    assert validate("Namespace", {"metadata": {"name": "team-a"}}) == []
    assert [c.message for c in validate("Namespace", {"metadata": {"name": "team.a"}})] == [
        'Invalid value: "team.a": must not contain dots']
    service = {"metadata": {"name": "1web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}
    messages = [c.message for c in validate("Service", service)]
    assert messages == ['Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters '
                        "or '-', start with an alphabetic character, and end with an alphanumeric character "
                        "(e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]


def test_name_or_generate_name_required() -> None:
    causes = validate("ConfigMap", {"metadata": {"namespace": "default"}})
    assert [str(c) for c in causes] == ["metadata.name: Required value: name or generateName is required"]
    assert validate("ConfigMap", {"metadata": {"generateName": "cfg-", "namespace": "default"}}) == []
    bad = validate("ConfigMap", {"metadata": {"generateName": "Cfg-", "namespace": "default"}})
    assert fields(bad) == ["metadata.generateName"]


def test_namespace_field() -> None:
    assert fields(validate("ConfigMap", {"metadata": {"name": "c"}})) == ["metadata.namespace"]
    assert fields(validate("ConfigMap", {"metadata": {"name": "c", "namespace": "Bad_NS"}})) == ["metadata.namespace"]
    node = validate("Node", {"metadata": {"name": "n", "namespace": "default"}})
    assert [str(c) for c in node] == ["metadata.namespace: Forbidden: not allowed on this type"]
    assert validate("Widget", {"metadata": {"name": "w"}}) == []
    assert fields(validate("Widget", {"metadata": {"name": "w"}}, namespaced=True)) == ["metadata.namespace"]


def test_labels_and_annotations() -> None:
    good = {"metadata": {"name": "c", "namespace": "d", "labels": {"app.kubernetes.io/name": "web", "e": ""},
                         "annotations": {"Example.com/Note": "anything at all"}}}
    assert validate("ConfigMap", good) == []
    bad = {"metadata": {"name": "c", "namespace": "d", "labels": {"bad key": "v", "k": "bad value", "long": "x" * 64}}}
    causes = validate("ConfigMap", bad)
    assert fields(causes) == ["metadata.labels"] * 3
    assert causes[0].message.startswith('Invalid value: "bad key": name part must consist')
    assert causes[2].message == 'Invalid value: "' + "x" * 64 + '": must be no more than 63 characters'
    big = {"metadata": {"name": "c", "namespace": "d", "annotations": {"a": "x" * (256 * 1024)}}}
    assert [str(c) for c in validate("ConfigMap", big)] == ["metadata.annotations: Too long: must have at most 262144 bytes"]
    odd = {"metadata": {"name": "c", "namespace": "d", "annotations": {"-bad": "v"}}}
    assert reasons(validate("ConfigMap", odd)) == {"metadata.annotations": "FieldValueInvalid"}


def test_metadata_update_immutables() -> None:
    old = {"metadata": {"name": "c", "namespace": "d", "uid": "u1", "creationTimestamp": "t1"}}
    same = copy.deepcopy(old)
    assert validate("ConfigMap", same, old) == []
    carried = {"metadata": {"name": "c", "namespace": "d"}}
    assert validate("ConfigMap", carried, old) == []
    changed = {"metadata": {"name": "c", "namespace": "d", "uid": "u2", "creationTimestamp": "t2"}}
    assert [str(c) for c in validate("ConfigMap", changed, old)] == [
        'metadata.uid: Invalid value: "u2": field is immutable',
        'metadata.creationTimestamp: Invalid value: "t2": field is immutable']
    renamed = {"metadata": {"name": "e", "namespace": "d"}}
    assert fields(validate("ConfigMap", renamed, old)) == ["metadata.name"]


# --- pods ----------------------------------------------------------------------------------------


def test_valid_pod() -> None:
    good = pod(volumes=[{"name": "data", "emptyDir": {}}],
               containers=[{"name": "app", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}}],
               initContainers=[{"name": "init", "image": "busybox"}])
    assert validate("Pod", defaulted("Pod", good)) == []


def test_pod_containers_required() -> None:
    assert [str(c) for c in validate("Pod", defaulted("Pod", pod(containers=[])))] == ["spec.containers: Required value"]


def test_pod_container_names() -> None:
    bad = pod(containers=[{"name": "App", "image": "x"}, {"image": "y"}])
    causes = validate("Pod", defaulted("Pod", bad))
    assert fields(causes) == ["spec.containers[0].name", "spec.containers[1].name"]
    assert causes[0].message.startswith('Invalid value: "App": a lowercase RFC 1123 label must consist')
    assert causes[1].message == "Required value"


def test_pod_container_names_unique_across_init_containers() -> None:
    bad = pod(initContainers=[{"name": "app", "image": "x"}])
    assert [str(c) for c in validate("Pod", defaulted("Pod", bad))] == ['spec.initContainers[0].name: Duplicate value: "app"']
    twice = pod(containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}])
    assert reasons(validate("Pod", defaulted("Pod", twice))) == {"spec.containers[1].name": "FieldValueDuplicate"}


def test_pod_ports() -> None:
    bad = pod(containers=[{"name": "app", "image": "x", "ports": [
        {"containerPort": 70000}, {"containerPort": 0}, {"containerPort": 80, "protocol": "HTTP"},
        {"containerPort": 81, "name": "Http"}, {"containerPort": 82, "hostPort": 0, "name": "web"},
        {"containerPort": 83, "name": "web"}]}])
    causes = [str(c) for c in validate("Pod", defaulted("Pod", bad))]
    assert causes == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].containerPort: Required value",
        'spec.containers[0].ports[2].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        'spec.containers[0].ports[3].name: Invalid value: "Http": must contain only alpha-numeric characters '
        "(a-z, 0-9), and hyphens (-)",
        'spec.containers[0].ports[5].name: Duplicate value: "web"',
    ]


def test_pod_restart_and_dns_policy() -> None:
    causes = validate("Pod", defaulted("Pod", pod(restartPolicy="Sometimes", dnsPolicy="Cloud")))
    assert [str(c) for c in causes] == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        'spec.dnsPolicy: Unsupported value: "Cloud": supported values: "ClusterFirst", '
        '"ClusterFirstWithHostNet", "Default", "None"',
    ]
    for policy in ("Always", "OnFailure", "Never"):
        assert validate("Pod", defaulted("Pod", pod(restartPolicy=policy))) == []


def test_pod_volumes() -> None:
    bad = pod(volumes=[{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}},
                       {"name": "Bad", "emptyDir": {}}, {"name": "two", "emptyDir": {}, "hostPath": {"path": "/"}}])
    causes = validate("Pod", defaulted("Pod", bad))
    assert reasons(causes) == {"spec.volumes[1].name": "FieldValueDuplicate",
                               "spec.volumes[2].name": "FieldValueInvalid",
                               "spec.volumes[3].hostPath": "FieldValueForbidden"}
    sourceless = validate("Pod", pod(volumes=[{"name": "v"}]))
    assert [str(c) for c in sourceless] == ["spec.volumes[0]: Required value: must specify a volume type"]


def test_pod_volume_mounts() -> None:
    bad = pod(volumes=[{"name": "data", "emptyDir": {}}],
              containers=[{"name": "app", "image": "x", "volumeMounts": [
                  {"name": "missing", "mountPath": "/a"}, {"name": "data", "mountPath": "/a"}, {"name": "data"}]}])
    causes = [str(c) for c in validate("Pod", defaulted("Pod", bad))]
    assert causes == [
        'spec.containers[0].volumeMounts[0].name: Not found: "missing"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/a": must be unique',
        "spec.containers[0].volumeMounts[2].mountPath: Required value",
    ]


def test_pod_resources_and_misc_fields() -> None:
    bad = pod(containers=[{"name": "app", "image": "x", "imagePullPolicy": "Sometimes",
                           "resources": {"requests": {"cpu": "2", "memory": "lots"}, "limits": {"cpu": "1"}}}],
              activeDeadlineSeconds=0, nodeName="Edge_1")
    causes = [str(c) for c in validate("Pod", defaulted("Pod", bad))]
    assert 'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"' in causes
    assert 'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1' in causes
    assert any(c.startswith('spec.containers[0].resources.requests[memory]: Invalid value: "lots": quantities must match') for c in causes)
    assert "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive" in causes
    assert any(c.startswith('spec.nodeName: Invalid value: "Edge_1"') for c in causes)


# --- pod updates -----------------------------------------------------------------------------------


def test_pod_update_allowed_fields() -> None:
    old = defaulted("Pod", pod(initContainers=[{"name": "init", "image": "busybox"}], activeDeadlineSeconds=100))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.27"
    new["spec"]["initContainers"][0]["image"] = "busybox:1.36"
    new["spec"]["activeDeadlineSeconds"] = 50
    new["spec"]["tolerations"].append({"key": "dedicated", "operator": "Exists"})
    new["spec"]["tolerations"][0]["tolerationSeconds"] = 60
    new["metadata"]["labels"] = {"new": "label"}
    new["status"] = {"phase": "Running"}
    assert validate("Pod", new, old) == []


def test_pod_update_forbidden_changes() -> None:
    old = defaulted("Pod", pod(activeDeadlineSeconds=100))
    more = copy.deepcopy(old)
    more["spec"]["containers"].append({"name": "side", "image": "x"})
    assert [str(c) for c in validate("Pod", defaulted("Pod", more), old)] == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"]
    removed = copy.deepcopy(old)
    removed["spec"]["tolerations"] = []
    assert "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds" in [
        str(c) for c in validate("Pod", removed, old)]
    longer = copy.deepcopy(old)
    longer["spec"]["activeDeadlineSeconds"] = 200
    assert "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value" in [
        str(c) for c in validate("Pod", longer, old)]
    dropped = copy.deepcopy(old)
    del dropped["spec"]["activeDeadlineSeconds"]
    assert "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value" in [
        str(c) for c in validate("Pod", dropped, old)]
    grace = copy.deepcopy(old)
    grace["spec"]["terminationGracePeriodSeconds"] = 60
    assert fields(validate("Pod", grace, old)) == ["spec"]
    spaced = copy.deepcopy(old)
    spaced["spec"]["containers"][0]["image"] = " nginx"
    assert "spec.containers[0].image" in fields(validate("Pod", spaced, old))


def test_pod_update_negative_grace_period_may_become_one() -> None:
    old = defaulted("Pod", pod(terminationGracePeriodSeconds=-1))
    new = copy.deepcopy(old)
    new["spec"]["terminationGracePeriodSeconds"] = 1
    assert validate("Pod", new, old) == []


def test_pod_status_update() -> None:
    old = defaulted("Pod", pod())
    new = copy.deepcopy(old)
    for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
        new["status"]["phase"] = phase
        assert validate_status_update("Pod", new, old) == []
    new["status"]["phase"] = "Exploded"
    assert [c.reason for c in validate_status_update("Pod", new, old)] == ["FieldValueNotSupported"]
    new["metadata"]["name"] = "other"
    assert "metadata.name" in fields(validate_status_update("Pod", new, old))
    assert validate_status_update("Node", {"metadata": {"name": "n"}}, {"metadata": {"name": "n"}}) == []


# --- ConfigMaps and Secrets ----------------------------------------------------------------------


def config_map(**body: Any) -> dict[str, Any]:
    return {"metadata": {"name": "cfg", "namespace": "default"}, **body}


def test_config_map_keys() -> None:
    assert validate("ConfigMap", config_map(data={"app.conf": "x", "KEY_1": "y", "a-b": "z"})) == []
    causes = validate("ConfigMap", config_map(data={"bad/key": "x", "..": "y"}))
    assert fields(causes) == ["data[bad/key]", "data[..]"]
    assert causes[0].message == (
        "Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
        "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    assert causes[1].message == "Invalid value: \"..\": must not be '..'"
    both = validate("ConfigMap", config_map(data={"k": "x"}, binaryData={"k": "eA=="}))
    assert [c.message for c in both] == ['Invalid value: "k": duplicate of key present in binaryData']
    assert fields(validate("ConfigMap", config_map(binaryData={"k": "not base64!"}))) == ["binaryData[k]"]


def test_config_map_size() -> None:
    assert validate("ConfigMap", config_map(data={"k": "x" * (1024 * 1024)})) == []
    causes = validate("ConfigMap", config_map(data={"k": "x" * (1024 * 1024 + 1)}))
    assert [str(c) for c in causes] == [": Too long: must have at most 1048576 bytes"]


def test_config_map_immutable() -> None:
    old = config_map(data={"k": "v"}, immutable=True)
    assert validate("ConfigMap", copy.deepcopy(old), old) == []
    changed = config_map(data={"k": "w"})
    assert [str(c) for c in validate("ConfigMap", changed, old)] == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]
    mutable = config_map(data={"k": "v"})
    assert validate("ConfigMap", config_map(data={"k": "w"}), mutable) == []


def secret(**body: Any) -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque", **body}


def test_secret_data() -> None:
    encoded = base64.b64encode(b"hunter2").decode()
    assert validate("Secret", secret(data={"password": encoded})) == []
    causes = validate("Secret", secret(data={"password": "hunter2!", "bad key": encoded}))
    assert [str(c) for c in causes][0].startswith("data[bad key]: Invalid value: \"bad key\"")
    assert str(causes[1]) == "data[password]: Invalid value: illegal base64 data at input byte 7"
    assert str(validate("Secret", secret(data={"k": "abc"}))[0]) == "data[k]: Invalid value: illegal base64 data at input byte 0"
    assert fields(validate("Secret", secret(data={"k": 5}))) == ["data[k]"]
    big = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    assert [str(c) for c in validate("Secret", secret(data={"k": big}))] == ["data: Too long: must have at most 1048576 bytes"]
    tls = validate("Secret", secret(type="kubernetes.io/tls", data={}))
    assert fields(tls) == ["data[tls.crt]", "data[tls.key]"]


def test_secret_update() -> None:
    old = secret(data={"k": "dg=="}, immutable=True)
    assert validate("Secret", copy.deepcopy(old), old) == []
    retyped = secret(type="kubernetes.io/tls", data={"k": "dg==", "tls.crt": "", "tls.key": ""}, immutable=True)
    assert 'type: Invalid value: "kubernetes.io/tls": field is immutable' in [str(c) for c in validate("Secret", retyped, old)]
    changed = secret(data={"k": "dw=="}, immutable=True)
    assert [str(c) for c in validate("Secret", changed, old)] == ["data: Forbidden: field is immutable when `immutable` is set"]


# --- Services and Leases ---------------------------------------------------------------------------


def service(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def test_service() -> None:
    assert validate("Service", defaulted("Service", service(ports=[{"port": 80}], selector={"app": "web"}))) == []
    assert [str(c) for c in validate("Service", service())] == ["spec.ports: Required value"]
    assert validate("Service", service(clusterIP="None")) == []
    assert validate("Service", service(type="ExternalName", externalName="example.com")) == []
    bad = service(ports=[{"port": 0, "protocol": "ICMP", "targetPort": "Web"}, {"name": "b", "port": 81, "targetPort": 70000}],
                  selector={"app": "bad value"}, type="Mesh")
    causes = [str(c) for c in validate("Service", bad)]
    assert causes[:4] == [
        "spec.ports[0].name: Required value",
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        'spec.ports[0].targetPort: Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
    ]
    assert "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive" in causes
    assert any(c.startswith('spec.selector: Invalid value: "bad value"') for c in causes)
    assert causes[-1] == 'spec.type: Unsupported value: "Mesh": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
    duplicated = service(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}])
    assert reasons(validate("Service", duplicated)) == {"spec.ports[1].name": "FieldValueDuplicate"}


def test_lease() -> None:
    lease = {"metadata": {"name": "edge-1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "edge-1", "leaseDurationSeconds": 40,
                      "renewTime": "2024-01-01T00:00:00.000000Z", "leaseTransitions": 0}}
    assert validate("Lease", lease) == []
    lease["spec"] = {"holderIdentity": 5, "leaseDurationSeconds": 0, "leaseTransitions": -1, "renewTime": 1}
    assert [str(c) for c in validate("Lease", lease)] == [
        "spec.holderIdentity: Invalid value: 5: must be a string",
        "spec.renewTime: Invalid value: 1: must be a string",
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
        "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
    ]
    lease["spec"] = {"leaseDurationSeconds": "40"}
    assert [c.reason for c in validate("Lease", lease)] == ["FieldValueTypeInvalid"]


# --- Deployments and ReplicaSets --------------------------------------------------------------------


def deployment(**spec: Any) -> dict[str, Any]:
    body = {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "nginx"}]}}, **spec}
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": body}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_workload_valid(kind: str) -> None:
    assert validate(kind, defaulted(kind, deployment())) == []


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_workload_selector_must_match_template(kind: str) -> None:
    bad = defaulted(kind, deployment(selector={"matchLabels": {"app": "db"}}))
    causes = validate(kind, bad)
    assert [str(c) for c in causes] == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]
    assert format_invalid_message(kind, "web", causes).startswith(f'{kind}.apps "web" is invalid: spec.template.metadata.labels')


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_workload_selector_required_and_not_empty(kind: str) -> None:
    missing = deployment()
    del missing["spec"]["selector"]
    assert fields(validate(kind, defaulted(kind, missing))) == ["spec.selector", "spec.template.metadata.labels"]
    empty = validate(kind, defaulted(kind, deployment(selector={})))
    assert [str(c) for c in empty] == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]


def test_workload_selector_expressions() -> None:
    good = deployment(selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]})
    assert validate("Deployment", defaulted("Deployment", good)) == []
    bad = deployment(selector={"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]},
        {"key": "c", "operator": "Near", "values": ["x"]}]})
    causes = [str(c) for c in validate("Deployment", defaulted("Deployment", bad))]
    assert "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'" in causes
    assert ("spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is "
            "'Exists' or 'DoesNotExist'") in causes
    assert 'spec.selector.matchExpressions[2].operator: Invalid value: "Near": not a valid selector operator' in causes
    assert any(c.startswith("spec.selector: Invalid value: v1.LabelSelector{") and c.endswith("invalid label selector")
               for c in causes)


def test_workload_numbers_and_template_spec() -> None:
    bad = deployment(replicas=-1, revisionHistoryLimit=-2, progressDeadlineSeconds=5, minReadySeconds=10)
    bad["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    causes = [str(c) for c in validate("Deployment", defaulted("Deployment", bad))]
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in causes
    assert "spec.template.spec.containers[0].image: Required value" in causes
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"' in causes
    assert "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0" in causes
    assert "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds" in causes
    labels = deployment()
    labels["spec"]["template"]["metadata"]["labels"]["bad key"] = "x"
    assert "spec.template.labels" in fields(validate("ReplicaSet", defaulted("ReplicaSet", labels)))
    deadline = deployment()
    deadline["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    assert "spec.template.spec.activeDeadlineSeconds" in fields(validate("ReplicaSet", deadline))


def test_deployment_strategy() -> None:
    recreate = deployment(strategy={"type": "Recreate", "rollingUpdate": {}})
    assert fields(validate("Deployment", recreate)) == ["spec.strategy.rollingUpdate"]
    assert validate("Deployment", defaulted("Deployment", deployment(strategy={"type": "Recreate"}))) == []
    odd = deployment(strategy={"type": "BlueGreen"})
    assert reasons(validate("Deployment", odd)) == {"spec.strategy.type": "FieldValueNotSupported"}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_workload_selector_immutable(kind: str) -> None:
    old = defaulted(kind, deployment())
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert validate(kind, scaled, old) == []
    moved = copy.deepcopy(old)
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "fe"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "fe"
    causes = validate(kind, moved, old)
    assert fields(causes) == ["spec.selector"] and causes[0].message.endswith(": field is immutable")
