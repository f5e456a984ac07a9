"""The steady-state detector, the window's stopping rule, the budget planner and the ledger
the model's processes publish to: on synthetic series whose answer is known."""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.analysing.budget import Need, Plan, budget_for, plan_windows
from bench.analysing.steady import (
    Goal,
    Tick,
    has_enough,
    is_steady,
    throughput_ci,
    throughput_error,
)
from models.load import Ledger, Tally, Window
from tests.conftest import TINY, TINY_CALIBRATION

TICK_S = 0.1


def closed_series(n: int, throughput: float, latency_s: float, seconds: float) -> list[Tick]:
    """Ticks of a closed load in steady state: N = throughput x latency."""
    return [
        Tick(i * TICK_S, throughput * i * TICK_S, throughput * i * TICK_S * latency_s)
        for i in range(round(seconds / TICK_S) + 1)
    ]


def one_server(n: int, service_s: float, seconds: float) -> list[Tick]:
    """`sync` at N: one server, all N users submitting at 0; job k (1-based) ends at k x S,
    after waiting for the k - 1 before it, and later jobs wait for the N - 1 others."""
    ticks = []
    for i in range(round(seconds / TICK_S) + 1):
        at_s = i * TICK_S
        ended = math.floor(at_s / service_s + 1e-9)
        latency_s = sum(min(k, n) * service_s for k in range(1, ended + 1))
        ticks.append(Tick(at_s, ended, latency_s))
    return ticks


def test_a_steady_closed_load_is_steady() -> None:
    assert is_steady(closed_series(8, 100.0, 0.08, 2.0), 8, since_s=0.0)


def test_one_server_is_steady_only_once_its_queue_has_filled() -> None:
    # N=32, S=0.1 s: the first 32 jobs wait less than N x S; from job 33 on (3.2 s) every job
    # waits for 32. The detector needs 16 jobs (N/2), mostly of the second kind: by 4.8 s all
    # of them are; never during the transient.
    ticks = one_server(32, 0.1, 8.0)
    first = next(i for i in range(len(ticks)) if is_steady(ticks[: i + 1], 32, since_s=0.0))
    assert 3.2 < ticks[first].at_s <= 4.8 + 1e-9


def test_one_long_job_cannot_carry_a_short_span() -> None:
    # N=128 still filling: 200 jobs/s at 0.3 s (60 in flight). Then ten jobs end in 0.05 s,
    # one of them after 5.5 s: over those ten alone Little's law would give 128.
    ticks = closed_series(128, 200.0, 0.3, 3.0)
    last = ticks[-1]
    skewed = [*ticks, Tick(last.at_s + 0.05, last.jobs + 10, last.latency_s + 9 * 0.1 + 5.5)]
    assert (skewed[-1].latency_s - last.latency_s) / 0.05 == pytest.approx(128)
    assert not is_steady(skewed, 128, since_s=0.0)


def test_a_load_whose_latency_still_grows_is_not_steady() -> None:
    # Throughput steady, latency rising 50% over the span: Little's law gives less than N.
    ticks = [Tick(i * TICK_S, 10.0 * i, 10.0 * i * 0.1 * (1 + i / 20)) for i in range(21)]
    assert not is_steady(ticks, 2, since_s=0.0)


def test_nothing_is_steady_before_the_last_user_joins() -> None:
    assert not is_steady(closed_series(8, 100.0, 0.08, 2.0), 8, since_s=1.95)


def test_throughput_interval_narrows_with_a_steady_rate_and_is_infinite_without_ticks() -> None:
    assert throughput_ci(closed_series(8, 100.0, 0.08, 0.2)) == math.inf  # 2 ticks: 2 batches
    assert throughput_ci(closed_series(8, 100.0, 0.08, 3.0)) == pytest.approx(0.0, abs=1e-9)
    wobbly = [Tick(i * TICK_S, 10.0 * i + (3 if i % 2 else 0), 0.0) for i in range(31)]
    assert 0 < throughput_ci(wobbly) < math.inf


def test_a_window_closes_at_its_goal_or_its_cap() -> None:
    goal = Goal(jobs=100, throughput_ci=0.05, min_s=1.0, cap_s=5.0)
    assert not has_enough(closed_series(8, 100.0, 0.08, 0.5), goal)  # shorter than min_s
    assert has_enough(closed_series(8, 100.0, 0.08, 1.2), goal)  # 120 jobs, a steady rate
    assert not has_enough(closed_series(1, 10.0, 0.1, 4.0), goal)  # 40 jobs: too few
    assert has_enough(closed_series(1, 10.0, 0.1, 5.0), goal)  # ... until its cap


