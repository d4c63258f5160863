"""Refusals and failures that cross the link, as upstream's ``apierrors.StatusError``.

On the wire an error is a ``metav1.Status`` (``{"status": "Failure", "reason", "code", "message",
"metadata": {}}``), wrapped as ``{"ErrStatus": <Status>}`` where a Go ``error`` is serialised
(``ObjectResp.Err``, bare query replies). Go's decoder on the edge drops ``kind``/``apiVersion``
inside ``ErrStatus``, so they are never sent there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from cores.common.objects import ErrWire, StatusDict

# The reasons our code names (k8s.io/apimachinery/pkg/apis/meta/v1 StatusReason).
NOT_FOUND = "NotFound"
ALREADY_EXISTS = "AlreadyExists"
CONFLICT = "Conflict"
FORBIDDEN = "Forbidden"
BAD_REQUEST = "BadRequest"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
TIMEOUT = "Timeout"
INTERNAL_ERROR = "InternalError"


class StatusError(Exception):
    """An API refusal or failure: ``code``, ``reason`` and ``message`` of its ``metav1.Status``."""

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.status: dict[str, Any] = {k: v for k, v in status.items() if k not in ("kind", "apiVersion")}
        self.status.setdefault("metadata", {})
        self.status.setdefault("status", "Failure")
        super().__init__(self.message or self.reason or "request failed")

    @classmethod
    def make(cls, code: int, reason: str, message: str) -> StatusError:
        return cls({"metadata": {}, "status": "Failure", "reason": reason, "code": code, "message": message})

    @classmethod
    def from_error(cls, error: Any) -> StatusError:
        """The error of a reply: ``{"ErrStatus": Status}``, a bare Status, or anything else (a string)."""
        if isinstance(error, Mapping):
            inner = error.get("ErrStatus")
            if isinstance(inner, Mapping):
                return cls(inner)
            if "code" in error or "reason" in error or "message" in error:
                return cls(error)
        return cls.make(500, INTERNAL_ERROR, str(error))

    @property
    def code(self) -> int:
        code = self.status.get("code")
        # a peer's Status may carry anything: what is not an HTTP error code counts as a server error
        return code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599 else 500

    @property
    def reason(self) -> str:
        return str(self.status.get("reason") or "")

    @property
    def message(self) -> str:
        return str(self.status.get("message") or "")

    def wire(self) -> ErrWire:
        """``{"ErrStatus": Status}``, the shape a Go ``error`` takes in a reply."""
        return {"ErrStatus": cast(StatusDict, dict(self.status))}


class RequestTimeout(StatusError):
    """No reply came within the request's timeout (the link may be up; the cloud did not answer)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__({"reason": TIMEOUT, "code": 504, "message": f"no reply from the cloud within {seconds:g}s to {what}"})


def not_connected() -> StatusError:
    return StatusError.make(503, SERVICE_UNAVAILABLE, "edge is not connected to the cloud")


def forbidden(node: str, what: str) -> StatusError:
    return StatusError.make(403, FORBIDDEN, f"node {node!r} is not allowed to access {what}")


def bad_request(message: str) -> StatusError:
    return StatusError.make(400, BAD_REQUEST, message)
