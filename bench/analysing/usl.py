"""The Universal Scalability Law, fitted to one model's throughput across concurrency levels.

X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1)): `lambda` is the throughput of
one job in flight, `sigma` the share of work that serialises (contention: a lock, the GIL, one
event loop), `kappa` the cost of keeping N in step (coherency: what makes throughput *fall*).
Throughput peaks at N* = sqrt((1 - sigma) / kappa).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from bench.analysing.thresholds import USL_MIN_LEVELS

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class UslFit:
    """Fitted parameters with 95% confidence intervals, the peak, and how far to trust it."""

    sigma: float
    kappa: float
    lambda_: float
    sigma_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    lambda_ci: tuple[float, float]
    warning: str

    @property
    def peak_n(self) -> float:
        """The concurrency of the highest throughput; infinite when nothing pulls it down."""
        return math.sqrt((1 - self.sigma) / self.kappa) if self.kappa > 0 else math.inf

    @property
    def peak_throughput(self) -> float:
        """The highest throughput the fit predicts (the limit lambda / sigma without a peak)."""
        if math.isinf(self.peak_n):
            return self.lambda_ / self.sigma if self.sigma > 0 else math.inf
        return float(self.predict(self.peak_n))

    def predict(self, n: float | np.ndarray) -> float | np.ndarray:
        """Throughput at concurrency `n`."""
        return usl(np.asarray(n, dtype=float), self.lambda_, self.sigma, self.kappa)


def usl(n: np.ndarray, lambda_: float, sigma: float, kappa: float) -> np.ndarray:
    """The USL curve."""
    return np.asarray(lambda_ * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)), dtype=float)


def fit_usl(levels: Sequence[float], throughputs: Sequence[float]) -> UslFit:
    """Fit the USL by least squares, started from its linearised form; never raises on bad data."""
    n = np.asarray(levels, dtype=float)
    x = np.asarray(throughputs, dtype=float)
    keep = np.isfinite(x) & (x > 0) & (n >= 1)
    n, x = n[keep], x[keep]
    if len(set(n.tolist())) < 3:
        nan = (math.nan, math.nan)
        return UslFit(
            math.nan,
            math.nan,
            math.nan,
            nan,
            nan,
            nan,
            f"only {len(set(n.tolist()))} levels measured; "
            f"measure at least {USL_MIN_LEVELS} concurrency levels to fit the USL",
        )
    # N / X = (1 + sigma (N - 1) + kappa N (N - 1)) / lambda is linear in 1/lambda,
    # sigma/lambda and kappa/lambda: a start that nonlinear least squares refines.
    design = np.column_stack([np.ones_like(n), n - 1, n * (n - 1)])
    a, b, c = np.linalg.lstsq(design, n / x, rcond=None)[0]
    start = [
        1 / a if a > 0 else float(x[n == n.min()][0]),
        min(max(b / a, 0.0), 1 - 1e-9) if a > 0 else 0.0,  # inside the bounds
        max(c / a, 0.0) if a > 0 else 0.0,
    ]
    try:
        with warnings.catch_warnings():
            # With as many levels as parameters there is no covariance: the intervals say so.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            # Relative errors: a level with 10x the throughput should not weigh 100x in the fit.
            params, covariance = optimize.curve_fit(
                usl,
                n,
                x,
                p0=start,
                sigma=x,
                bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]),
                maxfev=20_000,
            )
    except (RuntimeError, ValueError) as exc:
        nan = (math.nan, math.nan)
        return UslFit(math.nan, math.nan, math.nan, nan, nan, nan, f"the fit failed: {exc}")
    lambda_, sigma, kappa = (float(p) for p in params)
    errors = (
        np.sqrt(np.clip(np.diag(covariance), 0, None))
        if np.all(np.isfinite(covariance))
        else np.full(3, np.inf)
    )
    fit = UslFit(
        sigma,
        kappa,
        lambda_,
        _interval(sigma, errors[1], upper=1.0),
        _interval(kappa, errors[2]),
        _interval(lambda_, errors[0]),
        "",
    )
    return dataclasses.replace(fit, warning=_warning(fit, n))


def _interval(value: float, error: float, upper: float = math.inf) -> tuple[float, float]:
    return max(value - _Z95 * float(error), 0.0), min(value + _Z95 * float(error), upper)


def _warning(fit: UslFit, n: np.ndarray) -> str:
    """Why the data may not pin the fit down, and what to measure."""
    problems = []
    levels = len(set(n.tolist()))
    if levels < USL_MIN_LEVELS:
        problems.append(
            f"only {levels} levels measured: measure at least {USL_MIN_LEVELS} concurrency levels"
        )
    if fit.peak_n > n.max():
        problems.append(
            f"no level past the peak (N* {_n(fit.peak_n)} > {n.max():.0f}): "
            "add higher --concurrency levels to pin kappa down"
        )
    return "; ".join(problems)


def _n(value: float) -> str:
    return "is unbounded" if math.isinf(value) else f"~{value:.0f}"


def fit_models(levels: pd.DataFrame) -> dict[str, UslFit]:
    """A fit per model over its ok levels (`levels` as from `bench.analysing.levels.per_level`)."""
    ok = levels[levels["status"] == "ok"]
    return {
        str(model): fit_usl(list(rows["concurrency"].astype(float)), list(rows["throughput"]))
        for model, rows in ok.groupby("model", sort=False)
    }