def total_s(plan: Plan, levels: list[Need], overhead_s: float) -> float:
    """The time a plan takes."""
    return sum(n.points * (overhead_s + n.warmup_s + plan.windows_s[n.key]) for n in levels)


needs = st.lists(
    st.builds(
        Need,
        key=st.integers(0, 10**6),
        points=st.integers(1, 5),
        jobs=st.integers(0, 2000),
        throughput=st.floats(0.1, 1e4),
        warmup_s=st.floats(0.0, 30.0),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda n: n.key,
)


@given(needs, st.floats(0.0, 3600.0), st.floats(0.0, 5.0), st.floats(0.1, 2.0))
def test_the_planner_never_plans_past_the_budget(
    levels: list[Need], left_s: float, overhead_s: float, shortest_s: float
) -> None:
    plan = plan_windows(levels, left_s, overhead_s, shortest_s)
    floor_s = sum(n.points * (overhead_s + n.warmup_s) for n in levels)
    assert all(w >= 0 for w in plan.windows_s.values())
    if left_s >= floor_s:  # what the points cost before any window is not the planner's
        assert total_s(plan, levels, overhead_s) <= left_s + 1e-6
    for need in levels:  # a funded level gets at least the window its jobs need
        if need.key in plan.funded:
            assert plan.windows_s[need.key] >= need.window_s(shortest_s) - 1e-9


@given(needs, st.floats(0.0, 5.0), st.floats(0.1, 2.0))
def test_the_advised_budget_funds_every_level(
    levels: list[Need], overhead_s: float, shortest_s: float
) -> None:
    advice_s = budget_for(levels, overhead_s, shortest_s)
    plan = plan_windows(levels, advice_s * (1 + 1e-9) + 1e-9, overhead_s, shortest_s)
    assert plan.funded == {n.key for n in levels}


def test_the_cheapest_levels_are_funded_first() -> None:
    cheap = Need("cheap", points=3, jobs=368, throughput=400.0, warmup_s=0.5)
    dear = Need("dear", points=3, jobs=368, throughput=10.0, warmup_s=0.5)
    plan = plan_windows([dear, cheap], left_s=20.0, overhead_s=1.0, shortest_s=1.0)
    assert plan.funded == {"cheap"}
    assert total_s(plan, [dear, cheap], 1.0) == pytest.approx(20.0)


def _publish(path: str) -> None:
    Ledger(path).publish(3, 6.0)


def test_every_process_publishes_to_a_slot_of_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger")
    ledger = Ledger.create(path, 4)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_publish, args=(path,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert ledger.totals() == (9.0, 18.0)
    assert ledger.read(2) == 3  # slots taken


def test_a_fold_publishes_only_what_is_new(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger")
    ledger = Ledger.create(path, 1)
    window = Window(TINY, TINY_CALIBRATION, 3, 1, 0.0, 10.0, ledger=path).start()
    tally = Tally()
    tally.records.append((window.job_at(0), 0.0, 0.0, 2.0, 0, 0))
    tally.fold(window, 0.0)
    tally.records.append((window.job_at(1), 1.0, 1.0, 2.0, 0, 0))
    tally.fold(window, 1.0)
    assert ledger.totals() == (2.0, 3.0)


def test_a_level_already_bought_stays_bought_before_cheaper_ones() -> None:
    dear = Need("dear", points=1, jobs=184, throughput=10.0, warmup_s=0.5)  # 18.4 s
    cheap = Need("cheap", points=1, jobs=184, throughput=20.0, warmup_s=0.5)  # 9.2 s
    plan = plan_windows([dear, cheap], left_s=23.0, overhead_s=1.0, shortest_s=1.0)
    assert plan.funded == {"cheap"}
    kept = plan_windows([dear, cheap], 23.0, 1.0, 1.0, first={"dear"})
    assert kept.funded == {"dear"}


def test_a_window_too_short_for_its_jobs_has_an_unknown_error() -> None:
    # 1 s jobs in a 2 s window: fewer than three batches of two latencies each.
    assert throughput_error(closed_series(4, 4.0, 1.0, 2.0)) == (math.inf, 0)
    error, batches = throughput_error(closed_series(4, 40.0, 0.1, 2.0))
    assert batches == 10 and error == pytest.approx(0.0, abs=1e-9)
