"""Request bodies from bytes to JSON values, refusing what Go's decoder would refuse, before it costs anything.

Owns the checks every JSON body passes before ``json.loads`` builds it: strict UTF-8, a nesting bound
(:data:`~cores.controlplane.limits.MAX_JSON_DEPTH`, counted on the text so a deep document is refused
without recursing into it), no ``NaN``/``Infinity`` (not JSON; Python's parser takes them) and no
number too large for a float64. Lone UTF-16 surrogates in ``\\u`` escapes become U+FFFD, as Go's
decoder does, so nothing stored fails to encode later. Every refusal is a 400 ``BadRequest`` whose
message says what was wrong and where.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from cores.common.jsonlimits import nesting_depth
from cores.controlplane import errors
from cores.controlplane.limits import MAX_JSON_DEPTH

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")
PREFIX = "couldn't get version/kind; json parse error: "


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value ({name} is not JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is out of the range of a float64")
    return value


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_surrogates(key): _replace_surrogates(item) for key, item in value.items()}
    return value


def parse(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of a request body, or a 400 ApiError saying why there is none."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise errors.bad_request(f"{PREFIX}invalid UTF-8 in the request body at byte offset {error.start}") from None
    openers = text.count("[") + text.count("{")  # an upper bound of the depth, cheap
    depth = nesting_depth(text) if openers > max_depth else 0
    if depth > max_depth:
        raise errors.bad_request(f"{PREFIX}exceeded max depth: the request body nests {depth} levels, "
                                 f"more than the {max_depth} allowed")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # unreachable below max_depth; kept so no body can become a 500
        raise errors.bad_request(f"{PREFIX}exceeded max depth") from None
    except ValueError as error:  # JSONDecodeError, and int() past sys.get_int_max_str_digits()
        raise errors.bad_request(f"{PREFIX}{error}") from None
    if _SURROGATE_ESCAPE.search(text):
        value = _replace_surrogates(value)
    return value
