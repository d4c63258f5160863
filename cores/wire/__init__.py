"""wire: the pure codec between WebSocket frames and beehive messages (no I/O)."""

from cores.wire.codec import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_BYTES,
    CodecError,
    Limits,
    decode,
    encode,
    encode_bytes,
    message_from_dict,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FRAME_BYTES",
    "CodecError",
    "Limits",
    "decode",
    "encode",
    "encode_bytes",
    "message_from_dict",
]
