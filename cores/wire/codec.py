"""Frame <-> Message codec for the CloudHub/EdgeHub WebSocket link. Pure: no sockets, no asyncio.

Upstream sends each message as one WebSocket text frame written by Go's ``json.Encoder``: compact
JSON, keys in struct order (``header``, ``route``, ``content``), HTML-sensitive characters
escaped (``<`` ``>`` ``&`` as ``\\u003c`` ``\\u003e`` ``\\u0026``, and U+2028/U+2029), then a
trailing newline. :func:`encode` writes exactly that, so a frame we re-encode is byte-for-byte the
frame upstream sent.

:func:`decode` accepts text or bytes and either returns a :class:`Message` or raises
:class:`CodecError` saying what is wrong; it never lets another exception out, whatever the
input. Like Go's decoder it tolerates missing fields (zero values) and unknown keys, but not
wrong types, non-finite numbers, frames over the size limit or nesting past the depth limit.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any

from cores.beehive.message import Message, MessageHeader, MessageRoute

DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 100
_INT64 = (-(2**63), 2**63 - 1)


class CodecError(ValueError):
    """A frame that is not a valid message, or a message that cannot be encoded."""


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


DEFAULT_LIMITS = Limits()

# Go's encoding/json escapes these inside strings (HTMLEscape plus the JS line separators).
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


# --------------------------------------------------------------------------------- encoding
def _json_default(value: Any) -> Any:
    # Go marshals []byte as base64; mirror it rather than failing on bytes content.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"content holds a {type(value).__name__}, which is not JSON")


def encode(message: Message) -> str:
    """The frame text for ``message``: compact Go-style JSON plus ``\\n``."""
    try:
        text = json.dumps(
            message.to_wire_dict(),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError, RecursionError) as error:
        raise CodecError(f"cannot encode message {message.describe()}: {error}") from None
    if _GO_ESCAPE_RE.search(text):
        text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text)
    return text + "\n"


def encode_bytes(message: Message) -> bytes:
    """:func:`encode` as UTF-8; lone surrogates become U+FFFD, as Go writes invalid strings."""
    text = encode(message)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE_RE.sub("\ufffd", text).encode("utf-8")


# --------------------------------------------------------------------------------- decoding
def _reject_constant(name: str) -> Any:
    raise CodecError(f"{name} is not valid JSON")


def decode(frame: str | bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse one frame into a :class:`Message`, or raise :class:`CodecError`."""
    text = _frame_text(frame, limits)
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except CodecError:
        raise
    except json.JSONDecodeError as error:
        raise CodecError(f"frame is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise CodecError(f"frame nests deeper than {limits.max_depth} levels") from None
    except (ValueError, TypeError) as error:  # e.g. integer strings past Python's digit limit
        raise CodecError(f"frame is not usable JSON: {error}") from None
    _check_depth(text, document, limits.max_depth)
    return message_from_dict(document)


def _frame_text(frame: str | bytes | bytearray | memoryview, limits: Limits) -> str:
    if isinstance(frame, str):
        # Measure in UTF-8 bytes, as the peer counted them; skip the encode when it cannot matter.
        size = len(frame) if len(frame) * 4 <= limits.max_frame_bytes else _utf8_len(frame)
        _check_size(size, limits)
        return frame
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise CodecError(f"a frame is text or bytes, not {type(frame).__name__}")
    data = bytes(frame)
    _check_size(len(data), limits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CodecError(f"frame is not valid UTF-8 (byte {error.start})") from None


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_frame_bytes:
        raise CodecError(f"frame of {size} bytes exceeds the limit of {limits.max_frame_bytes} bytes")


def _check_depth(text: str, document: Any, max_depth: int) -> None:
    # Cheap bound first: a document cannot nest deeper than it has brackets.
    if text.count("{") + text.count("[") <= max_depth:
        return
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise CodecError(f"frame nests deeper than {max_depth} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))


def message_from_dict(document: Any) -> Message:
    """Build a :class:`Message` from an already-parsed JSON object, checking every field's type."""
    if not isinstance(document, dict):
        raise CodecError(f"a message is a JSON object, not {_json_type(document)}")
    header = _section(document, "header")
    route = _section(document, "route")
    return Message(
        MessageHeader(
            msg_id=_string(header, "header", "msg_id"),
            parent_msg_id=_string(header, "header", "parent_msg_id"),
            timestamp=_int64(header, "header", "timestamp"),
            resource_version=_string(header, "header", "resourceversion"),
            sync=_bool(header, "header", "sync"),
            type=_string(header, "header", "type"),
        ),
        MessageRoute(
            source=_string(route, "route", "source"),
            destination=_string(route, "route", "destination"),
            group=_string(route, "route", "group"),
            operation=_string(route, "route", "operation"),
            resource=_string(route, "route", "resource"),
        ),
        document.get("content"),
    )


def _section(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    if value is None:
        return {}  # Go leaves a missing or null struct at its zero value
    if not isinstance(value, dict):
        raise CodecError(f"{key} must be an object, not {_json_type(value)}")
    return value


def _string(section: dict[str, Any], where: str, key: str) -> str:
    value = section.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CodecError(f"{where}.{key} must be a string, not {_json_type(value)}")
    return value


def _bool(section: dict[str, Any], where: str, key: str) -> bool:
    value = section.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CodecError(f"{where}.{key} must be true or false, not {_json_type(value)}")
    return value


def _int64(section: dict[str, Any], where: str, key: str) -> int:
    value = section.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"{where}.{key} must be an integer, not {_json_type(value)}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise CodecError(f"{where}.{key} is out of the 64-bit range")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
