"""The suite run from inside a user's project, whose own `models.py` and `bench.py` (as every
Django or FastAPI project has) must not shadow the suite's packages in any of its processes."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.version import __version__

ROOT = Path(__file__).parent.parent
SHADOW = 'raise ImportError("the project\'s own {name}.py was imported")\n'
# Every kind of process a run starts: the point process, forkserver workers (processes), the
# latency service (tcp), the micro-benchmarks' interpreter.
RUN = ["run", "--quick", "--models", "sync,asyncio,processes", "--concurrency", "2",
       "--warmup", "0", "--duration", "0.3", "--transport", "tcp"]  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project folder with modules named as the suite's packages."""
    for name in ("models", "bench"):
        (tmp_path / f"{name}.py").write_text(SHADOW.format(name=name))
    return tmp_path


def statuses(out: Path) -> list[str]:
    (points,) = out.glob("*/points.csv")
    with points.open() as f:
        return [row["status"] for row in csv.DictReader(f)]


def run_from(project: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # as a user's shell has it
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_python_m_bench_ignores_the_projects_models(project: Path) -> None:
    (project / "bench.py").unlink()  # `python -m bench` runs whatever `bench` the folder holds
    out = project / "results"
    done = run_from(project, [sys.executable, "-m", "bench", *RUN, "--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert statuses(out) == ["ok"] * 3


@pytest.mark.skipif(shutil.which("pyconcurrency-bench") is None, reason="not installed")
def test_the_console_script_ignores_the_projects_models_and_bench(project: Path) -> None:
    script = shutil.which("pyconcurrency-bench")
    assert script is not None
    out = project / "results"
    done = run_from(project, [script, *RUN, "--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert statuses(out) == ["ok"] * 3


def test_the_version_has_one_source() -> None:
    assert bench.__version__ == __version__
    declared = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))",
            "pyconcurrency-bench",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert declared == __version__
    assert (ROOT / "bench" / "py.typed").is_file() and (ROOT / "models" / "py.typed").is_file()
