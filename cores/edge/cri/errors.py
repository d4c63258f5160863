"""The two errors the CRI client raises, importable without gRPC."""

from __future__ import annotations


class CriError(Exception):
    """A CRI call failed. ``code`` is the gRPC status name (``NOT_FOUND``, ``DEADLINE_EXCEEDED`` …),
    ``status`` its number, ``method`` the RPC (``runtime.v1.RuntimeService/StartContainer``)."""

    def __init__(self, method: str, code: str, status: int, message: str) -> None:
        super().__init__(f"{method} failed: {code}: {message}")
        self.method = method
        self.code = code
        self.status = status
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.code == "NOT_FOUND"


class RuntimeUnavailable(CriError):
    """Nothing answers at the endpoint (socket missing, refused, or the connection dropped)."""

    def __init__(self, endpoint: str, method: str, reason: str) -> None:
        super().__init__(method, "UNAVAILABLE", 14, reason)
        self.endpoint = endpoint
        self.args = (f"container runtime at {endpoint} is not answering: {reason}; is containerd running?",)

    def __str__(self) -> str:
        return str(self.args[0])
