"""Service accounts: signed tokens (TokenRequest), their authentication, and pod admission.

As kube-apiserver does: a token is a JWT signed with the service-account key (``sa.key`` in
``pkiDir``, an EC P-256 key, so ES256) carrying the account's namespace, name and uid (and the
pod's when bound to one). The server accepts such a token while it is unexpired, names an API
audience, and the account (and pod) it names still exists with the same uid. The ServiceAccount
admission plugin's effects on pod create are here too: the account must exist (``default`` is
waited for a little, since a controller creates it), and unless automount is off the pod gets
the ``kube-api-access-*`` projected volume mounted in every container.

``cryptography`` is imported only when a token is first signed or checked.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import hashlib
import json
import random
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cores.controlplane import errors, objects
from cores.controlplane.defaults import MIRROR_ANNOTATION
from cores.controlplane.objects import meta

if TYPE_CHECKING:
    from cores.controlplane.api import Api

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
TOKEN_API_VERSION = "authentication.k8s.io/v1"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 2**32
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
PROJECTED_TOKEN_SECONDS = 3607  # kube-apiserver's default for the kube-api-access volume
SERVICE_ACCOUNT_GROUP = "system:serviceaccounts"
AUTHENTICATED_GROUP = "system:authenticated"
_USER_PREFIX = "system:serviceaccount:"


@dataclasses.dataclass(frozen=True)
class Identity:
    name: str
    uid: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """The service-account key pair under ``pkiDir``; created by :func:`cores.controlplane.pki.ensure_pki`."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._key: Any = None
        self.key_id = ""

    def _load(self) -> Any:
        if self._key is None:
            from cryptography.hazmat.primitives import serialization

            self._key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            public = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
            self.key_id = _b64(hashlib.sha256(public).digest())  # kube-apiserver's keyIDFromPublicKey
        return self._key

    def sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        key = self._load()
        header = {"alg": "ES256", "kid": self.key_id}
        signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this key signed, or None (bad format, other key, bad signature)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            if not isinstance(header, dict) or header.get("alg") != "ES256":
                return None
            signature = _unb64(parts[2])
            if len(signature) != 64:
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return None
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        public = self._load().public_key()
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            public.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return None
        return claims if isinstance(claims, dict) else None


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def _rfc3339(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- TokenRequest ---------------------------------------------------------------------------------------

def _invalid_token_request(name: str, field: str, value: Any, detail: str) -> errors.ApiError:
    message = f'TokenRequest.authentication.k8s.io "{name}" is invalid: {field}: Invalid value: {value}: {detail}'
    return errors.invalid("authentication.k8s.io", "TokenRequest", name, message,
                          [{"reason": "FieldValueInvalid", "message": f"Invalid value: {value}: {detail}", "field": field}])


async def _get_json(api: Api, plural: str, namespace: str | None, name: str, group: str = "") -> dict[str, Any] | None:
    resource = api.registry.get(group, "v1", plural)
    assert resource is not None
    value = await api.store.get(resource.key(namespace, name))
    return None if value is None else dict(json.loads(value))


async def create_token(api: Api, signer: TokenSigner, namespace: str, name: str, body: Any) -> dict[str, Any]:
    """``POST serviceaccounts/<name>/token``: the TokenRequest with its status filled in."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    kind = body.get("kind")
    if kind and kind != "TokenRequest":
        raise errors.bad_request(f'{kind} in version "{body.get("apiVersion")}" cannot be handled as a TokenRequest')
    account = await _get_json(api, "serviceaccounts", namespace, name)
    if account is None:
        raise errors.not_found("", "serviceaccounts", name)
    spec = dict(body.get("spec") or {})
    audiences = [str(a) for a in spec.get("audiences") or []] or list(API_AUDIENCES)
    expiration = spec.get("expirationSeconds")
    expiration = DEFAULT_EXPIRATION if expiration is None else expiration
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        raise errors.bad_request("spec.expirationSeconds must be an integer")
    if expiration < MIN_EXPIRATION:
        raise _invalid_token_request(name, "spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes")
    if expiration > MAX_EXPIRATION:
        raise _invalid_token_request(name, "spec.expirationSeconds", expiration, "may not specify a duration larger than 2^32 seconds")
    now = int(time.time())
    jti = str(uuid.uuid4())
    private: dict[str, Any] = {"namespace": namespace,
                               "serviceaccount": {"name": name, "uid": meta(account).get("uid", "")}}
    bound = spec.get("boundObjectRef")
    if bound:
        private.update(await _bound_claims(api, namespace, name, bound))
    claims = {"aud": audiences, "exp": now + expiration, "iat": now, "iss": ISSUER, "jti": jti,
              "kubernetes.io": private, "nbf": now, "sub": f"{_USER_PREFIX}{namespace}:{name}"}
    token = signer.sign(claims)
    spec.update({"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": bound or None})
    metadata = {"name": name, "namespace": namespace, "creationTimestamp": objects.now_rfc3339()}
    return {"kind": "TokenRequest", "apiVersion": TOKEN_API_VERSION, "metadata": metadata, "spec": spec,
            "status": {"token": token, "expirationTimestamp": _rfc3339(now + expiration)}}


async def _bound_claims(api: Api, namespace: str, name: str, bound: Any) -> dict[str, Any]:
    if not isinstance(bound, dict):
        raise errors.bad_request("spec.boundObjectRef must be an object")
    kind, ref_name, ref_uid = bound.get("kind"), bound.get("name", ""), bound.get("uid", "")
    plurals = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}
    if kind not in plurals:
        raise _invalid_token_request(name, "spec.boundObjectRef.kind", f'"{kind}"', 'supported values: "Node", "Pod", "Secret"')
    target = await _get_json(api, plurals[kind], None if kind == "Node" else namespace, ref_name)
    if target is None:
        raise errors.not_found("", plurals[kind], ref_name)
    if ref_uid and ref_uid != meta(target).get("uid"):
        raise errors.conflict("", plurals[kind], ref_name,
                              f"the UID in the bound object reference ({ref_uid}) does not match the UID in record. "
                              f"The object might have been deleted and then recreated")
    claims: dict[str, Any] = {kind.lower(): {"name": ref_name, "uid": meta(target).get("uid", "")}}
    node_name = (target.get("spec") or {}).get("nodeName") if kind == "Pod" else None
    if node_name:
        node = await _get_json(api, "nodes", None, node_name)
        if node is not None:
            claims["node"] = {"name": node_name, "uid": meta(node).get("uid", "")}
    return claims


# --- authentication -------------------------------------------------------------------------------------

async def authenticate(api: Api, signer: TokenSigner, token: str) -> Identity | None:
    """The service account a token names, or None when the server must not accept it."""
    claims = signer.verify(token)
    if claims is None or claims.get("iss") != ISSUER:
        return None
    now = time.time()
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences or []
    if not set(audiences) & set(API_AUDIENCES):
        return None
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now or float(claims.get("nbf", 0)) > now + 60:
        return None
    private = claims.get("kubernetes.io") or {}
    namespace = private.get("namespace", "")
    account_ref = private.get("serviceaccount") or {}
    account = await _get_json(api, "serviceaccounts", namespace, account_ref.get("name", ""))
    if account is None or meta(account).get("uid") != account_ref.get("uid"):
        return None
    extra: dict[str, list[str]] = {}
    if claims.get("jti"):
        extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims['jti']}"]
    for kind in ("pod", "node"):
        ref = private.get(kind)
        if not ref:
            continue
        if kind == "pod":
            pod = await _get_json(api, "pods", namespace, ref.get("name", ""))
            if pod is None or meta(pod).get("uid") != ref.get("uid"):
                return None
        extra[f"authentication.kubernetes.io/{kind}-name"] = [ref.get("name", "")]
        extra[f"authentication.kubernetes.io/{kind}-uid"] = [ref.get("uid", "")]
    name = account_ref.get("name", "")
    groups = (SERVICE_ACCOUNT_GROUP, f"{SERVICE_ACCOUNT_GROUP}:{namespace}", AUTHENTICATED_GROUP)
    return Identity(f"{_USER_PREFIX}{namespace}:{name}", meta(account).get("uid", ""), groups, extra)


# --- admission ------------------------------------------------------------------------------------------

async def _service_account_for(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    # As the admission plugin: the default account is made by a controller, so wait a little for it.
    attempts = 10 if name == "default" else 1
    interval = random.uniform(0.1, 0.2)
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(interval)
        account = await _get_json(api, "serviceaccounts", namespace, name)
        if account is not None:
            return account
    return None


async def admit_pod(api: Api, pod: dict[str, Any]) -> None:
    """ServiceAccount admission on pod create (in place)."""
    metadata, spec = meta(pod), pod.setdefault("spec", {})
    if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
        return
    namespace = metadata.get("namespace", "")
    name = spec.get("serviceAccountName") or "default"
    account = await _service_account_for(api, namespace, name)
    if account is None:
        raise errors.forbidden(f'pods "{metadata.get("name", "")}" is forbidden: error looking up service account '
                               f'{namespace}/{name}: serviceaccount "{name}" not found', "", "pods", metadata.get("name", ""))
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account.get("automountServiceAccountToken")
    if automount is False:
        return
    containers = [c for key in ("initContainers", "containers") for c in spec.get(key) or [] if isinstance(c, dict)]
    if any(m.get("mountPath") == MOUNT_PATH for c in containers for m in c.get("volumeMounts") or []):
        return  # the pod mounts something of its own there
    volume_name = objects.generated_name("kube-api-access-")
    spec.setdefault("volumes", []).append(api_access_volume(volume_name))
    for container in containers:
        container.setdefault("volumeMounts", []).append({"name": volume_name, "readOnly": True, "mountPath": MOUNT_PATH})


def api_access_volume(name: str) -> dict[str, Any]:
    return {"name": name, "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": PROJECTED_TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ], "defaultMode": 420}}


# --- reviews --------------------------------------------------------------------------------------------

def self_subject_review(version: str, name: str, uid: str, groups: tuple[str, ...], extra: dict[str, list[str]]) -> dict[str, Any]:
    info: dict[str, Any] = {"username": name, "groups": list(groups)}
    if uid:
        info["uid"] = uid
    if extra:
        info["extra"] = extra
    return {"kind": "SelfSubjectReview", "apiVersion": f"authentication.k8s.io/{version}",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": info}}


def token_review(version: str, body: Any, identity: Identity | None, audiences: list[str]) -> dict[str, Any]:
    spec = dict((body or {}).get("spec") or {}) if isinstance(body, dict) else {}
    status: dict[str, Any] = {"authenticated": identity is not None}
    if identity is not None:
        user: dict[str, Any] = {"username": identity.name, "uid": identity.uid, "groups": list(identity.groups)}
        if identity.extra:
            user["extra"] = identity.extra
        status["user"] = user
        status["audiences"] = audiences
    else:
        status["user"] = {}
        status["error"] = "[invalid bearer token, service account token has been invalidated]"
    return {"kind": "TokenReview", "apiVersion": f"authentication.k8s.io/{version}",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
