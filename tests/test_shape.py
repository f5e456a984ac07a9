"""The model modules keep one shape, so that any two can be read side by side."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models import MODELS

MODEL_FILES = sorted(
    {Path(__file__).parent.parent / (m.module.replace(".", "/") + ".py") for m in MODELS.values()}
)
EXPECTED = [
    "Shared",
    "run",
    "start_users",
    "serve",
    "run_job",
    "run_stage",
    "hand_off",
    "run_step",
    "run_attempts",
    "do_io",
    "do_cpu",
]
# What a runtime lacks and its model must add, after the common shape.
EXTRAS = {"trio_model": ["receive_exactly"]}  # trio streams have no readexactly
# Models that run a sibling's job code in several processes: they define only how.
SPREAD = {
    "processes_asyncio_model": ("asyncio_model", ["ProcessLock", "run", "start_users", "serve"])
}


def shape(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_model_module_has_the_common_shape(path: Path) -> None:
    if path.stem in SPREAD:
        sibling, own = SPREAD[path.stem]
        assert shape(path) == own
        assert f"models.{sibling}" in imported(path)
    else:
        assert shape(path) == EXPECTED + EXTRAS.get(path.stem, [])


def imported(path: Path) -> set[str]:
    return {
        node.module or ""
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
    }


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_model_module_opens_with_a_one_line_docstring(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring is not None
    assert "\n" not in docstring


def test_no_model_module_shadows_its_runtime() -> None:
    assert {p.stem for p in MODEL_FILES}.isdisjoint({"asyncio", "trio", "threading", "uvloop"})


def test_shape_check_notices_drift(tmp_path: Path) -> None:
    drifted = tmp_path / "drifted_model.py"
    drifted.write_text('"""x."""\n\ndef run():\n    pass\n\ndef run_job():\n    pass\n')
    assert shape(drifted) != EXPECTED


def test_models_never_import_the_harness() -> None:
    for path in (Path(__file__).parent.parent / "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                assert not any(n == "bench" or n.startswith("bench.") for n in names), path
