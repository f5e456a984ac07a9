"""The model modules keep one shape, so that any two can be read side by side."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from models import MODELS

MODELS_DIR = Path(__file__).parent.parent / "models"
# The Python models' modules (a model in another language is a program of its own, run by
# models.foreign: its shape is the protocol's, docs/protocol.md).
MODEL_FILES = sorted(
    {
        Path(__file__).parent.parent / (m.module.replace(".", "/") + ".py")
        for m in MODELS.values()
        if m.language is None
    }
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
EXTRAS = {"trio_model": ["BufferedStream"]}  # trio streams have no buffered reads
# Models that run a sibling's job code in several processes: they define only how.
SPREAD = {
    "processes_asyncio_model": ("asyncio_model", ["ProcessLock", "run", "start_users", "serve"])
}
# The async models: the same job code on three runtimes, so they must read and write the same
# shared state and set up their run the same way.
TWINS = [MODELS_DIR / f"{name}.py" for name in ("asyncio_model", "trio_model", "anyio_model")]
# Fields of `Shared` holding the runtime's own objects (its connections, its background tasks,
# the threads its blocking database calls run in): what a model does with them, and where, is
# where the runtimes differ.
RUNTIME_FIELDS = {"idle", "handed_off", "threads"}
# The calls with which every twin's start_users sets up its run.
SETUP_CALLS = {"whole", "window.wire_connections", "window.start"}


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


def chain(node: ast.AST) -> str:
    """`a.b.c` for an attribute chain rooted at a name, or '' for anything else."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(attributes)]) if isinstance(node, ast.Name) else ""


def state_used(tree: ast.Module) -> dict[str, Counter[str]]:
    """For each function, how often it uses each chain rooted at `shared` or `part` (its run's
    shared state and its share of the run), leaving out the runtime's own fields. Counted, not
    collected: a twin may keep one use of a chain and drift on another."""
    return {
        node.name: Counter(
            name
            for n in ast.walk(node)
            if len(parts := (name := chain(n)).split(".")) > 1
            and parts[0] in ("shared", "part")
            and parts[1] not in RUNTIME_FIELDS
        )
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def setup(tree: ast.Module) -> set[str]:
    """How start_users sets up its run: its calls to SETUP_CALLS as written, leaving out the
    lock factory it gives `whole` (the runtime's own lock)."""
    calls = set()
    for function in tree.body:
        if isinstance(function, ast.AsyncFunctionDef) and function.name == "start_users":
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and (name := chain(node.func)) in SETUP_CALLS:
                    args = node.args[:1] if name == "whole" else node.args
                    calls.add(ast.unparse(ast.Call(node.func, args, node.keywords)))
    return calls


def drift(source: str, like: str) -> list[str]:
    """Where the twin in `source` parts from the one in `like`: each function that uses the
    shared state or its part differently, and start_users if it sets up its run another way."""
    mine, theirs = ast.parse(source), ast.parse(like)
    used, their_used = state_used(mine), state_used(theirs)
    found = []
    for name in sorted(used.keys() | their_used.keys()):
        more, less = used.get(name, Counter()), their_used.get(name, Counter())
        if more != less:
            found.append(f"{name}: uses {dict(more - less)} more, {dict(less - more)} less")
    if setup(mine) != setup(theirs):
        found.append(f"start_users sets up: {sorted(setup(mine) ^ setup(theirs))}")
    return found


@pytest.mark.parametrize("path", TWINS, ids=lambda p: p.stem)
def test_async_twins_share_state_and_setup(path: Path) -> None:
    assert drift(path.read_text(), like=TWINS[0].read_text()) == []
    assert {call.split("(")[0] for call in setup(ast.parse(path.read_text()))} == SETUP_CALLS


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("level = shared.stock[", "level = shared.tally.stock[", "run_step"),
        ("shared.tally.sold.append", "shared.sold.append", "run_step"),
        ("for user in part.users", "for user in range(window.concurrency)", "start_users"),
        ("window.wire_connections(len(part.users))", "len(part.users) * 2", "start_users"),
        ("whole(window, asyncio.Lock)", "Part(range(9), next, start, [], [])", "start_users"),
        ("window.start(shared.tally, at_s=part.start())", "window.start()", "start_users"),
    ],
    ids=["stock", "tally", "users", "connections", "whole", "start"],
)
def test_twin_check_notices_drift(old: str, new: str, where: str) -> None:
    source = TWINS[0].read_text()
    assert old in source  # the drift below must change something
    found = drift(source.replace(old, new), like=source)
    assert found
    assert all(f.startswith(where) for f in found)


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
