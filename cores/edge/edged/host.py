"""What a pod's worker needs from the node's pod set: the one seam between :mod:`.pods` and :mod:`.worker`.

:class:`~cores.edge.edged.pods.PodManager` owns what is node-wide: the CRI client, the cloud
client, the ConfigMap/Secret cache, service account tokens, mirror pods, back-off and events.
:class:`~cores.edge.edged.worker.PodWorker` owns one pod's reconcile loop. A worker sees its
manager only as a :class:`PodHost`, so ``worker.py`` never imports ``pods.py`` (``pods.py``
imports ``worker.py`` to make workers), and a worker can be driven by a small stand-in host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from cores.edge.cri import CriClient
from cores.edge.edged.backoff import Backoff
from cores.edge.edged.events import EventRecorder
from cores.link.requests import CloudRequests

# (kind, name) -> the object the pod references, None while it is missing.
Objects = dict[tuple[str, str], dict[str, Any] | None]


class PodHost(Protocol):
    cri: CriClient              # the node's CRI client, shared by every worker
    requests: CloudRequests     # the node's client for requests to the cloud (pod status, pod delete)
    events: EventRecorder       # pod events (only sent when reportEvent is on)
    backoff: Backoff            # restart and image pull back-off, keyed "<uid>/<container>[/pull]"
    node_name: str
    node_ip: str
    root_directory: str         # kubelet's root: pods/<uid>/ holds volumes and termination message files
    logs_root: str              # podLogsDir: the pods' log directories
    api_service: tuple[str, int] | None  # where in-cluster clients find the API (MetaServer), None when off

    def pod_labels(self, uid: str) -> dict[str, str]:
        """The CRI labels of what this node made for pod ``uid`` (other nodes may share the containerd)."""
        ...

    async def fetch_objects(self, namespace: str, wanted: Iterable[tuple[str, str]]) -> Objects:
        """The ConfigMaps and Secrets the pod references, from the cache or asked for once."""
        ...

    async def service_account_tokens(self, pod: dict[str, Any], wake: Callable[[], None]) -> Objects:
        """("serviceaccounttoken", key) -> the pod's token; ``wake`` is called when a renewal brought a newer one."""
        ...

    def mirror(self, key: str) -> Mapping[str, Any] | None:
        """The cloud's mirror pod of the static pod ``<ns>/<name>``, if it has one."""
        ...

    async def wait_connected_or(self, seconds: float) -> None:
        """A pause before a retry: until the cloud connects (at most ``seconds``), and ``seconds`` more
        when it is connected, so a request it refused is not sent again at once."""
        ...

    def forget(self, uid: str) -> None:
        """The worker of pod ``uid`` ended: drop it and what was kept for it."""
        ...
