"""Across repeats: confidence intervals, variation, and the warning for an unstable level."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.analysing.findings import findings
from bench.analysing.levels import (
    client_costs,
    coefficient_of_variation,
    engine_floors,
    language_costs,
    mean_ci,
    per_level,
    twin_ratios,
)
from bench.analysing.verdict import decide, sentences
from bench.files.run_dir import POINT_COLUMNS

samples = st.lists(st.floats(min_value=1.0, max_value=1e5), min_size=2, max_size=30)


@given(samples)
def test_interval_contains_the_mean(values: list[float]) -> None:
    low, high = mean_ci(values)
    mean = sum(values) / len(values)
    assert low <= mean * (1 + 1e-9) and mean * (1 - 1e-9) <= high


def test_interval_matches_students_t() -> None:
    # mean 2, s = 1, n = 3: half width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321
    low, high = mean_ci([1.0, 2.0, 3.0])
    assert (low, high) == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-3)


def test_one_value_has_no_interval_or_variation() -> None:
    assert all(math.isnan(v) for v in mean_ci([5.0]))
    assert math.isnan(coefficient_of_variation([5.0]))


@given(samples, st.floats(min_value=0.1, max_value=100.0))
def test_variation_ignores_scale(values: list[float], factor: float) -> None:
    assert coefficient_of_variation([v * factor for v in values]) == pytest.approx(
        coefficient_of_variation(values), rel=1e-6, abs=1e-12
    )


def rows(throughputs: list[float], status: str = "ok") -> pd.DataFrame:
    base = dict.fromkeys(POINT_COLUMNS, 1.0) | {
        "model": "trio",
        "concurrency": 8,
        "warning": "",
        "errors": 0,
        "jobs": 500,
        "littles_n": 8.0,
        "service_cpu_util": 0.3,
        "load": "closed",
        "rate": math.nan,
        "late_starts": math.nan,
        "throughput_error": 0.02,
    }
    return pd.DataFrame(
        [
            base | {"repeat": i + 1, "throughput": t, "status": status, "reason": ""}
            for i, t in enumerate(throughputs)
        ]
    )


def test_unstable_level_is_flagged() -> None:
    (level,) = per_level(rows([100.0, 130.0, 80.0])).to_dict("records")
    assert level["repeats"] == 3
    assert level["throughput"] == 100.0
    assert level["warning"].startswith("throughput varied 24% between repeats")
    (steady,) = per_level(rows([100.0, 101.0, 99.0])).to_dict("records")
    assert steady["warning"] == ""
    # Short windows of a heavy-tailed job: each repeat's own interval is +-40%, so a 24% spread
    # between them is their sampling noise, not the machine.
    noisy = rows([100.0, 130.0, 80.0]).assign(throughput_error=0.4)
    assert per_level(noisy).iloc[0]["warning"] == ""


def test_level_without_an_ok_repeat_keeps_its_status() -> None:
    (level,) = per_level(rows([math.nan], status="failed")).to_dict("records")
    assert level["status"] == "failed"
    assert level["repeats"] == 0


def test_level_warnings_come_from_the_medians_once() -> None:
    points = rows([100.0, 101.0, 99.0])
    points["jobs"] = [40, 50, 60]
    points.loc[1, "errors"] = 2
    (level,) = per_level(points).to_dict("records")
    assert level["warning"] == ("2 jobs ended in an error (a lost connection or a wrong result)")


def test_a_busy_service_is_flagged_as_the_possible_limit() -> None:
    busy = rows([100.0, 100.0, 100.0]).assign(service_cpu_util=0.95)
    (level,) = per_level(busy).to_dict("records")
    assert level["warning"].startswith("the latency service used 95% of a core")


def test_a_wrapped_model_is_set_beside_its_native_twin() -> None:
    native = rows([200.0]).assign(model="asyncio", latency_p99_ms=10.0)
    wrapped = rows([150.0]).assign(model="anyio-asyncio", latency_p99_ms=15.0)
    alone = rows([90.0]).assign(model="anyio-trio")  # its twin did not run: no ratio
    (ratio,) = twin_ratios(per_level(pd.concat([native, wrapped, alone]))).to_dict("records")
    assert ratio == {
        "model": "anyio-asyncio",
        "twin": "asyncio",
        "concurrency": 8,
        "throughput_ratio": 0.75,
        "p99_ratio": 1.5,
    }


def test_several_interpreters_name_each_model_per_interpreter() -> None:
    gil = rows([100.0]).assign(model="threads", interpreter="3.13.5")
    free = rows([180.0]).assign(model="threads", interpreter="3.13.5t")
    levels = per_level(pd.concat([gil, free]))
    assert list(levels["model"]) == ["threads @3.13.5", "threads @3.13.5t"]
    assert list(levels["throughput"]) == [100.0, 180.0]
    alone = per_level(gil)  # one interpreter: plain names
    assert list(alone["model"]) == ["threads"]


def test_an_http_stack_is_set_beside_its_model_over_tcp() -> None:
    tcp = rows([100.0]).assign(model="threads", cpu_util=0.1, latency_p99_ms=10.0)
    http = rows([80.0]).assign(model="threads+requests", cpu_util=0.4, latency_p99_ms=12.0)
    alone = rows([50.0]).assign(model="trio+httpx", cpu_util=0.5)  # no trio over tcp
    stack, lonely = client_costs(per_level(pd.concat([tcp, http, alone]))).to_dict("records")
    assert (stack.pop("model"), stack.pop("client")) == ("threads+requests", "requests")
    assert stack.pop("db_pool_wait_ms") == 1.0  # the level's median, whatever its stack
    assert stack == pytest.approx(
        {
            "concurrency": 8,
            "throughput": 80.0,
            "latency_p99_ms": 12.0,
            "cpu_ms_per_job": 5.0,  # 0.4 cores over 80 jobs/s
            "tcp_throughput": 100.0,
            "tcp_latency_p99_ms": 10.0,
            "tcp_cpu_ms_per_job": 1.0,
            "client_share": 0.8,
        }
    )
    assert lonely["model"] == "trio+httpx" and math.isnan(lonely["client_share"])
    (sentence,) = [s for s in findings(per_level(pd.concat([tcp, http])), 2) if "HTTP" in s]
    assert "threads+requests 80% at N=8 (5.00 ms of CPU a job against 1.00 over tcp)" in sentence
    cheaper = http.assign(cpu_util=0.07)  # less CPU a job than over tcp: noise, not a saving
    (sentence,) = [s for s in findings(per_level(pd.concat([tcp, cheaper])), 2) if "HTTP" in s]
    assert "threads+requests none measured at N=8" in sentence


def verdict_rows(
    model: str, throughputs: list[float], p99_ms: float, **fields: float
) -> pd.DataFrame:
    return rows(throughputs).assign(model=model, latency_p99_ms=p99_ms, **fields)


def test_the_verdict_names_a_clear_winner_and_what_limits_each_model() -> None:
    fast = verdict_rows("uvloop", [500.0, 510.0, 505.0], 40.0, cpu_util=0.97, efficiency=0.5)
    slow = verdict_rows("threads", [300.0, 310.0, 305.0], 45.0, cpu_util=0.3, efficiency=0.3)
    late = verdict_rows("trio", [900.0, 910.0, 905.0], 400.0, efficiency=0.95)  # over target
    verdict = decide(per_level(pd.concat([fast, slow, late])), 2, slo_ms=100.0)
    assert verdict.best is not None
    assert (verdict.best.model, verdict.best.concurrency) == ("uvloop", 8)
    assert verdict.best.ci_low < 505.0 < verdict.best.ci_high
    assert verdict.tied == ()  # threads' interval lies far below
    assert verdict.limits == {
        "uvloop": "one core full: its event loop runs every job's code and scheduling",
        "threads": "waiting or scheduling: 0.30 of 2 cores busy at N=8, 30% of the bound",
        "trio": "too few users: it kept up with the bound at N=8; a higher N serves more",
    }
    head = sentences(verdict)[0]
    assert head.startswith("Choose uvloop: 505.0 jobs/s (95% CI ")
    assert "at N=8 with p99 within 100 ms (p99 40.0 ms)." in head


def test_a_model_held_at_the_hottest_locks_rate_names_the_lock() -> None:
    held = verdict_rows("asyncio", [95.0, 96.0, 94.0], 40.0, efficiency=0.95, bound=100.0)
    verdict = decide(per_level(held), 2, slo_ms=100.0, lock_bound_per_s=100.0)
    assert verdict.limits == {
        "asyncio": "a lock: the hottest product's lock lets 100.0 jobs/s through, and it kept "
        "up with that at N=8"
    }
    users = decide(per_level(held), 2, slo_ms=100.0, lock_bound_per_s=400.0)  # not the lock
    assert users.limits["asyncio"].startswith("too few users")


def test_cores_shared_with_the_latency_service_are_named_as_full() -> None:
    full = verdict_rows("processes", [300.0], 40.0, cpu_util=1.65, efficiency=0.8)
    verdict = decide(per_level(full.assign(service_cpu_util=0.3)), 2, slo_ms=100.0)
    assert verdict.limits["processes"] == (
        "all 2 cores were busy: 1.65 with the jobs' work and 0.30 with the latency service on "
        "the same machine (--service moves it to another)"
    )
    spare = decide(per_level(full.assign(service_cpu_util=0.1)), 2, slo_ms=100.0)
    assert spare.limits["processes"].startswith("waiting or scheduling: 1.65 of 2 cores")


def test_a_limit_needing_an_unread_cpu_says_it_was_not_measured() -> None:
    late = verdict_rows("processes", [300.0], 40.0, cpu_util=math.nan, efficiency=0.6)
    verdict = decide(per_level(late), 2, slo_ms=100.0)
    assert verdict.limits["processes"].startswith("not measured: its CPU was not read at N=8")
    assert "nan" not in verdict.limits["processes"]


def test_a_latency_service_at_its_core_is_named_as_the_limit() -> None:
    held = verdict_rows("go", [50000.0], 280.0, cpu_util=0.74, efficiency=0.26)
    verdict = decide(per_level(held.assign(service_cpu_util=0.97)), 2, slo_ms=500.0)
    assert verdict.limits["go"].startswith("the latency service: it used 97% of a core")


def test_the_verdict_ties_models_within_noise() -> None:
    one = verdict_rows("asyncio", [500.0, 400.0, 600.0], 40.0)
    other = verdict_rows("uvloop", [480.0, 380.0, 580.0], 40.0)
    verdict = decide(per_level(pd.concat([one, other])), 2, slo_ms=100.0)
    assert verdict.best is not None and verdict.best.model == "asyncio"
    assert [c.model for c in verdict.tied] == ["uvloop"]
    assert "Not significantly behind it: uvloop (480.0 jobs/s at N=8)." in sentences(verdict)[0]


def test_the_verdict_says_when_no_model_kept_the_target() -> None:
    over = verdict_rows("asyncio", [500.0], 400.0)
    unmeasured = verdict_rows("trio", [600.0], math.nan)  # a p99 too few jobs support
    verdict = decide(per_level(pd.concat([over, unmeasured])), 2, slo_ms=100.0)
    assert verdict.best is None and verdict.tied == ()
    assert sentences(verdict)[0].startswith("No model kept its p99 within 100 ms")
    assert set(verdict.limits) == {"asyncio", "trio"}  # every model still gets its limit


def test_an_engines_floor_is_its_single_job_cost_over_threads() -> None:
    single = {"concurrency": 1, "cpu_util": 0.5}
    threads = rows([20.0]).assign(model="threads", latency_p50_ms=50.0, **single)
    dask = rows([10.0]).assign(model="dask", latency_p50_ms=54.5, **single)
    busier = rows([80.0]).assign(model="dask", latency_p50_ms=90.0)  # N=8: not a floor
    lonely = rows([10.0]).assign(
        model="celery", latency_p50_ms=51.0, interpreter="3.12.1", **single
    )
    levels = per_level(pd.concat([threads, dask, busier, lonely]))
    floor, alone = engine_floors(levels).to_dict("records")
    assert (alone["model"], alone["reference"], alone["p50_ms"]) == ("celery @3.12.1", "", 51.0)
    assert math.isnan(alone["floor_ms"])  # celery ran beside no threads: no floor to give
    assert (floor.pop("model"), floor.pop("reference")) == ("dask @1.0", "threads @1.0")
    assert floor == pytest.approx(
        {
            "p50_ms": 54.5,
            "reference_p50_ms": 50.0,
            "floor_ms": 4.5,
            "cpu_ms_per_job": 50.0,  # 0.5 cores over 10 jobs/s
            "reference_cpu_ms_per_job": 25.0,
        }
    )


def test_a_language_model_is_set_beside_pythons_event_loops() -> None:
    node = pd.concat(
        [
            rows([100.0]).assign(model="node", concurrency=1, cpu_util=0.1, rss_peak_mb=50.0),
            rows([400.0]).assign(model="node", concurrency=101, cpu_util=1.0, rss_peak_mb=60.0),
        ]
    )
    loop = rows([200.0]).assign(model="asyncio", concurrency=101, cpu_util=1.0, rss_peak_mb=30.0)
    other = rows([50.0]).assign(model="threads", concurrency=101)  # not a reference
    costs = language_costs(per_level(pd.concat([node, loop, other])))
    assert list(zip(costs["model"], costs["concurrency"], strict=True)) == [
        ("node", 1),
        ("node", 101),
        ("asyncio", 101),
    ]
    top = {r["model"]: r for r in costs[costs["concurrency"] == 101].to_dict("records")}
    assert top["node"]["cpu_ms_per_job"] == pytest.approx(2.5)  # 1 core over 400 jobs/s
    assert top["node"]["kb_per_job_in_flight"] == pytest.approx(100.0)  # 10 MB, 100 jobs
    assert math.isnan(top["asyncio"]["kb_per_job_in_flight"])  # its one level: no slope
    (sentence,) = [s for s in findings(per_level(pd.concat([node, loop])), 2) if "runtimes" in s]
    assert sentence.startswith("The same jobs in other runtimes at N=101: node 400.0 jobs/s")
