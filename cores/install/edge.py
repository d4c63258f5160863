"""``keadm join``: bootstrap the node certificate here, synchronously, then start EdgeCore.

A wrong or expired token, a CA that does not match the token, an unreachable cloud, a taken
name or a missing container runtime fail join itself, with the cause and what to do, and leave
nothing behind: no files, no process, no node. Nothing is downloaded: the running keadm is the
binary that runs EdgeCore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

from certs import errors as cert_errors
from certs import token as tokens
from cores.common import config as configs
from cores.common import names
from cores.common import layout as layouts
from cores.common import supervision
from cores.controlplane.launcher import keadm_argv
from cores.edge.edgehub import certificate
from cores.install import InstallError, Manifest, Step, apply_sets


@dataclasses.dataclass
class JoinOptions:
    layout: layouts.Layout
    cloudcore_ipport: str
    token: str
    node_name: str = ""
    certport: int = 10002
    runtime_endpoint: str = "unix:///run/containerd/containerd.sock"
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    cgroup_driver: str = "cgroupfs"
    sets: tuple[str, ...] = ()
    skip_runtime_check: bool = False
    node_ip: str = ""
    readiness_timeout: float = 60.0


def edge_spec(layout: layouts.Layout, readiness_timeout: float = 60.0) -> supervision.ServiceSpec:
    return supervision.ServiceSpec(
        component="edgecore", config_dir=layout.config_dir, log_dir=layout.log_dir, run_dir=layout.run_dir,
        argv=(*keadm_argv(), "run", "edge", "--config", str(layout.edgecore_config)), readiness_timeout=readiness_timeout,
    )


def parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise InstallError(f"--labels {item!r}: expected key=value[,key=value]")
        refusal = _label_refusal(key, value)
        if refusal:
            raise InstallError(f"--labels {item!r}: {refusal}")
        labels[key] = value
    return labels


_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _label_refusal(key: str, value: str) -> str:
    """Kubernetes' label syntax: ``[prefix/]name`` (prefix a DNS-1123 subdomain, name at most 63 of
    ``[-A-Za-z0-9_.]`` starting and ending alphanumeric), the value the same rule or empty."""
    prefix, _, name = key.rpartition("/")
    if prefix and not names.is_dns1123_subdomain(prefix):
        return f"label prefix {prefix!r} is not a DNS-1123 subdomain"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return f"label name {name!r} is not a valid label name"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return f"label value {value!r} is not a valid label value"
    return ""


class EdgeInstaller:
    def __init__(self, options: JoinOptions) -> None:
        self.options = options
        self.layout = options.layout
        self.node_name = (options.node_name or configs.host_name()).lower()
        refusal = names.validate_node_name(self.node_name)
        if refusal:
            raise InstallError(f"--edgenode-name: {refusal}")
        host, _, port = options.cloudcore_ipport.rpartition(":")
        if not host or not port.isdigit():
            raise InstallError(f"--cloudcore-ipport {options.cloudcore_ipport!r}: expected <ip>:<port>, e.g. 192.168.1.10:10000")
        self.cloud_host, self.websocket_port = host.strip("[]"), int(port)
        self.http_server = f"https://{host}:{options.certport}"
        self.manifest = Manifest("edge", str(self.layout.config_dir), str(self.layout.data_dir), str(self.layout.log_dir),
                                 node_name=self.node_name, runtime_endpoint=options.runtime_endpoint)
        self.ca_der = b""

    def steps(self) -> list[Step]:
        return [
            Step("Preflight checks", self.preflight),
            Step("Container runtime", self.runtime),
            Step("Cloud and token", self.check_cloud),
            Step("Node certificate", self.bootstrap),
            Step("edgecore.yaml", self.write_config),
            Step("EdgeCore", self.start_edgecore),
        ]

    def rollback(self) -> None:
        """Undo a failed join: stop what started, remove what was created."""
        supervision.stop(edge_spec(self.layout))
        self.manifest.remove_created()

    # steps ----------------------------------------------------------------------------------
    def preflight(self) -> str:
        if supervision.status(edge_spec(self.layout)).running:
            raise InstallError(f"an EdgeCore already runs for {self.layout.config_dir}: run `keadm reset edge` first")
        if Manifest.load(self.layout.data_dir) is not None:
            raise InstallError(f"KubeEdge is already installed with data in {self.layout.data_dir}: run `keadm reset` first")
        if self.layout.edgecore_config.exists() or Path(self.layout.certificate_paths()["cert"]).exists():
            raise InstallError(f"{self.layout.config_dir} already holds an EdgeCore configuration or certificate: "
                               "run `keadm reset edge` or choose another --config-dir")
        if self.options.token.count(".") != 3:
            raise InstallError("the token is not a KubeEdge join token (<sha256>.<JWT>): copy it from `keadm gettoken` on the cloud")
        return f"node {self.node_name}"

    def runtime(self) -> str:
        if self.options.skip_runtime_check:
            return "skipped (--skip-runtime-check)"
        from cores.edge.cri import CriClient, CriError

        async def version() -> Any:
            async with CriClient(self.options.runtime_endpoint, timeout=5) as client:
                return await client.version()

        try:
            found = asyncio.run(version())
        except CriError as error:
            raise InstallError(f"{error}; start it, point --remote-runtime-endpoint at it, or pass --skip-runtime-check") from None
        return f"{found.runtime_name} {found.runtime_version} at {self.options.runtime_endpoint}"

    def check_cloud(self) -> str:
        try:
            self.ca_der = certificate.fetch_ca(self.http_server)
            tokens.verify_ca_hash(self.options.token, self.ca_der)
            taken = certificate.node_exists(self.http_server, self.ca_der, self.node_name)
        except (certificate.BootstrapError, cert_errors.CertsError) as error:
            raise InstallError(str(error)) from None
        if taken:
            raise InstallError(f"node name {self.node_name!r} is already taken in the cluster: choose another with "
                               f"--edgenode-name, or remove the old node on the cloud (kubectl delete node {self.node_name})")
        return f"{self.http_server} serves the CA the token names; {self.node_name!r} is free"

    def bootstrap(self) -> str:
        for directory in (self.layout.config_dir, self.layout.data_dir, self.layout.log_dir):
            self.manifest.make_dir(directory)
        self.manifest.save()
        paths = self._paths()
        for path in (paths.ca.parent, paths.cert.parent):
            self.manifest.make_dir(path)
            self.manifest.created(path)
        self.manifest.save()
        try:
            expiry = certificate.bootstrap(self.http_server, self.options.token, self.node_name, paths)
        except (certificate.BootstrapError, cert_errors.CertsError) as error:
            raise InstallError(str(error)) from None
        return f"issued for system:node:{self.node_name}, valid until {expiry:%Y-%m-%d}"

    def _paths(self) -> certificate.CertificatePaths:
        paths = self.layout.certificate_paths()
        return certificate.CertificatePaths(Path(paths["ca"]), Path(paths["cert"]), Path(paths["key"]))

    def write_config(self) -> str:
        document = layouts.edgecore_document(
            self.layout, node_name=self.node_name, cloud_host=self.cloud_host, token="",
            websocket_port=self.websocket_port, https_port=self.options.certport, node_ip=self.options.node_ip or None,
            runtime_endpoint=self.options.runtime_endpoint, labels=self.options.labels,
        )
        document["modules"]["edged"]["tailoredKubeletConfig"]["cgroupDriver"] = self.options.cgroup_driver
        apply_sets(document, self.options.sets, configs.EDGECORE.schema)
        self.manifest.make_dir(self.layout.edgecore_config.parent)
        layouts.write(self.manifest.created(self.layout.edgecore_config), document)
        configs.load(configs.EDGECORE, self.layout.edgecore_config)  # what EdgeCore will read must be valid
        self.manifest.created(Path(document["database"]["dataSource"]))
        self.manifest.save()
        return str(self.layout.edgecore_config)

    def start_edgecore(self) -> str:
        spec = edge_spec(self.layout, self.options.readiness_timeout)
        for component_file in (spec.log_file, self.layout.run_dir):
            self.manifest.created(component_file)
        self.manifest.components.append("edgecore")
        self.manifest.save()

        def connected() -> bool:
            return spec.log_file.exists() and "connected to " in spec.log_file.read_text()

        try:
            pid = supervision.start(spec, ready=connected)
        except supervision.StartFailed as error:
            raise InstallError(f"EdgeCore did not connect to the cloud: {error}") from None
        return f"connected to {self.cloud_host}:{self.websocket_port} (pid {pid}), log {spec.log_file}"

