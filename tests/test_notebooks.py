"""The notebooks run top to bottom on a real run, are committed without outputs, and the Python
API they stand on works inside a running event loop (as a notebook's cells do)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import bench
from bench.files.results import Results

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
# Generous: the study notebook runs three sweeps in one cell; a hung cell still ends the test.
CELL_TIMEOUT_S = 300


# The scenarios the notebooks that read a run are run on: the default, whose bound has every
# limit (success rate, a lock) in play, and the plain one.
SCENARIOS = ("ecommerce", "io-bound")
READERS = [p for p in NOTEBOOKS if "BENCH_RUN" in p.read_text()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Results]:
    """A tiny run of each scenario, made from inside a running event loop as a notebook cell
    would make it.

    Shared by the notebooks that read a run and by the event-loop test below: each run costs
    several seconds (calibration and the runtimes' micro-benchmarks come first).
    """

    async def in_a_cell(scenario: str) -> Results:
        asyncio.get_running_loop()  # raises unless a loop runs, as in the kernel
        # The default scenario as the default run makes it (a budget, windows of its own);
        # the other with fixed windows.
        windows = {"budget_s": 20.0} if scenario == "ecommerce" else {
            "warmup_s": 0.0, "duration_s": 0.3
        }  # fmt: skip
        return bench.run(
            scenario=scenario,
            models=["sync", "asyncio"],
            concurrency=[1, 2],
            repeat=1,
            out=tmp_path_factory.mktemp("results"),
            **windows,
        )

    return {scenario: asyncio.run(in_a_cell(scenario)) for scenario in SCENARIOS}


@pytest.fixture
def results(runs: dict[str, Results]) -> Results:
    """The io-bound run."""
    return runs["io-bound"]


def test_notebooks_are_found() -> None:
    """An empty glob would make the parametrized test below pass by running nothing."""
    assert len(NOTEBOOKS) >= 3
    assert len(READERS) >= 2


@pytest.mark.parametrize(
    ("path", "scenario"),
    [(p, s) for p in NOTEBOOKS for s in (SCENARIOS if p in READERS else SCENARIOS[:1])],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_notebook_runs_top_to_bottom(
    path: Path,
    scenario: str,
    runs: dict[str, Results],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every cell runs without an error, and every figure reaches the reader as an image."""
    # The kernel inherits this environment: the run to read, small sweeps, a scratch results dir.
    monkeypatch.setenv("BENCH_RUN", str(runs[scenario].run_dir))
    monkeypatch.setenv("BENCH_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("BENCH_OUT", str(tmp_path / "results"))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        # Jupyter starts a notebook's kernel in the notebook's folder; do the same.
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert any("image/png" in output.get("data", {}) for output in outputs), (
        f"{path.name} showed no figure as an image: is matplotlib's inline backend active?"
    )
    stderr = [output["text"] for output in outputs if output.get("name") == "stderr"]
    assert not stderr, f"{path.name} wrote to stderr (a warning the reader would see): {stderr}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    """Outputs belong to the reader's machine, not to the repository."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name}, cell {index}: strip its outputs"
        assert cell.execution_count is None, f"{path.name}, cell {index}: reset execution_count"


def test_run_inside_a_running_event_loop(results: Results) -> None:
    """A notebook's cells run inside the kernel's event loop: `bench.run` must not need its own."""
    points = results.points
    assert list(dict.fromkeys(points["model"])) == ["sync", "asyncio"]
    assert sorted(set(points["concurrency"])) == [1, 2]
    assert (points["status"] == "ok").all()
    assert (points["jobs"] > 0).all()
    assert (points["errors"] == 0).all()
    assert (results.run_dir / "report.html").is_file()
    assert bench.load(results.run_dir).points.equals(points)
