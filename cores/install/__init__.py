"""Installing and removing KubeEdge on a machine: what ``keadm init``, ``join`` and ``reset`` do.

Library code: each flow is a list of named steps the CLI runs and shows one by one. Everything
an installation creates (files, directories, processes) is recorded in a manifest in its data
directory, so ``reset`` removes exactly that and nothing else, and a failed ``join`` rolls back.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cores.common.supervision import Component

MANIFEST_NAME = "keadm-install.json"


class InstallError(Exception):
    """A step failed; the message says why and what to do."""


def apply_sets(document: dict[str, Any], sets: tuple[str, ...], schema: dict[str, Any]) -> None:
    """``--set key.path=value`` flags onto a config document, each checked against the schema."""
    from cores.common.config import set_path

    for assignment in sets:
        key, separator, value = assignment.partition("=")
        if not separator:
            raise InstallError(f"--set {assignment}: expected key=value")
        set_path(document, key.strip(), value, schema)


@dataclasses.dataclass
class Step:
    title: str
    run: Callable[[], str | None]  # returns an optional detail to show after the title


@dataclasses.dataclass
class Manifest:
    """What an installation created, kept at ``<data-dir>/keadm-install.json``."""

    side: str  # "cloud" or "edge"
    config_dir: str
    data_dir: str
    log_dir: str
    components: list[Component] = dataclasses.field(default_factory=list)
    paths: list[str] = dataclasses.field(default_factory=list)
    node_name: str = ""
    runtime_endpoint: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @staticmethod
    def location(data_dir: Path) -> Path:
        return data_dir / MANIFEST_NAME

    @classmethod
    def load(cls, data_dir: Path) -> Manifest | None:
        path = cls.location(data_dir)
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        path = self.location(Path(self.data_dir))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))

    def created(self, path: Path) -> Path:
        """Record ``path`` (a file or directory this installation made) and return it."""
        if str(path) not in self.paths:
            self.paths.append(str(path))
        return path

    def make_dir(self, path: Path) -> Path:
        """Create ``path`` and every missing parent, recording the ones that did not exist."""
        missing = []
        current = path
        while not current.exists():
            missing.append(current)
            current = current.parent
        path.mkdir(parents=True, exist_ok=True)
        for directory in reversed(missing):
            self.created(directory)
        return path

    def remove_created(self) -> list[str]:
        """Remove what was recorded, deepest first; never anything else."""
        removed = []
        for entry in sorted(self.paths, key=lambda p: p.count("/"), reverse=True):
            path = Path(entry)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(entry)
        manifest = self.location(Path(self.data_dir))
        manifest.unlink(missing_ok=True)
        return removed
