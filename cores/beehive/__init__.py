"""beehive: the message model and the in-process context that core modules talk through.

Mirrors upstream ``github.com/kubeedge/beehive``: a :class:`Message` (header, route, content),
mailboxes registered by module name and group, ``send``/``send_to_group`` and ``send_sync``
answered through ``parent_msg_id``.
"""

from cores.beehive.context import (
    BeehiveError,
    Context,
    MailboxFull,
    SyncTimeout,
    UnknownModule,
)
from cores.beehive.core import Module, ModuleFailed, ModuleRunner
from cores.beehive.message import Message, MessageHeader, MessageRoute, now_ms

__all__ = [
    "BeehiveError",
    "Context",
    "MailboxFull",
    "Message",
    "MessageHeader",
    "MessageRoute",
    "Module",
    "ModuleFailed",
    "ModuleRunner",
    "SyncTimeout",
    "UnknownModule",
    "now_ms",
]
