"""The architecture's layers ([tool.importlinter] in pyproject.toml) hold, and their check bites.

``lint-imports`` runs from the venv this suite runs in, with the repository as its working
directory (it puts that directory first on ``sys.path``, so a copy of the tree elsewhere is
analysed instead of the installed one).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("keadm", "cores", "certs", "benchmarks")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def layer_modules() -> list[str]:
    """Every module named in the layers contract, optional ones without their parentheses."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    names = []
    for layer in layers["layers"]:
        for name in layer.replace(":", "|").split("|"):
            names.append(name.strip().strip("()"))
    return names


def test_contracts_are_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_cores_package_has_a_layer() -> None:
    declared = set(layer_modules())
    packages = {f"cores.{p.parent.name}" for p in (REPO / "cores").glob("*/__init__.py")}
    assert packages - declared == set(), "place each package under cores/ in the layers contract"


def test_a_violating_import_breaks_the_contracts(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    # The edge reaching into the cloud (siblings are independent), the wire codec importing
    # upward, and a second module of the cloud importing kubernetes besides its API adapter.
    (tmp_path / "cores" / "edge" / "_probe.py").write_text("import cores.cloud\n")
    (tmp_path / "cores" / "wire" / "_probe.py").write_text("from cores.edge import app\n")
    (tmp_path / "cores" / "cloud" / "_probe.py").write_text("import kubernetes.client\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    out = " ".join(result.stdout.split())  # undo the report's line wrapping
    assert "cores.edge._probe -> cores.cloud" in out, out
    assert "cores.wire._probe -> cores.edge.app" in out, out
    assert "cores.cloud._probe -> kubernetes" in out, out
    assert "Only the cloud's API adapter (cores.cloud.kube) imports kubernetes BROKEN" in out, out
