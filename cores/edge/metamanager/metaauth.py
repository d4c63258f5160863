"""Who is asking MetaServer, and may they (``requireAuthorization``): service-account tokens and RBAC,
decided by the cloud and remembered for when it is away.

- **Authentication**: a bearer token is checked with a ``TokenReview`` sent to the cloud as an
  Application (the cloud runs it as this node, which may create TokenReviews). The answer is kept
  by the token's SHA-256 (never the token): fresh for :data:`FRESH_SECONDS`, then asked again;
  with the cloud away it holds until the token's own ``exp``. A token the cloud refused is
  remembered for :data:`REFUSED_SECONDS`.
- **Authorization**: each request's attributes (verb, group, resource, subresource, namespace,
  name, or a non-resource path) are checked with a ``SubjectAccessReview`` in the cloud, which
  holds the RBAC; answers are kept by identity and attributes (an allow fresh for
  :data:`FRESH_SECONDS`, a refusal for :data:`REFUSED_SECONDS`, so a new RoleBinding counts
  soon), and used as they are while the cloud is away. Discovery and health are open to anyone
  authenticated, as RBAC's ``system:discovery`` role makes them.
- Nothing known and the cloud away: 401 or 403 saying so, never a guess.

Both caches hold at most :data:`MAX_ENTRIES` answers (the oldest go first).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cores.link import application
from cores.link.application import Application

log = logging.getLogger("kubeedge.metaserver")

FRESH_SECONDS = 60.0
REFUSED_SECONDS = 5.0
MAX_ENTRIES = 4096
REVIEW_TIMEOUT = 10.0
DISCOVERY = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")


@dataclasses.dataclass(frozen=True)
class Identity:
    name: str
    groups: tuple[str, ...]
    uid: str = ""


@dataclasses.dataclass(frozen=True)
class Attributes:
    verb: str
    path: str
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def review(self) -> dict[str, Any]:
        if not self.resource:
            return {"nonResourceAttributes": {"path": self.path, "verb": self.verb}}
        return {"resourceAttributes": {k: v for k, v in (
            ("namespace", self.namespace), ("verb", self.verb), ("group", self.group), ("version", self.version),
            ("resource", self.resource), ("subresource", self.subresource), ("name", self.name)) if v}}

    def describe(self, user: str) -> str:
        if not self.resource:
            return f'forbidden: User "{user}" cannot {self.verb} path "{self.path}"'
        plural = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f' in the namespace "{self.namespace}"' if self.namespace else ""
        subject = f'{self.resource}{"." + self.group if self.group else ""}' + (f' "{self.name}"' if self.name else "")
        return f'{subject} is forbidden: User "{user}" cannot {self.verb} resource "{plural}" in API group "{self.group}"{where}'


class CloudAway(Exception):
    """The cloud could not be asked (offline, or no answer in time)."""


Apply = Callable[[Application, float], Awaitable[Application]]


class _Bounded(collections.OrderedDict[Any, Any]):
    def remember(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > MAX_ENTRIES:
            self.popitem(last=False)


class MetaAuth:
    def __init__(self, apply_in_cloud: Apply | None, node_name: str, clock: Callable[[], float] = time.time) -> None:
        self.apply_in_cloud = apply_in_cloud
        self.node_name = node_name
        self.clock = clock
        self._tokens = _Bounded()     # sha256 -> (identity | None, fresh until, valid until)
        self._decisions = _Bounded()  # (identity, attributes) -> (allowed, reason, fresh until)

    # authentication ------------------------------------------------------------------------
    async def authenticate(self, token: str) -> tuple[Identity | None, str]:
        """(identity, "") or (None, why not)."""
        if not token or len(token) > 16384:
            return None, "Unauthorized"
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        cached = self._tokens.get(key)
        if cached is not None and now < cached[1]:
            return (cached[0], "") if cached[0] is not None else (None, "Unauthorized")
        try:
            review = await self._review("tokenreviews", "authentication.k8s.io", {"spec": {"token": token}}, "TokenReview")
        except CloudAway as away:
            if cached is not None and cached[0] is not None and now < cached[2]:
                return cached[0], ""
            return None, f"Unauthorized: the token cannot be checked: {away}"
        status = _mapping(review.get("status"))
        user = _mapping(status.get("user"))
        if not status.get("authenticated") or not user.get("username"):
            self._tokens.remember(key, (None, now + REFUSED_SECONDS, now + REFUSED_SECONDS))
            return None, "Unauthorized"
        identity = Identity(str(user["username"]), tuple(str(g) for g in user.get("groups") or ()), str(user.get("uid") or ""))
        self._tokens.remember(key, (identity, now + FRESH_SECONDS, _expiry(token, now)))
        return identity, ""

    # authorization -------------------------------------------------------------------------
    async def authorize(self, identity: Identity, attributes: Attributes) -> tuple[bool, str]:
        if not attributes.resource and attributes.verb == "get" and attributes.path.startswith(DISCOVERY):
            return True, ""
        key = (identity, attributes)
        now = self.clock()
        cached = self._decisions.get(key)
        if cached is not None and now < cached[2]:
            return cached[0], cached[1]
        spec = {"user": identity.name, "groups": list(identity.groups), **attributes.review()}
        if identity.uid:
            spec["uid"] = identity.uid
        try:
            review = await self._review("subjectaccessreviews", "authorization.k8s.io", {"spec": spec}, "SubjectAccessReview")
        except CloudAway as away:
            if cached is not None:
                return cached[0], cached[1]
            return False, f"it cannot be authorized now: {away}, and no earlier answer is known here"
        status = _mapping(review.get("status"))
        allowed, reason = status.get("allowed") is True, str(status.get("reason") or "")
        self._decisions.remember(key, (allowed, reason, now + (FRESH_SECONDS if allowed else REFUSED_SECONDS)))
        return allowed, reason

    async def _review(self, plural: str, group: str, body: dict[str, Any], kind: str) -> dict[str, Any]:
        if self.apply_in_cloud is None:
            raise CloudAway("this MetaServer has no link to the cloud")
        from cores.link.status import StatusError

        key = application.build_key(group, "v1", plural, None, "")
        app = Application(key, "create", self.node_name, option=b"{}",
                          req_body=application.to_bytes({"apiVersion": f"{group}/v1", "kind": kind, **body}))
        try:
            answer = await self.apply_in_cloud(app, REVIEW_TIMEOUT)
        except StatusError as error:
            raise CloudAway(error.message) from None
        if answer.status != application.APPROVED:
            log.warning("metaserver: the cloud refused a %s: %s", kind, answer.error.get("message") or answer.reason)
            raise CloudAway(f"the cloud refused the {kind}")
        reply = answer.response_json()
        if not isinstance(reply, dict):
            raise CloudAway(f"the cloud's {kind} is not an object")
        return reply


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _expiry(token: str, now: float) -> float:
    """The token's ``exp`` (read, not verified: the cloud verified it), at most a day from now."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return min(float(claims["exp"]), now + 86400.0)
    except (IndexError, ValueError, KeyError, TypeError):
        return now + FRESH_SECONDS
