"""The cores of KubeEdge-in-Python: CloudCore, EdgeCore, the embedded control plane, and what they share.

Layers (who may import whom): ``cores.cloud | cores.edge | cores.controlplane`` above
``cores.beehive | cores.wire | cores.common``; ``cores.cloud`` and ``cores.edge`` never import
each other, and only the cloud's API adapter imports ``kubernetes``.
"""
