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
        rank = max(1, math.ceil(percent * self.total / 100.0 - 1e-9))
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


def bound_per_s(scenario: Scenario, concurrency: int, cores: int) -> float:
    """What any model could reach, in successful jobs per second:
    min(N / L_crit, cores / D_cpu, the hottest lock's limit) x the share of jobs that succeed."""
    limits = [scenario.lock_limit_per_s()]
    if scenario.critical_path_ms() > 0:
        limits.append(concurrency / (scenario.critical_path_ms() / 1000.0))
    if scenario.cpu_ms() > 0:
        limits.append(cores / (scenario.cpu_ms() / 1000.0))
    return min(limits) * scenario.success_rate()
