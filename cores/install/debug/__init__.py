"""``keadm debug``: what an edge machine knows about itself, read with the cloud away (upstream §8.5).

:class:`EdgeSite` finds an installed EdgeCore from its config (``<config-dir>/config/edgecore.yaml``
or ``--config``): its database, certificates, cloud addresses, runtime, broker, pid and log files.
The subcommands live beside it: :mod:`.get` (objects from the edge database, printed as kubectl
does), :mod:`.check` (the machine), :mod:`.diagnose` (findings with evidence and the fix) and
:mod:`.collect` (an archive for a bug report, without keys or tokens).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

from cores.common import config as configs
from cores.common.config import Config, ConfigError
from cores.common.supervision import ServiceSpec, ServiceStatus, status


class NotInstalled(Exception):
    """No EdgeCore here: said in one line, exit code non-zero."""


@dataclasses.dataclass(frozen=True)
class EdgeSite:
    config_path: Path
    config: Config
    log_dir: Path

    @classmethod
    def load(cls, config_path: Path, log_dir: Path) -> EdgeSite:
        if not config_path.exists():
            raise NotInstalled(f"no EdgeCore is installed here: {config_path} does not exist "
                               "(`keadm join` writes it; pass --config for another place)")
        try:
            config = configs.load(configs.EDGECORE, config_path)
        except ConfigError as error:
            raise NotInstalled(f"{config_path} is not a usable EdgeCore config: {error}") from None
        return cls(config_path, config, log_dir)

    @property
    def database(self) -> Path:
        return Path(str(self.config.database.dataSource))

    @property
    def data_dir(self) -> Path:
        return self.database.parent

    @property
    def node_name(self) -> str:
        return str(self.config.modules.edged.hostnameOverride)

    @property
    def hub(self):  # type: ignore[no-untyped-def]
        return self.config.modules.edgeHub

    @property
    def websocket_address(self) -> tuple[str, int]:
        host, _, port = str(self.hub.websocket.server).rpartition(":")
        return host.strip("[]"), int(port or 10000)

    @property
    def https_address(self) -> tuple[str, int]:
        parts = urlsplit(str(self.hub.httpServer))
        return parts.hostname or "", parts.port or 10002

    @property
    def runtime_endpoint(self) -> str:
        return str(self.config.modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint)

    @property
    def cgroup_driver(self) -> str:
        return str(self.config.modules.edged.tailoredKubeletConfig.get("cgroupDriver") or "cgroupfs")

    def spec(self) -> ServiceSpec:
        config_dir = self.config_path.parent.parent
        return ServiceSpec(component="edgecore", config_dir=config_dir, log_dir=self.log_dir, run_dir=self.data_dir / "run",
                           argv=())

    def running(self) -> ServiceStatus:
        return status(self.spec())

    def log_text(self, limit: int = 2 * 1024 * 1024) -> str:
        """The end of EdgeCore's log ("" when there is none)."""
        path = self.spec().log_file
        try:
            with path.open("rb") as log_file:
                size = path.stat().st_size
                log_file.seek(max(0, size - limit))
                return log_file.read().decode("utf-8", "replace")
        except OSError:
            return ""
