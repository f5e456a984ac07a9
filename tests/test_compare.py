"""`bench compare` on synthetic runs: a real regression is caught, noise is not."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.analysing.compare import (
    Change,
    compare_runs,
    holm,
    percentile_p_value,
    welch_p_value,
)
from bench.analysing.levels import PointKey
from bench.analysing.thresholds import MIN_EFFECT
from bench.cli import main
from bench.errors import ResultsError
from bench.files.meta import RunMeta
from bench.files.results import load_results
from bench.files.run_dir import POINT_COLUMNS, Point, PointsWriter, write_meta
from models.recording import Histogram
from tests.conftest import TINY, assert_offline, histogram_of


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
            "interpreter": "3.11.7",
            "throughput": throughput,
            "latency_p99_ms": p99,
        }
        # 400 jobs (enough for a p99's interval) whose 99th percentile (nearest rank: the
        # 396th) is the given p99.
        writer.append(Point(row, histogram_of([p99 * (i + 1) / 396 for i in range(400)])))
    return path


def regressed(tmp_path: Path, p99_scale: float = 1.0) -> tuple[Path, Path]:
    """Runs A and B, B's throughput a fifth below A's and its p99 the same (within noise)."""
    a = make_run(tmp_path / "a", [100, 101, 99, 100], [p99_scale * p for p in (50, 51, 49, 50)])
    p99s_b = [p99_scale * p for p in (50.2, 50.9, 49.1, 50)]
    return a, make_run(tmp_path / "b", [80, 81, 79, 80.5], p99s_b)


def compare(a: Path, b: Path, min_effect: float = 0.05) -> list[Change]:
    run_a, run_b = load_results(a), load_results(b)
    effects = dict.fromkeys(MIN_EFFECT, min_effect)
    return compare_runs(run_a.points, run_b.points, effects, run_a.histograms(), run_b.histograms())


def test_a_real_regression_is_significant(tmp_path: Path) -> None:
    a, b = regressed(tmp_path)
    changes = {c.metric: c for c in compare(a, b)}
    assert changes["throughput"].verdict == "worse"
    assert changes["throughput"].change == pytest.approx(-0.1975, abs=1e-3)
    assert changes["latency_p99_ms"].verdict == "no real change"
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 1
    assert main(["compare", str(a), str(b)]) == 0


def test_compare_json_gives_every_change_and_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = regressed(tmp_path)
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--json", "--fail-on-regression"]) == 1
    data = json.loads(capsys.readouterr().out)  # stdout holds the JSON and nothing else
    assert (data["a"], data["b"], data["regressions"]) == (str(a), str(b), 1)
    verdicts = {c["metric"]: c["verdict"] for c in data["changes"]}
    assert verdicts == {"throughput": "worse", "latency_p99_ms": "no real change"}


def test_noise_is_not_a_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path / "a", [100, 104, 96, 101], [50, 55, 45, 52])
    b = make_run(tmp_path / "b", [103, 97, 100, 99], [53, 47, 51, 49])
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert out.count("no real change") == 2


def test_small_significant_change_below_min_effect_is_not_real(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [100.0, 100.1, 99.9], [50, 50, 50])
    b = make_run(tmp_path / "b", [98.0, 98.1, 97.9], [50, 50, 50])
    (throughput, _) = compare(a, b)
    assert throughput.p_value < 0.05
    assert throughput.verdict == "no real change"
    (strict, _) = compare(a, b, 0.01)
    assert strict.verdict == "worse"


def test_single_repeats_decide_the_p99_on_their_jobs_but_not_throughput(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [100], [50])
    b = make_run(tmp_path / "b", [50], [90])
    verdicts = {c.metric: c.verdict for c in compare(a, b)}
    assert verdicts == {"throughput": "too few repeats", "latency_p99_ms": "worse"}


def test_runs_with_nothing_in_common_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "a", [100, 101], [50, 51])
    b = make_run(tmp_path / "b", [100, 101], [50, 51])
    points = (b / "points.csv").read_text().replace("asyncio", "trio")
    (b / "points.csv").write_text(points)
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: no model and level was measured ok in both runs")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("x", r"'x' is not a number"),
        ("latency=5", r"unknown metric 'latency'; choose from: throughput, p99"),
        ("p99=-1", r"-1 for latency_p99_ms is not valid"),
    ],
)
def test_a_bad_min_effect_is_one_line(
    flag: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "a", [100, 101], [50, 51])
    assert main(["compare", str(a), str(a), "--min-effect", flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and re.search(message, err), err


def test_runs_of_different_scenarios_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "a", [100], [50], name="io-bound")
    b = make_run(tmp_path / "b", [100], [50], name="mixed")
    assert main(["compare", str(a), str(b)]) == 2
    assert "different scenarios ('io-bound' and 'mixed')" in capsys.readouterr().err


def test_welch_handles_identical_and_nearly_identical_samples() -> None:
    assert welch_p_value([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p_value([1.0, 1.0], [2.0, 2.0]) == 0.0
    # scipy warns of precision loss here; warnings are errors in the tests, so none escapes.
    assert 0.0 <= welch_p_value([1.0, 1.0, 1.0 + 1e-15], [1.0, 1.0, 1.0]) <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(math.nan)), min_size=1, max_size=12))
def test_holm_adjusts_upwards_in_order_and_keeps_untested_ones_out(p_values: list[float]) -> None:
    adjusted = holm(p_values)
    for raw, adj in zip(p_values, adjusted, strict=True):
        assert math.isnan(raw) == math.isnan(adj)
        assert math.isnan(raw) or raw <= adj <= 1.0
    order = sorted((p, a) for p, a in zip(p_values, adjusted, strict=True) if not math.isnan(p))
    assert [a for _, a in order] == sorted(a for _, a in order)
    tested = [p for p in p_values if not math.isnan(p)]
    if tested:
        assert min(a for a in adjusted if not math.isnan(a)) == min(1.0, len(tested) * min(tested))


def test_the_percentile_test_sees_a_shifted_tail_and_not_noise() -> None:
    rng = np.random.default_rng(3)
    same_a = histogram_of(list(rng.lognormal(3.0, 0.5, 2000)))
    same_b = histogram_of(list(rng.lognormal(3.0, 0.5, 2000)))
    slower = histogram_of(list(rng.lognormal(3.0, 0.5, 2000) * 1.3))
    assert percentile_p_value(same_a, same_b, 99) > 0.05
    assert percentile_p_value(same_a, slower, 99) < 0.01
    assert math.isnan(percentile_p_value(same_a, Histogram(), 99))


def test_a_a_tables_raise_a_false_alarm_in_at_most_5_percent_of_compares() -> None:
    # Two runs of one configuration: 2 models x 2 levels x 2 metrics, 3 repeats of 400 jobs
    # each, every value drawn from the same distributions. Seeded: the count is fixed.
    rng = np.random.default_rng(11)
    alarms = 0
    compares = 200
    for _ in range(compares):
        runs = []
        for _side in "ab":
            rows: list[dict[str, object]] = []
            latency: dict[PointKey, Histogram] = {}
            for model, level, repeat in itertools.product(
                ("asyncio", "threads"), (8, 64), (1, 2, 3)
            ):
                jobs = rng.lognormal(3.0, 0.6, 400) * (1 + level / 100)
                rows.append(
                    {"model": model, "concurrency": level, "rate": math.nan, "repeat": repeat,
                     "interpreter": "3.11.7", "status": "ok", "scenario": "io-bound",
                     "throughput": rng.normal(100.0 * level, 4.0 * level),
                     "latency_p99_ms": float(np.percentile(jobs, 99))}
                )  # fmt: skip
                latency[(model, "3.11.7", level, None, repeat)] = histogram_of(list(jobs))
            runs.append((pd.DataFrame(rows), latency))
        (points_a, latency_a), (points_b, latency_b) = runs
        changes = compare_runs(
            points_a, points_b, dict.fromkeys(MIN_EFFECT, 0.0), latency_a, latency_b
        )
        alarms += any(c.verdict in ("better", "worse") for c in changes)
    assert alarms / compares <= 0.05


def test_open_runs_are_compared_rate_by_rate(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [100, 101, 99], [50, 51, 49], rates=(100.0, 200.0))
    b = make_run(tmp_path / "b", [100, 101, 99], [50, 51, 49], rates=(100.0, 200.0))
    changes = compare(a, b)
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


def test_compare_writes_a_page_of_both_runs_and_their_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = regressed(tmp_path, p99_scale=0.1)  # p99s within the verdict's target
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"page: {b / 'compare.html'}"
    page = (b / "compare.html").read_text()
    assert "Choose asyncio: 100.0 jobs/s" in page and "Choose asyncio: 80.2 jobs/s" in page
    runs = page.split("<section id='runs'>")[1].split("</section>")[0]
    assert runs.index(str(a)) < runs.index(str(b))  # A, the baseline, on the left
    changes = page.split("<section id='changes'>")[1].split("</section>")[0]
    assert changes.count("<tr class='worse'>") == 1  # throughput, the regression
    assert "-19.8%" in changes and "no real change" in changes
    levels = page.split("<section id='levels'>")[1].split("</section>")[0]
    assert ">100<" in levels and ">80.2<" in levels
    # Self-contained: it opens offline.
    assert_offline(page)


def test_the_page_goes_where_html_says_and_json_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "a", [100, 101], [50, 51])
    b = make_run(tmp_path / "b", [100, 102], [50, 52])
    page = tmp_path / "pages" / "a-b.html"  # its folder does not exist yet
    assert main(["compare", str(a), str(b), "--html", str(page)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"page: {page}"
    assert page.is_file() and not (b / "compare.html").exists()
    assert main(["compare", str(a), str(b), "--json", "--html", str(page.parent)]) == 0
    data = json.loads(capsys.readouterr().out)  # the path in the JSON, nothing printed after
    assert data["html"] == str(page.parent / "compare.html")
    assert (page.parent / "compare.html").is_file()


def test_an_unwritable_html_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "a", [100, 101], [50, 51])
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["compare", str(a), str(a), "--html", str(blocker / "sub" / "c.html")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"bench: error: cannot write results to '{blocker / 'sub'}'")
    assert "pass --html with a directory you can write" in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_an_open_run_has_no_verdict_and_a_level_one_run_lacks_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run(tmp_path / "a", [100, 101, 99], [50, 51, 49], rates=(100.0,))
    b = make_run(tmp_path / "b", [100, 101, 99], [50, 51, 49], rates=(100.0, 200.0))
    for run in (a, b):
        meta = json.loads((run / "meta.json").read_text())
        meta["config"]["load"] = "open"
        (run / "meta.json").write_text(json.dumps(meta))
    assert main(["compare", str(a), str(b)]) == 0
    page = (b / "compare.html").read_text()
    assert page.count("No verdict: the run offered an open load") == 2
    levels = page.split("<section id='levels'>")[1].split("</section>")[0]
    assert "<tr class='missing'>" in levels and "not in A" in levels


def test_user_text_on_the_page_is_escaped(tmp_path: Path) -> None:
    name = "<script>alert(1)</script>"
    runs = [make_run(tmp_path / f"<i>{side}", [100, 101], [50, 51], name=name) for side in "ab"]
    for run in runs:
        for file in ("points.csv", "histograms.jsonl"):
            (run / file).write_text((run / file).read_text().replace("asyncio", "<b>model"))
        meta = json.loads((run / "meta.json").read_text())
        meta["scenario"]["description"] = 'a "quoted" <u>text</u> & more'
        (run / "meta.json").write_text(json.dumps(meta))
    assert main(["compare", *map(str, runs)]) == 0
    page = (runs[1] / "compare.html").read_text()
    assert "<script>alert" not in page and "<b>model" not in page and "<i>a" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;model" in page and "&lt;i&gt;b" in page
    assert "&lt;u&gt;text&lt;/u&gt; &amp; more" in page
