"""The workload spec: draws depend only on (seed, index); kernels are verifiable; calibration."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from models.scenarios import SCENARIOS
from models.workload import (
    Compute,
    Verifier,
    Wait,
    burn_native,
    burn_python,
    calibrate,
    compute,
    draw_job,
)
from tests.conftest import TINY_CALIBRATION

DRAW = (
    "from models.scenarios import SCENARIOS; from models.workload import Calibration, draw_job; "
    "print(repr(draw_job(SCENARIOS['ecommerce'], Calibration(1000.0, 10.0), 42, 17)))"
)


def test_draw_is_the_same_in_another_process() -> None:
    here = repr(draw_job(SCENARIOS["ecommerce"], TINY_CALIBRATION.__class__(1000.0, 10.0), 42, 17))
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
    assert wait.seconds == 0.05


@settings(max_examples=50, deadline=None)
@given(units=st.integers(0, 3000), seed=st.integers(0, 2**64 - 1))
def test_python_kernel_matches_its_jump_ahead(units: int, seed: int) -> None:
    job_action = Compute("python", units, seed)
    assert compute(job_action) == Verifier()._expected_action(job_action)


def test_native_kernel_matches_the_verifier_in_any_order() -> None:
    verifier = Verifier()
    for blocks in (5, 0, 12, 3, 12):
        assert verifier._expected_action(Compute("native", blocks, 0)) == burn_native(blocks)


def test_wrong_work_gives_a_different_checksum() -> None:
    assert burn_python(100, 1) != burn_python(101, 1)
    assert burn_native(3) != burn_native(4)


def test_calibration_is_positive() -> None:
    calibration = calibrate(trials=2, target_ms=1.0)
    assert calibration.python_iterations_per_ms > 0
    assert calibration.native_blocks_per_ms > 0


def test_critical_path_and_cpu_of_ecommerce() -> None:
    scenario = SCENARIOS["ecommerce"]
    # validate 1 + max(charge 40, stock 10) + max(e-mail 20, receipt 2, sign 1)
    assert scenario.critical_path_ms() == 61.0
    assert scenario.cpu_ms() == 4.0
