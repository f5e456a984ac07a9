"""The workload spec: draws depend only on (seed, index); kernels are verifiable; calibration."""

from __future__ import annotations

import collections
import random
import statistics
import subprocess
import sys
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.scenarios import SCENARIOS
from models.workload import (
    FAILED,
    OK,
    TIMED_OUT,
    Attempt,
    Compute,
    CpuStep,
    Dist,
    Draws,
    IoStep,
    Lock,
    Scenario,
    Stage,
    Stream,
    Verifier,
    Wait,
    burn_json,
    burn_native,
    burn_python,
    calibrate,
    compute,
    draw_job,
)
from tests.conftest import TINY_CALIBRATION, retries_needed, step_outcome

DRAW = (
    "from models.scenarios import SCENARIOS; from models.workload import Calibration, draw_job; "
    "print(repr(draw_job(SCENARIOS['ecommerce'], Calibration(1000.0, 10.0, 20.0), 42, 17)))"
)


def test_draw_is_the_same_in_another_process() -> None:
    here = repr(
        draw_job(SCENARIOS["ecommerce"], TINY_CALIBRATION.__class__(1000.0, 10.0, 20.0), 42, 17)
    )
    there = subprocess.run(
        [sys.executable, "-c", DRAW], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there


def test_draws_differ_between_jobs_and_seeds() -> None:
    scenario = SCENARIOS["ecommerce"]
    jobs = {
        repr(draw_job(scenario, TINY_CALIBRATION, seed, i)) for seed in (1, 2) for i in range(20)
    }
    assert len(jobs) == 40


def test_draw_converts_milliseconds_with_the_calibration() -> None:
    job = draw_job(SCENARIOS["cpu-bound"], TINY_CALIBRATION, 0, 0)
    (work,) = job.stages[0]
    assert isinstance(work, Compute)
    assert work.units == round(5.0 * TINY_CALIBRATION.python_iterations_per_ms)
    (wait,) = draw_job(SCENARIOS["io-bound"], TINY_CALIBRATION, 0, 0).stages[0]
    assert isinstance(wait, Wait)
    assert [a.seconds for a in wait.attempts] == [0.05]


@settings(max_examples=50, deadline=None)
@given(units=st.integers(0, 3000), seed=st.integers(0, 2**64 - 1))
def test_python_kernel_matches_its_jump_ahead(units: int, seed: int) -> None:
    job_action = Compute(0, "python", units, seed)
    assert compute(job_action) == Verifier().expected_action(job_action)


@settings(max_examples=20, deadline=None)
@given(units=st.integers(0, 200), seed=st.integers(0, 2**64 - 1))
def test_json_kernel_matches_its_jump_ahead(units: int, seed: int) -> None:
    job_action = Compute(0, "json", units, seed)
    assert compute(job_action) == Verifier().expected_action(job_action)


def test_json_kernel_allocates_containers_and_the_python_kernel_does_not() -> None:
    def peak_bytes(work: Callable[[], int]) -> int:
        tracemalloc.start()
        try:
            work()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # An order's dicts, lists, strings and JSON text, against an int or two at a time.
    assert peak_bytes(lambda: burn_json(20, 1)) > 10 * peak_bytes(lambda: burn_python(2000, 1))


def test_ecommerce_validates_and_renders_with_the_json_kernel() -> None:
    job = draw_job(SCENARIOS["ecommerce"], TINY_CALIBRATION, 0, 0)
    kinds = [a.kind for stage in job.stages for a in stage if isinstance(a, Compute)]
    assert kinds == ["json", "json", "native"]
    (validate,) = job.stages[0]
    assert isinstance(validate, Compute)
    assert validate.units == round(1.0 * TINY_CALIBRATION.json_orders_per_ms)


def test_native_kernel_matches_the_verifier_in_any_order() -> None:
    verifier = Verifier()
    for blocks in (5, 0, 12, 3, 12):
        assert verifier.expected_action(Compute(0, "native", blocks, 0)) == burn_native(blocks)


def test_wrong_work_gives_a_different_checksum() -> None:
    assert burn_python(100, 1) != burn_python(101, 1)
    assert burn_native(3) != burn_native(4)
    assert burn_json(10, 1) != burn_json(11, 1)


def test_calibration_is_positive() -> None:
    calibration = calibrate(trials=2, target_ms=1.0)
    assert calibration.python_iterations_per_ms > 0
    assert calibration.native_blocks_per_ms > 0
    assert calibration.json_orders_per_ms > 0


def test_critical_path_of_steps_in_series_and_in_parallel() -> None:
    scenario = Scenario(
        "s",
        "",
        (
            Stage("one", (CpuStep("validate", Dist("constant", 1.0)),)),
            Stage(
                "two",
                (
                    IoStep("a", Dist("constant", 40.0)),
                    IoStep("b", Dist("constant", 10.0)),
                    IoStep("mail", Dist("constant", 500.0), background=True),
                ),
            ),
        ),
    )
    # 1 + max(40, 10); the user does not wait for the background e-mail.
    assert scenario.critical_path_ms() == pytest.approx(41.0)
    assert scenario.cpu_ms() == 1.0


def test_parallel_steps_take_the_mean_of_their_longest() -> None:
    # Eight exponential 30 ms calls at once: E[max] = 30 x (1 + 1/2 + ... + 1/8) = 81.5 ms.
    stage = Stage("fan out", tuple(IoStep(f"{i}", Dist("exponential", 30.0)) for i in range(8)))
    assert stage.mean_ms() == pytest.approx(30.0 * sum(1 / k for k in range(1, 9)), rel=0.02)


STEPS = [
    IoStep("plain", Dist("exponential", 20.0)),
    IoStep("retried", Dist("constant", 10.0), fail_rate=0.3, retries=2, backoff_ms=5.0),
    IoStep("cut", Dist("exponential", 20.0), timeout_ms=15.0, retries=1),
    IoStep("tail", Dist("lognormal", p50_ms=40.0, p99_ms=400.0), timeout_ms=100.0, retries=1),
    IoStep("flat", Dist("uniform", low_ms=5.0, high_ms=25.0), timeout_ms=20.0, fail_rate=0.1),
]


@pytest.mark.parametrize("draws", ["stream", "mersenne"])
@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_step_mean_and_success_rate_match_a_simulation(step: IoStep, draws: str) -> None:
    # A job's own stream, and the Mersenne Twister the bound's estimates draw from.
    rng: Draws = Stream(1, 0) if draws == "stream" else random.Random(1)
    times, successes = [], 0
    for _ in range(40_000):
        total = 0.0
        for k in range(step.retries + 1):
            total += step.backoff_ms * 2 ** (k - 1) if k else 0.0
            duration = step.wait.draw_ms(rng)
            timed_out = step.timeout_ms is not None and duration > step.timeout_ms
            total += step.timeout_ms if timed_out and step.timeout_ms else duration
            if not timed_out and rng.random() >= step.fail_rate:
                successes += 1
                break
        times.append(total)
    assert step.mean_ms() == pytest.approx(sum(times) / len(times), rel=0.03)
    assert step.success_rate() == pytest.approx(successes / len(times), abs=0.01)


def test_outcomes_and_retries_follow_the_draws() -> None:
    def wait(*attempts: tuple[float, bool], timeout_s: float | None = None) -> Wait:
        tries = tuple(Attempt(seconds, fails, 0.0) for seconds, fails in attempts)
        return Wait(0, tries, timeout_s, 0, 0, None, False, "http")

    assert step_outcome(wait((0.01, False))) == OK
    assert step_outcome(wait((0.01, True), (0.01, False))) == OK
    assert retries_needed(wait((0.01, True), (0.01, False))) == 1
    assert step_outcome(wait((0.01, True), (0.01, True))) == FAILED
    assert step_outcome(wait((0.01, False), timeout_s=0.005)) == TIMED_OUT
    assert step_outcome(wait((0.01, False), (0.001, True), timeout_s=0.005)) == FAILED
    assert retries_needed(wait((0.01, False), (0.001, True), timeout_s=0.005)) == 1


def test_lock_popularity_is_zipf() -> None:
    assert Lock(1, 1.0).hottest_share() == 1.0
    assert Lock(4, 0.0).hottest_share() == pytest.approx(0.25)
    assert Lock(100, 1.0).hottest_share() == pytest.approx(1 / sum(1 / k for k in range(1, 101)))
    picks = [
        a.product
        for i in range(2000)
        for stage in draw_job(SCENARIOS["ecommerce"], TINY_CALIBRATION, 0, i).stages
        for a in stage
        if a.product is not None
    ]
    assert picks.count(0) / len(picks) == pytest.approx(Lock(100, 1.0).hottest_share(), abs=0.03)


def test_verifier_accepts_only_explicable_outcomes() -> None:
    scenario = SCENARIOS["payment"]
    verifier = Verifier()
    job = draw_job(scenario, TINY_CALIBRATION, 0, 0)
    good = verifier.expected(job)
    assert verifier.accepts(job, OK, good)
    assert not verifier.accepts(job, OK, good + 1)
    assert verifier.accepts(job, TIMED_OUT, 0)  # the gateway has a timeout
    plain = draw_job(SCENARIOS["io-bound"], TINY_CALIBRATION, 0, 0)
    assert not verifier.accepts(plain, FAILED, 0)  # nothing in io-bound can fail
    assert not verifier.accepts(plain, TIMED_OUT, 0)


def test_a_jobs_stream_is_splitmix64_as_published() -> None:
    stream = Stream(0, 0)
    stream.state = 0  # the reference outputs of Vigna's splitmix64.c from state 0
    assert [stream.bits() for _ in range(4)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC,
    ]  # fmt: skip


def test_each_job_draws_its_own_numbers_the_same_every_time() -> None:
    first = [Stream(7, i).random() for i in range(1000)]
    assert first == [Stream(7, i).random() for i in range(1000)]
    assert len(set(first)) == 1000 and min(first) >= 0.0 and max(first) < 1.0
    assert abs(statistics.fmean(first) - 0.5) < 0.05
    assert Stream(8, 0).random() != Stream(7, 0).random()
    weights = [0.5, 0.8, 1.0]  # running sums: 50%, 30%, 20%
    stream = Stream(7, 0)
    counts = collections.Counter(stream.choice(weights) for _ in range(10_000))
    assert sorted(counts) == [0, 1, 2]
    assert abs(counts[0] / 10_000 - 0.5) < 0.03 and abs(counts[2] / 10_000 - 0.2) < 0.03
