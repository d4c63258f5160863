"""Where the upstream v1.23 captures live, and how to read them (shared by the tests).

The captures are copied into the repository (tests/testdata/upstream-v1.23/, see its README.md), so the
tests need nothing outside the repository. Every test reaches them through ``UPSTREAM``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

UPSTREAM = Path(__file__).resolve().parent / "testdata" / "upstream-v1.23"


def capture_files() -> list[Path]:
    files = sorted(UPSTREAM.glob("*.jsonl"))
    assert files, f"no captures found in {UPSTREAM}"
    return files


def capture_records() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every recorded frame as (file name:line, record)."""
    for path in capture_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield f"{path.name}:{number}", json.loads(line)
