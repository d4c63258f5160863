"""Ending a connection with a TCP reset, so the peer sees a fault and not an end."""

from __future__ import annotations

import asyncio
import socket
import struct


def reset(transport: asyncio.WriteTransport) -> None:
    """Abort ``transport`` with RST: SO_LINGER 0 makes the close send one instead of a FIN.

    A body read to the close (a kubelet log) or a relayed stream would read a FIN, or a TLS close
    without close_notify, as its clean end; a reset reads as ``ConnectionResetError``.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
