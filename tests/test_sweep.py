"""The sweep survives bad points: a hang or a crash fails that point, the rest still run."""

from __future__ import annotations

import csv
import dataclasses
import math
import threading
from pathlib import Path

import pytest

from bench import api
from bench.files.run_dir import Point
from bench.measuring import sweep
from bench.measuring.point import PointResult
from bench.measuring.service import LocalService
from bench.measuring.sweep import SweepConfig, plan_points, run_sweep
from models.workload import Calibration, Dist, IoStep, Scenario, Stage
from tests.conftest import TINY, TINY_CALIBRATION, histogram_of

HANGS = Scenario(
    "hangs",
    "One wait far longer than the point timeout.",
    (Stage("wait", (IoStep("wait", Dist("constant", 120_000.0)),)),),
)


def config(
    scenario: Scenario, models: tuple[str, ...], timeout_s: float | None = None
) -> SweepConfig:
    return SweepConfig(
        scenario=scenario,
        models=models,
        concurrency=(2,),
        warmup_s=0.0,
        duration_s=0.3,
        seed=0,
        max_processes=4,
        max_threads=4,
        timeout_s=timeout_s,
    )


def test_hung_point_fails_with_reason_and_the_sweep_goes_on() -> None:
    points = run_sweep(config(HANGS, ("asyncio",), timeout_s=3.0), TINY_CALIBRATION, 2)
    (point,) = points
    assert point.row["status"] == "failed"
    assert "timed out after 3 s" in point.row["reason"]
    after = run_sweep(config(TINY, ("asyncio",)), TINY_CALIBRATION, 2)
    assert after[0].row["status"] == "ok"


def test_crashed_point_fails_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_plan = sweep.plan_points

    def plan_with_a_crash(cfg: SweepConfig, calibration: Calibration) -> list[sweep.Planned]:
        planned = real_plan(cfg, calibration)
        crash = dataclasses.replace(planned[0].spec, model="nonexistent")
        return [sweep.Planned(crash), *planned]

    monkeypatch.setattr(sweep, "plan_points", plan_with_a_crash)
    points = run_sweep(config(TINY, ("sync",)), TINY_CALIBRATION, 2)
    assert [p.row["status"] for p in points] == ["failed", "ok"]
    assert "exited with status 1: KeyError: 'nonexistent'" in points[0].row["reason"]


def test_points_above_a_cap_are_skipped_with_the_flag_to_raise_it() -> None:
    cfg = SweepConfig(TINY, ("threads", "processes", "trio"), (2, 8), 0.0, 0.3, 0, 4, 2)
    skipped = {
        (p.spec.model, p.spec.concurrency): p.skip_reason
        for p in plan_points(cfg, TINY_CALIBRATION)
        if p.skip_reason
    }
    assert skipped == {
        ("threads", 8): "N=8 is above the threads cap of 2; raise it with --max-threads",
        ("processes", 8): "N=8 is above the processes cap of 4; raise it with --max-processes",
    }


def test_each_point_is_on_disk_when_it_finishes(tmp_path: Path) -> None:
    rows_seen: list[int] = []

    def count_rows(point: Point) -> None:
        (run_dir,) = tmp_path.iterdir()
        with (run_dir / "points.csv").open() as f:
            rows_seen.append(len(list(csv.DictReader(f))))

    results = api.run(
        "io-bound",
        ["sync", "asyncio"],
        [1, 2],
        warmup_s=0.0,
        duration_s=0.3,
        out=tmp_path,
        repeat=1,
        progress=sweep.Progress(on_point=count_rows),
    )
    assert rows_seen == [1, 2, 3, 4]
    assert list(results.points["status"]) == ["ok"] * 4


