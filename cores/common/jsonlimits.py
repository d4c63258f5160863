"""JSON from outside, bounded: its nesting is counted on the text, before anything is built.

A deep document is refused without recursing into it (``json.loads`` would hit Python's
recursion limit, or spend the time first). The control plane's body parser and the edge's
MetaServer share the count.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# '[' and '{' open (+1), ']' and '}' close (-1, as the signed byte 0xFF)
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    steps = memoryview(brackets.translate(_DEPTH_STEPS)).cast("b")
    return max(0, max(itertools.accumulate(steps)))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_bounded(body: bytes, max_depth: int) -> Any:
    """The JSON value of ``body``; ValueError saying why there is none (bad UTF-8, too deep, not JSON)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"invalid UTF-8 at byte offset {error.start}") from None
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise ValueError(f"it nests deeper than the {max_depth} levels allowed")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("it nests too deep") from None
