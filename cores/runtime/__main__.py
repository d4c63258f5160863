"""``python -m cores.runtime start|stop|status --dir DIR``: a private containerd for a person.

``start`` leaves containerd running in the background (pid file ``DIR/containerd.pid``) and
prints the CRI endpoint to give EdgeCore; ``stop`` removes its pods and stops it by PID.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cores.runtime.containerd import Containerd, RuntimeSetupError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cores.runtime", description="A private containerd with local images.")
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--dir", required=True, type=Path, help="directory for its config, data, socket and pid file")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for containerd to answer")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    containerd = Containerd(options.dir)
    try:
        if options.command == "start":
            began = time.monotonic()
            containerd.start(options.timeout)
            print(f"containerd pid {containerd.pid} ready in {time.monotonic() - began:.2f} s; "
                  f"CRI endpoint {containerd.endpoint}")
        elif options.command == "stop":
            containerd.stop()
            print(f"containerd for {options.dir} stopped")
        else:
            pid = containerd.pid
            print(f"running as pid {pid}, endpoint {containerd.endpoint}" if pid else "not running")
            return 0 if pid else 3
    except RuntimeSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
