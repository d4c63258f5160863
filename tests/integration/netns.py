"""A network namespace the test creates, joined to the host by a veth pair: for tests whose
processes change iptables, which then touch only that namespace.

``ip netns exec`` execs the command, so a process started through :meth:`NetworkNamespace.wrap`
keeps its PID and is stopped by it as any other. Deleting the namespace removes the veth pair
and every rule made in it.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import uuid

from cores.common.supervision import ServiceSpec


class Unavailable(Exception):
    """This machine cannot make a network namespace (no ``ip``, or not root): the test is skipped."""


@dataclasses.dataclass
class NetworkNamespace:
    name: str
    host_ip: str       # the host's end of the veth pair
    inside_ip: str     # the namespace's end: what the host dials to reach a server inside

    @classmethod
    def create(cls, third_octet: int = 77) -> NetworkNamespace:
        if shutil.which("ip") is None:
            raise Unavailable("the ip command (iproute2) is not installed")
        tag = uuid.uuid4().hex[:6]
        name, host_end, inside_end = f"ke-{tag}", f"keh{tag}", f"ken{tag}"
        space = cls(name, f"169.254.{third_octet}.1", f"169.254.{third_octet}.2")
        created = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
        if created.returncode != 0:
            raise Unavailable(f"ip netns add failed: {created.stderr.strip()}")
        try:
            for argv in (["ip", "link", "add", host_end, "type", "veth", "peer", "name", inside_end],
                         ["ip", "link", "set", inside_end, "netns", name],
                         ["ip", "addr", "add", f"{space.host_ip}/30", "dev", host_end],
                         ["ip", "link", "set", host_end, "up"],
                         space.prefix() + ["ip", "addr", "add", f"{space.inside_ip}/30", "dev", inside_end],
                         space.prefix() + ["ip", "link", "set", inside_end, "up"],
                         space.prefix() + ["ip", "link", "set", "lo", "up"]):
                done = subprocess.run(argv, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise Unavailable(f"{' '.join(argv)}: {done.stderr.strip()}")
        except BaseException:
            space.delete()
            raise
        return space

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def wrap(self, spec: ServiceSpec) -> ServiceSpec:
        """``spec`` run inside the namespace."""
        return dataclasses.replace(spec, argv=(*self.prefix(), *spec.argv))

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix(), *argv], capture_output=True, text=True, timeout=timeout, check=False)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)
