"""CVE-2026-62371 and CVE-2026-62182 (command injection through job fields), aimed at every place
we run a program: no shell ever sees outside data.

Every subprocess we start gets an argv list (``subprocess.run([...])``, ``Popen([...])``), so a
name, label or path from outside is one argument, never shell text. This scan of the source
keeps it so: no ``shell=True``, no ``os.system``/``os.popen``, no ``create_subprocess_shell``, no
``getoutput``; and every argv is a list or tuple, not a string. The join flow's own check of the
names a user passes (``keadm join --edgenode-name``, ``--labels``) is tested where it runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = [p for top in ("cores", "keadm", "certs") for p in (REPO / top).rglob("*.py")]
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("asyncio", "create_subprocess_shell")}
ARGV_CALLS = {"run", "Popen", "call", "check_call", "check_output", "create_subprocess_exec"}


def _calls() -> list[tuple[Path, ast.Call]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                found.append((path, node))
    return found


def _name(call: ast.Call) -> tuple[str, str]:
    function = call.func
    if isinstance(function, ast.Attribute):
        owner = function.value.id if isinstance(function.value, ast.Name) else ""
        return owner, function.attr
    return "", function.id if isinstance(function, ast.Name) else ""


def test_cve_2026_62371_no_shell_anywhere() -> None:
    offenders = []
    for path, call in _calls():
        where = f"{path.relative_to(REPO)}:{call.lineno}"
        if _name(call) in SHELL_CALLS:
            offenders.append(f"{where}: {'.'.join(_name(call))}")
        for keyword in call.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                offenders.append(f"{where}: shell={ast.unparse(keyword.value)}")
    assert offenders == []


def test_cve_2026_62182_every_argv_is_a_list_never_a_string() -> None:
    offenders = []
    checked = 0
    for path, call in _calls():
        owner, name = _name(call)
        if owner in ("subprocess", "asyncio") and name in ARGV_CALLS and call.args:
            checked += 1
            first = call.args[0]
            if isinstance(first, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                offenders.append(f"{path.relative_to(REPO)}:{call.lineno}: {ast.unparse(first)[:60]}")
    assert checked >= 5, "the scan found no subprocess calls: it looks at the wrong tree"
    assert offenders == []
