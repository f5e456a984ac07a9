"""The bare loops and the overhead study: each model's reference runs, counts and is compared."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.analysing.overhead import COLUMNS as OVERHEAD_COLUMNS
from bench.cli import main
from bench.files.results import load_results
from bench.measuring.overhead import reference_level
from bench.measuring.point import PointSpec, measure_point
from bench.measuring.service import LocalService
from models import MODELS
from models.bare import trips, unfit
from models.scenarios import SCENARIOS
from models.workload import Dist, IoStep, Scenario, Stage
from tests.conftest import TINY_CALIBRATION

ROOT = Path(__file__).parent.parent
BARE = [name for name, model in MODELS.items() if model.bare is not None and model.available()]
# The waits of io-bound: no job can take less, so no user can end more jobs than this allows.
WAIT_S = SCENARIOS["io-bound"].critical_path_ms() / 1000.0


@pytest.fixture(scope="module")
def service() -> Iterator[LocalService]:
    running = LocalService()
    running.ensure()
    yield running
    running.close()


def test_every_one_machine_model_has_a_bare_loop_and_no_engine_has() -> None:
    for name, model in MODELS.items():  # a program in another language has no Python bare loop
        assert (model.bare is None) == (model.engine or model.language is not None), name


@pytest.mark.parametrize("transport", ["sleep", "tcp"])
@pytest.mark.parametrize("model", BARE)
def test_a_bare_loop_counts_its_jobs_in_the_window(
    model: str, transport: str, service: LocalService
) -> None:
    users, duration_s = 4, 0.6
    spec = PointSpec(
        model, SCENARIOS["io-bound"], TINY_CALIBRATION, users, 1, 0, 0.3, duration_s, bare=True
    )
    if transport == "tcp":
        spec = spec.with_service(service.address, service.pid)
    measured = measure_point(spec, timeout_s=60)
    users = 1 if MODELS[model].one_at_a_time else users
    assert 0 < measured.served <= users * (measured.elapsed_s / WAIT_S + 1)
    assert measured.elapsed_s == pytest.approx(duration_s, abs=0.2)
    assert measured.cpu_s >= 0  # read (a quiet loop's may be under the clock's 10 ms tick)
    assert measured.histogram.total == 0  # a bare loop measures no latency: none is reported
    # The service's CPU is read on tcp (a few round trips may cost less than the clock's tick).
    assert math.isnan(measured.service_cpu_s) == (transport == "sleep")


def test_a_bare_loop_does_only_constant_waits_in_series() -> None:
    assert unfit(SCENARIOS["io-bound"]) == ""
    assert "is not one I/O wait" in unfit(SCENARIOS["ecommerce"])
    exponential = Scenario("x", "", (Stage("s", (IoStep("call", Dist("exponential", 5.0)),)),))
    assert "waits a exponential time" in unfit(exponential)
    flaky = IoStep("call", Dist("constant", 5.0), fail_rate=0.1)
    failing = Scenario("x", "", (Stage("s", (flaky,)),))
    assert "can fail" in unfit(failing)
    (trip,) = trips(SCENARIOS["io-bound"])
    assert trip.seconds == WAIT_S


def test_reference_levels_follow_the_registry() -> None:
    assert reference_level(MODELS["sync"]) == 1
    assert reference_level(MODELS["threads"]) == 256
    assert reference_level(MODELS["processes"]) == 16
    assert reference_level(MODELS["trio"]) == 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "dask"], "dask has no bare loop"),
        (["--models", "troi"], "unknown model 'troi'"),
        (["--transport", "udp"], "unknown transport 'udp'"),
        (["--repeat", "0"], "--repeat 0 is not positive"),
        (["--concurrency", "0"], "--concurrency 0 is not positive"),
        (["--concurrency", "1000"], "--concurrency 1000 is above the processes cap of 64"),
        (["--duration", "0"], "--duration 0.0 is not a valid duration"),
    ],
)
def test_bad_overhead_input_is_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["overhead", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1
    assert message in err, err
    assert list(tmp_path.iterdir()) == []


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench ...` as a user types it, output piped."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_overhead_command_end_to_end(tmp_path: Path) -> None:
    done = bench(
        *("overhead", "--models", "asyncio,threads", "--concurrency", "4", "--warmup", "0.2"),
        *("--duration", "0.5", "--repeat", "2", "--out", str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "overhead").iterdir()
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == OVERHEAD_COLUMNS
    assert len(rows) == 2 * 2 * 2  # models x transports x repeats
    for row in rows:
        assert row["status"] == "ok", row
        share = float(row["share"])
        assert share == pytest.approx(
            float(row["throughput"]) / float(row["bare_throughput"]), rel=1e-4
        )  # 6 digits in the file
        if row["transport"] == "tcp":
            assert float(row["bare_service_cpu_us_per_trip"]) >= 0  # read, if under a tick
        else:
            assert row["bare_service_cpu_us_per_trip"] == ""
    assert "asyncio" in done.stdout and "share" in done.stdout
    assert "latency service: " in done.stdout and "us of CPU per round trip" in done.stdout
    assert f"rows: {path}" in done.stdout


def test_a_run_can_include_the_study(tmp_path: Path) -> None:
    done = bench(
        *("run", "--scenario", "io-bound", "--models", "trio", "--concurrency", "4"),
        *("--warmup", "0.2", "--duration", "0.5", "--repeat", "1", "--transport", "sleep"),
        *("--overhead", "--quiet", "--out", str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr
    (run_dir,) = tmp_path.iterdir()
    results = load_results(run_dir)
    (row,) = results.overhead.to_dict("records")
    assert (row["model"], row["transport"], row["concurrency"]) == ("trio", "sleep", 1000)
    assert row["share"] > 0
    assert "<section id='overhead'>" in (run_dir / "report.html").read_text()
