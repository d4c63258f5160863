"""EdgeCore's wiring: which config module key builds which core module.

Keys are the ``modules:`` keys of edgecore.yaml. A module is listed here once it works through
the real path; until then an enabled one is named in a start-up warning.
"""

from __future__ import annotations

from collections.abc import Mapping

from cores.common.config import Config
from cores.common.process import ModuleFactory, run

MODULES: Mapping[str, ModuleFactory] = {}


def main(config: Config) -> int:
    return run("edgecore", config, MODULES)
