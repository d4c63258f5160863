"""kubectl logs and exec on an edge pod through a real kube-apiserver (v1.36), by the DNAT our
iptables manager makes, as upstream's ``internal`` mode.

kube-apiserver dials the edge node at ``<InternalIP>:<kubeletEndpoint port>``; nothing listens
there. CloudCore claims its tunnel port in the shared record (``kubeedge/tunnelport``, 10351 for
the first CloudCore), sets it as the node's kubelet endpoint port, and its iptables manager DNATs
that port to the stream server, which sends the request down the node's tunnel.

etcd, kube-apiserver and CloudCore run in a network namespace this test creates, so the rules
touch nothing on the host; EdgeCore runs on the host (beside the shared containerd, whose
streaming server is on the host's loopback) and reaches CloudCore through a veth pair. The edge
reports ``nodeIP`` 127.0.0.77: an address where nothing answers, inside the namespace or out,
but the DNAT. Skipped without upstream's kube-apiserver, Debian's etcd, or a network namespace.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cores.common import layout as layouts
from cores.common import supervision
from cores.runtime import BUSYBOX_IMAGE, Containerd, upstream
from tests.integration.conftest import free_port
from tests.integration.edgecloud import Cloud, Core, _spec, start_edge
from tests.integration.netns import NetworkNamespace, Unavailable
from tests.integration.test_streams import KUBECTLS
from tests.timeouts import scaled, wait_for

APISERVER = upstream.binary("kube-apiserver")
ETCD = shutil.which("etcd")
IPTABLES = shutil.which("iptables")
NODE_IP = "127.0.0.77"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(APISERVER is None, reason=f"upstream kube-apiserver not found: set {upstream.BIN_ENV} "
                                                           "to a directory of unpacked upstream binaries (scripts/test.sh does)"),
              pytest.mark.skipif(ETCD is None, reason="Debian's etcd (package etcd-server) is not installed"),
              pytest.mark.skipif(IPTABLES is None, reason="iptables is not installed (scripts/lib.sh installs it)")]


class Site:
    def __init__(self, space: NetworkNamespace, cluster: upstream.RealCluster) -> None:
        self.space, self.cluster = space, cluster
        self.cloud: Cloud | None = None
        self.edge: Core | None = None
        self.node = f"dnat-{uuid.uuid4().hex[:6]}"
        self.pod = f"{self.node}-app"

    def kubectl_run(self, *args: str, binary: str = "kubectl", stdin: str | None = None,
                    timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """kubectl inside the namespace, where kube-apiserver listens."""
        return subprocess.run([*self.space.prefix(), binary, f"--kubeconfig={self.cluster.kubeconfig}", *args],
                              input=stdin, capture_output=True, text=True, timeout=scaled(timeout), check=False)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl_run(*args, stdin=stdin)
        if done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout.strip()

    def nat(self, chain: str) -> str:
        return self.space.run("iptables", "-w", "5", "-t", "nat", "-S", chain).stdout

    def logs(self) -> str:
        return "".join(f"\n--- {core.spec.component} log ---\n{core.log()[-3000:]}"
                       for core in (self.cloud, self.edge) if core is not None)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, containerd: Containerd) -> Iterator[Site]:  # noqa: F811
    assert APISERVER is not None and ETCD is not None
    try:
        space = NetworkNamespace.create()
    except Unavailable as why:
        pytest.skip(f"no network namespace on this machine: {why}")
    base = tmp_path_factory.mktemp("real-dnat")
    cluster = upstream.real_cluster_specs(APISERVER, base / "cluster", etcd=ETCD)
    etcd, apiserver = space.wrap(cluster.etcd), space.wrap(cluster.apiserver)
    here = Site(space, cluster)
    try:
        supervision.start(etcd, ready=lambda: etcd.log_file.exists()
                          and "ready to serve client requests" in etcd.log_file.read_text(errors="replace"))
        supervision.start(apiserver, ready=lambda: here.kubectl_run("get", "--raw", "/readyz").stdout == "ok")
        here.kubectl_run("create", "serviceaccount", "default", "-n", "default")
        ca = cluster.ca_file.read_text()
        for name in ("kube-root-ca.crt", "openshift-service-ca.crt"):  # what a projected token volume reads
            here.kubectl("apply", "--validate=false", "-f", "-", stdin=json.dumps({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
                "data": {"ca.crt": ca, "service-ca.crt": ca}}))

        # CloudCore as keadm init makes it for a real cluster: the iptables manager on, and the
        # stream server trusting the cluster's CA (the one step the README names)
        layout = layouts.Layout(base / "cloud" / "etc", base / "cloud" / "var", base / "cloud" / "log")
        ports = {"websocket_port": free_port(), "https_port": free_port(), "tunnel_port": free_port(),
                 "stream_port": free_port()}
        document = layouts.cloudcore_document(layout, kubeconfig=cluster.kubeconfig, advertise_address=space.inside_ip,
                                              bind_address="0.0.0.0", stream_ca=cluster.ca_file, iptables_manager=True,
                                              **ports)
        document["commonConfig"]["monitorServer"]["bindAddress"] = f"127.0.0.1:{free_port()}"
        config = layouts.write(layout.cloudcore_config, document)
        cloud_spec = space.wrap(_spec("cloudcore", layout, config))
        supervision.start(cloud_spec, ready=lambda: "websocket server listening" in (
            cloud_spec.log_file.read_text() if cloud_spec.log_file.exists() else ""))
        here.cloud = Cloud(cloud_spec, layout, config, **ports)
        token = base64.b64decode(wait_for(lambda: here.kubectl_run(
            "get", "secret", "tokensecret", "-n", "kubeedge", "-o", "jsonpath={.data.tokendata}").stdout, 30,
            "CloudCore never made its token")).decode()
        here.edge = start_edge(base / "edge", here.cloud, here.node, token, runtime_endpoint=containerd.endpoint,
                               cloud_host=space.inside_ip, node_ip=NODE_IP)
        here.kubectl("apply", "--validate=false", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": here.pod, "namespace": "default"},
            "spec": {"nodeName": here.node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "app", "image": BUSYBOX_IMAGE,
                "command": ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done"]}]}}))
        wait_for(lambda: here.kubectl_run("get", "pod", here.pod, "-o", "jsonpath={.status.phase}").stdout == "Running",
             90, lambda: "the pod never ran on the real apiserver" + here.logs())
        yield here
    finally:
        for core in (here.edge, here.cloud):
            if core is not None:
                core.stop()
        supervision.stop(apiserver, grace=scaled(10))
        supervision.stop(etcd, grace=scaled(10))
        space.delete()


def record(site: Site) -> dict[str, Any]:
    text = site.kubectl_run("get", "configmap", "tunnelport", "-n", "kubeedge", "-o",
                            "jsonpath={.metadata.annotations.tunnelportrecord\\.kubeedge\\.io}").stdout
    return json.loads(text) if text else {}


def test_the_tunnel_port_is_claimed_set_on_the_node_and_dnated_in_the_namespace_only(site: Site) -> None:
    assert site.cloud is not None
    wait_for(lambda: record(site).get("ipTunnelPort") == {site.space.inside_ip: 10351}, 30,
         lambda: f"CloudCore claimed no tunnel port: {record(site)}")
    assert record(site)["port"] == {"10351": True}
    wait_for(lambda: site.kubectl_run("get", "node", site.node, "-o",
                                  "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}").stdout == "10351", 30,
         "the node's kubelet endpoint port never became the tunnel port")
    dnat = f"--dport 10351 -j DNAT --to-destination {site.space.inside_ip}:{site.cloud.stream_port}"
    wait_for(lambda: dnat in site.nat("TUNNEL-PORT"), 30, lambda: f"no DNAT rule: {site.nat('TUNNEL-PORT')}" + site.logs())
    for chain in ("OUTPUT", "PREROUTING"):
        assert '-m comment --comment "kubeedge tunnel port" -j TUNNEL-PORT' in site.nat(chain), site.nat(chain)
    host = subprocess.run(["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True, check=False).stdout
    assert "TUNNEL-PORT" not in host, "the iptables manager touched the host's rules"
    # edge status reports (10350 in them) do not undo the cloud's port
    time.sleep(scaled(3))
    assert site.kubectl_run("get", "node", site.node, "-o",
                            "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}").stdout == "10351"


@pytest.mark.parametrize("binary", KUBECTLS, ids=["kubectl-1.32", "kubectl-1.20"])
def test_kubectl_logs_and_exec_reach_the_edge_through_the_dnat(site: Site, binary: str) -> None:
    wait_for(lambda: "line-3" in site.kubectl_run("logs", site.pod, binary=binary).stdout, 60,
         lambda: f"logs never came through kube-apiserver: {site.kubectl_run('logs', site.pod, binary=binary).stderr}"
         + site.logs())
    lines = site.kubectl_run("logs", site.pod, "--tail=2", binary=binary).stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("line-") for line in lines), lines
    done = site.kubectl_run("exec", site.pod, "--", "sh", "-c", "echo hi; exit 3", binary=binary)
    assert (done.stdout, done.returncode) == ("hi\n", 3), done.stderr
    done = site.kubectl_run("exec", "-i", site.pod, "--", "tr", "a-z", "A-Z", binary=binary, stdin="through dnat\n")
    assert (done.stdout, done.returncode) == ("THROUGH DNAT\n", 0), done.stderr


def test_rules_follow_the_record_and_come_back_after_a_flush(site: Site) -> None:
    assert site.cloud is not None
    stream = site.cloud.stream_port
    ours = f"--dport 10351 -j DNAT --to-destination {site.space.inside_ip}:{stream}"
    wait_for(lambda: ours in site.nat("TUNNEL-PORT"), 30, "no DNAT rule for this CloudCore")
    assert site.space.run("iptables", "-w", "5", "-t", "nat", "-F", "TUNNEL-PORT").returncode == 0
    wait_for(lambda: ours in site.nat("TUNNEL-PORT"), 20, "a flushed rule was not made again")

    # another CloudCore (say upstream's, on 169.254.77.9) claims 10352: its rule appears; it leaves: gone
    claimed = record(site)
    claimed["ipTunnelPort"]["169.254.77.9"] = 10352
    claimed["port"]["10352"] = True
    site.kubectl("annotate", "--overwrite", "configmap", "tunnelport", "-n", "kubeedge",
                 f"tunnelportrecord.kubeedge.io={json.dumps(claimed)}")
    other = f"--dport 10352 -j DNAT --to-destination 169.254.77.9:{stream}"
    wait_for(lambda: other in site.nat("TUNNEL-PORT"), 20, lambda: f"no rule for the other CloudCore: {site.nat('TUNNEL-PORT')}")
    del claimed["ipTunnelPort"]["169.254.77.9"]
    del claimed["port"]["10352"]
    site.kubectl("annotate", "--overwrite", "configmap", "tunnelport", "-n", "kubeedge",
                 f"tunnelportrecord.kubeedge.io={json.dumps(claimed)}")
    wait_for(lambda: other not in site.nat("TUNNEL-PORT"), 20, "the rule of a CloudCore that left stayed")
    assert ours in site.nat("TUNNEL-PORT")
    log = site.cloud.log()
    assert f"DNAT tcp dport 10352 -> 169.254.77.9:{stream} deleted" in log and "Traceback" not in log
