"""docs/security.md: every row of the threat model names a test, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`((?:unit|integration|e2e)/[\w/]+\.py)(?:::(\w+))?`")


def rows() -> list[str]:
    lines = (REPO / "docs" / "security.md").read_text().splitlines()
    return [line for line in lines if line.startswith("|") and not set(line) <= set("|- ") and not line.startswith("| Surface")
            and not line.startswith("| Asset") and not line.startswith("| Class")]


def test_every_row_names_a_test() -> None:
    assert len(rows()) >= 10
    for row in rows():
        assert REFERENCE.search(row), f"no test named in: {row[:80]}"


def test_every_named_test_exists() -> None:
    missing = []
    for row in rows():
        for path, name in REFERENCE.findall(row):
            source = REPO / "tests" / path
            if not source.exists() or (name and not re.search(rf"def {name}\b", source.read_text())):
                missing.append(f"{path}::{name}" if name else path)
    assert missing == []
