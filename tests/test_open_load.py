"""Open load: arrivals on a schedule, latency from the scheduled start, late starts, the knee.

No test here reads the wall clock for its assertions: records carry their own times."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from bench.analysing.levels import knees, per_level
from bench.files.run_dir import Point
from bench.measuring import sweep
from bench.measuring.child import summarize
from bench.measuring.monitor import TreeUsage
from bench.measuring.point import PointResult, PointSpec
from bench.measuring.sweep import Planned, SweepConfig
from models import MODELS
from models.load import Tally, Window, arrivals
from models.workload import OK, Verifier, draw_job
from tests.conftest import TINY, TINY_CALIBRATION, histogram_of


def test_poisson_arrivals_have_the_asked_mean_rate() -> None:
    times = arrivals(100.0, 100.0, "poisson", seed=1)
    assert len(times) == pytest.approx(10_000, rel=0.03)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) > 3 * min(gaps)  # irregular, unlike constant arrivals
    assert arrivals(100.0, 100.0, "poisson", seed=1) == times  # the same in every process


def test_constant_arrivals_are_evenly_spaced() -> None:
    assert arrivals(4.0, 1.0, "constant", seed=1) == (0.0, 0.25, 0.5, 0.75)


# Jobs due every 10 ms from t=0; the window is 0.1 s to 1.1 s (the start is at t=0).
WINDOW = Window(
    TINY,
    TINY_CALIBRATION,
    3,
    1,
    0.1,
    1.0,
    arrivals=arrivals(100.0, 1.1, "constant", seed=3),
)


def served_one_at_a_time(service_s: dict[int, float]) -> Tally:
    """What one server makes of the schedule: each job starts when it is due or when the last
    one ends, whichever is later, and takes 5 ms unless `service_s` says otherwise; it takes
    each job as it is free."""
    assert WINDOW.arrivals is not None
    verifier, tally, free_s = Verifier(), Tally(), 0.0
    for index, due_s in enumerate(WINDOW.arrivals):
        tally.taken_s[index] = free_s
        started_s = max(due_s, free_s)
        free_s = started_s + service_s.get(index, 0.005)
        job = draw_job(TINY, TINY_CALIBRATION, 3, index)
        tally.records.append((job, due_s, started_s, free_s, verifier.expected(job), OK))
    return tally


def summary_of(tally: Tally) -> PointResult:
    return summarize(WINDOW, tally, TreeUsage(started_s=0.0), 10.0)


def test_a_stall_shows_in_latency_from_the_schedule_not_in_service_time() -> None:
    smooth = summary_of(served_one_at_a_time({}))
    stalled = summary_of(served_one_at_a_time({50: 0.3}))  # one job takes 300 ms
    latency = stalled.histogram
    service = stalled.service_histogram
    queue = stalled.queue_histogram
    # The ~30 jobs due during the stall waited for it: a tenth of the window's 100 jobs.
    assert stalled.jobs == smooth.jobs == 100
    assert latency.percentile(90) > 100.0
    assert smooth.histogram.percentile(90) == pytest.approx(5.0, rel=0.01)
    assert service.percentile(90) == pytest.approx(5.0, rel=0.01)  # only one job was slow
    assert queue.percentile(90) > 100.0
    assert stalled.late_starts == 0  # queued behind the stall, not started late


def test_late_starts_count_jobs_that_waited_in_a_users_hands() -> None:
    tally = served_one_at_a_time({})
    tally.records = [
        (j, d, s + 0.005, e + 0.005, c, o) if j.index in (20, 40) else (j, d, s, e, c, o)
        for j, d, s, e, c, o in tally.records
    ]
    assert summary_of(tally).late_starts == 2


def test_jobs_due_after_the_window_are_not_taken() -> None:
    window = WINDOW.start(at_s=0.0)
    assert window.arrivals is not None
    last = max(i for i, at in enumerate(window.arrivals) if at < window.stop_s)
    assert window.job(last + 1) is None
    assert window.due_s(7, now_s=123.0) == pytest.approx(0.07)


@pytest.mark.parametrize("model", ["sync", "threads", "asyncio", "trio"])
def test_models_start_each_job_when_it_is_due(model: str) -> None:
    window = dataclasses.replace(
        WINDOW,
        concurrency=4,
        warmup_s=0.0,
        duration_s=0.2,
        arrivals=arrivals(200.0, 0.2, "constant", 3),
    )
    tally = MODELS[model].runner()(dataclasses.replace(window, keep=True))
    tally.fold(window, 0.0, edges=(0.0, math.inf))
    assert tally.kept is not None
    records = tally.kept.records
    assert sorted(r.job_index for r in records) == list(range(40))
    started_s = min(r.submitted_s for r in records)  # job 0 is due at the start
    for r in records:
        assert r.submitted_s == pytest.approx(started_s + r.job_index / 200.0)
        assert r.submitted_s <= r.started_s <= r.ended_s


@pytest.mark.parametrize("capacity", [300.0, 5000.0])  # below and above one user's pace
def test_auto_search_brackets_then_bisects_to_the_knee(capacity: float) -> None:
    config = SweepConfig(
        scenario=TINY,
        models=("asyncio",),
        concurrency=(8,),
        warmup_s=0.0,
        duration_s=1.0,
        seed=0,
        max_processes=4,
        max_threads=4,
        load="open",
        slo_ms=100.0,
        repeat=3,  # a search is not repeated: its probes would not line up
    )
    offered: list[float] = []

    def fake_measure(i: int, n: int, item: Planned) -> Point:
        rate = item.spec.rate
        assert rate is not None
        offered.append(rate)
        p99 = 10.0 if rate <= capacity else 1000.0
        row = {"status": "ok", "latency_p99_ms": math.nan, "errors": 0, "jobs": 100}
        # 100 jobs: too few for a reported p99, enough for the search to steer by.
        return Point(row, histogram_of([p99] * 100))

    sweep._search_knees(config, TINY_CALIBRATION, 2, fake_measure)
    assert offered[0] == pytest.approx(1000.0 / TINY.critical_path_ms(), rel=1e-3)
    assert len(offered) == len(set(offered))  # one search: no rate offered twice
    best = max(r for r in offered if r <= capacity)
    assert capacity / 1.2 <= best <= capacity  # bisection closes in on the knee


def test_knee_is_the_highest_rate_within_the_target() -> None:
    base = {"model": "asyncio", "load": "open", "concurrency": 8, "repeat": 1, "reason": ""}
    rows = [
        base | {"rate": 100.0, "status": "ok", "latency_p99_ms": 20.0},
        base | {"rate": 200.0, "status": "ok", "latency_p99_ms": 40.0},
        base | {"rate": 400.0, "status": "ok", "latency_p99_ms": 900.0},
        base | {"rate": 800.0, "status": "failed", "latency_p99_ms": float("nan")},
    ]
    import pandas as pd

    from bench.files.run_dir import POINT_COLUMNS

    frame = pd.DataFrame(
        [
            dict.fromkeys(POINT_COLUMNS, 1.0) | {"warning": "", "errors": 0, "jobs": 100} | r
            for r in rows
        ]
    )
    assert knees(per_level(frame), slo_ms=100.0) == {("asyncio", 8): 200.0}


def test_spec_carries_the_rate_to_the_point() -> None:
    spec = PointSpec(
        "asyncio", TINY, TINY_CALIBRATION, 8, 1, 0, 0.0, 1.0, rate=50.0, arrivals="poisson"
    )
    assert '"rate": 50.0' in spec.to_json() and '"arrivals": "poisson"' in spec.to_json()
