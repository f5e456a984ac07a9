"""Statistics: a mergeable latency histogram, per-point summaries, and the analytical bound."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from models.workload import Scenario

# Buckets grow by 0.2%; reporting a bucket's geometric middle keeps every value within 0.1%.
_RATIO = 1.002
_LOG_RATIO = math.log(_RATIO)
_FLOOR_MS = 1e-6  # one nanosecond: anything shorter is recorded as this


@dataclass
class Histogram:
    """Log-bucketed latency histogram in milliseconds, HdrHistogram-style: at most 0.1% error."""

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    sum_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0

    def record(self, value_ms: float) -> None:
        """Add one value."""
        bucket = math.floor(math.log(max(value_ms, _FLOOR_MS)) / _LOG_RATIO)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.total += 1
        self.sum_ms += value_ms
        self.min_ms = min(self.min_ms, value_ms)
        self.max_ms = max(self.max_ms, value_ms)

    def merge(self, other: Histogram) -> None:
        """Add every value of `other`."""
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.sum_ms += other.sum_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, percent: float) -> float:
        """The nearest-rank percentile (NaN when empty)."""
        if self.total == 0:
            return math.nan
        middle = math.exp((self.percentile_bucket(percent) + 0.5) * _LOG_RATIO)
        return min(max(middle, self.min_ms), self.max_ms)

    def percentile_bucket(self, percent: float) -> int:
        """The bucket that holds the nearest-rank percentile (of a non-empty histogram)."""
        # The epsilon keeps float error out of the rank: 99.9% of 1000 is 999, not 1000.
        return self._rank_bucket(max(1, math.ceil(percent * self.total / 100.0 - 1e-9)))

    def at_rank(self, rank: int) -> float:
        """The `rank`-th smallest value (1-based, of a non-empty histogram), to 0.1%."""
        middle = math.exp((self._rank_bucket(rank) + 0.5) * _LOG_RATIO)
        return min(max(middle, self.min_ms), self.max_ms)

    def percentile_interval(self, percent: float) -> tuple[float, float] | None:
        """A distribution-free 95% interval of the `percent`-th percentile (`rank_interval`);
        None when the values are too few for one, and the percentile is then not measured."""
        ranks = rank_interval(self.total, percent / 100.0)
        return None if ranks is None else (self.at_rank(ranks[0]), self.at_rank(ranks[1]))

    def supported(self, percent: float) -> float:
        """The percentile, or NaN when too few values support it (`percentile_interval`); the
        0th and the 100th are the smallest and largest values, facts of the sample."""
        if self.total and (percent <= 0 or percent >= 100):
            return self.percentile(percent)
        if rank_interval(self.total, percent / 100.0) is None:
            return math.nan
        return self.percentile(percent)

    def _rank_bucket(self, rank: int) -> int:
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return bucket
        return max(self.counts)

    @property
    def mean_ms(self) -> float:
        """The exact mean (NaN when empty)."""
        return self.sum_ms / self.total if self.total else math.nan

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
            "total": self.total,
            "sum_ms": self.sum_ms,
            "min_ms": self.min_ms if self.total else None,
            "max_ms": self.max_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """The inverse of `to_dict`."""
        return cls(
            counts={int(k): int(v) for k, v in data["counts"].items()},
            total=int(data["total"]),
            sum_ms=float(data["sum_ms"]),
            min_ms=math.inf if data["min_ms"] is None else float(data["min_ms"]),
            max_ms=float(data["max_ms"]),
        )


def rank_interval(n: int, p: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """The 1-based ranks (low, high) of n sorted values that hold the p-quantile with at least
    `confidence`, with equal tails: the binomial (order-statistic) method, free of any
    assumption on the distribution, as asv uses for medians. None when n is too small for
    either rank to exist (a p99 needs 367 values, a median 6)."""
    tail = (1.0 - confidence) / 2.0
    if n < 1 or (1.0 - p) ** n > tail or p**n > tail:
        return None
    # The count B of values below the quantile is Binomial(n, p): x_(low) <= q <= x_(high)
    # unless B < low or B >= high.
    low = _binomial_quantile(n, p, tail)  # the largest k with P(B <= k - 1) <= tail
    high = _binomial_quantile(n, p, 1.0 - tail) + 1  # the smallest k with P(B >= k) <= tail
    return max(low, 1), min(high, n)


def jobs_for(percent: float) -> int:
    """The fewest values whose `percent`-th percentile has an interval (`rank_interval`)."""
    p = percent / 100.0
    return max(math.ceil(math.log(0.025) / math.log(q)) for q in (p, 1.0 - p))


def _binomial_quantile(n: int, p: float, level: float) -> int:
    """The largest k with P(B < k) <= level, B ~ Binomial(n, p), walking the pmf from ten
    standard deviations below the mean (the mass below there is under 1e-20)."""
    start = max(0, math.floor(n * p - 10.0 * math.sqrt(n * p * (1.0 - p)) - 1))
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(start + 1)
        - math.lgamma(n - start + 1)
        + start * math.log(p)
        + (n - start) * math.log1p(-p)
    )
    pmf, below, k = math.exp(log_pmf), 0.0, start
    while k < n and below + pmf <= level:  # below: P(B < k); adding pmf gives P(B < k + 1)
        below += pmf
        pmf *= (n - k) / (k + 1) * p / (1.0 - p)
        k += 1
    return k


def bound_per_s(scenario: Scenario, concurrency: int, cores: int) -> float:
    """What any model could reach, in successful jobs per second:
    min(N / L_crit, cores / D_cpu, the hottest lock's limit) x the share of jobs that succeed."""
    limits = [scenario.lock_limit_per_s()]
    if scenario.critical_path_ms() > 0:
        limits.append(concurrency / (scenario.critical_path_ms() / 1000.0))
    if scenario.cpu_ms() > 0:
        limits.append(cores / (scenario.cpu_ms() / 1000.0))
    return min(limits) * scenario.success_rate()
