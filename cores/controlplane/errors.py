"""API errors as kube-apiserver reports them: a ``Status`` object with reason, code and details."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the server answers with a ``Status`` body and the matching HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str, group: str, plural: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    details.update(extra)
    return details


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(group, plural)} "{name}" not found', _details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(group, plural)} "{name}" already exists', _details(name, group, plural))


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(name, group, plural))


def stale_update(group: str, plural: str, name: str) -> ApiError:
    return conflict(group, plural, name, "the object has been modified; please apply your changes to the latest version and try again")


def invalid(group: str, kind: str, name: str, message: str, causes: list[dict[str, str]]) -> ApiError:
    details = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", message, details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str, group: str = "", plural: str = "", name: str = "") -> ApiError:
    details = _details(name, group, plural) if plural else None
    return ApiError(403, "Forbidden", message, details)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"the request body exceeds the limit of {limit} bytes")


def method_not_allowed(verb: str, what: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({verb} {what})")


def unsupported_media_type(content_type: str, allowed: list[str]) -> ApiError:
    message = f"the body of the request was in an unknown format - accepted media types include: {', '.join(allowed)}"
    if content_type:
        message = f"the body of the request was in an unknown format ({content_type}) - accepted media types include: {', '.join(allowed)}"
    return ApiError(415, "UnsupportedMediaType", message)


def path_not_found(path: str) -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {"causes": [{"reason": "UnexpectedServerResponse", "message": f"404 page not found: {path}"}]})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")
