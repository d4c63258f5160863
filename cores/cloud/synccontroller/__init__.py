"""SyncController: every 5 s (as upstream), have EdgeController compare each connected node's
ObjectSyncs with the cluster and queue what the node is missing, deletes included, and drop the
ObjectSyncs of nodes that are gone. The comparison lives with EdgeController's caches; this
module is the clock (``modules.syncController.enable`` turns it off, as upstream's key does).
"""

from __future__ import annotations

import asyncio
import logging

from cores.beehive import Context, Message
from cores.common.config import Config
from cores.common.tasks import TaskSupervisor

log = logging.getLogger("kubeedge.synccontroller")

INTERVAL = 5.0


class SyncController:
    name = "synccontroller"
    group = "synccontroller"

    def __init__(self, config: Config) -> None:
        self.config = config

    async def start(self, ctx: Context) -> None:
        tasks = TaskSupervisor(self.name)
        tasks.keep(lambda: self._drain(ctx), "drain")
        try:
            while True:
                await asyncio.sleep(INTERVAL)
                if ctx.group_members("edgecontroller"):
                    await ctx.send_to_group("edgecontroller", Message.new(
                        source="synccontroller", group="resource", operation="resync", resource="nodes"))
        finally:
            await tasks.close()

    async def _drain(self, ctx: Context) -> None:
        """Connection events arrive here too; EdgeController resyncs a node when it connects."""
        while True:
            await ctx.receive(self.name)
