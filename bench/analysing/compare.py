"""Compare two runs: per model and level, did throughput or p99 really change?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.analysing.thresholds import SIGNIFICANCE
from bench.errors import UsageError

# metric -> +1 when higher is better, -1 when lower is better
METRICS = {"throughput": 1, "latency_p99_ms": -1}


@dataclass(frozen=True)
class Change:
    """One metric of one model and level, before (run A) and after (run B)."""

    model: str  # with its interpreter ("threads @3.13.5t") when a run had several
    concurrency: int
    rate: float | None  # open load: the offered rate
    metric: str
    before: float
    after: float
    change: float  # after / before - 1
    p_value: float
    verdict: str  # better, worse, no real change, too few repeats

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
    return float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, min_effect: float) -> list[Change]:
    """Every metric of every model and level that both runs' points (`a`, then `b`: every
    repeat) measured, ok repeats only.

    A change counts as real only when Welch's t-test gives p < 0.05 *and* the medians differ
    by at least `min_effect` (a fraction: 0.05 is 5%).
    """
    if min_effect < 0 or not math.isfinite(min_effect):
        raise UsageError(f"--min-effect {min_effect * 100:g} is not valid; give a percentage >= 0")
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
    changes = []
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
            before = list(group_a[metric].astype(float))
            after = list(group_b[metric].astype(float))
            median_a, median_b = float(np.median(before)), float(np.median(after))
            change = median_b / median_a - 1 if median_a else math.nan
            p_value = welch_p_value(before, after)
            if math.isnan(p_value):
                verdict = "too few repeats"
            elif p_value < SIGNIFICANCE and abs(change) >= min_effect:
                verdict = "better" if change * direction > 0 else "worse"
            else:
                verdict = "no real change"
            changes.append(
                Change(
                    model,
                    int(same["concurrency"]),
                    rate,
                    metric,
                    median_a,
                    median_b,
                    change,
                    p_value,
                    verdict,
                )
            )
    return changes


def _scenario(points: pd.DataFrame) -> str:
    """The scenario a run's points measured (every row names it)."""
    return ", ".join(sorted(set(points["scenario"].astype(str))))


def _ok(points: pd.DataFrame) -> pd.DataFrame:
    return points[points["status"] == "ok"]
