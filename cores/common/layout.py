"""Where an installation keeps its files, from its three directories (config, data, log).

Upstream's defaults are /etc/kubeedge, /var/lib/kubeedge and /var/log/kubeedge; every path
below follows from the three, so several clouds and edges coexist on one machine (tests,
benchmarks) by giving each its own directories. ``keadm init``/``join`` and the tests build
their configs with these functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cores.common import config as configs


@dataclasses.dataclass(frozen=True)
class Layout:
    config_dir: Path
    data_dir: Path
    log_dir: Path

    @property
    def cloudcore_config(self) -> Path:
        return self.config_dir / "config" / "cloudcore.yaml"

    @property
    def edgecore_config(self) -> Path:
        return self.config_dir / "config" / "edgecore.yaml"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.config_dir / "admin.kubeconfig"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def certificate_paths(self) -> dict[str, str]:
        return {
            "ca": str(self.config_dir / "ca" / "rootCA.crt"),
            "ca_key": str(self.config_dir / "ca" / "rootCA.key"),
            "cert": str(self.config_dir / "certs" / "server.crt"),
            "key": str(self.config_dir / "certs" / "server.key"),
        }


def metaserver_serving_paths(meta_server: Any) -> dict[str, Path]:
    """Where MetaServer keeps its HTTPS files (``requireAuthorization``): its own CA beside
    ``tlsCaFile``, and its serving certificate beside ``tlsCertFile`` (those two name the node's
    link certificate, a client certificate that cannot serve). Edged puts the CA in every pod's
    ``ca.crt``, so in-cluster clients at the edge trust MetaServer."""
    ca_dir = Path(str(meta_server.get("tlsCaFile") or "/etc/kubeedge/ca/rootCA.crt")).parent
    cert_dir = Path(str(meta_server.get("tlsCertFile") or "/etc/kubeedge/certs/server.crt")).parent
    return {"ca": ca_dir / "metaserver-ca.crt", "ca_key": ca_dir / "metaserver-ca.key",
            "cert": cert_dir / "metaserver.crt", "key": cert_dir / "metaserver.key"}


def cloudcore_document(layout: Layout, *, kubeconfig: Path, advertise_address: str,
                       websocket_port: int = 10000, https_port: int = 10002, bind_address: str = "0.0.0.0",
                       tunnel_port: int = 10004, stream_port: int = 10003, stream_ca: Path | None = None,
                       iptables_manager: bool = False) -> dict[str, Any]:
    document = configs.default_document(configs.CLOUDCORE, address=advertise_address)
    paths = layout.certificate_paths()
    hub = document["modules"]["cloudHub"]
    hub.update(tlsCAFile=paths["ca"], tlsCAKeyFile=paths["ca_key"], tlsCertFile=paths["cert"], tlsPrivateKeyFile=paths["key"])
    hub["websocket"].update(address=bind_address, port=websocket_port)
    hub["https"].update(address=bind_address, port=https_port)
    hub["unixsocket"]["address"] = f"unix://{layout.data_dir / 'kubeedge.sock'}"
    document["kubeAPIConfig"]["kubeConfig"] = str(kubeconfig)
    # CloudStream on by default (upstream's Go default is off): kubectl logs and exec work at once.
    # The tunnel uses CloudHub's certificate; the stream server trusts the API server's client CA.
    document["modules"]["cloudStream"].update(
        enable=True, tunnelPort=tunnel_port, streamPort=stream_port,
        tlsTunnelCAFile=paths["ca"], tlsTunnelCertFile=paths["cert"], tlsTunnelPrivateKeyFile=paths["key"],
        tlsStreamCAFile=str(stream_ca or layout.config_dir / "ca" / "streamCA.crt"),
        tlsStreamCertFile=str(layout.config_dir / "certs" / "stream.crt"),
        tlsStreamPrivateKeyFile=str(layout.config_dir / "certs" / "stream.key"))
    # The DNAT to the stream server is for a real kube-apiserver only (upstream's default is on): the
    # embedded control plane calls the stream server itself, and the host's iptables stay untouched.
    document["modules"]["iptablesManager"].update(enable=iptables_manager, mode="internal")
    # DynamicController on by default (upstream's is off): an edge's MetaServer writes and lists
    # through it at once, each call impersonating the node, so it grants nothing a kubelet lacks.
    document["modules"]["dynamicController"]["enable"] = True
    return document


def edgecore_document(layout: Layout, *, node_name: str, cloud_host: str, token: str,
                      websocket_port: int = 10000, https_port: int = 10002, node_ip: str | None = None,
                      runtime_endpoint: str = "unix:///run/containerd/containerd.sock",
                      labels: dict[str, str] | None = None, tunnel_port: int = 10004,
                      kubelet_port: int = 10250, read_only_port: int = 10350) -> dict[str, Any]:
    document = configs.default_document(configs.EDGECORE, hostname=node_name)
    paths = layout.certificate_paths()
    document["database"]["dataSource"] = str(layout.data_dir / "edgecore.db")
    hub = document["modules"]["edgeHub"]
    hub.update(tlsCaFile=paths["ca"], tlsCertFile=paths["cert"], tlsPrivateKeyFile=paths["key"], token=token,
               httpServer=f"https://{cloud_host}:{https_port}")
    hub["websocket"]["server"] = f"{cloud_host}:{websocket_port}"
    hub["quic"]["server"] = f"{cloud_host}:10001"
    edged = document["modules"]["edged"]
    edged["rootDirectory"] = str(layout.data_dir / "kubelet")
    edged["nodeIP"] = node_ip or configs.host_address()
    if labels:
        edged["nodeLabels"] = dict(labels)
    kubelet = edged["tailoredKubeletConfig"]
    kubelet.update(containerRuntimeEndpoint=runtime_endpoint, imageServiceEndpoint=runtime_endpoint,
                   staticPodPath=str(layout.config_dir / "manifests"), podLogsDir=str(layout.log_dir / "pods"),
                   port=kubelet_port, readOnlyPort=read_only_port)
    # EdgeStream on by default (upstream's is off), with the node certificate
    document["modules"]["edgeStream"].update(enable=True, server=f"{cloud_host}:{tunnel_port}", tlsTunnelCAFile=paths["ca"],
                                             tlsTunnelCertFile=paths["cert"], tlsTunnelPrivateKeyFile=paths["key"])
    document["modules"]["deviceTwin"]["dmiSockPath"] = str(layout.data_dir / "dmi")
    metaserver = document["modules"]["metaManager"]["metaServer"]
    metaserver.update(tlsCaFile=paths["ca"], tlsCertFile=paths["cert"], tlsPrivateKeyFile=paths["key"])
    return document


def write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(configs.dump(document))
    return path
