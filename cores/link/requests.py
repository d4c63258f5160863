"""CloudRequests: how an edge module asks the cloud something, with one id and one timeout.

A request goes to MetaManager (which answers from SQLite when the cloud is away, and otherwise
forwards the same message, same id, through EdgeHub). The caller waits once, for
``timeout`` seconds, and gets the reply's object (or ``"OK"``), or a :class:`StatusError` with
the cloud's code and reason: 503 when the edge is offline, 504 (:class:`RequestTimeout`) when
nothing answered in time. A reply that comes after its timeout finds no waiter and is dropped.
"""

from __future__ import annotations

from typing import Any

from cores.beehive.context import BeehiveError, Context, SyncTimeout
from cores.link.contracts import edge_request, parse_reply
from cores.link.status import RequestTimeout, StatusError

DEFAULT_TIMEOUT = 30.0
META_MODULE = "metamanager"


class CloudRequests:
    def __init__(self, ctx: Context, *, source: str, module: str = META_MODULE, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.ctx = ctx
        self.source = source
        self.module = module
        self.timeout = timeout

    async def request(self, operation: str, resource: str, content: Any = None, *, timeout: float | None = None) -> Any:
        """The reply's object, or :class:`StatusError` raised (:class:`RequestTimeout` after ``timeout``)."""
        message = edge_request(operation, resource, content, source=self.source)
        seconds = self.timeout if timeout is None else timeout
        try:
            reply = await self.ctx.send_sync(self.module, message, seconds)
        except SyncTimeout:
            raise RequestTimeout(f"{operation} {resource}", seconds) from None
        except BeehiveError as error:  # MetaManager's mailbox full, or no MetaManager at all
            raise StatusError.make(503, "ServiceUnavailable", str(error)) from None
        return parse_reply(reply)

    async def insert(self, resource: str, obj: Any, **options: Any) -> Any:
        return await self.request("insert", resource, obj, **options)

    async def update(self, resource: str, obj: Any, **options: Any) -> Any:
        return await self.request("update", resource, obj, **options)

    async def patch(self, resource: str, patch: Any, **options: Any) -> Any:
        return await self.request("patch", resource, patch, **options)

    async def delete(self, resource: str, options: Any = None, **kwargs: Any) -> Any:
        return await self.request("delete", resource, options, **kwargs)

    async def query(self, resource: str, content: Any = None, **options: Any) -> Any:
        return await self.request("query", resource, content, **options)

    def tell(self, operation: str, resource: str, content: Any = None) -> bool:
        """A message that gets no reply (events): sent now, or False when it could not be queued."""
        try:
            self.ctx.send_nowait(self.module, edge_request(operation, resource, content, source=self.source))
        except BeehiveError:
            return False
        return True
