"""`bench compare` on synthetic runs: a real regression is caught, noise is not."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from bench.analysing.compare import compare_runs, welch_p_value
from bench.analysing.stats import Histogram
from bench.cli import main
from bench.errors import ResultsError
from bench.files.meta import RunMeta
from bench.files.results import load_results
from bench.files.run_dir import POINT_COLUMNS, Point, PointsWriter, write_meta
from tests.conftest import TINY


def make_run(
    path: Path,
    throughputs: list[float],
    p99s: list[float],
    name: str = "tiny",
    rates: tuple[float | None, ...] = (None,),
) -> Path:
    path.mkdir()
    write_meta(path, RunMeta(dataclasses.replace(TINY, name=name), schema_version=1))
    writer = PointsWriter(path)
    for rate, (repeat, (throughput, p99)) in itertools.product(
        rates, enumerate(zip(throughputs, p99s, strict=True), start=1)
    ):
        row = dict.fromkeys(POINT_COLUMNS, 1.0) | {
            "model": "asyncio",
            "load": "closed" if rate is None else "open",
            "concurrency": 8,
            "rate": rate,
            "repeat": repeat,
            "status": "ok",
            "reason": "",
            "warning": "",
            "scenario": name,
            "transport": "sleep",
            "throughput": throughput,
            "latency_p99_ms": p99,
        }
        writer.append(Point(row, Histogram()))
    return path


def test_a_real_regression_is_significant(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [100, 101, 99, 100], [50, 51, 49, 50])
    b = make_run(tmp_path / "b", [80, 81, 79, 80.5], [50.2, 50.9, 49.1, 50])
    changes = {
        c.metric: c for c in compare_runs(load_results(a).points, load_results(b).points, 0.05)
    }
    assert changes["throughput"].verdict == "worse"
    assert changes["throughput"].change == pytest.approx(-0.1975, abs=1e-3)
    assert changes["latency_p99_ms"].verdict == "no real change"
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 1
    assert main(["compare", str(a), str(b)]) == 0


def test_noise_is_not_a_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path / "a", [100, 104, 96, 101], [50, 55, 45, 52])
    b = make_run(tmp_path / "b", [103, 97, 100, 99], [53, 47, 51, 49])
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert out.count("no real change") == 2


def test_small_significant_change_below_min_effect_is_not_real(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [100.0, 100.1, 99.9], [50, 50, 50])
    b = make_run(tmp_path / "b", [98.0, 98.1, 97.9], [50, 50, 50])
    (throughput, _) = compare_runs(load_results(a).points, load_results(b).points, 0.05)
    assert throughput.p_value < 0.05
    assert throughput.verdict == "no real change"
    (strict, _) = compare_runs(load_results(a).points, load_results(b).points, 0.01)
    assert strict.verdict == "worse"


def test_single_repeats_cannot_decide(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [100], [50])
    b = make_run(tmp_path / "b", [50], [90])
    assert {
        c.verdict for c in compare_runs(load_results(a).points, load_results(b).points, 0.05)
    } == {"too few repeats"}


def test_runs_of_different_scenarios_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "a", [100], [50], name="io-bound")
    b = make_run(tmp_path / "b", [100], [50], name="mixed")
    assert main(["compare", str(a), str(b)]) == 2
    assert "different scenarios ('io-bound' and 'mixed')" in capsys.readouterr().err


def test_welch_handles_identical_samples() -> None:
    assert welch_p_value([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p_value([1.0, 1.0], [2.0, 2.0]) == 0.0


def test_open_runs_are_compared_rate_by_rate(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [100, 101, 99], [50, 51, 49], rates=(100.0, 200.0))
    b = make_run(tmp_path / "b", [100, 101, 99], [50, 51, 49], rates=(100.0, 200.0))
    changes = compare_runs(load_results(a).points, load_results(b).points, 0.05)
    assert sorted((c.rate, c.metric) for c in changes) == [
        (100.0, "latency_p99_ms"),
        (100.0, "throughput"),
        (200.0, "latency_p99_ms"),
        (200.0, "throughput"),
    ]


def test_a_run_of_an_earlier_schema_loads_with_the_new_columns_empty(tmp_path: Path) -> None:
    run = make_run(tmp_path / "old", [100, 101], [50, 51])
    lines = (run / "points.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("interpreter", "late_starts")]
    (run / "points.csv").write_text(
        "\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n"
    )
    points = load_results(run).points
    assert list(points.columns) == list(POINT_COLUMNS)
    assert points["late_starts"].isna().all() and (points["interpreter"] == "").all()
    (run / "points.csv").write_text("model,status\nasyncio,ok\n")
    with pytest.raises(ResultsError, match="lacks columns: concurrency, repeat, throughput"):
        load_results(run)
