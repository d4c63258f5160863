"""CloudHub's bootstrap HTTPS server (port 10002): the CA, node certificates, name checks.

As upstream: ``GET /ca.crt`` returns the CA as raw DER; ``GET /edge.crt`` (a GET with a body)
takes a DER CSR and either ``Authorization: Bearer <jwt>`` plus ``NodeName`` (first join) or the
node's current client certificate (renewal), and returns the signed certificate as DER;
``GET /node/<name>`` says whether the name is taken. Every refusal has its own status and a
message that says what to do.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from certs import errors as cert_errors
from certs import token as tokens
from certs import x509 as certs
from cores.cloud.cloudhub.credentials import Credentials
from cores.common import names

log = logging.getLogger("kubeedge.cloudhub")

MAX_CSR_BYTES = 1024 * 1024
OCTET = "application/octet-stream"
NodeExists = Callable[[str], Awaitable[bool]]


class BootstrapServer:
    def __init__(self, credentials: Credentials, node_exists: NodeExists, signing_duration: datetime.timedelta) -> None:
        self.credentials = credentials
        self.node_exists = node_exists
        self.signing_duration = signing_duration

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_CSR_BYTES)
        app.router.add_get("/ca.crt", self.ca)
        app.router.add_get("/edge.crt", self.edge_certificate)
        app.router.add_get("/node/{name}", self.node)
        return app

    async def ca(self, request: web.Request) -> web.Response:
        return web.Response(body=self.credentials.ca_der, content_type=OCTET)

    async def node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        refusal = names.validate_node_name(name)
        if refusal or request.query_string:
            # never let an outside name (or a smuggled ?watch=true) reach the API with CloudCore's identity
            return _refuse(400, refusal or "GET /node/<name> takes no query")
        if await self.node_exists(name):
            return web.Response(text="Node found")
        return web.Response(status=404, text="Node not found")

    async def edge_certificate(self, request: web.Request) -> web.Response:
        node_name = request.headers.get("NodeName", "").strip()
        if not node_name:
            return _refuse(400, "missing NodeName header: the node's name is required")
        refusal = names.validate_node_name(node_name)
        if refusal:
            return _refuse(400, refusal)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"the CSR exceeds {MAX_CSR_BYTES} bytes")
        renewal = self._presented_node(request)
        if renewal is None:
            refusal = await self._check_token(request, node_name)
            if refusal is not None:
                return refusal
        elif renewal != node_name:
            return _refuse(403, f"the client certificate belongs to node {renewal!r}, not {node_name!r}")
        try:
            # upstream edgecore sends ExtKeyUsages; whatever it asks, a node certificate is clientAuth only
            cert = certs.sign_node_csr(body, self.credentials.ca_cert, self.credentials.ca_key, node_name,
                                       validity=self.signing_duration)
        except (cert_errors.CSRError, ValueError) as error:
            return _refuse(400, f"cannot sign the certificate request: {error}")
        log.info("signed a certificate for node %s (%s)", node_name, "renewal" if renewal else "join")
        return web.Response(body=certs.cert_to_der(cert), content_type=OCTET)

    def _presented_node(self, request: web.Request) -> str | None:
        """The node whose valid client certificate this connection presented, if any."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None
        try:
            return certs.verify_node_certificate(certs.cert_from_der(der), self.credentials.ca_cert)
        except cert_errors.CertsError as error:
            log.warning("a client certificate was presented but refused: %s", error)
            return None

    async def _check_token(self, request: web.Request, node_name: str) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _refuse(401, "missing bearer token: join with the token printed by `keadm gettoken` on the cloud")
        try:
            tokens.verify_token(header[7:].strip(), self.credentials.ca_key_der)
        except cert_errors.TokenError as error:
            return _refuse(401, f"token refused: {error}")
        if await self.node_exists(node_name):
            return _refuse(409, f"node name {node_name!r} is already taken in the cluster: choose another name "
                                f"(keadm join --edgenode-name) or remove the old node (kubectl delete node {node_name})")
        return None


def _refuse(status: int, message: str) -> web.Response:
    log.warning("bootstrap request refused (%d): %s", status, message)
    return web.Response(status=status, text=message)


def tls_context(ca_file: str, cert_file: str, key_file: str, *, require_client: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(ca_file)
    context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
    return context


async def serve(app: web.Application, host: str, port: int, context: ssl.SSLContext) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True).start()
    return runner