def summary_of(latencies_ms: list[float], errors: int = 0) -> PointResult:
    return PointResult(
        submitted=len(latencies_ms) + errors,
        completed=len(latencies_ms),
        jobs=len(latencies_ms) + errors,
        ok=len(latencies_ms),
        served=len(latencies_ms),
        throughput_error=0.05,
        edge_n=0.0,
        failed=0,
        timeouts=0,
        errors=errors,
        retries=0,
        elapsed_s=1.0,
        warmup_s=0.0,
        steady=True,
        drain_s=0.0,
        background_drain_s=math.nan,
        cpu_s=0.5,
        service_cpu_s=math.nan,
        ctx_switches=10,
        rss_peak_mb=20.0,
        pss_peak_mb=15.0,
        late_starts=0,
        unserved=0,
        histogram=histogram_of(latencies_ms),
        service_histogram=histogram_of(latencies_ms),
        queue_histogram=histogram_of([0.0] * len(latencies_ms)),
        error_examples=("ConnectionResetError: the service closed the connection",),
    )


def test_point_that_breaks_littles_law_is_flagged() -> None:
    spec = plan_points(config(TINY, ("asyncio",)), TINY_CALIBRATION)[0].spec  # N=2
    # 100 jobs/s with 10 ms mean latency is 1 job in flight, not 2.
    point = sweep._measured(config(TINY, ("asyncio",)), spec, 2, summary_of([10.0] * 100), "")
    assert point.row["status"] == "ok"
    assert "Little's law gives 1 jobs in flight, not N=2" in point.row["warning"]
    assert "caught a transient, or the harness queued" in point.row["warning"]
    steady = sweep._measured(config(TINY, ("asyncio",)), spec, 2, summary_of([20.0] * 100), "")
    assert steady.row["warning"] == ""


def test_a_few_errors_are_counted_not_throughput() -> None:
    spec = plan_points(config(TINY, ("asyncio",)), TINY_CALIBRATION)[0].spec
    point = sweep._measured(config(TINY, ("asyncio",)), spec, 2, summary_of([20.0] * 1000, 5), "")
    assert point.row["status"] == "ok"
    assert point.row["throughput"] == 1000.0
    assert point.row["errors"] == 5
    assert "5 jobs ended in an error" in point.row["warning"]


def test_many_errors_fail_the_point_with_the_first_error() -> None:
    spec = plan_points(config(TINY, ("asyncio",)), TINY_CALIBRATION)[0].spec
    point = sweep._measured(config(TINY, ("asyncio",)), spec, 2, summary_of([20.0] * 100, 50), "")
    assert point.row["status"] == "failed"
    assert point.row["reason"] == (
        "50 of 150 jobs ended in an error; ConnectionResetError: the service closed the connection"
    )


CALLS = Scenario(
    "calls",
    "A 5 ms round trip per job.",
    (Stage("call", (IoStep("call", Dist("constant", 5.0), 10, 10),)),),
)


def test_a_service_killed_mid_point_fails_that_point_and_the_sweep_goes_on() -> None:
    tcp = dataclasses.replace(
        config(CALLS, ("asyncio",)), concurrency=(2, 3), duration_s=3.0, transport="tcp"
    )
    service = LocalService()

    def kill_during_the_first(i: int, n: int, spec: object) -> None:
        if i == 0:
            service.ensure()
            process = service.process
            assert process is not None
            threading.Timer(1.5, process.kill).start()

    try:
        points = run_sweep(tcp, TINY_CALIBRATION, 2, kill_during_the_first, service=service)
    finally:
        service.close()
    first, second = (p.row for p in points)
    assert first["status"] == "failed"
    assert "the latency service" in first["reason"]
    assert "died during the point" in first["reason"]
    assert second["status"] == "ok", second["reason"]  # started again for the next point
    assert second["errors"] == 0


def test_a_level_beyond_the_file_limit_is_skipped_with_how_to_raise_it() -> None:
    tcp = dataclasses.replace(config(CALLS, ("asyncio",)), concurrency=(10**7,), transport="tcp")
    (planned,) = plan_points(tcp, TINY_CALIBRATION)
    assert planned.skip_reason.startswith("N=10000000 needs about 10000064 open files")
    assert "ulimit -n 10000064" in planned.skip_reason
    sleeping = dataclasses.replace(tcp, transport="sleep")
    assert plan_points(sleeping, TINY_CALIBRATION)[0].skip_reason == ""
