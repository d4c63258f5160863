"""Service accounts on the embedded control plane: default accounts, the root CA, tokens, pod admission."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cores.controlplane.launcher import ControlPlane
from tests.integration.test_controlplane_api import raw_request
from tests.timeouts import scaled, wait_for

KUBECTL = shutil.which("kubectl")
ISSUER = "https://kubernetes.default.svc.cluster.local"



def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def kubectl(plane: ControlPlane, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    auth = ["--token", token] if token else []
    return subprocess.run([KUBECTL, "--kubeconfig", str(plane.kubeconfig), *auth, *args], capture_output=True, text=True,
                          timeout=scaled(60))


def post(plane: ControlPlane, path: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(plane.ca_file))
    request = urllib.request.Request(plane.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_every_namespace_gets_default_account_and_root_ca(controlplane: ControlPlane, api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    ca = controlplane.ca_file.read_text()
    for namespace in ("default", "kube-system", "kube-public"):
        assert core.read_namespaced_service_account("default", namespace).metadata.uid
        assert core.read_namespaced_config_map("kube-root-ca.crt", namespace).data == {"ca.crt": ca}
    name = f"sa-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name).items)
    cm = wait_for(lambda: core.list_namespaced_config_map(name, field_selector="metadata.name=kube-root-ca.crt").items)
    assert cm[0].data["ca.crt"] == ca
    # the controllers put back what is deleted or changed
    core.delete_namespaced_service_account("default", name)
    core.patch_namespaced_config_map("kube-root-ca.crt", name, {"data": {"ca.crt": "tampered"}})
    wait_for(lambda: core.list_namespaced_service_account(name).items)
    wait_for(lambda: core.read_namespaced_config_map("kube-root-ca.crt", name).data["ca.crt"] == ca)
    core.delete_namespace(name)
    wait_for(lambda: name not in {ns.metadata.name for ns in core.list_namespace().items})


def test_pod_gets_projected_token_volume(api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    name = f"sa-pod-{uuid.uuid4().hex[:8]}"
    pod = core.create_namespaced_pod("default", {
        "metadata": {"name": name},
        "spec": {"nodeName": "no-such-node", "initContainers": [{"name": "init", "image": "busybox"}],
                 "containers": [{"name": "main", "image": "busybox"}]}}).to_dict()
    volumes = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(volumes) == 1 and len(volumes[0]["name"]) == len("kube-api-access-") + 5
    projected = volumes[0]["projected"]
    assert projected["default_mode"] == 420
    sources = projected["sources"]
    token = sources[0]["service_account_token"]
    assert (token["expiration_seconds"], token["path"], token["audience"]) == (3607, "token", None)
    assert sources[1]["config_map"]["name"] == "kube-root-ca.crt"
    assert [(i["key"], i["path"]) for i in sources[1]["config_map"]["items"]] == [("ca.crt", "ca.crt")]
    assert sources[2]["downward_api"]["items"][0]["field_ref"] == {"api_version": "v1", "field_path": "metadata.namespace"}
    for container in pod["spec"]["init_containers"] + pod["spec"]["containers"]:
        mount = [m for m in container["volume_mounts"] if m["name"] == volumes[0]["name"]]
        assert mount and mount[0]["mount_path"] == "/var/run/secrets/kubernetes.io/serviceaccount" and mount[0]["read_only"]
    assert pod["spec"]["service_account_name"] == "default"
    # opting out, on the pod or on its account
    off = core.create_namespaced_pod("default", {"metadata": {"name": f"{name}-off"}, "spec": {
        "automountServiceAccountToken": False, "nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}]}})
    assert not off.spec.volumes and not off.spec.containers[0].volume_mounts
    core.create_namespaced_service_account("default", {"metadata": {"name": f"{name}-quiet"}, "automountServiceAccountToken": False})
    quiet = core.create_namespaced_pod("default", {"metadata": {"name": f"{name}-quiet"}, "spec": {
        "serviceAccountName": f"{name}-quiet", "nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}]}})
    assert not quiet.spec.volumes
    # an account that does not exist: ServiceAccount admission refuses the pod
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_pod("default", {"metadata": {"name": f"{name}-x"}, "spec": {
            "serviceAccountName": "nobody", "containers": [{"name": "c", "image": "busybox"}]}})
    assert missing.value.status == 403
    assert json.loads(missing.value.body)["message"] == (
        f'pods "{name}-x" is forbidden: error looking up service account default/nobody: serviceaccount "nobody" not found')
    for pod_name in (name, f"{name}-off", f"{name}-quiet"):
        core.delete_namespaced_pod(pod_name, "default", grace_period_seconds=0)


def test_token_request_through_the_client(controlplane: ControlPlane, api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    account = core.read_namespaced_service_account("default", "default")
    request = core.create_namespaced_service_account_token("default", "default", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": [ISSUER], "expirationSeconds": 600}})
    token = request.status.token
    claims = claims_of(token)
    assert claims["iss"] == ISSUER and claims["sub"] == "system:serviceaccount:default:default" and claims["aud"] == [ISSUER]
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {"namespace": "default", "serviceaccount": {"name": "default", "uid": account.metadata.uid}}
    assert request.status.expiration_timestamp.timestamp() == claims["exp"]
    with pytest.raises(ApiException) as short:
        core.create_namespaced_service_account_token("default", "default", {"spec": {"expirationSeconds": 60}})
    assert short.value.status == 422
    # another audience: a valid token, but not for this API server
    other = core.create_namespaced_service_account_token("default", "default", {"spec": {"audiences": ["vault"]}}).status.token
    assert raw_request(controlplane, "/api/v1/namespaces/default/pods", token=other)[0] == 401
    # tampered: 401
    assert raw_request(controlplane, "/api/v1/namespaces/default/pods", token=token[:-4] + "AAAA")[0] == 401


def test_token_for_a_pod_dies_with_the_pod(controlplane: ControlPlane, api_client: Any) -> None:
    core = client.CoreV1Api(api_client)
    name = f"bound-{uuid.uuid4().hex[:8]}"
    pod = core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    token = core.create_namespaced_service_account_token("default", "default", {"spec": {
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": name, "uid": pod.metadata.uid}}}).status.token
    assert claims_of(token)["kubernetes.io"]["pod"] == {"name": name, "uid": pod.metadata.uid}
    code, review = post(controlplane, "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}, token)
    assert code == 201 and review["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] == [name]
    core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    assert raw_request(controlplane, "/api/v1/namespaces/default/pods", token=token)[0] == 401


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is installed by scripts/test.sh")
def test_kubectl_create_token_authenticates(controlplane: ControlPlane, api_client: Any) -> None:
    created = kubectl(controlplane, "create", "token", "default")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert claims_of(token)["sub"] == "system:serviceaccount:default:default"
    # authenticated (403 with kube-apiserver's wording), not 401
    code, status = raw_request(controlplane, "/api/v1/namespaces/default/pods", token=token)
    assert code == 403 and status["message"] == ('pods is forbidden: User "system:serviceaccount:default:default" cannot list '
                                                 'resource "pods" in API group "" in the namespace "default"')
    whoami = kubectl(controlplane, "auth", "whoami", "-o", "json", token=token)
    assert whoami.returncode == 0, whoami.stderr
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    account = client.CoreV1Api(api_client).read_namespaced_service_account("default", "default")
    assert info["username"] == "system:serviceaccount:default:default" and info["uid"] == account.metadata.uid
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
    # an admin may ask the server about any token (TokenReview)
    review = client.AuthenticationV1Api(api_client).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated and review.status.user.username == "system:serviceaccount:default:default"
    assert not client.AuthenticationV1Api(api_client).create_token_review({"spec": {"token": "x.y.z"}}).status.authenticated
    # the account deleted (and made again, with a new uid): the old token is no good
    core = client.CoreV1Api(api_client)
    core.delete_namespaced_service_account("default", "default")
    wait_for(lambda: core.read_namespaced_service_account("default", "default").metadata.uid != account.metadata.uid
             if core.list_namespaced_service_account("default", field_selector="metadata.name=default").items else False)
    assert raw_request(controlplane, "/api/v1/namespaces/default/pods", token=token)[0] == 401
