"""Upstream's dummy interface for MetaServer (``requireAuthorization``): ``edge-dummy0`` holding
``metaServer.dummyServer``'s address (169.254.30.10 by default), which pods reach whatever their
network: their own 127.0.0.1 is not the host's. Made with iproute2 (``ip``), as argument lists,
each bounded in time; an address already there is kept. Without the dummy driver, ``lo`` holds it.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess

DEVICE = "edge-dummy0"
TIMEOUT = 10.0


def ensure(address: str, device: str = DEVICE) -> tuple[str, str]:
    """Make ``device`` hold ``address``: (the device that holds it, "") or ("", why not, with the fix).

    A kernel without the dummy driver (``Unknown device type``) gets the address on ``lo``
    instead: a local address all the same, which pods reach through the host.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "", f"metaServer.dummyServer names {address!r}, not an IP address"
    binary = shutil.which("ip")
    if binary is None:
        return "", "the ip command (iproute2) is not installed: apt-get install iproute2, or set metaServer.dummyServer: \"\""
    if _run([binary, "link", "show", device]) != "":
        made = _run([binary, "link", "add", device, "type", "dummy"])
        if made:
            device = "lo"  # no dummy driver in this kernel
    prefix = 32 if ip.version == 4 else 128
    for argv in ([binary, "addr", "replace", f"{ip}/{prefix}", "dev", device], [binary, "link", "set", device, "up"]):
        error = _run(argv)
        if error:
            return "", f"{' '.join(argv[1:])}: {error}"
    return device, ""


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")
