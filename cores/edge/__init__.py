"""EdgeCore: EdgeHub, MetaManager, Edged, EventBus, ServiceBus, DeviceTwin, wired in ``app``.

The edge stays light: nothing under ``cores.edge`` imports ``kubernetes`` or ``rich``, and heavy
imports (``cryptography``, gRPC) happen only where they are needed.
"""
