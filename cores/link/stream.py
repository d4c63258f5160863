"""The stream tunnel's protocol (kubectl logs, exec, attach, port-forward, metrics), without I/O.

EdgeStream dials CloudStream's tunnel port (10004) and keeps one WebSocket open; CloudStream
multiplexes every kubectl stream for that node over it. Each WebSocket message is one frame,
``uvarint(connectID) || uvarint(type) || data`` (upstream ``pkg/stream/message.go``), sent as a
*text* frame whose payload is not UTF-8 (upstream's cloudcore refuses binary frames).

A session starts with a connect frame whose data is upstream's JSON
``{"MessID": n, "url": <Go url.URL>, "header": <http.Header>, "method": ...}``; the edge makes that
request to its local kubelet endpoint and the bytes flow as DATA frames both ways until one end
sends REMOVE_CONNECT. CLOSE_CONNECT (connect id 0) closes the whole tunnel with a reason.

What we add, only between our own peers (an upstream peer never sees it):

- the edge names what it understands in the tunnel request's ``SessionFeatures`` header;
- ``rawResponse`` in a connect frame: the edge passes the local server's whole HTTP response
  (status line and headers too), so a 404 from the edge reaches kubectl as a 404; upstream's edge
  sends the body only, and the cloud then answers 200 itself, as upstream's cloud does;
- ``window`` in a connect frame and WINDOW frames: credit-based flow control of edge->cloud DATA,
  so one slow ``logs -f`` reader holds back only its own stream, never the tunnel;
- PORTFORWARD_CONNECT, a type number upstream does not use (upstream has no port-forward).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Mapping
from typing import Any

# The biggest frame either end accepts: upstream reads at most 1 MiB of data a frame.
MAX_FRAME_DATA = 1 << 20
MAX_CONNECT_BYTES = 64 * 1024  # a connect frame's JSON (URL and headers)
MAX_HEADERS = 64
MAX_HEADER_VALUE = 8 * 1024
MAX_CONNECT_ID = (1 << 63) - 1
# DATA chunks our ends write: upstream writes 256 bytes a frame, which costs a frame per line of
# a log; 32 KiB keeps frames few without making one stream hog the tunnel.
CHUNK_BYTES = 32 * 1024
# Credit a stream starts with and is granted back as its reader consumes (edge->cloud DATA).
DEFAULT_WINDOW = 1 << 20

TUNNEL_PATH = "/v1/kubeedge/connect"
HEADER_NODE = "SessionHostNameOverride"
HEADER_INTERNAL_IP = "SessionInternalIP"
HEADER_FEATURES = "SessionFeatures"
FEATURES = ("raw-response", "window", "port-forward")
# Where upstream's cloud points every request it relays (the edge's kubelet port; constants.ServerPort).
UPSTREAM_KUBELET_HOST = "127.0.0.1:10350"


class FrameType(enum.IntEnum):
    LOGS_CONNECT = 0
    EXEC_CONNECT = 1
    METRIC_CONNECT = 2
    DATA = 3
    REMOVE_CONNECT = 4
    CLOSE_CONNECT = 5
    ATTACH_CONNECT = 6
    # ours: far from upstream's numbers, so a type upstream adds later cannot collide
    PORTFORWARD_CONNECT = 100
    WINDOW = 101


CONNECT_TYPES = frozenset({FrameType.LOGS_CONNECT, FrameType.EXEC_CONNECT, FrameType.METRIC_CONNECT,
                           FrameType.ATTACH_CONNECT, FrameType.PORTFORWARD_CONNECT})
# Streams whose local answer is an HTTP response followed by a body (the rest are upgrades).
BODY_TYPES = frozenset({FrameType.LOGS_CONNECT, FrameType.METRIC_CONNECT})


class StreamProtocolError(ValueError):
    """A frame or connect request that breaks the protocol; it ends that one stream, or the
    tunnel when the frame cannot even be attributed to a stream."""


@dataclasses.dataclass(frozen=True)
class Frame:
    connect_id: int
    type: int          # a FrameType value, or a number we do not know (ignored by the receiver)
    data: bytes = b""

    def __bytes__(self) -> bytes:
        return encode_frame(self.connect_id, self.type, self.data)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_uvarint(buffer: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(offset, min(len(buffer), offset + 10)):
        byte = buffer[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > 0xFFFF_FFFF_FFFF_FFFF:
                raise StreamProtocolError("uvarint overflows 64 bits")
            return value, index + 1
        shift += 7
    raise StreamProtocolError("truncated or over-long uvarint")


def encode_frame(connect_id: int, frame_type: int, data: bytes = b"") -> bytes:
    if not 0 <= connect_id <= MAX_CONNECT_ID:
        raise StreamProtocolError(f"connect id {connect_id} out of range")
    if len(data) > MAX_FRAME_DATA:
        raise StreamProtocolError(f"frame data of {len(data)} bytes is over {MAX_FRAME_DATA}")
    return _uvarint(connect_id) + _uvarint(int(frame_type)) + data


def decode_frame(payload: bytes) -> Frame:
    connect_id, offset = _read_uvarint(payload, 0)
    frame_type, offset = _read_uvarint(payload, offset)
    if connect_id > MAX_CONNECT_ID:
        raise StreamProtocolError(f"connect id {connect_id} out of range")
    data = payload[offset:]
    if len(data) > MAX_FRAME_DATA:
        raise StreamProtocolError(f"frame data of {len(data)} bytes is over {MAX_FRAME_DATA}")
    return Frame(connect_id, frame_type, data)


def window_frame(connect_id: int, granted: int) -> bytes:
    return encode_frame(connect_id, FrameType.WINDOW, _uvarint(granted))


def window_grant(frame: Frame) -> int:
    granted, _ = _read_uvarint(frame.data, 0)
    return granted


# ------------------------------------------------------------------------------ connect requests
_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclasses.dataclass(frozen=True)
class ConnectRequest:
    """One stream: the kubelet request the edge makes for it, and how the answer travels."""

    connect_id: int
    type: FrameType
    method: str
    path: str                      # origin-form, percent-escaped as on the wire
    query: str = ""                # raw query, without '?'
    headers: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    raw_response: bool = False     # ours: the edge sends the whole HTTP response
    window: int = 0                # ours: initial credit for edge->cloud DATA (0: no flow control)

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")

    def payload(self) -> bytes:
        """The connect frame's data: upstream's JSON, ``url`` in Go's ``url.URL`` form."""
        document: dict[str, Any] = {
            "MessID": self.connect_id,
            "url": {"Scheme": "http", "Opaque": "", "User": None, "Host": UPSTREAM_KUBELET_HOST,
                    "Path": _unescape_path(self.path), "RawPath": self.path if _unescape_path(self.path) != self.path else "",
                    "OmitHost": False, "ForceQuery": False, "RawQuery": self.query, "Fragment": "", "RawFragment": ""},
            "header": {name: list(values) for name, values in self.headers.items()},
        }
        if self.type in (FrameType.EXEC_CONNECT, FrameType.ATTACH_CONNECT, FrameType.PORTFORWARD_CONNECT):
            document["method"] = self.method
        if self.raw_response:
            document["rawResponse"] = True
        if self.window:
            document["window"] = self.window
        return json.dumps(document, separators=(",", ":")).encode()

    def frame(self) -> bytes:
        return encode_frame(self.connect_id, self.type, self.payload())


