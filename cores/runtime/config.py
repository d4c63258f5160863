"""The containerd and CNI configuration a private containerd needs on these machines.

Pure text generation, no processes: :mod:`cores.runtime.containerd` writes what this returns.
Each line that is not a default is here because a machine of this project's kind needs it
(see the comments); everything a containerd writes goes under its base directory, except the
paths containerd 1.6 hard-codes (``/run/containerd/{s,fifo,runc}``, shared and harmless).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from cores.runtime.images import PAUSE_IMAGE

CNI_BIN_DIR = Path("/usr/lib/cni")  # containernetworking-plugins on Debian


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one private containerd keeps everything, all under ``base``."""

    base: Path

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def config_file(self) -> Path:
        return self.base / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.base / "cni-ipam"

    @property
    def images_dir(self) -> Path:
        return self.base / "images"

    @property
    def log_file(self) -> Path:
        return self.base / "containerd.log"

    @property
    def pid_file(self) -> Path:
        return self.base / "containerd.pid"

    @property
    def bridge(self) -> str:
        """A bridge name of our own (at most 15 characters), so containerds on one machine do not share one."""
        return "kecni" + _short_hash(self.base, 8)

    @property
    def pod_subnet(self) -> str:
        """A /24 of our own for pods with their own network namespace (never sent traffic to)."""
        number = int(_short_hash(self.base, 4), 16)
        return f"10.{200 + number % 50}.{(number >> 8) % 256}.0/24"


def _short_hash(path: Path, length: int) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:length]


def containerd_toml(layout: Layout, runc: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
# Written by cores.runtime for a private containerd; regenerated at every start.
version = 2
root = "{layout.root}"
state = "{layout.state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{layout.socket}"

[ttrpc]
  address = "{layout.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.base / 'opt'}"

[{cri}]
  # No registry is reachable: the pause image is built locally and imported.
  sandbox_image = "{PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE every RunPodSandbox fails ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  # exec/attach/port-forward streaming URLs: loopback only, a free port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{layout.cni_conf_dir}"
  max_conf_num = 1
"""


def cni_conflist(layout: Layout) -> str:
    """bridge + host-local + loopback: gives eth0 an address (a loopback-only config fails with
    "failed to find network info for sandbox") without any iptables rule (isGateway and ipMasq off)."""
    return json.dumps({
        "cniVersion": "0.4.0",
        "name": "kubeedge-py",
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.pod_subnet}]],
                    "dataDir": str(layout.cni_data_dir),
                },
            },
            {"type": "loopback"},
        ],
    }, indent=2) + "\n"
