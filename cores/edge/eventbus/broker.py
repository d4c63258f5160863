"""The embedded MQTT broker of ``mqttMode`` 0 and 1: amqtt, in EdgeCore's own event loop.

Imported only in those modes (amqtt and its dependencies cost memory the default mode 2 does not
pay). amqtt follows MQTT 4.7.2-1 strictly and refuses client publishes to topics that begin with
``$``; every KubeEdge topic is ``$hw/...``, so this broker lets ``$hw/`` through and keeps the
rule for every other ``$`` topic (``$SYS`` stays the broker's own). Only anonymous clients on the
configured address, usually 127.0.0.1, as upstream's internal broker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from amqtt.broker import Broker
from amqtt.events import BrokerEvents
from amqtt.plugins.base import Action

log = logging.getLogger("kubeedge.eventbus.broker")

ALLOWED_DOLLAR_PREFIX = "$hw/"
QUIET_LOGGERS = ("amqtt", "transitions")


class KubeEdgeBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    async def _handle_message_delivery(self, client_session: Any, handler: Any, wait_deliver: asyncio.Future[Any]) -> bool:
        message = wait_deliver.result()
        topic = getattr(message, "topic", None) or ""
        if not topic.startswith(ALLOWED_DOLLAR_PREFIX) or "#" in topic or "+" in topic:
            return bool(await super()._handle_message_delivery(client_session, handler, wait_deliver))
        await self.plugins_manager.fire_event(BrokerEvents.MESSAGE_RECEIVED, client_id=client_session.client_id, message=message)
        if not await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
            return True
        await self.plugins_manager.fire_event(BrokerEvents.MESSAGE_BROADCAST, client_id=client_session.client_id, message=message)
        await self._broadcast_message(client_session, topic, message.data)
        if message.publish_packet and message.publish_packet.retain_flag:
            await self.retain_message(client_session, topic, message.data, message.qos)
        return True


def bind_address(url: str) -> str:
    """``tcp://127.0.0.1:1884`` -> ``127.0.0.1:1884`` (amqtt's listener form)."""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 1884}"


async def start_broker(url: str, queue_size: int) -> KubeEdgeBroker:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    config = {
        "listeners": {"default": {"type": "tcp", "bind": bind_address(url), "max_connections": 256}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        "timeout_disconnect_delay": 0,
        "session_expiry_interval": 3600,
    }
    broker = KubeEdgeBroker(config)
    await broker.start()
    log.info("embedded MQTT broker listening on %s (session queue %d)", bind_address(url), queue_size)
    return broker
