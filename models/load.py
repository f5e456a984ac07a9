"""The closed load: which job a user runs next, and when a point's windows open and close."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, MutableSequence, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from models.workload import (
    FAILED,
    LOST,
    TIMED_OUT,
    Calibration,
    Job,
    Scenario,
    StepFailed,
    draw_job,
)

# One finished job: (job index, submitted_s, started_s, ended_s, checksum, outcome), times in
# perf_counter seconds. A plain tuple of numbers, not a dataclass: the garbage collector stops
# tracking such tuples, so the 100,000 records of a busy point do not slow down the collections
# the model's runtime triggers (measured, trio at N=1000 on io-bound: full collections took
# 0.58 s of a 7 s point with dataclass records, 0.44 s with tuples; throughput rose about 6%).
# A background step's record has the same fields, timed from its hand-off.
Record = tuple[int, float, float, float, int, int]
# Every product starts with this much stock: enough that no point sells out.
STOCK_START = 10**12
# How many error messages a tally keeps: the first few say what went wrong.
_KEPT_ERRORS = 5


class Finished(NamedTuple):
    """A record with names, for reading records once the point is over."""

    job_index: int
    submitted_s: float
    started_s: float
    ended_s: float
    checksum: int
    outcome: int


def finished(records: list[Record]) -> list[Finished]:
    """The records with names."""
    return [Finished._make(r) for r in records]


@dataclass
class Tally:
    """What a model hands back: every job and background step that ended, and the shared stock.

    Appends only, so threads can share one (list.append is atomic, GIL or not).
    """

    records: list[Record] = field(default_factory=list)
    background: list[Record] = field(default_factory=list)
    handed_off: list[int] = field(default_factory=list)  # the job of every background step
    retried: list[int] = field(default_factory=list)  # the job of every retry
    sold: list[int] = field(default_factory=list)  # the product of every stock update
    stock: list[int] = field(default_factory=list)  # each product's stock when the model ended
    errors: list[str] = field(default_factory=list)  # the first unexpected errors, as text

    def outcome(self, error: BaseException) -> int:
        """How a job or step that raised `error` ended; an unexpected error is kept as text."""
        if isinstance(error, BaseExceptionGroup):  # steps of one stage, failing together
            return max(self.outcome(e) for e in error.exceptions)
        if isinstance(error, StepFailed):
            return FAILED
        if isinstance(error, TimeoutError):
            return TIMED_OUT
        if len(self.errors) < _KEPT_ERRORS:
            self.errors.append(f"{type(error).__name__}: {error}")
        return LOST

    def merge(self, other: Tally) -> None:
        """Add another process's tally (the stock is shared, so it is not added)."""
        self.records += other.records
        self.background += other.background
        self.handed_off += other.handed_off
        self.retried += other.retried
        self.sold += other.sold
        self.errors += other.errors[: _KEPT_ERRORS - len(self.errors)]


@dataclass(frozen=True)
class Part:
    """The users one of several processes serves, and what those processes share."""

    users: range
    take: Callable[[], int]  # the next job's index, across the processes
    start: Callable[[], float | None]  # waits for the other processes; the run's start
    locks: Sequence[AbstractAsyncContextManager[object]]  # one per product, across processes
    stock: MutableSequence[int]  # in shared memory


@dataclass(frozen=True)
class Window:
    """N users keep a job each in flight from `start()` until the measured window closes.

    `perf_counter` is CLOCK_MONOTONIC on Linux, one clock for every process of the point.
    """

    scenario: Scenario
    calibration: Calibration
    seed: int
    concurrency: int
    warmup_s: float
    duration_s: float
    max_jobs: int | None = None  # stop after this many jobs too (tests want exact counts)
    announce_fd: int | None = None  # start() writes its time here, for the point's monitor
    service: tuple[str, int] | None = None  # the latency service; None: I/O waits on a timer
    started_s: float = 0.0

    def connections(self) -> int:
        """How many connections to open before the window: one per I/O step a user may await."""
        return self.concurrency * self.scenario.max_io_width() if self.service else 0

    def start(self, at_s: float | None = None) -> Window:
        """This window, starting at `at_s` (given by a process that shares a start), or now."""
        if at_s is not None:
            return replace(self, started_s=at_s)
        started = replace(self, started_s=time.perf_counter())
        if self.announce_fd is not None:
            os.write(self.announce_fd, struct.pack("d", started.started_s))
        return started

    @property
    def measure_s(self) -> float:
        """When the measured window opens."""
        return self.started_s + self.warmup_s

    @property
    def stop_s(self) -> float:
        """When the measured window closes and users stop taking jobs."""
        return self.measure_s + self.duration_s

    def user_start_s(self, user: int) -> float:
        """When user `user` (0 to N-1) submits its first job.

        Users join one by one across the warm-up, as a load test ramps up: N jobs started at
        the same instant would otherwise end in bunches, and a short window would catch a
        bunch or a gap instead of the steady state.
        """
        return self.started_s + self.warmup_s * user / self.concurrency

    def job(self, index: int) -> Job | None:
        """Job `index`, or None once the window has closed."""
        if self.max_jobs is not None and index >= self.max_jobs:
            return None
        if time.perf_counter() >= self.stop_s:
            return None
        return draw_job(self.scenario, self.calibration, self.seed, index)
