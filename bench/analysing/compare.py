"""Compare two runs: per model and level, did throughput or p99 really change?

Throughput is compared across repeats (Welch's t-test on the per-repeat values). The p99 rests
on the slowest 1% of jobs, a handful per repeat, so it is compared on the pooled jobs of each
run (their merged histograms) by a permutation test. Every p-value of the table is then
adjusted by Holm's method, which keeps the chance of any false alarm in the whole table (every
model x level x metric) at 5%: `compare` gates CI, where one false alarm fails a build, so the
family-wise rate is the one to control (Benjamini-Hochberg's false-discovery rate would let a
false alarm through in proportion to the real ones).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.analysing.levels import PointKey, pooled_histogram
from bench.analysing.thresholds import MIN_EFFECT, SIGNIFICANCE
from bench.errors import BenchError, UsageError
from models.recording import Histogram

# metric -> +1 when higher is better, -1 when lower is better
METRICS = {"throughput": 1, "latency_p99_ms": -1}
# metric -> its name in --min-effect and in the rule's words
METRIC_NAMES = {"throughput": "throughput", "latency_p99_ms": "p99"}
# Random splits of the pooled jobs in the permutation test: its p-value is at least 1/1001.
_PERMUTATIONS = 1000


class NothingComparable(BenchError, LookupError):
    """Raised when two runs have no model and level that both measured ok."""


@dataclass(frozen=True)
class Change:
    """One metric of one model and level, before (run A) and after (run B)."""

    model: str  # with its interpreter ("threads @3.13.5t") when a run had several
    concurrency: int
    rate: float | None  # open load: the offered rate
    metric: str
    before: float  # throughput: the median repeat; p99: of the pooled jobs
    after: float
    change: float  # after / before - 1
    p_value: float  # adjusted for the whole table (Holm); NaN when not tested
    verdict: str  # better, worse, no real change, too few repeats, too few jobs

    @property
    def regression(self) -> bool:
        """Whether B is significantly worse than A."""
        return self.verdict == "worse"


def welch_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of Welch's t-test; NaN when either side has fewer than two values."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.std(a) == 0 and np.std(b) == 0:  # the t statistic is undefined: decide directly
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    with warnings.catch_warnings():  # near-equal values: scipy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    return 1.0 if math.isnan(p_value) else p_value


def percentile_p_value(
    a: Histogram, b: Histogram, percent: float, rng: np.random.Generator | None = None
) -> float:
    """Two-sided permutation p-value for the `percent` percentile of the jobs in `a` and in
    `b` being the same: the pooled jobs are split at random into groups of their sizes, and the
    p-value is the share of splits whose percentiles differ as much as the observed ones (in
    histogram buckets, 0.2% apart). NaN when either side is empty.

    A percentile near the top depends only on the slowest jobs, so each split is drawn from the
    slowest job down (sampling without replacement), until both groups reach their percentile.
    """
    if a.total == 0 or b.total == 0:
        return math.nan
    rng = rng or np.random.default_rng(0)  # seeded: the same runs give the same verdict
    buckets = sorted(set(a.counts) | set(b.counts), reverse=True)  # slowest first
    pooled = np.repeat(buckets, [a.counts.get(k, 0) + b.counts.get(k, 0) for k in buckets])
    from_top_a, from_top_b = _from_top(a.total, percent), _from_top(b.total, percent)
    observed = abs(a.percentile_bucket(percent) - b.percentile_bucket(percent))
    left_a = np.full(_PERMUTATIONS, a.total)
    seen = np.zeros((2, _PERMUTATIONS), dtype=np.int64)
    found = np.full((2, _PERMUTATIONS), -1)
    for position in range(len(pooled)):
        to_a = rng.random(_PERMUTATIONS) * (len(pooled) - position) < left_a
        left_a -= to_a
        seen += np.stack([to_a, ~to_a])
        for side, (took, target) in enumerate(((to_a, from_top_a), (~to_a, from_top_b))):
            found[side] = np.where(
                (found[side] < 0) & took & (seen[side] == target), position, found[side]
            )
        if (found >= 0).all():
            break
    gaps = np.abs(pooled[found[0]] - pooled[found[1]])
    return float((1 + np.count_nonzero(gaps >= observed)) / (1 + _PERMUTATIONS))


def _from_top(total: int, percent: float) -> int:
    """The nearest-rank percentile's place counted from the slowest job (1: the slowest)."""
    return total - max(1, math.ceil(percent * total / 100.0 - 1e-9)) + 1


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment; NaN values (no test) stay NaN and do not count."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for step, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - step) * p))
        adjusted[i] = running
    return adjusted


