"""The tests need nothing outside the repository: the upstream captures are in tests/testdata/.

Every test reaches the captures through ``tests.captures.UPSTREAM``, a path computed from that module's
own location. Two scans of the test sources:

Self-contained (a test reading data from outside the repository fails in a clean clone):
* no reference to the sibling ``shared`` directory (``/work/shared``, ``../shared``, ``parent / "shared"``)
  leads to test data (a ``testdata`` directory or one of the capture files);
* no path computed from ``__file__`` (``.parent``, ``.parents[n]``) climbs above the repository root;
* nothing names this checkout by its absolute path.

One way in (kept apart so a failure says which rule was broken):
* ``testdata`` is named only by tests/captures.py; everything else goes through ``UPSTREAM``.

Left open on purpose: optional upstream binaries for interop tests (cloudcore, edgecore, kube-apiserver)
are expected to come from environment variables, which are neither test data nor paths written in the
sources, so they are not flagged.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.captures import UPSTREAM

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
CAPTURES_MODULE = TESTS / "captures.py"
THIS = Path(__file__).resolve()

CAPTURE_FILES = sorted(p.name for p in UPSTREAM.rglob("*") if p.is_file())
SHARED = re.compile(r"""/work/shared\b|\.\./shared\b|["']shared["']\s*/|/\s*["']shared["']""")
TESTDATA_WORD = re.compile(r"testdata")
TEST_DATA_HINT = re.compile(
    r"testdata|defaultconfig|sqlite-schema|\.jsonl\b|"
    + "|".join(re.escape(name) for name in CAPTURE_FILES if name != "README.md"))


def sources() -> list[Path]:
    """Every Python source under tests/ but the captures themselves and this checker."""
    return sorted(p for p in TESTS.rglob("*.py")
                  if UPSTREAM not in p.parents and p.resolve() != THIS)


def _climb(node: ast.AST, names: dict[str, int]) -> int | None:
    """How many directories above the source file an expression built from __file__ lands (None: not one)."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "Path" and len(node.args) == 1:
            arg = node.args[0]
            return 0 if isinstance(arg, ast.Name) and arg.id == "__file__" else None
        if isinstance(func, ast.Attribute) and func.attr in ("resolve", "absolute"):
            return _climb(func.value, names)
        return None
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        below = _climb(node.value, names)
        return None if below is None else below + 1
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)):
        below = _climb(node.value.value, names)
        return None if below is None else below + node.slice.value + 1
    return None


def _where(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def bypasses(path: Path, text: str) -> list[str]:
    """Lines of one source that name the test data directory instead of using tests.captures.UPSTREAM."""
    return [f"{_where(path)}:{number}: names testdata directly (use tests.captures.UPSTREAM): {line.strip()}"
            for number, line in enumerate(text.splitlines(), 1) if TESTDATA_WORD.search(line)]


def outside(path: Path, text: str) -> list[str]:
    """What in one source refers to test data outside the repository (empty when nothing does)."""
    found: list[str] = []
    where = _where(path)
    for number, line in enumerate(text.splitlines(), 1):
        if SHARED.search(line) and TEST_DATA_HINT.search(line):
            found.append(f"{where}:{number}: reads test data from the sibling shared directory: {line.strip()}")
        if str(REPO) in line:
            found.append(f"{where}:{number}: names this checkout by its absolute path: {line.strip()}")
    # Paths computed from the source's own location must stay inside the repository.
    depth_to_repo = len(path.relative_to(REPO).parts) if path.is_relative_to(REPO) else len(path.parts)
    names: dict[str, int] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            climbed = _climb(node.value, names)
            if climbed is not None:
                names[node.targets[0].id] = climbed
    highest: dict[int, tuple[int, str]] = {}  # line -> the highest climb on it, as (levels, expression)
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.Attribute, ast.Subscript)):
            continue
        climbed = _climb(node, names)
        if climbed is not None and climbed > max(depth_to_repo, highest.get(node.lineno, (0, ""))[0]):
            highest[node.lineno] = (climbed, ast.unparse(node))
    for lineno, (climbed, expression) in sorted(highest.items()):
        found.append(f"{where}:{lineno}: climbs {climbed - depth_to_repo} level(s) above the repository: {expression}")
    return found


def test_captures_are_inside_the_repository() -> None:
    assert UPSTREAM.is_relative_to(REPO), UPSTREAM
    assert UPSTREAM == TESTS / "testdata" / "upstream-v1.23"
    assert UPSTREAM.is_dir() and (UPSTREAM / "README.md").is_file()
    # The files the README's table describes are all there.
    described = set(re.findall(r"^\| ([\w./-]+\.\w+) \|", (UPSTREAM / "README.md").read_text(), re.M))
    assert described and not described - set(CAPTURE_FILES)


def test_captures_module_computes_its_path() -> None:
    assert outside(CAPTURES_MODULE, CAPTURES_MODULE.read_text()) == []
    literals = [node.value for node in ast.walk(ast.parse(CAPTURES_MODULE.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("/")]
    assert literals == []


def test_no_test_reads_test_data_from_outside_the_repository() -> None:
    found = [problem for path in sources() for problem in outside(path, path.read_text())]
    assert sources() and found == [], "\n".join(found)


def test_test_data_is_reached_through_captures_upstream() -> None:
    found = [problem for path in sources() if path != CAPTURES_MODULE for problem in bypasses(path, path.read_text())]
    assert found == [], "\n".join(found)


# --- the scan itself catches what it should, and only that ------------------------------------

FLAGGED = [
    'TESTDATA = Path("/work/shared/testdata/upstream-v1.23")',
    'TESTDATA = REPO.parent / "shared" / "testdata" / "upstream-v1.23"',
    'UPSTREAM = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "upstream-v1.23"',
    'TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "upstream-v1.23"',
    'frames = Path("../shared/captures/pod.jsonl").read_text()',
    'JOIN = "/work/shared/upstream-v1.23/join.jsonl"',
    'OUTSIDE = Path(__file__).resolve().parents[4] / "captures"',
    'HERE = Path(__file__).resolve().parent\nUP = HERE.parent.parent.parent.parent / "elsewhere"',
]

BYPASSING = [  # inside the repository, but not through tests.captures.UPSTREAM
    'CAPTURES = Path(__file__).resolve().parents[2] / "testdata" / "upstream-v1.23"',
    'DEFAULTS = Path(__file__).resolve().parents[1] / "testdata/upstream-v1.23/defaultconfig"',
]

ALLOWED = [
    'from tests.captures import UPSTREAM\nframes = (UPSTREAM / "pod.jsonl").read_text()',
    'CLOUDCORE = os.environ.get("KUBEEDGE_UPSTREAM_CLOUDCORE")',
    'REPO = Path(__file__).resolve().parents[3]\nsubprocess.run(["x"], cwd=REPO)',
    'cmd = ["sh", "-c", "echo one >> /work/order"]',
    'printed = keadm("run", "edge", "--defaultconfig")',
    '"""Pods on a shared containerd."""',
]


EXAMPLE = TESTS / "unit" / "link" / "test_example.py"


@pytest.mark.parametrize("source", FLAGGED)
def test_scan_flags_outside(source: str) -> None:
    assert outside(EXAMPLE, source)


@pytest.mark.parametrize("source", BYPASSING)
def test_scan_flags_bypass_only(source: str) -> None:
    assert bypasses(EXAMPLE, source) and outside(EXAMPLE, source) == []


@pytest.mark.parametrize("source", ALLOWED)
def test_scan_allows(source: str) -> None:
    assert outside(EXAMPLE, source) == [] and bypasses(EXAMPLE, source) == []
