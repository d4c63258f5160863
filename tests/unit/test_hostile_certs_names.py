"""Names from outside are DNS-1123 names before any use (cores/common/names.py).

Hostile edges, class 2 (names used as paths): the bootstrap server's ``GET /node/<name>`` and the
``NodeName`` header of ``/edge.crt`` are checked with these before the name reaches an API path.
"""

from __future__ import annotations

import pytest

from cores.common import names

GOOD = ["edge-1", "a", "0", "edge.example.com", "a" * 253, "1-2.3-4", ".".join(["a" * 63] * 3)]
BAD = [
    "", "Edge-1", "-edge", "edge-", "edge_1", "edge 1", "a" * 254, "edge..1", ".edge", "edge.",
    "../secrets/x", "edge/1", "edge-1?watch=true", "edge-1#x", "edge%2F1", "edge-1\n", "edge-1\r\n", "\nedge-1",
    "édge", "edge-1\x00", "*", "edge:1",
]


@pytest.mark.parametrize("name", GOOD)
def test_dns1123_subdomains_are_accepted(name: str) -> None:
    assert names.is_dns1123_subdomain(name)
    assert names.validate_node_name(name) == ""


@pytest.mark.parametrize("name", BAD)
def test_anything_else_is_refused_with_a_reason(name: str) -> None:
    assert not names.is_dns1123_subdomain(name)
    reason = names.validate_node_name(name)
    assert repr(name) in reason and "DNS-1123 subdomain" in reason


def test_a_trailing_newline_is_not_a_name() -> None:
    """``re.match`` with ``$`` accepts "edge-1\\n"; the validators must not."""
    assert not names.is_dns1123_label("edge-1\n")
    assert not names.is_dns1123_subdomain("edge-1\n")


def test_labels_have_no_dots_and_at_most_63_characters() -> None:
    assert names.is_dns1123_label("a" * 63)
    assert not names.is_dns1123_label("a" * 64)
    assert not names.is_dns1123_label("a.b")
    assert not names.is_dns1123_label("")


def test_non_strings_are_not_names() -> None:
    assert not names.is_dns1123_subdomain(None)  # type: ignore[arg-type]
    assert not names.is_dns1123_label(7)  # type: ignore[arg-type]
