"""Waits in tests scale with $KUBEEDGE_TEST_TIMEOUT_FACTOR, so a loaded machine does not make them flaky."""

import os

TIMEOUT_FACTOR = float(os.environ.get("KUBEEDGE_TEST_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_FACTOR
