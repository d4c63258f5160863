"""CloudCore's wiring: which config module key builds which core module.

Keys are the ``modules:`` keys of cloudcore.yaml. A module is listed here once it works through
the real path; until then an enabled one is named in a start-up warning. All modules share one
connection to the Kubernetes API (``kubeAPIConfig``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from cores.beehive import Module
from cores.common.config import Config, ConfigError
from cores.common.process import ModuleFactory, run


@functools.lru_cache(maxsize=None)
def _kube(kubeconfig: str, master: str):  # type: ignore[no-untyped-def]
    from cores.cloud.kube import Kube

    return Kube(kubeconfig, master)


def kube_for(config: Config):  # type: ignore[no-untyped-def]
    api = config.kubeAPIConfig
    if not api.kubeConfig and not api.master:
        raise ConfigError(f"{config.source}: kubeAPIConfig.kubeConfig is empty: CloudCore needs a kubeconfig for its cluster")
    from pathlib import Path

    if api.kubeConfig and not Path(api.kubeConfig).exists():
        raise ConfigError(f"{config.source}: kubeAPIConfig.kubeConfig {api.kubeConfig} does not exist")
    return _kube(api.kubeConfig, api.master)


def _cloudhub(config: Config) -> Module:
    from cores.cloud.cloudhub import CloudHub

    return CloudHub(config, kube_for(config))


def _edgecontroller(config: Config) -> Module:
    from cores.cloud.edgecontroller import EdgeController

    return EdgeController(config, kube_for(config))


def _devicecontroller(config: Config) -> Module:
    from cores.cloud.devicecontroller import DeviceController

    return DeviceController(config, kube_for(config))


def _router(config: Config) -> Module:
    from cores.cloud.router import Router

    return Router(config, kube_for(config))


def _synccontroller(config: Config) -> Module:
    from cores.cloud.synccontroller import SyncController

    return SyncController(config)


def _cloudstream(config: Config) -> Module:
    from cores.cloud.cloudstream import CloudStream

    return CloudStream(config, kube_for(config))


def _dynamiccontroller(config: Config) -> Module:
    from cores.cloud.dynamiccontroller import DynamicController

    return DynamicController(config, kube_for(config))


def _iptablesmanager(config: Config) -> Module:
    from cores.cloud.iptablesmanager import IptablesManager

    return IptablesManager(config, kube_for(config))


MODULES: Mapping[str, ModuleFactory] = {
    "cloudHub": _cloudhub,
    "edgeController": _edgecontroller,
    "deviceController": _devicecontroller,
    "syncController": _synccontroller,
    "router": _router,
    "cloudStream": _cloudstream,
    "iptablesManager": _iptablesmanager,
    "dynamicController": _dynamiccontroller,
}


def main(config: Config) -> int:
    return run("cloudcore", config, MODULES)
