"""The harness's layers: imports only go down, no module imports itself back, and the point
process loads nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS = (
    ("bench.errors", "bench.version"),
    ("bench.analysing",),
    ("bench.files",),
    ("bench.measuring",),
    ("bench.presenting",),
    ("bench.api", "bench.cli", "bench.plots", "bench.__main__", "bench"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every bench module and the bench modules it imports, at the top or inside a function."""
    modules = {module_name(p): p for p in (root / "bench").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from bench.measuring import sweep` imports the module bench.measuring.sweep.
                found |= {
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                }
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


def upward(graph: Mapping[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if layer(target) > layer(module)
    )


def cycle(graph: Mapping[str, set[str]]) -> list[str]:
    """One import cycle, as the modules along it ([] when there is none)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = "done"
        path.pop()
        return []

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return []


def test_imports_only_go_down() -> None:
    assert upward(import_graph(ROOT)) == []


def test_there_is_no_import_cycle() -> None:
    assert cycle(import_graph(ROOT)) == []


def test_every_module_is_in_a_layer() -> None:
    for module in import_graph(ROOT):
        layer(module)


def test_the_checks_notice_a_cycle_and_an_upward_import() -> None:
    graph = {"bench.files.results": {"bench.presenting.report"}, "bench.presenting.report": set()}
    assert upward(graph) == ["bench.files.results -> bench.presenting.report"]
    graph["bench.presenting.report"] = {"bench.files.results"}
    assert cycle(graph) == [
        "bench.files.results",
        "bench.presenting.report",
        "bench.files.results",
    ]


@pytest.mark.parametrize("module", ["bench.measuring.child", "bench.measuring.service"])
def test_the_point_process_and_the_service_load_nothing_heavy(module: str) -> None:
    # They run under other interpreters (a free-threaded build) that may lack these wheels.
    heavy = ("pandas", "numpy", "scipy", "matplotlib", "rich")
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
