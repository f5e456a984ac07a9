"""When a point has reached steady state, and when its measured window has seen enough: rules
on the running counts a point's model publishes (plain Python, for the point process)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.analysing.thresholds import BATCHES, STEADY_JOBS, STEADY_TOLERANCE, T_975


@dataclass(frozen=True)
class Tick:
    """What the model had done at `at_s`: jobs ended and their latencies summed, since its
    start (every outcome counts: a job that failed was in flight too)."""

    at_s: float
    jobs: float
    latency_s: float


@dataclass(frozen=True)
class Goal:
    """What a point's window must reach before it closes: this many jobs, a throughput known
    to within `throughput_ci` (relative half-width of its 95% interval), at least `min_s`
    long; and at most `cap_s` long, whatever it has reached."""

    jobs: int
    throughput_ci: float
    min_s: float
    cap_s: float


def is_steady(ticks: Sequence[Tick], concurrency: int, since_s: float) -> bool:
    """Whether a closed load is in steady state at the last tick: over the shortest span back
    from it (not before `since_s`, when the last user joined) that holds STEADY_JOBS jobs and
    half of N (so that one job with a long tail cannot carry the sum), Little's law holds: the
    summed latency of the jobs that ended, over the span's length (the throughput times their
    mean latency), is N within STEADY_TOLERANCE.

    Until then the latencies still grow or shrink with the queue the ramp built: `sync` at
    N > 1, one server for N users, needs about N job lengths before every job it ends had
    waited behind N - 1 others.
    """
    if not ticks:
        return False
    last = ticks[-1]
    jobs = max(STEADY_JOBS, concurrency / 2)
    first = next(
        (t for t in reversed(ticks) if t.at_s >= since_s and last.jobs - t.jobs >= jobs),
        None,
    )
    if first is None or last.at_s <= first.at_s:
        return False
    in_flight = (last.latency_s - first.latency_s) / (last.at_s - first.at_s)
    return abs(in_flight - concurrency) <= STEADY_TOLERANCE * concurrency


def throughput_error(ticks: Sequence[Tick]) -> tuple[float, int]:
    """The relative standard error of throughput over the ticks (from the first, the window's
    opening), by batch means, and the number of batches: up to BATCHES equal spans, each at
    least two mean latencies long (shorter batches share jobs in flight and would understate
    the error). Infinite, with no batches, while the window holds fewer than three."""
    if len(ticks) < 2 or ticks[-1].jobs == ticks[0].jobs:
        return math.inf, 0
    first, last = ticks[0], ticks[-1]
    latency_s = (last.latency_s - first.latency_s) / (last.jobs - first.jobs)
    span_s = last.at_s - first.at_s
    batches = min(BATCHES, len(ticks) - 1, math.floor(span_s / max(2 * latency_s, 1e-9)))
    if batches < 3:
        return math.inf, 0
    edges = [ticks[round(i * (len(ticks) - 1) / batches)] for i in range(batches + 1)]
    rates = [(b.jobs - a.jobs) / (b.at_s - a.at_s) for a, b in itertools.pairwise(edges)]
    return statistics.stdev(rates) / math.sqrt(batches) / statistics.fmean(rates), batches


def throughput_ci(ticks: Sequence[Tick]) -> float:
    """The relative half-width of throughput's 95% interval over the ticks (Student's t on the
    batch means of `throughput_error`); infinite while there are too few batches."""
    error, batches = throughput_error(ticks)
    return math.inf if batches == 0 else T_975[batches - 1] * error


def has_enough(ticks: Sequence[Tick], goal: Goal) -> bool:
    """Whether a window whose ticks these are (from its opening) may close: it reached its
    goal, or its cap."""
    if not ticks:
        return False
    span_s = ticks[-1].at_s - ticks[0].at_s
    if span_s >= goal.cap_s:
        return True
    return (
        span_s >= goal.min_s
        and ticks[-1].jobs - ticks[0].jobs >= goal.jobs
        and throughput_ci(ticks) <= goal.throughput_ci
    )
