"""Waits in tests scale with $KUBEEDGE_TEST_TIMEOUT_FACTOR, so a loaded machine does not make them flaky."""

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

TIMEOUT_FACTOR = float(os.environ.get("KUBEEDGE_TEST_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_FACTOR


def wait_for(check: Callable[[], Any], timeout: float = 15, message: Any = "timed out waiting") -> Any:
    """Poll ``check`` until it returns something true (returned) or fail after ``timeout`` (scaled)
    seconds with ``message`` (a string, or a callable that says what was seen instead)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(str(message() if callable(message) else message))