def _unescape_path(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def parse_connect(frame: Frame) -> ConnectRequest:
    """A connect frame, checked: the edge acts on it, so nothing in it is trusted."""
    if frame.type not in CONNECT_TYPES:
        raise StreamProtocolError(f"frame type {frame.type} is not a connect")
    if len(frame.data) > MAX_CONNECT_BYTES:
        raise StreamProtocolError(f"connect request of {len(frame.data)} bytes is over {MAX_CONNECT_BYTES}")
    try:
        document = json.loads(frame.data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise StreamProtocolError(f"connect request is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise StreamProtocolError("connect request is not a JSON object")
    url = document.get("url")
    if not isinstance(url, dict):
        raise StreamProtocolError("connect request has no url")
    raw_path, plain_path, query = url.get("RawPath") or "", url.get("Path") or "", url.get("RawQuery") or ""
    if not all(isinstance(value, str) for value in (raw_path, plain_path, query)):
        raise StreamProtocolError("connect url fields must be strings")
    path = raw_path or _escape_path(plain_path)
    if not _PATH.fullmatch(path) or len(path) > 4096:
        raise StreamProtocolError(f"connect path {path[:80]!r} is not an origin-form path")
    if any(segment in (".", "..") for segment in _unescape_path(path).split("/")):
        raise StreamProtocolError("connect path has dot segments")
    if not _QUERY.fullmatch(query) or len(query) > 16 * 1024:
        raise StreamProtocolError("connect query is malformed or too long")
    method = document.get("method") or "GET"
    if not isinstance(method, str) or method not in ("GET", "POST"):
        raise StreamProtocolError(f"connect method {method!r} is not GET or POST")
    headers = _parse_headers(document.get("header"))
    window = document.get("window") or 0
    if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 1 << 30:
        raise StreamProtocolError("connect window is not a byte count")
    return ConnectRequest(frame.connect_id, FrameType(frame.type), method, path, query, headers,
                          raw_response=document.get("rawResponse") is True, window=window)


def _escape_path(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/-._~!$&'()*+,;=:@")


def _parse_headers(value: object) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise StreamProtocolError(f"connect header must be an object of at most {MAX_HEADERS} names")
    headers: dict[str, tuple[str, ...]] = {}
    for name, values in value.items():
        if not _TOKEN.fullmatch(name) or not isinstance(values, list) or len(values) > 16:
            raise StreamProtocolError(f"connect header {str(name)[:40]!r} is malformed")
        for item in values:
            if not isinstance(item, str) or len(item) > MAX_HEADER_VALUE or any(c in item for c in "\r\n\0"):
                raise StreamProtocolError(f"connect header {name!r} has a malformed value")
        headers[name] = tuple(values)
    return headers


# ------------------------------------------------------------------------------ flow control
class SendCredit:
    """The sender's side of a stream's window: how many bytes it may still send."""

    def __init__(self, window: int) -> None:
        self.limited = window > 0
        self.available = window

    def may_send(self) -> int:
        """Bytes that may go now (CHUNK_BYTES at most); 0 means wait for a WINDOW frame."""
        if not self.limited:
            return CHUNK_BYTES
        return min(self.available, CHUNK_BYTES)

    def sent(self, count: int) -> None:
        if self.limited:
            self.available -= count

    def granted(self, count: int) -> None:
        self.available = min(self.available + count, 1 << 31)


class ReceiveWindow:
    """The receiver's side: it grants credit back once half the window was delivered onward, so
    the sender never stalls on a reader that keeps up, and a reader that stops holds at most
    ``window`` bytes of its stream in memory."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.delivered_since_grant = 0
        self.buffered = 0

    def received(self, count: int) -> None:
        self.buffered += count

    def overflowed(self) -> bool:
        """The sender sent past its credit (a peer that ignores the window): end the stream."""
        return self.window > 0 and self.buffered > self.window

    def delivered(self, count: int) -> int:
        """``count`` bytes reached the reader; the credit to grant now (0: none yet)."""
        self.buffered -= count
        self.delivered_since_grant += count
        if self.window and self.delivered_since_grant >= self.window // 2:
            grant, self.delivered_since_grant = self.delivered_since_grant, 0
            return grant
        return 0


# ------------------------------------------------------------------------------ kubelet paths
@dataclasses.dataclass(frozen=True)
class KubeletTarget:
    """What a kubelet streaming path names: /containerLogs/{ns}/{pod}/{container},
    /exec|attach/{ns}/{pod}[/{uid}]/{container}, /portForward/{ns}/{pod}[/{uid}]."""

    kind: str   # containerLogs | exec | attach | portForward
    namespace: str
    pod: str
    container: str = ""
    uid: str = ""


def parse_kubelet_path(path: str) -> KubeletTarget | None:
    """The pod a streaming path is for, or None for paths that name no pod (stats, metrics)."""
    parts = _unescape_path(path).split("/")[1:]
    if not parts:
        return None
    kind, rest = parts[0], parts[1:]
    if kind == "containerLogs" and len(rest) == 3:
        return KubeletTarget(kind, rest[0], rest[1], rest[2])
    if kind in ("exec", "attach") and len(rest) in (3, 4):
        return KubeletTarget(kind, rest[0], rest[1], rest[-1], rest[2] if len(rest) == 4 else "")
    if kind == "portForward" and len(rest) in (2, 3):
        return KubeletTarget(kind, rest[0], rest[1], "", rest[2] if len(rest) == 3 else "")
    return None


CONNECT_TYPE_OF_KIND = {"containerLogs": FrameType.LOGS_CONNECT, "exec": FrameType.EXEC_CONNECT,
                        "attach": FrameType.ATTACH_CONNECT, "portForward": FrameType.PORTFORWARD_CONNECT}
