"""EventBus: the edge's MQTT side (module ``eventbus``, group ``bus``), with paho-mqtt as the client.

``mqttMode`` picks the broker, as upstream: 0 the embedded one only (amqtt on
``mqttServerInternal``, 127.0.0.1:1884, started in this process), 1 both (the embedded broker runs
and the client joins both brokers), 2 an external one only (``mqttServerExternal``,
127.0.0.1:1883, say mosquitto; the default). QoS and retain are ``mqttQOS``/``mqttRetain``;
``eventBusTLS`` turns on TLS with a client certificate.

Subscriptions are upstream's six topics and those the cloud asked for (persisted in
``sub_topics``). What arrives is routed as upstream's handler does:

- ``$hw/events/device/...`` and ``$hw/events/node/...`` go to DeviceTwin
  (``source bus, group user, operation response``, the topic base64url-encoded in the resource);
- anything else goes up to the cloud (``operation upload``, resource = topic), when it is there.

From the cloud (the router's ``router_eventbus``) come ``subscribe``, ``unsubscribe`` and
``publish``; from DeviceTwin come ``publish``es of results and deltas.

A broker that is down or restarts is retried by paho with backoff from 1 s up to
``RECONNECT_MAX_SECONDS``; each failure is a log line naming the broker and :meth:`status` says
which broker is connected. EdgeCore stays up. Publishes made while no broker is connected wait in
a queue of ``mqttSessionQueueSize`` (100) per broker; when it is full the oldest is dropped and
counted (a twin's state is in SQLite and a mapper asks ``twin/get`` when it comes back, so the
newest messages are the ones worth keeping).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cores.beehive import Context, Message
from cores.beehive.context import BeehiveError
from cores.common.config import Config, ConfigError
from cores.link import routing

log = logging.getLogger("kubeedge.eventbus")

MODE_INTERNAL, MODE_BOTH, MODE_EXTERNAL = 0, 1, 2
SUBSCRIBED = ("$hw/events/upload/#", "$hw/events/device/+/+/state/update", "$hw/events/device/+/+/twin/+",
              "$hw/events/node/+/membership/get", "SYS/dis/upload_records", "+/user/#")
TWIN_PREFIXES = ("$hw/events/device/", "$hw/events/node/")
HUB_MODULE, TWIN_MODULE = "websocket", "twin"
MAX_PAYLOAD = 1024 * 1024         # one inbound MQTT message (DeviceTwin refuses more than 64 KiB itself)
MAX_UPLOAD = 256 * 1024           # one message to the cloud
MAX_TOPIC = 1024
MAX_CLOUD_TOPICS = 1024           # topics the cloud may add to the subscriptions
INBOUND_QUEUE = 4096              # messages from the broker waiting for the loop
RECONNECT_MAX_SECONDS = 30


class BrokerLink:
    """One paho client on one broker: subscriptions on every connect, a bounded queue of publishes
    made while it is away, and its state for :meth:`EventBus.status`."""

    def __init__(self, bus: EventBus, url: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt

        self.bus = bus
        self.url = url
        parts = urlsplit(url if "://" in url else f"tcp://{url}")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.connected = False
        self.stopping = False
        self.last_error = ""
        self.dropped = 0
        self.pending: collections.deque[tuple[str, bytes, int, bool]] = collections.deque(maxlen=bus.queue_size)
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(1, RECONNECT_MAX_SECONDS)
        settings = bus.settings
        if settings.mqttUsername:
            self.client.username_pw_set(str(settings.mqttUsername), str(settings.mqttPassword or "") or None)
        tls = settings.eventBusTLS
        if tls.enable:
            self.client.tls_set(ca_certs=str(tls.tlsMqttCAFile), certfile=str(tls.tlsMqttCertFile), keyfile=str(tls.tlsMqttPrivateKeyFile))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping = True  # the disconnect that follows is ours, not a broker failure
        self.client.disconnect()
        self.client.loop_stop()

    # paho's thread ----------------------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self._failed(f"refused: {reason_code}")
            return
        client.subscribe([(topic, self.bus.qos) for topic in self.bus.topics()])
        with self._lock:
            self.connected = True
            self.last_error = ""
            pending, self.pending = list(self.pending), collections.deque(maxlen=self.bus.queue_size)
        log.info("connected to MQTT broker %s", self.url)
        for topic, payload, qos, retain in pending:
            self.publish(topic, payload, qos, retain)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        with self._lock:
            was = self.connected
            self.connected = False
        if was and not self.stopping:
            self._failed(f"disconnected: {reason_code}")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._failed("unreachable")

    def _failed(self, why: str) -> None:
        self.last_error = why
        log.warning("MQTT broker %s %s; retrying with backoff (at most %d s); EdgeCore keeps running",
                    self.url, why, RECONNECT_MAX_SECONDS)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.bus.from_broker(str(message.topic), bytes(message.payload))

    # any thread -------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self._lock:
            if not self.connected:
                if len(self.pending) == self.pending.maxlen:
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 100 == 0:
                        log.warning("MQTT broker %s away: %d queued publishes dropped (oldest first)", self.url, self.dropped)
                self.pending.append((topic, payload, qos, retain))
                return
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"broker": self.url, "connected": self.connected, "lastError": self.last_error,
                    "queued": len(self.pending), "dropped": self.dropped}


class EventBus:
    name = "eventbus"
    group = "bus"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.modules.eventBus
        self.mode = int(self.settings.mqttMode)
        if self.mode not in (MODE_INTERNAL, MODE_BOTH, MODE_EXTERNAL):
            raise ConfigError(f"{config.source}: modules.eventBus.mqttMode must be 0 (internal), 1 (both) or 2 (external)")
        self.qos = max(0, min(int(self.settings.mqttQOS), 2))
        self.retain = bool(self.settings.mqttRetain)
        self.queue_size = max(int(self.settings.mqttSessionQueueSize), 1)
        self.database = Path(config.database.dataSource)
        self.cloud_topics: set[str] = set()
        self.links: list[BrokerLink] = []
        self.broker: Any = None
        self.cloud_connected = False
        self.dropped_inbound = 0

    # start and stop ---------------------------------------------------------------------------
    async def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.inbound: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(INBOUND_QUEUE)
        self.cloud_topics = set(await asyncio.to_thread(self._load_topics))
        urls = []
        if self.mode in (MODE_INTERNAL, MODE_BOTH):
            from cores.edge.eventbus.broker import start_broker

            self.broker = await start_broker(str(self.settings.mqttServerInternal), self.queue_size)
        if self.mode in (MODE_EXTERNAL, MODE_BOTH):
            urls.append(str(self.settings.mqttServerExternal))
        if self.mode in (MODE_INTERNAL, MODE_BOTH):
            urls.append(str(self.settings.mqttServerInternal))
        stamp = int(time.time() * 1000)
        for index, url in enumerate(urls):
            client_id = str(self.settings.mqttSubClientID or f"hub-client-sub-{stamp}") + (f"-{index}" if index else "")
            link = BrokerLink(self, url, client_id)
            self.links.append(link)
            link.start()
        routing_task = asyncio.create_task(self._route_inbound(), name="eventbus-inbound")
        try:
            while True:
                await self._from_module(await ctx.receive(self.name))
        finally:
            routing_task.cancel()

    async def stop(self) -> None:
        for link in self.links:
            await asyncio.to_thread(link.stop)
        if self.broker is not None:
            await self.broker.shutdown()

    def status(self) -> list[dict[str, Any]]:
        return [link.status() for link in self.links]

    def topics(self) -> list[str]:
        return [*SUBSCRIBED, *sorted(self.cloud_topics)]

    # inbound ----------------------------------------------------------------------------------
    def from_broker(self, topic: str, payload: bytes) -> None:
        """paho's thread: hand the message to the loop, or count it dropped when the loop is behind."""
        if len(payload) > MAX_PAYLOAD or len(topic) > MAX_TOPIC:
            log.warning("dropped an MQTT message on %s: %d bytes is over the limit", topic[:200], len(payload))
            return
        self.loop.call_soon_threadsafe(self._enqueue, topic, payload)

    def _enqueue(self, topic: str, payload: bytes) -> None:
        try:
            self.inbound.put_nowait((topic, payload))
        except asyncio.QueueFull:
            self.dropped_inbound += 1
            if self.dropped_inbound == 1 or self.dropped_inbound % 100 == 0:
                log.warning("MQTT messages arrive faster than EdgeCore routes them: %d dropped", self.dropped_inbound)

    async def _route_inbound(self) -> None:
        while True:
            topic, payload = await self.inbound.get()
            try:
                self._route(topic, payload)
            except Exception:  # noqa: BLE001 - one bad message never stops the bus
                log.exception("could not route the MQTT message on %s", topic[:200])

    def _route(self, topic: str, payload: bytes) -> None:
        if topic.startswith(TWIN_PREFIXES):
            if TWIN_MODULE not in self.ctx.modules():
                return
            text = payload.decode("utf-8", errors="replace")
            resource = base64.urlsafe_b64encode(topic.encode()).decode()
            self._send(TWIN_MODULE, Message.new(source="bus", group="user", operation="response", resource=resource, content=text))
            return
        if not self.cloud_connected:
            log.debug("cloud away: MQTT upload on %s not sent", topic[:200])
            return
        if len(payload) > MAX_UPLOAD:
            log.warning("dropped an MQTT upload on %s: %d bytes is over %d", topic[:200], len(payload), MAX_UPLOAD)
            return
        self._send(HUB_MODULE, Message.new(source="bus", group="user", operation="upload", resource=topic,
                                           content=payload.decode("utf-8", errors="replace")))

    def _send(self, module: str, message: Message) -> None:
        try:
            self.ctx.send_nowait(module, message)
        except BeehiveError as error:
            log.warning("dropped %s: %s", message.describe(), error)

    # from modules and the cloud ---------------------------------------------------------------
    async def _from_module(self, message: Message) -> None:
        if routing.is_connection_event(message):
            self.cloud_connected = routing.connected_in(message)
            return
        operation, topic = message.route.operation, message.route.resource
        if operation == "publish":
            if not _valid_topic(topic, filter_allowed=False):
                log.warning("refused a publish to an invalid topic %r", topic[:200])
                return
            self.publish(topic, _as_bytes(message.content))
        elif operation in ("subscribe", "unsubscribe"):
            await self._change_subscription(operation, topic)
        else:
            log.debug("no eventbus action for %s", message.describe())

    def publish(self, topic: str, payload: bytes) -> None:
        for link in self.links:
            link.publish(topic, payload, self.qos, self.retain)

    async def _change_subscription(self, operation: str, topic: str) -> None:
        if not _valid_topic(topic, filter_allowed=True) or topic in SUBSCRIBED:
            log.warning("refused %s of topic %r", operation, topic[:200])
            return
        if operation == "subscribe":
            if topic in self.cloud_topics:
                return
            if len(self.cloud_topics) >= MAX_CLOUD_TOPICS:
                log.warning("refused subscribe of %r: already %d topics from the cloud", topic[:200], MAX_CLOUD_TOPICS)
                return
            self.cloud_topics.add(topic)
            await asyncio.to_thread(self._save_topic, topic, True)
            for link in self.links:
                link.client.subscribe(topic, self.qos)
        else:
            if topic not in self.cloud_topics:
                return
            self.cloud_topics.discard(topic)
            await asyncio.to_thread(self._save_topic, topic, False)
            for link in self.links:
                link.client.unsubscribe(topic)

    # sub_topics -------------------------------------------------------------------------------
    def _connect_db(self) -> sqlite3.Connection:
        self.database.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.database, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS `sub_topics` (`topic` text,PRIMARY KEY (`topic`))")
        return db

    def _load_topics(self) -> list[str]:
        db = self._connect_db()
        try:
            return [str(row[0]) for row in db.execute("SELECT topic FROM sub_topics")]
        finally:
            db.close()

    def _save_topic(self, topic: str, present: bool) -> None:
        db = self._connect_db()
        try:
            if present:
                db.execute("INSERT OR IGNORE INTO sub_topics (topic) VALUES (?)", (topic,))
            else:
                db.execute("DELETE FROM sub_topics WHERE topic = ?", (topic,))
        finally:
            db.close()


def _valid_topic(topic: str, *, filter_allowed: bool) -> bool:
    if not topic or len(topic) > MAX_TOPIC or "\x00" in topic:
        return False
    if not filter_allowed:
        return "+" not in topic and "#" not in topic
    levels = topic.split("/")
    return all(level in ("+", "#") or ("+" not in level and "#" not in level) for level in levels) and "#" not in levels[:-1]


def _as_bytes(content: Any) -> bytes:
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    if isinstance(content, str):
        return content.encode()
    return json.dumps(content, separators=(",", ":")).encode()
