"""Defaults: what kube-apiserver fills in per kind, image pull policies, QoS classes and quantities."""

from __future__ import annotations

import base64
import copy
from fractions import Fraction
from typing import Any

import pytest

from cores.controlplane.defaults import apply_defaults, image_tag, normalize_pod_status, parse_quantity, qos_class


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec}}


def test_pod_spec_defaults() -> None:
    obj = pod()
    apply_defaults("Pod", obj)
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    assert spec["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_pod_defaults_keep_given_values() -> None:
    obj = pod(restartPolicy="Never", terminationGracePeriodSeconds=0, enableServiceLinks=False,
              priorityClassName="system-node-critical", serviceAccountName="robot",
              tolerations=[{"operator": "Exists"}])
    obj["status"] = {"phase": "Running"}
    apply_defaults("Pod", obj)
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["enableServiceLinks"] is False
    assert spec["priority"] == 2000001000
    assert spec["serviceAccountName"] == "robot" and spec["serviceAccount"] == "robot"
    # A toleration with no key and no effect already tolerates both taints.
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert obj["status"]["phase"] == "Running"


def test_pod_default_tolerations_only_for_missing_taints() -> None:
    obj = pod(tolerations=[{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": 6000}])
    apply_defaults("Pod", obj)
    assert [t["key"] for t in obj["spec"]["tolerations"]] == ["node.kubernetes.io/unreachable",
                                                              "node.kubernetes.io/not-ready"]
    assert obj["spec"]["tolerations"][0]["tolerationSeconds"] == 6000


def test_pod_defaults_are_idempotent_and_update_skips_status() -> None:
    obj = pod()
    apply_defaults("Pod", obj)
    once = copy.deepcopy(obj)
    apply_defaults("Pod", obj)
    assert obj == once
    update = pod()
    apply_defaults("Pod", update, on_create=False)
    assert "status" not in update


def test_container_defaults() -> None:
    obj = pod(containers=[{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                           "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                           "livenessProbe": {"httpGet": {"port": 80}},
                           "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}],
              initContainers=[{"name": "init", "image": "busybox", "terminationMessagePolicy": "FallbackToLogsOnError"}])
    apply_defaults("Pod", obj)
    app, init = obj["spec"]["containers"][0], obj["spec"]["initContainers"][0]
    assert app["terminationMessagePath"] == "/dev/termination-log"
    assert app["terminationMessagePolicy"] == "File"
    assert app["imagePullPolicy"] == "IfNotPresent"
    assert app["resources"] == {}
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert app["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert app["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                    "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert app["lifecycle"]["preStop"]["httpGet"]["path"] == "/"
    assert init["imagePullPolicy"] == "Always"
    assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("repo@sha256:" + "a" * 64, "IfNotPresent"),
        ("repo:latest@sha256:" + "a" * 64, "Always"),
        ("localhost:5000/busybox", "Always"),
        ("localhost:5000/busybox:1.0", "IfNotPresent"),
        ("registry.example.com/team/app:v2", "IfNotPresent"),
        ("Busybox", "IfNotPresent"),
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    obj = pod(containers=[{"name": "app", "image": image}])
    apply_defaults("Pod", obj)
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_image_pull_policy_given_is_kept() -> None:
    obj = pod(containers=[{"name": "app", "image": "busybox", "imagePullPolicy": "Never"}])
    apply_defaults("Pod", obj)
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert image_tag("busybox") == "latest" and image_tag("a b") is None


def test_volume_defaults() -> None:
    obj = pod(volumes=[{"name": "cm", "configMap": {"name": "c"}}, {"name": "s", "secret": {"secretName": "s"}},
                       {"name": "mode", "secret": {"secretName": "s", "defaultMode": 256}}, {"name": "scratch"},
                       {"name": "host", "hostPath": {"path": "/var"}},
                       {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                       {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}}])
    apply_defaults("Pod", obj)
    volumes = {volume["name"]: volume for volume in obj["spec"]["volumes"]}
    assert volumes["cm"]["configMap"]["defaultMode"] == 420
    assert volumes["s"]["secret"]["defaultMode"] == 420
    assert volumes["mode"]["secret"]["defaultMode"] == 256
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert volumes["host"]["hostPath"]["type"] == ""
    assert volumes["p"]["projected"]["defaultMode"] == 420
    assert volumes["p"]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600
    assert volumes["d"]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"


def test_pod_requests_default_to_limits_and_host_network_ports() -> None:
    obj = pod(hostNetwork=True, containers=[{"name": "app", "image": "x", "ports": [{"containerPort": 8080}],
                                             "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                           "requests": {"cpu": "500m"}}}])
    apply_defaults("Pod", obj)
    container = obj["spec"]["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert container["ports"][0]["hostPort"] == 8080
    assert obj["status"]["qosClass"] == "Burstable"


# --- QoS -------------------------------------------------------------------------------------------


def container(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "x", "resources": resources}


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([container()], "BestEffort"),
        ([container({"cpu": "0"})], "BestEffort"),
        ([container({"storage": "1Gi"})], "BestEffort"),
        ([container({"cpu": "100m"})], "Burstable"),
        ([container(limits={"memory": "1Gi"})], "Burstable"),
        ([container(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
        ([container({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
        ([container({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
        ([container({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Burstable"),
        ([container(limits={"cpu": "1", "memory": "1Gi"}), container()], "Burstable"),
        ([container(limits={"cpu": "1", "memory": "1Gi"}), container(limits={"cpu": "2", "memory": "2Gi"})], "Guaranteed"),
    ],
)
def test_qos_class(containers: list[dict[str, Any]], expected: str) -> None:
    assert qos_class({"containers": containers}) == expected


def test_qos_counts_init_containers() -> None:
    spec = {"containers": [container()], "initContainers": [container({"memory": "64Mi"})]}
    assert qos_class(spec) == "Burstable"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", Fraction(1)), ("100m", Fraction(1, 10)), ("1Ki", Fraction(1024)), ("1.5Gi", Fraction(3 * 2**29)),
     ("2k", Fraction(2000)), ("1e3", Fraction(1000)), ("5E-1", Fraction(1, 2)), (2, Fraction(2)), (".5", Fraction(1, 2)),
     ("1x", None), ("", None), ("abc", None), (True, None), ("1..2", None)],
)
def test_parse_quantity(text: Any, value: Fraction | None) -> None:
    assert parse_quantity(text) == value


# --- other kinds -----------------------------------------------------------------------------------


def test_namespace_defaults() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "wrong"}}}
    apply_defaults("Namespace", obj)
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    assert obj["status"] == {"phase": "Active"}
    extra: dict[str, Any] = {"metadata": {"name": "b"}, "spec": {"finalizers": ["example.com/x"]}}
    apply_defaults("Namespace", extra)
    assert extra["spec"]["finalizers"] == ["example.com/x", "kubernetes"]
    # The finalizer is create-only: the namespace controller removes it before deletion.
    finalized: dict[str, Any] = {"metadata": {"name": "c"}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}
    apply_defaults("Namespace", finalized, on_create=False)
    assert finalized["spec"]["finalizers"] == [] and finalized["status"]["phase"] == "Terminating"


def test_secret_defaults() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "s"}, "data": {"a": "YQ=="}, "stringData": {"b": "bee", "a": "ay"}}
    apply_defaults("Secret", obj)
    assert obj["type"] == "Opaque"
    assert "stringData" not in obj
    assert obj["data"] == {"a": base64.b64encode(b"ay").decode(), "b": base64.b64encode(b"bee").decode()}
    tls: dict[str, Any] = {"metadata": {"name": "t"}, "type": "kubernetes.io/tls"}
    apply_defaults("Secret", tls)
    assert tls["type"] == "kubernetes.io/tls" and "data" not in tls


def test_service_defaults() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP",
                                                                                           "targetPort": "dns"}]}}
    apply_defaults("Service", obj)
    spec = obj["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "clusterIP" not in spec and "externalTrafficPolicy" not in spec
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80},
                             {"port": 53, "protocol": "UDP", "targetPort": "dns"}]
    assert obj["status"] == {"loadBalancer": {}}


def test_service_defaults_by_type() -> None:
    node_port: dict[str, Any] = {"spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    apply_defaults("Service", node_port)
    assert node_port["spec"]["externalTrafficPolicy"] == "Cluster"
    balancer: dict[str, Any] = {"spec": {"type": "LoadBalancer"}}
    apply_defaults("Service", balancer)
    assert balancer["spec"]["allocateLoadBalancerNodePorts"] is True
    external: dict[str, Any] = {"spec": {"type": "ExternalName", "externalName": "example.com"}}
    apply_defaults("Service", external)
    assert "ipFamilies" not in external["spec"] and "internalTrafficPolicy" not in external["spec"]
    sticky: dict[str, Any] = {"spec": {"sessionAffinity": "None", "sessionAffinityConfig": {"clientIP": {}}}}
    apply_defaults("Service", sticky)
    assert "sessionAffinityConfig" not in sticky["spec"]


def test_deployment_defaults() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "nginx"}]}}}}
    apply_defaults("Deployment", obj)
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    template = spec["template"]["spec"]
    assert template["restartPolicy"] == "Always" and template["dnsPolicy"] == "ClusterFirst"
    assert template["containers"][0]["imagePullPolicy"] == "Always"
    # Pod-only defaults and admission effects stay out of templates.
    assert "enableServiceLinks" not in template and "tolerations" not in template and "priority" not in template
    recreate: dict[str, Any] = {"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}}
    apply_defaults("Deployment", recreate)
    assert recreate["spec"]["replicas"] == 0 and recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_replica_set_defaults() -> None:
    obj: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "b:1"}]}}}}
    apply_defaults("ReplicaSet", obj)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert obj["status"] == {"replicas": 0}


def test_node_defaults() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "edge-1"}, "status": {"capacity": {"cpu": "4"},
                                                                     "nodeInfo": {"architecture": "arm64"}}}
    apply_defaults("Node", obj)
    status = obj["status"]
    assert status["allocatable"] == {"cpu": "4"}
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}
    assert status["nodeInfo"]["architecture"] == "arm64" and status["nodeInfo"]["kubeletVersion"] == ""


@pytest.mark.parametrize("kind", ["ConfigMap", "ServiceAccount", "Lease", "Event", "Endpoints", "Widget"])
def test_kinds_without_defaults(kind: str) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "x"}, "data": {"k": "v"}}
    before = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    assert obj == before


def test_pod_status_ips_follow_the_single_ip_as_conversion_does() -> None:
    pod = {"spec": {"containers": [{"name": "c", "image": "x"}]},
           "status": {"podIP": "10.0.0.5", "hostIP": "192.0.2.9", "hostIPs": [{"ip": "192.0.2.1"}]}}
    normalize_pod_status(pod)
    assert pod["status"]["podIPs"] == [{"ip": "10.0.0.5"}] and pod["status"]["hostIPs"] == [{"ip": "192.0.2.9"}]
    dual = {"status": {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}}
    normalize_pod_status(dual)
    assert dual["status"]["podIPs"] == [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}], "agreeing lists are kept whole"
    empty = {"status": {"phase": "Pending"}}
    normalize_pod_status(empty)
    assert empty == {"status": {"phase": "Pending"}}
