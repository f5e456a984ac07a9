"""The USL fit recovers known parameters and says when the data cannot pin them down."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.analysing.usl import fit_usl, usl

LEVELS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


@settings(max_examples=40, deadline=None)
@given(
    lambda_=st.floats(1.0, 1e4),
    sigma=st.floats(0.0, 0.5),
    kappa=st.floats(1e-5, 1e-2),
)
def test_exact_data_gives_back_its_parameters(lambda_: float, sigma: float, kappa: float) -> None:
    x = usl(np.asarray(LEVELS, dtype=float), lambda_, sigma, kappa)
    fit = fit_usl(LEVELS, list(x))
    assert fit.lambda_ == pytest.approx(lambda_, rel=1e-3)
    assert fit.sigma == pytest.approx(sigma, rel=1e-3, abs=1e-4)
    assert fit.kappa == pytest.approx(kappa, rel=1e-3, abs=1e-7)
    assert fit.peak_n == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=1e-2)


def test_noisy_data_keeps_the_truth_inside_the_intervals() -> None:
    rng = np.random.default_rng(7)
    n = np.asarray(LEVELS, dtype=float)
    inside = 0
    for _ in range(50):
        x = usl(n, 200.0, 0.05, 0.0005) * rng.normal(1.0, 0.02, len(n))
        fit = fit_usl(LEVELS, list(x))
        inside += fit.sigma_ci[0] <= 0.05 <= fit.sigma_ci[1] and (
            fit.kappa_ci[0] <= 0.0005 <= fit.kappa_ci[1]
        )
    assert inside >= 40  # 95% intervals, two at once, on 50 noisy samples


def test_predict_and_peak() -> None:
    fit = fit_usl(LEVELS, list(usl(np.asarray(LEVELS, dtype=float), 100.0, 0.1, 0.001)))
    assert float(fit.predict(1.0)) == pytest.approx(100.0, rel=1e-3)
    assert fit.peak_throughput == pytest.approx(float(fit.predict(fit.peak_n)))
    assert fit.peak_throughput >= max(float(fit.predict(n)) for n in LEVELS)


def test_too_few_levels_are_flagged() -> None:
    assert "measure at least 4 concurrency levels" in fit_usl([1, 8, 64], [10, 70, 200]).warning
    assert "measure at least 4" in fit_usl([1, 8], [10, 70]).warning
    assert math.isnan(fit_usl([1, 8], [10, 70]).sigma)


def test_no_level_past_the_peak_is_flagged() -> None:
    levels = [1, 2, 4, 8]  # the peak of this curve is at N* ~ 31
    fit = fit_usl(levels, list(usl(np.asarray(levels, dtype=float), 100.0, 0.05, 0.001)))
    assert "no level past the peak (N* ~31 > 8): add higher --concurrency levels" in fit.warning
    past = fit_usl(LEVELS, list(usl(np.asarray(LEVELS, dtype=float), 100.0, 0.05, 0.001)))
    assert past.warning == ""


def test_failed_and_missing_points_are_left_out() -> None:
    fit = fit_usl([1, 2, 4, 8, 16], [100.0, math.nan, 0.0, 700.0, 1200.0])
    assert "only 3 levels" in fit.warning


def test_flat_throughput_still_fits() -> None:
    fit = fit_usl([1, 8, 64, 512], [24.1, 24.0, 23.9, 23.8])
    assert "the fit failed" not in fit.warning
    assert fit.sigma == pytest.approx(1.0, abs=0.01)
