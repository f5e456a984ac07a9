"""Exports other tools read: each point's latency as HdrHistogram blobs and percentile
distributions, read back by `hdrh`; a run's throughput as a pyperf suite, read by pyperf."""

from __future__ import annotations

import subprocess
import sys

import pyperf
import pytest
from hdrh.log import HistogramLogReader

from bench import api
from bench.cli import main
from bench.files.exports import tag
from bench.files.results import Results


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """A small real run: two models, two levels, two rounds."""
    out = tmp_path_factory.mktemp("results")
    return api.run(
        "io-bound",
        ["sync", "asyncio"],
        [1, 2],
        warmup_s=0.0,
        duration_s=0.3,
        out=out,
        repeat=2,
        transport="sleep",
    )


def test_every_points_histogram_reads_back_through_hdrh(run: Results) -> None:
    assert main(["export", str(run.run_dir)]) == 0
    ours = {tag(key): h for key, h in run.histograms().items() if h.total}
    reader = HistogramLogReader(str(run.run_dir / "latency.hlog"), None)
    read = {}
    while (histogram := reader.get_next_interval_histogram()) is not None:
        read[histogram.get_tag()] = histogram
    reader.close()
    assert set(read) == set(ours) and len(read) == 8
    for name, histogram in read.items():
        assert histogram.get_total_count() == ours[name].total
        for percent in (50.0, 90.0, 100.0):  # in microseconds, within both histograms' error
            assert histogram.get_value_at_percentile(percent) == pytest.approx(
                ours[name].percentile(percent) * 1000.0, rel=0.003
            )
    distributions = sorted((run.run_dir / "hgrm").glob("*.hgrm"))
    assert len(distributions) == 8
    assert "Value     Percentile TotalCount 1/(1-Percentile)" in distributions[0].read_text()


def test_the_pyperf_suite_reads_back_and_compares(run: Results) -> None:
    assert main(["export", str(run.run_dir), "--format", "pyperf"]) == 0
    path = run.run_dir / "pyperf.json"
    suite = pyperf.BenchmarkSuite.load(str(path))
    assert sorted(suite.get_benchmark_names()) == sorted(
        f"{m} N={n}" for m in ("sync", "asyncio") for n in (1, 2)
    )
    ok = run.points[run.points["status"] == "ok"]
    first = ok[(ok["model"] == "asyncio") & (ok["concurrency"] == 2)]
    assert sorted(suite.get_benchmark("asyncio N=2").get_values()) == pytest.approx(
        sorted(1.0 / first["throughput"])
    )
    for command in (["compare_to", str(path), str(path)], ["hist", str(path)]):
        done = subprocess.run(
            [sys.executable, "-m", "pyperf", *command], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr


def test_an_unknown_format_is_one_line(run: Results, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run.run_dir), "--format", "csv"]) == 2
    assert "unknown export format 'csv'; choose from: hdrh, pyperf" in capsys.readouterr().err
