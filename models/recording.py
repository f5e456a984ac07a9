"""What a point's jobs leave behind as they end: mergeable histograms and running tallies, so
that a point holds the same few kilobytes after a second as after an hour, and its memory is
the model's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
        # Comparisons, not min() and max(): this runs for every job, inside the window.
        bucket = math.floor(math.log(value_ms if value_ms > _FLOOR_MS else _FLOOR_MS) / _LOG_RATIO)
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1
        self.total += 1
        self.sum_ms += value_ms
        if value_ms < self.min_ms:
            self.min_ms = value_ms
        if value_ms > self.max_ms:
            self.max_ms = value_ms

    @classmethod
    def constant(cls, value_ms: float, count: int) -> Histogram:
        """`count` values all equal to `value_ms`."""
        histogram = cls()
        if count:
            histogram.record(value_ms)
            histogram.counts = {bucket: count for bucket in histogram.counts}
            histogram.total, histogram.sum_ms = count, value_ms * count
        return histogram

    def merge(self, other: Histogram) -> None:
        """Add every value of `other`."""
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.sum_ms += other.sum_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)

    def values(self) -> list[tuple[float, int]]:
        """Each bucket's value (its middle, within the smallest and largest values) and count,
        smallest first: what another histogram format records."""
        return [
            (min(max(math.exp((bucket + 0.5) * _LOG_RATIO), self.min_ms), self.max_ms), count)
            for bucket, count in sorted(self.counts.items())
        ]

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

    def above(self, limit_ms: float) -> int:
        """How many values lie above `limit_ms` (those in its own bucket, within 0.2% above
        it, are not counted)."""
        edge = math.floor(math.log(max(limit_ms, _FLOOR_MS)) / _LOG_RATIO)
        return sum(count for bucket, count in self.counts.items() if bucket > edge)

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


# A window's throughput is judged by batch means over its successful jobs' ends, counted into
# equal spans from its opening; past this many spans, neighbours merge and spans double.
MAX_SPANS = 256
_FIRST_SPAN_S = 0.01


@dataclass
class Spans:
    """Successful jobs that ended in the window, and their summed latencies, per span of
    `width_s` from the window's opening: enough for batch means of any length, in constant
    memory."""

    width_s: float = _FIRST_SPAN_S
    jobs: list[int] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)

    def add(self, after_s: float, latency_s: float) -> None:
        """One job that ended `after_s` after the window opened."""
        span = int(after_s / self.width_s)
        while span >= MAX_SPANS:
            self._double()
            span = int(after_s / self.width_s)
        if span >= len(self.jobs):
            grow = span + 1 - len(self.jobs)
            self.jobs += [0] * grow
            self.latency_s += [0.0] * grow
        self.jobs[span] += 1
        self.latency_s[span] += latency_s

    def merge(self, other: Spans) -> None:
        """Add another process's spans (the same opening; widths are powers of two apart)."""
        other = Spans(other.width_s, list(other.jobs), list(other.latency_s))
        while self.width_s < other.width_s:
            self._double()
        while other.width_s < self.width_s:
            other._double()
        for span, (jobs, latency_s) in enumerate(zip(other.jobs, other.latency_s, strict=True)):
            if span >= len(self.jobs):
                self.jobs.append(0)
                self.latency_s.append(0.0)
            self.jobs[span] += jobs
            self.latency_s[span] += latency_s

    def _double(self) -> None:
        self.width_s *= 2.0
        self.jobs = [sum(self.jobs[i : i + 2]) for i in range(0, len(self.jobs), 2)]
        self.latency_s = [sum(self.latency_s[i : i + 2]) for i in range(0, len(self.latency_s), 2)]


@dataclass
class Recording:
    """Everything a point's verdict needs from its jobs, folded in as each one settles: which
    window it fell in, how it ended, whether it checked out. Mergeable across processes."""

    latency: Histogram = field(default_factory=Histogram)  # counted jobs, checked out, ms
    # Open load only (a closed load's jobs start as they are submitted: their service time is
    # their latency, and they never queue): from start to end, from due to start, and from
    # when a job was both due and in a user's hands to its start (what the runtime's timers
    # and loop added).
    service: Histogram = field(default_factory=Histogram)
    queue: Histogram = field(default_factory=Histogram)
    delay: Histogram = field(default_factory=Histogram)
    submitted: int = 0  # every job that ended, in or out of the window
    completed: int = 0  # of those, the ones that succeeded and checked out
    jobs: int = 0  # counted in the window (closed: ended in it; open: due in it)
    ok: int = 0
    failed: int = 0
    timeouts: int = 0
    errors: int = 0  # lost, or a result that did not check out
    retries: int = 0  # of the counted jobs and of background steps counted in the window
    served: int = 0  # succeeded, checked out and ended in the window
    spans: Spans = field(default_factory=Spans)  # the served jobs' ends
    # Little's edges: the time before the window of the jobs that ended in it, and the time in
    # the window of the jobs that ended after it.
    before_s: float = 0.0
    after_s: float = 0.0
    last_end_s: float = -math.inf  # of any job
    background: int = 0  # background steps that ended
    wrong_background: int = 0  # ... with a result that did not check out
    last_background_s: float = -math.inf
    # The indices of the jobs that ended (`submitted` counts them): with their sum and their
    # squares' sum, and the ones taken and never run, they tell whether each ran exactly once.
    index_sum: int = 0
    index_squares: int = 0
    top_index: int = -1
    sold: list[int] = field(default_factory=list)  # stock updates per product
    pool_wait_s: float = 0.0  # summed waits of database tries for a pooled connection
    pool_waits: int = 0  # database tries

    def merge(self, other: Recording) -> None:
        """Add another process's recording."""
        for name in ("latency", "service", "queue", "delay"):
            getattr(self, name).merge(getattr(other, name))
        self.spans.merge(other.spans)
        for name in ("submitted", "completed", "jobs", "ok", "failed", "timeouts", "errors",
                     "retries", "served", "before_s", "after_s", "background",
                     "wrong_background", "index_sum", "index_squares", "pool_wait_s",
                     "pool_waits"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.last_end_s = max(self.last_end_s, other.last_end_s)
        self.last_background_s = max(self.last_background_s, other.last_background_s)
        self.top_index = max(self.top_index, other.top_index)
        self.sell(other.sold)

    def sell(self, products: list[int]) -> None:
        """Add stock updates: one count per product, by product."""
        if len(self.sold) < len(products):
            self.sold += [0] * (len(products) - len(self.sold))
        for product, count in enumerate(products):
            self.sold[product] += count
