"""EdgeCore's client for the Container Runtime Interface (CRI v1), how Edged drives containerd.

``api.proto`` is our subset of upstream's ``runtime.v1`` (same names and field numbers);
``api_pb2``/``api_pb2.pyi``/``api_grpc`` are generated from it by ``scripts/gen_cri.py`` and
committed. :class:`CriClient` is the asyncio client; :mod:`cores.edge.cri.labels` names the
labels every pod and container Edged creates carries.

Why grpclib and not grpcio: the edge pays for what it imports (target: a joined EdgeCore
under 40 MB RSS). Peak RSS (VmHWM) of a fresh Python 3.11 interpreter on this project's machine,
protobuf 7.36 (upb backend), grpclib 0.4.9 (over h2), grpcio 1.85:

    import asyncio                                       19.9 MB
    + protobuf and the generated runtime.v1 messages     24.1 MB  (+4.2)
    + grpclib client                                     26.3 MB  (+2.2)  <- what we use
    + grpc.aio client instead of grpclib                 33.1 MB  (+9.0)
    import asyncio, cores.edge.cri (all of the above)    27.1 MB; after Version, Status,
                                                         ListContainers, ListImages calls: 27.2 MB

The pure-Python protobuf backend costs 2.6 MB more than upb. grpclib talks to containerd
1.6.20 over its unix socket without trouble (tests/integration/test_runtime.py).
"""

from cores.edge.cri import api_pb2 as api
from cores.edge.cri.client import CriClient, ExecResult, RuntimeCondition, RuntimeStatus, RuntimeVersion
from cores.edge.cri.errors import CriError, RuntimeUnavailable
from cores.edge.cri.labels import (
    CONTAINER_NAME, NODE_NAME, POD_NAME, POD_NAMESPACE, POD_UID, labels_for_container, labels_for_node, labels_for_pod,
)

__all__ = [
    "api", "CriClient", "ExecResult", "RuntimeCondition", "RuntimeStatus", "RuntimeVersion", "CriError",
    "RuntimeUnavailable", "CONTAINER_NAME", "NODE_NAME", "POD_NAME", "POD_NAMESPACE", "POD_UID",
    "labels_for_container", "labels_for_node", "labels_for_pod",
]
