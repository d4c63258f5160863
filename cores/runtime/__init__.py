"""A private containerd for tests, benchmarks and the README demo, with local images and no registry.

:class:`Containerd` starts Debian's containerd with the configuration these machines need
(config, root, state and socket under one directory), imports ``localhost/busybox:local`` and
``localhost/pause:local`` built from ``/bin/busybox`` (:mod:`cores.runtime.images`), and stops
it by PID after removing every pod. ``python -m cores.runtime start|stop|status --dir DIR``
does the same for a person. This is tooling around the runtime, not part of EdgeCore: the edge
only talks CRI (:mod:`cores.edge.cri`) to whatever containerd it is given.
"""

from cores.runtime.containerd import AlreadyRunning, Containerd, MissingBinary, RuntimeSetupError, find_binaries
from cores.runtime.images import BUSYBOX_IMAGE, PAUSE_IMAGE

__all__ = ["AlreadyRunning", "Containerd", "MissingBinary", "RuntimeSetupError", "find_binaries",
           "BUSYBOX_IMAGE", "PAUSE_IMAGE"]
