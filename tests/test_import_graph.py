"""The house's shape, checked: no import circle, nothing reaches back into the composition root, and the
detection core loads without the web server, the database or Slack's SDKs.

Every runtime import counts wherever it sits in a file (top level or inside a function); imports under
`if TYPE_CHECKING:` do not, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "slack_pii"
COMPOSITION_ROOT = "slack_pii.app"
# The CLI commands sit above the composition root: `serve` has to build the app it runs.
ENTRY_POINTS = ("slack_pii.commands.",)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for orelse in child.orelse:
                yield from _runtime_imports(orelse)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _runtime_imports(child)


def imports_of(name: str) -> set[str]:
    """The slack_pii modules `name` imports at run time (a `from pkg import mod` counts as `pkg.mod`)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_ones():
    # `serve` imports the app inside its function; services.py names LocalSink for types only.
    assert "slack_pii.app" in GRAPH["slack_pii.commands.serve"]
    assert "slack_pii.webapi.sink" not in GRAPH["slack_pii.services"]


def test_there_is_no_import_circle():
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert cycles == []


def test_nothing_imports_the_composition_root():
    importers = sorted(name for name, targets in GRAPH.items()
                       if COMPOSITION_ROOT in targets and not name.startswith(ENTRY_POINTS))
    assert importers == []


@pytest.mark.parametrize("module", ["slack_pii.detect.scanner", "slack_pii.keys"])
def test_the_detection_core_loads_without_server_database_or_slack_sdks(module):
    if module not in MODULES:
        pytest.skip(f"{module} does not exist yet")
    probe = (f"import sys, {module}; "
             "print(','.join(m for m in ('aiohttp', 'aiosqlite', 'slack_bolt', 'slack_sdk') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == ""
