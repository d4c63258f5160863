"""In-process message passing between core modules: mailboxes by name, groups, sync requests.

Upstream beehive's channel context, on one asyncio loop. Modules never call each other; they
send messages here and read their own mailbox.

Mailbox policy when full (every mailbox is bounded): ``send`` applies back-pressure — it waits up
to ``send_timeout`` seconds for room and then raises :class:`MailboxFull` naming the module;
``send_nowait`` raises at once. Nothing is ever dropped silently. Reliability does not rest on
beehive: messages that must reach the edge stay in CloudHub's per-node queues until acked, so a
sender that meets a full mailbox can retry or surface the error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from cores.beehive.message import Message

log = logging.getLogger("kubeedge.beehive")

DEFAULT_MAILBOX_SIZE = 1024
DEFAULT_SEND_TIMEOUT = 5.0


class BeehiveError(Exception):
    """Base of every error raised by the beehive context."""


class UnknownModule(BeehiveError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no module named {name!r} is registered")


class MailboxFull(BeehiveError):
    def __init__(self, name: str, size: int) -> None:
        super().__init__(f"mailbox of module {name!r} is full ({size} messages); it is not keeping up")


class SyncTimeout(BeehiveError):
    def __init__(self, module: str, message: Message, timeout: float) -> None:
        super().__init__(f"no response from {module!r} within {timeout:g}s to {message.describe()}")


class Context:
    """The registry of module mailboxes and groups, plus the table of pending sync requests."""

    def __init__(
        self, mailbox_size: int = DEFAULT_MAILBOX_SIZE, send_timeout: float = DEFAULT_SEND_TIMEOUT
    ) -> None:
        self.mailbox_size = mailbox_size
        self.send_timeout = send_timeout
        self._mailboxes: dict[str, asyncio.Queue[Message]] = {}
        self._groups: dict[str, list[str]] = {}
        self._waiting: dict[str, asyncio.Future[Message]] = {}

    # registration -------------------------------------------------------------------------
    def register(self, name: str, group: str = "") -> None:
        """Give module ``name`` a mailbox and, when ``group`` is set, make it a member of that group."""
        if name in self._mailboxes:
            raise BeehiveError(f"module {name!r} is already registered")
        self._mailboxes[name] = asyncio.Queue(self.mailbox_size)
        if group:
            self._groups.setdefault(group, []).append(name)

    def unregister(self, name: str) -> None:
        self._mailboxes.pop(name, None)
        for members in self._groups.values():
            if name in members:
                members.remove(name)

    def modules(self) -> list[str]:
        return list(self._mailboxes)

    def group_members(self, group: str) -> list[str]:
        return list(self._groups.get(group, ()))

    # sending ------------------------------------------------------------------------------
    def _mailbox(self, name: str) -> asyncio.Queue[Message]:
        try:
            return self._mailboxes[name]
        except KeyError:
            raise UnknownModule(name) from None

    def send_nowait(self, module: str, message: Message) -> None:
        """Put ``message`` in ``module``'s mailbox now, or raise :class:`MailboxFull`."""
        box = self._mailbox(module)
        try:
            box.put_nowait(message)
        except asyncio.QueueFull:
            raise MailboxFull(module, self.mailbox_size) from None

    async def send(self, module: str, message: Message) -> None:
        """Put ``message`` in ``module``'s mailbox, waiting up to ``send_timeout`` for room."""
        box = self._mailbox(module)
        if not box.full():
            box.put_nowait(message)
            return
        try:
            await asyncio.wait_for(box.put(message), self.send_timeout)
        except TimeoutError:
            raise MailboxFull(module, self.mailbox_size) from None

    async def send_to_group(self, group: str, message: Message) -> None:
        """Send to every module of ``group`` (upstream broadcasts); a group with no member is logged."""
        members = self._groups.get(group)
        if not members:
            log.warning("no module in group %r for %s", group, message.describe())
            return
        for name in list(members):
            await self.send(name, message)

    async def receive(self, module: str) -> Message:
        """The next message in ``module``'s mailbox (waits until there is one)."""
        return await self._mailbox(module).get()

    # request / response -------------------------------------------------------------------
    async def send_sync(self, module: str, message: Message, timeout: float) -> Message:
        """Send ``message`` and wait for the response whose ``parent_msg_id`` is its id."""
        message = message.with_header(sync=True)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[message.msg_id] = future
        try:
            await self.send(module, message)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise SyncTimeout(module, message, timeout) from None
        finally:
            self._waiting.pop(message.msg_id, None)

    def send_response(self, response: Message) -> bool:
        """Hand ``response`` to whoever waits on its ``parent_msg_id``; False when nobody does.

        A response nobody waits for is the normal fate of a reply that came after its
        requester gave up; the caller decides whether to log it or route it elsewhere.
        """
        future = self._waiting.pop(response.parent_msg_id, None)
        if future is None or future.done():
            return False
        future.set_result(response)
        return True

    def is_awaited(self, parent_msg_id: str) -> bool:
        return parent_msg_id in self._waiting

    def pending_requests(self) -> Iterable[str]:
        return tuple(self._waiting)
