"""The closed load: which job a user runs next, and when a point's windows open and close."""

from __future__ import annotations

import fcntl
import itertools
import math
import mmap
import os
import random
import struct
import threading
import time
from collections.abc import Callable, MutableSequence, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from models.cluster import Engine
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
# The shortest time an open load may take after its window to work off its queue.
_MIN_DRAIN_S = 5.0


class Ledger:
    """What a point's conductor and its model's processes share, in a small file each maps:
    when the measured window opens and closes (the conductor writes both), and how many jobs
    each process has ended with their latencies summed (each process its own slot).

    Doubles: [opens_s, closes_s, slots taken, then per slot: jobs, latency_s]. The window
    opens and closes at perf_counter times (CLOCK_MONOTONIC: one clock for every process);
    0 means not yet.
    """

    HEADER = 3
    # A process publishes its jobs at most this often: the conductor looks every 0.1 s.
    PERIOD_S = 0.05

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "r+b") as file:
            self.map = mmap.mmap(file.fileno(), 0)
        self.slots = (len(self.map) // 8 - self.HEADER) // 2
        self.slot = -1  # this process's, once it publishes
        self.published = 0  # how many of this process's records its slot counts
        self.next_s = 0.0
        self.lock = threading.Lock()  # one publisher at a time among a process's threads

    @classmethod
    def create(cls, path: str, slots: int) -> Ledger:
        """A new ledger file with room for `slots` processes."""
        with open(path, "wb") as file:
            file.write(bytes(8 * (cls.HEADER + 2 * slots)))
        return cls(path)

    def read(self, index: int) -> float:
        """The double at `index`."""
        value: float = struct.unpack_from("d", self.map, 8 * index)[0]
        return value

    def write(self, index: int, value: float) -> None:
        """Set the double at `index`."""
        struct.pack_into("d", self.map, 8 * index, value)

    def totals(self) -> tuple[float, float]:
        """Jobs ended and their summed latency in seconds, over every process."""
        values = struct.unpack_from(f"{2 * self.slots}d", self.map, 8 * self.HEADER)
        return math.fsum(values[0::2]), math.fsum(values[1::2])

    def publish(self, records: list[Record], now_s: float) -> None:
        """Add this process's records since its last call to its slot (at most every
        PERIOD_S, by the caller's clock `now_s`; a thread that finds another publishing leaves
        it to that one)."""
        if now_s < self.next_s or not self.lock.acquire(blocking=False):
            return
        try:
            self.next_s = now_s + self.PERIOD_S
            if self.slot < 0:
                self.slot = self._take_slot()
            ended = len(records)
            fresh = records[self.published : ended]
            self.published = ended
            base = self.HEADER + 2 * self.slot
            self.write(base, self.read(base) + len(fresh))
            self.write(base + 1, self.read(base + 1) + math.fsum(r[3] - r[1] for r in fresh))
        finally:
            self.lock.release()

    def _take_slot(self) -> int:
        """A slot no other process has: the count of slots taken, raised under a file lock."""
        with open(self.path, "r+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            taken = int(self.read(2))
            if taken >= self.slots:
                raise RuntimeError(f"the ledger's {self.slots} slots are all taken")
            self.write(2, taken + 1)
        return taken


_LEDGERS: dict[str, Ledger] = {}  # this process's mapping of each point's ledger


def ledger(path: str) -> Ledger:
    """This process's mapping of the ledger file at `path`."""
    if path not in _LEDGERS:
        _LEDGERS[path] = Ledger(path)
    return _LEDGERS[path]


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


def whole(window: Window, lock: Callable[[], AbstractAsyncContextManager[object]]) -> Part:
    """The whole run, in this process: every user, fresh locks (made by `lock`) and stock, and
    no other process to count jobs with or wait for."""
    products = window.scenario.products()
    return Part(
        range(window.concurrency),
        itertools.count().__next__,  # one thread: no lock needed
        lambda: None,  # no one to wait for: start now
        [lock() for _ in range(products)],
        [STOCK_START] * products,
    )


def arrivals(rate: float, until_s: float, kind: str, seed: int) -> tuple[float, ...]:
    """When each job of an open load arrives, in seconds from the start, up to `until_s`.

    `constant` spaces arrivals 1/rate apart; `poisson` draws exponential gaps of mean 1/rate
    from `seed`, the same in every process.
    """
    if kind == "constant":  # i / rate, not a running sum: no rounding error piles up
        return tuple(i / rate for i in range(math.ceil(until_s * rate)))
    rng = random.Random(f"{seed}:arrivals")
    times, at = [], 0.0
    while at < until_s:
        times.append(at)
        at += rng.expovariate(rate)
    return tuple(times)


@dataclass(frozen=True)
class Window:
    """The jobs of a point and when each may start, from `start()` until the window closes.

    Closed load: N users keep a job each in flight. Open load (`arrivals` given): job i is due
    `arrivals[i]` seconds after the start, whether or not the last one has ended; N users (the
    in-flight cap) take the jobs in order, so a job due while all N are busy waits in the queue
    and its latency, counted from when it was due, says so.

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
    arrivals: tuple[float, ...] | None = None  # open load: when each job is due, from the start
    engine: Engine = field(default_factory=Engine)  # dask's and celery's cluster or broker
    # A closed load's ledger file, shared with the model's processes: they publish their jobs
    # to it, and a conductor may pick the window's edges in it (warmup_s and duration_s are
    # then caps). None: no ledger, fixed edges.
    ledger: str | None = None
    ramp_s: float | None = None  # how long users take to join; None: the whole warm-up
    started_s: float = 0.0
    tally: Tally | None = field(default=None, compare=False, repr=False)  # this process's

    def connections(self, users: int | None = None) -> int:
        """How many connections to open before the window: one per I/O step a user may await,
        for `users` users (a process's share of them), or all N."""
        if not self.service:
            return 0
        return (self.concurrency if users is None else users) * self.scenario.max_io_width()

    def start(self, tally: Tally | None = None, at_s: float | None = None) -> Window:
        """This window, starting at `at_s` (given by a process that shares a start), or now;
        `tally`: where this process records its jobs, which it publishes to the ledger."""
        if at_s is not None:
            return replace(self, started_s=at_s, tally=tally)
        started = replace(self, started_s=time.perf_counter(), tally=tally)
        if self.announce_fd is not None:
            os.write(self.announce_fd, struct.pack("d", started.started_s))
        return started

    @property
    def measure_s(self) -> float:
        """When the measured window opens (with a ledger: when the conductor opened it, or at
        the latest after the warm-up's cap)."""
        if self.ledger is not None and (opens_s := ledger(self.ledger).read(0)) > 0:
            return opens_s
        return self.started_s + self.warmup_s

    @property
    def stop_s(self) -> float:
        """When the measured window closes and users stop taking jobs (with a ledger: when the
        conductor closed it, or at the latest after both caps)."""
        if self.ledger is not None and (closes_s := ledger(self.ledger).read(1)) > 0:
            return closes_s
        return self.measure_s + self.duration_s

    def user_start_s(self, user: int) -> float:
        """When user `user` (0 to N-1) submits its first job.

        Users join one by one across the warm-up, as a load test ramps up: N jobs started at
        the same instant would otherwise end in bunches, and a short window would catch a
        bunch or a gap instead of the steady state.
        """
        if self.arrivals is not None:  # open load: the schedule paces the jobs, not the users
            return self.started_s
        ramp_s = self.warmup_s if self.ramp_s is None else self.ramp_s
        return self.started_s + ramp_s * user / self.concurrency

    def due_s(self, index: int, now_s: float) -> float:
        """When job `index` is submitted: when it is due (open load), or now (closed)."""
        return now_s if self.arrivals is None else self.started_s + self.arrivals[index]

    def wait_s(self, index: int) -> float:
        """How long until job `index` is due (open load; 0 when closed or overdue)."""
        return max(0.0, self.due_s(index, 0.0) - time.perf_counter())

    def drain_limit_s(self) -> float:
        """How long after the window an open load may work off its queue: a rate far beyond
        what the model can serve must not keep the point running until its hard timeout."""
        return self.stop_s + max(self.duration_s, _MIN_DRAIN_S)

    def job(self, index: int) -> Job | None:
        """Job `index`, or None once the window has closed (open load: once no job is due
        before the close, or the queue could not be worked off in time)."""
        if self.max_jobs is not None and index >= self.max_jobs:
            return None
        if self.arrivals is None:
            now_s = time.perf_counter()
            if self.ledger is not None and self.tally is not None:
                ledger(self.ledger).publish(self.tally.records, now_s)
            if now_s >= self.stop_s:
                return None
        elif (
            index >= len(self.arrivals)
            or self.started_s + self.arrivals[index] >= self.stop_s
            or time.perf_counter() >= self.drain_limit_s()
        ):
            return None
        return draw_job(self.scenario, self.calibration, self.seed, index)
