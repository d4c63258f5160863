"""CloudHub: the cloud end of the cloud-edge link.

It owns the KubeEdge CA and the join token, serves the bootstrap HTTPS endpoints (10002) and
the WebSocket server (10000), and moves messages between edge sessions and the cloud modules:
up from a node with the ``node/<id>/`` prefix added, down to a node with it stripped.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from cores.beehive import Context, Message
from cores.cloud.cloudhub import bootstrap, credentials
from cores.cloud.cloudhub.hub import Hub, HubSettings
from cores.cloud.kube import Kube, KubeError
from cores.common.config import Config
from cores.common.resource import ResourceError, split_node_prefix
from cores.wire import Limits

log = logging.getLogger("kubeedge.cloudhub")


class CloudHub:
    name = "cloudhub"
    group = "cloudhub"

    def __init__(self, config: Config, kube: Kube) -> None:
        self.config = config
        self.hub_config = config.modules.cloudHub
        self.kube = kube
        self.hub: Hub | None = None
        self._runners: list[Any] = []
        self._refresher: asyncio.Task[None] | None = None

    async def start(self, ctx: Context) -> None:
        hub = self.hub_config
        creds = await credentials.ensure(self.kube, hub)
        ca_file, cert_file, key_file = (str(p) for p in credentials.write_tls_files(creds, hub))
        if hub.https.enable:
            server = bootstrap.BootstrapServer(creds, self._node_exists, self._signing_duration())
            context = bootstrap.tls_context(ca_file, cert_file, key_file, require_client=False)
            self._runners.append(await bootstrap.serve(server.application(), hub.https.address, int(hub.https.port), context))
            log.info("bootstrap server listening on %s:%d", hub.https.address, hub.https.port)
        self.hub = Hub(ctx, HubSettings(
            host=hub.websocket.address, port=int(hub.websocket.port), keepalive_timeout=float(hub.keepaliveInterval),
            node_limit=int(hub.nodeLimit), authorization=bool(hub.authorization.enable),
            authorization_debug=bool(hub.authorization.debug), frame_limits=Limits(),
        ))
        if hub.websocket.enable:
            await self.hub.start(bootstrap.tls_context(ca_file, cert_file, key_file, require_client=True))
        self._refresher = asyncio.create_task(self._refresh_token(creds))
        while True:
            await self._downstream(await ctx.receive(self.name))

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self.hub is not None:
            await self.hub.stop()
        for runner in self._runners:
            await runner.cleanup()

    def _signing_duration(self) -> datetime.timedelta:
        return datetime.timedelta(days=float(self.hub_config.edgeCertSigningDuration))

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.kube.get_node(name)
        except KubeError as error:
            if error.code == 404:
                return False
            raise
        return True

    async def _refresh_token(self, creds: credentials.Credentials) -> None:
        interval = float(self.hub_config.tokenRefreshDuration) * 3600
        while True:
            await asyncio.sleep(interval)
            try:
                await credentials.refresh_token(self.kube, self.hub_config, creds)
            except (KubeError, OSError) as error:
                log.error("token refresh failed, retrying in a minute: %s", error)
                interval = 60

    async def _downstream(self, message: Message) -> None:
        """A message from a cloud module to a node: strip the prefix and send it on that node's session."""
        try:
            node_id, resource = split_node_prefix(message.route.resource)
        except ResourceError as error:
            log.error("cannot route %s to a node: %s", message.describe(), error)
            return
        message.route.resource = resource
        assert self.hub is not None
        if not await self.hub.send_to_node(node_id, message):
            log.info("node %s is not connected: %s not sent", node_id, message.describe())
