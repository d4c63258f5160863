"""EdgeCore's wiring: which config module key builds which core module.

Keys are the ``modules:`` keys of edgecore.yaml. A module is listed here once it works through
the real path; until then an enabled one is named in a start-up warning. Module code is imported
only when its module is enabled, so a disabled one costs no memory.
"""

from __future__ import annotations

from collections.abc import Mapping

from cores.beehive import Module
from cores.common.config import Config
from cores.common.process import ModuleFactory, run


def _edgehub(config: Config) -> Module:
    from cores.edge.edgehub import EdgeHub

    return EdgeHub(config)


def _metamanager(config: Config) -> Module:
    from cores.edge.metamanager import MetaManager

    return MetaManager(config)


def _edged(config: Config) -> Module:
    from cores.edge.edged import Edged

    return Edged(config)


def _eventbus(config: Config) -> Module:
    from cores.edge.eventbus import EventBus

    return EventBus(config)


def _devicetwin(config: Config) -> Module:
    from cores.edge.devicetwin import DeviceTwin

    return DeviceTwin(config)


def _servicebus(config: Config) -> Module:
    from cores.edge.servicebus import ServiceBus

    return ServiceBus(config)


def _edgestream(config: Config) -> Module:
    from cores.edge.edgestream import EdgeStream

    return EdgeStream(config)


MODULES: Mapping[str, ModuleFactory] = {
    "edgeHub": _edgehub,
    "metaManager": _metamanager,
    "edged": _edged,
    "eventBus": _eventbus,
    "deviceTwin": _devicetwin,
    "serviceBus": _servicebus,
    "edgeStream": _edgestream,
}


def _hollow_edged(config: Config) -> Module:
    from cores.edge.hollow import HollowEdged

    return HollowEdged(config)


def main(config: Config, hollow: bool = False) -> int:
    """Run EdgeCore; ``hollow`` swaps Edged for the stand-in that runs nothing (scale tests)."""
    modules = {**MODULES, "edged": _hollow_edged} if hollow else MODULES
    return run("edgecore", config, modules)
