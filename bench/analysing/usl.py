"""The Universal Scalability Law, fitted to one model's throughput across concurrency levels.

X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1)): `lambda` is the throughput of
one job in flight, `sigma` the share of work that serialises (contention: a lock, the GIL, one
event loop), `kappa` the cost of keeping N in step (coherency: what makes throughput *fall*).
Throughput peaks at N* = sqrt((1 - sigma) / kappa).

The fit takes every ok repeat, not the medians, so that its residuals carry the repeats' noise.
Its 95% intervals are Wald intervals with Student's t at the residual degrees of freedom (points
minus three parameters). The loss is a choice (`LOSSES`): `relative` least squares by default,
because a benchmark's repeats scatter in proportion to their throughput (a busy machine slows
every level alike), and under that noise its intervals cover the truth as they claim
(tests/test_usl.py simulates it); `absolute` least squares is what R's `usl` package and usl4j
minimise, so a user can check a fit against them.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from bench.analysing.levels import level_labels
from bench.analysing.thresholds import USL_MIN_LEVELS

LOSSES = ("relative", "absolute")
DEFAULT_LOSS = "relative"
# An N* this far beyond the highest level measured is a number the data cannot speak to.
_SHOWN_PEAK_RANGE = 100


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
    loss: str = DEFAULT_LOSS
    top_level: float = math.nan  # the highest concurrency measured
    points: int = 0  # (level, throughput) pairs fitted: every ok repeat
    measured_fall: bool = False  # the top level's throughput is significantly below the best

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

    @property
    def peaks_in_range(self) -> bool:
        """Whether the data show a peak: kappa's interval excludes 0, a measured level lies past
        N*, and the highest level's throughput is measured significantly below the best."""
        return self.kappa_ci[0] > 0 and self.peak_n < self.top_level and self.measured_fall

    def shown_peak_n(self) -> str:
        """N* as a reader may be told it: a number only within 100x of the measured range."""
        if self.peaks_in_range:
            return f"{self.peak_n:.0f}"
        if self.peak_n <= _SHOWN_PEAK_RANGE * self.top_level:
            return f"none measured (fitted ~{self.peak_n:.0f})"
        return "none measured"

    def predict(self, n: float | np.ndarray) -> float | np.ndarray:
        """Throughput at concurrency `n`."""
        return usl(np.asarray(n, dtype=float), self.lambda_, self.sigma, self.kappa)


def usl(n: np.ndarray, lambda_: float, sigma: float, kappa: float) -> np.ndarray:
    """The USL curve."""
    return np.asarray(lambda_ * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)), dtype=float)


def fit_usl(
    levels: Sequence[float], throughputs: Sequence[float], loss: str = DEFAULT_LOSS
) -> UslFit:
    """Fit the USL to (level, throughput) pairs, several per level allowed, by least squares
    of `loss`, started from its linearised form; never raises on bad data."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from: {', '.join(LOSSES)}")
    n = np.asarray(levels, dtype=float)
    x = np.asarray(throughputs, dtype=float)
    keep = np.isfinite(x) & (x > 0) & (n >= 1)
    n, x = n[keep], x[keep]
    if len(set(n.tolist())) < 3:
        return _unfitted(
            f"only {len(set(n.tolist()))} levels measured; "
            f"measure at least {USL_MIN_LEVELS} concurrency levels to fit the USL",
            loss,
            n,
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
            # With as many points as parameters there is no covariance: the intervals say so.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, covariance = optimize.curve_fit(
                usl,
                n,
                x,
                p0=start,
                sigma=x if loss == "relative" else None,
                bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]),
                maxfev=20_000,
            )
    except (RuntimeError, ValueError) as exc:
        return _unfitted(f"the fit failed: {exc}", loss, n)
    lambda_, sigma, kappa = (float(p) for p in params)
    residual_df = len(n) - 3
    errors = (
        np.sqrt(np.clip(np.diag(covariance), 0, None))
        if np.all(np.isfinite(covariance)) and residual_df > 0
        else np.full(3, np.inf)
    )
    t95 = float(special.stdtrit(residual_df, 0.975)) if residual_df > 0 else math.inf
    fit = UslFit(
        sigma,
        kappa,
        lambda_,
        _interval(sigma, t95 * errors[1], upper=1.0),
        _interval(kappa, t95 * errors[2]),
        _interval(lambda_, t95 * errors[0]),
        "",
        loss,
        float(n.max()),
        len(n),
        _falls(n, x, x - usl(n, lambda_, sigma, kappa), loss, t95),
    )
    return dataclasses.replace(fit, warning=_warning(fit, n))


def _falls(n: np.ndarray, x: np.ndarray, residuals: np.ndarray, loss: str, t95: float) -> bool:
    """Whether the highest level's mean throughput lies below the best level's by more than
    their noise (the fit's residual scatter, which is the repeats' and the levels' alike)."""
    levels = sorted(set(n.tolist()))
    means = {level: float(x[n == level].mean()) for level in levels}
    best = max(levels, key=means.__getitem__)
    top = levels[-1]
    if best == top or not math.isfinite(t95):
        return False
    scale = residuals / x if loss == "relative" else residuals
    spread = math.sqrt(float((scale**2).sum()) / (len(n) - 3))  # per point, in the loss's unit

    def error(level: float) -> float:
        unit = means[level] if loss == "relative" else 1.0
        return spread * unit / math.sqrt(int((n == level).sum()))

    return means[best] - means[top] > t95 * math.hypot(error(best), error(top))


def _unfitted(warning: str, loss: str, n: np.ndarray) -> UslFit:
    """A fit that could not be made, saying why."""
    nan = (math.nan, math.nan)
    top = float(n.max()) if len(n) else math.nan
    return UslFit(math.nan, math.nan, math.nan, nan, nan, nan, warning, loss, top, len(n))


def _interval(value: float, half: float, upper: float = math.inf) -> tuple[float, float]:
    return max(value - float(half), 0.0), min(value + float(half), upper)


def _warning(fit: UslFit, n: np.ndarray) -> str:
    """Why the data may not pin the fit down, and what to measure."""
    problems = []
    levels = len(set(n.tolist()))
    if levels < USL_MIN_LEVELS:
        problems.append(
            f"only {levels} levels measured: measure at least {USL_MIN_LEVELS} concurrency levels"
        )
    if len(n) <= 3:
        problems.append(
            f"only {len(n)} points for 3 parameters: no interval; add --repeat or levels"
        )
    if fit.peak_n > n.max():
        problems.append(
            f"no peak within the measured range (up to N={n.max():.0f}): "
            "add higher --concurrency levels to pin kappa down"
        )
    elif not fit.peaks_in_range:
        problems.append(
            "the fitted peak is not significant (kappa's interval includes 0, or no level "
            "past it was measured significantly lower): add --repeat or levels past it"
        )
    return "; ".join(problems)


def fit_models(points: pd.DataFrame, loss: str = DEFAULT_LOSS) -> dict[str, UslFit]:
    """A fit per model (and interpreter, labelled as `level_labels` does) over every ok repeat
    of its closed-load levels (`points` as in points.csv)."""
    closed = points[(points["status"] == "ok") & points["rate"].isna()]
    return {
        str(label): fit_usl(
            list(rows["concurrency"].astype(float)), list(rows["throughput"].astype(float)), loss
        )
        for label, rows in closed.groupby(level_labels(closed), sort=False)
    }