def compare_runs(
    a: pd.DataFrame,
    b: pd.DataFrame,
    min_effect: Mapping[str, float] = MIN_EFFECT,
    latency_a: Mapping[PointKey, Histogram] | None = None,
    latency_b: Mapping[PointKey, Histogram] | None = None,
) -> list[Change]:
    """Every metric of every model and level that both runs' points (`a`, then `b`: every
    repeat) measured, ok repeats only; `latency_a` and `latency_b` are the runs' histograms.

    A change counts as real only when its Holm-adjusted p-value is below 0.05 *and* it is at
    least `min_effect[metric]` (a fraction: 0.05 is 5%). Raises NothingComparable when no
    model and level was measured ok in both runs.
    """
    for metric, effect in min_effect.items():
        if effect < 0 or not math.isfinite(effect):
            raise UsageError(
                f"--min-effect {effect * 100:g} for {metric} is not valid; give a percentage >= 0"
            )
    name_a, name_b = _scenario(a), _scenario(b)
    if name_a != name_b:
        raise UsageError(
            f"the runs measured different scenarios ({name_a!r} and {name_b!r}); "
            "compare two runs of one scenario"
        )
    ok_a, ok_b = _ok(a), _ok(b)
    # A point is a model at a level (and rate); the interpreter is part of it only when a run
    # measured several, so that one run per interpreter can be compared.
    keys = ["model", "concurrency", "rate"]
    several = ok_a["interpreter"].nunique() > 1 or ok_b["interpreter"].nunique() > 1
    if several:
        keys.append("interpreter")
    tested: list[tuple[Change, int]] = []  # with the metric's direction
    for key, group_a in ok_a.groupby(keys, sort=False, dropna=False):
        same: dict[str, Any] = dict(zip(keys, key, strict=True))
        group_b = ok_b[
            np.logical_and.reduce(
                [
                    ok_b[k].isna() if pd.isna(v) else (ok_b[k] == v).fillna(False)
                    for k, v in same.items()
                ]
            )
        ]
        if group_b.empty:
            continue
        model = f"{same['model']} @{same['interpreter']}" if several else str(same["model"])
        rate = None if pd.isna(same["rate"]) else float(same["rate"])
        for metric, direction in METRICS.items():
            if metric == "latency_p99_ms":
                pooled_a = pooled_histogram(group_a, latency_a)
                pooled_b = pooled_histogram(group_b, latency_b)
                # A p99 without an interval is not measured, so it cannot have changed either.
                before, after = pooled_a.supported(99), pooled_b.supported(99)
                enough = not (math.isnan(before) or math.isnan(after))
                p_value = percentile_p_value(pooled_a, pooled_b, 99) if enough else math.nan
                untested = "too few jobs"
            else:
                values_a = list(group_a[metric].astype(float))
                values_b = list(group_b[metric].astype(float))
                before, after = float(np.median(values_a)), float(np.median(values_b))
                p_value = welch_p_value(values_a, values_b)
                untested = "too few repeats"
            change = after / before - 1 if before else math.nan
            level = int(same["concurrency"])
            tested.append(
                (
                    Change(model, level, rate, metric, before, after, change, p_value, untested),
                    direction,
                )
            )
    if not tested:
        raise NothingComparable(
            "no model and level was measured ok in both runs, so nothing can be compared; "
            "check that both runs measured the same models and --concurrency levels"
        )
    adjusted = holm([change.p_value for change, _ in tested])
    return [
        _judge(change, direction, p_value, min_effect.get(change.metric, 0.0))
        for (change, direction), p_value in zip(tested, adjusted, strict=True)
    ]


def real_change_rule(min_effect: Mapping[str, float]) -> str:
    """What makes a change real, in words, with the smallest effect of each metric."""
    return (
        "p < 0.05 after Holm's adjustment over the whole table (throughput: Welch's t-test "
        "across repeats; p99: a permutation test on the pooled jobs) and at least "
        + ", ".join(f"{effect:.0%} in {METRIC_NAMES[m]}" for m, effect in min_effect.items())
    )


def _judge(change: Change, direction: int, p_value: float, min_effect: float) -> Change:
    """The change with its adjusted p-value and its verdict."""
    if math.isnan(p_value):
        verdict = change.verdict  # too few repeats, or jobs
    elif p_value < SIGNIFICANCE and abs(change.change) >= min_effect:
        verdict = "better" if change.change * direction > 0 else "worse"
    else:
        verdict = "no real change"
    return dataclasses.replace(change, p_value=p_value, verdict=verdict)


def _scenario(points: pd.DataFrame) -> str:
    """The scenario a run's points measured (every row names it)."""
    return ", ".join(sorted(set(points["scenario"].astype(str))))


def _ok(points: pd.DataFrame) -> pd.DataFrame:
    return points[points["status"] == "ok"]
