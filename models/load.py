"""The closed load: which job a user runs next, and when a point's windows open and close."""

from __future__ import annotations

import fcntl
import functools
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
from typing import Any, NamedTuple

from models.cluster import Engine
from models.db import Database
from models.recording import Recording
from models.workload import (
    FAILED,
    LOST,
    OK,
    TIMED_OUT,
    Action,
    Calibration,
    Job,
    Scenario,
    StepFailed,
    Verifier,
    background,
    draw_job,
)

# One finished job: (the job, submitted_s, started_s, ended_s, checksum, outcome), times in
# perf_counter seconds; it lives until its process next folds its jobs (`Tally.fold`).
Record = tuple[Job, float, float, float, int, int]
# One finished background step: the same, with the step, timed from its hand-off.
Background = tuple[Action, float, float, float, int, int]
# A record once checked, until the window's edges place it: (index, submitted_s, started_s,
# ended_s, outcome, checked out, taken_s, background step). Numbers only: the collector stops
# tracking such tuples.
Checked = tuple[int, float, float, float, int, bool, float, bool]
# Every product starts with this much stock: enough that no point sells out.
STOCK_START = 10**12
# How many error messages a tally keeps: the first few say what went wrong.
_KEPT_ERRORS = 5
# The shortest time an open load may take after its window to work off its queue.
_MIN_DRAIN_S = 5.0
# A process folds its ended jobs into its recording, and publishes them, at most this often
# (the conductor looks every 0.1 s). Small batches: a fold holds its loop or the GIL for its
# whole batch, and 50 ms batches (about 1.5 ms of folding at N=1000) cost asyncio 3% of its
# throughput on io-bound and threads 14 us of CPU a job at N=256; at 5 ms neither shows.
FOLD_S = 0.005
# A job that ended this long before a fold that finds a window's edge still unpicked is
# counted on this side of it: a conductor writes an edge as it reads its clock for it.
GRACE_S = 0.25


class Ledger:
    """What a point's conductor and its model's processes share, in a small file each maps:
    when the measured window opens and closes (the conductor writes both), and how many jobs
    each process has ended with their latencies summed (each process its own slot).

    Doubles: [opens_s, closes_s, slots taken, then per slot: jobs, latency_s]. The window
    opens and closes at perf_counter times (CLOCK_MONOTONIC: one clock for every process);
    0 means not yet.
    """

    HEADER = 3

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "r+b") as file:
            self.map = mmap.mmap(file.fileno(), 0)
        self.slots = (len(self.map) // 8 - self.HEADER) // 2
        self.slot = -1  # this process's, once it publishes

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

    def publish(self, jobs: int, latency_s: float) -> None:
        """Add jobs this process has ended, and their summed latency, to its slot (one
        publisher at a time: the caller holds the process's fold lock)."""
        if self.slot < 0:
            self.slot = self._take_slot()
        base = self.HEADER + 2 * self.slot
        self.write(base, self.read(base) + jobs)
        self.write(base + 1, self.read(base + 1) + latency_s)

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
    """A record with names, as a window that keeps its records (`Window.keep`) keeps them."""

    job_index: int
    submitted_s: float
    started_s: float
    ended_s: float
    checksum: int
    outcome: int


@dataclass
class Log:
    """Every record and list a tally folded, for a window that keeps them (tests read each
    job)."""

    records: list[Finished] = field(default_factory=list)
    background: list[Finished] = field(default_factory=list)  # the step's job as its index
    retried: list[int] = field(default_factory=list)
    sold: list[int] = field(default_factory=list)
    handed_off: list[int] = field(default_factory=list)

    def merge(self, other: Log) -> None:
        """Add another process's log."""
        for name in ("records", "background", "retried", "sold", "handed_off"):
            getattr(self, name).extend(getattr(other, name))


_FOLDING = threading.Lock()  # one fold at a time among a process's threads


@functools.cache
def _verifier() -> Verifier:
    """This process's verifier (it extends its table of native digests as jobs need them)."""
    return Verifier()


@dataclass
class Tally:
    """What a model records as its jobs end, and hands back: the jobs and background steps
    that ended since the last fold, the shared stock, and what the folds made of the rest.

    The model only appends to the first lists, so threads can share one (list.append is
    atomic, GIL or not); `fold` empties them into `recording`, so memory stays flat however
    long the point runs.
    """

    records: list[Record] = field(default_factory=list)
    background: list[Background] = field(default_factory=list)
    handed_off: list[int] = field(default_factory=list)  # the job of each background step
    retried: list[int] = field(default_factory=list)  # the job of each retry
    sold: list[int] = field(default_factory=list)  # the product of each stock update
    pool_wait_s: list[float] = field(default_factory=list)  # each database try's wait for a pool
    stock: list[int] = field(default_factory=list)  # each product's stock when the model ended
    errors: list[str] = field(default_factory=list)  # the first unexpected errors, as text
    discarded: list[int] = field(default_factory=list)  # indices taken once no job was left
    recording: Recording = field(default_factory=Recording)
    handed: int = 0  # background steps handed off, folded
    retries_of: dict[int, int] = field(default_factory=dict)  # of jobs not yet placed
    taken_s: dict[int, float] = field(default_factory=dict)  # open load: when a user took it
    unsettled: list[Checked] = field(default_factory=list)  # waiting for a window's edge
    # The latest end placed before the window's opening, and before its closing, while that
    # edge was still unpicked: an edge picked earlier would have misplaced those jobs.
    blind_s: tuple[float, float] = (-math.inf, -math.inf)
    kept: Log | None = None  # every record and list as folded (a window that keeps them)
    next_fold_s: float = 0.0

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
        """Add another process's tally, or a job's from an engine's worker (the stock is
        shared, so it is not added)."""
        with _FOLDING:  # a fold in another thread adds to the same counts
            self._merge(other)

    def _merge(self, other: Tally) -> None:
        self.records += other.records
        self.background += other.background
        self.handed_off += other.handed_off
        self.retried += other.retried
        self.sold += other.sold
        self.pool_wait_s += other.pool_wait_s
        self.errors += other.errors[: _KEPT_ERRORS - len(self.errors)]
        self.discarded += other.discarded
        self.recording.merge(other.recording)
        self.handed += other.handed
        for index, retries in other.retries_of.items():
            self.retries_of[index] = self.retries_of.get(index, 0) + retries
        self.taken_s |= other.taken_s
        self.unsettled += other.unsettled
        opened, closed = other.blind_s
        self.blind_s = (max(self.blind_s[0], opened), max(self.blind_s[1], closed))
        if other.kept is not None:
            self.kept = self.kept or Log()
            self.kept.merge(other.kept)

    @property
    def handed_total(self) -> int:
        """Background steps handed off, folded or not."""
        return self.handed + len(self.handed_off)

    def fold(self, window: Window, now_s: float, edges: tuple[float, float] | None = None) -> None:
        """Check the jobs and steps that ended since the last fold, publish them to the
        ledger, and add those the window's edges can place to the recording; at most every
        FOLD_S, by one thread at a time. `edges`: the window's final edges, once the model has
        ended (every job is placed then)."""
        if edges is None:
            if now_s < self.next_fold_s or not _FOLDING.acquire(blocking=False):
                return
        else:
            _FOLDING.acquire()
        try:
            self.next_fold_s = now_s + FOLD_S
            # Records first, retries after: a job's retries are appended before its record.
            records, background = _take(self.records), _take(self.background)
            retried, sold = _take(self.retried), _take(self.sold)
            handed_off = _take(self.handed_off)
            waits = _take(self.pool_wait_s)
            self.recording.pool_wait_s += math.fsum(waits)
            self.recording.pool_waits += len(waits)
            if self.kept is not None:
                self.kept.merge(Log(
                    [Finished(j.index, *rest) for j, *rest in records],
                    [Finished(a.job, *rest) for a, *rest in background],
                    retried, sold, handed_off,
                ))  # fmt: skip
            if window.ledger is not None and records:
                ledger(window.ledger).publish(len(records), math.fsum(r[3] - r[1] for r in records))
            for index in retried:
                self.retries_of[index] = self.retries_of.get(index, 0) + 1
            self.handed += len(handed_off)
            self._check(records, background, sold)
            self._place(window, now_s, edges)
        finally:
            _FOLDING.release()

    def _check(self, records: list[Record], background: list[Background], sold: list[int]) -> None:
        """Verify each job and step as it comes in; keep the numbers that place it."""
        verifier, rec = _verifier(), self.recording
        for job, submitted_s, started_s, ended_s, checksum, outcome in records:
            index = job.index
            fine = outcome != LOST and verifier.accepts(job, outcome, checksum)
            rec.submitted += 1
            rec.completed += fine and outcome == OK
            rec.index_sum += index
            rec.index_squares += index * index
            if index > rec.top_index:
                rec.top_index = index
            if ended_s > rec.last_end_s:
                rec.last_end_s = ended_s
            taken_s = self.taken_s.pop(index, submitted_s)
            self.unsettled.append(
                (index, submitted_s, started_s, ended_s, outcome, fine, taken_s, False)
            )
        for action, handed_s, _, ended_s, checksum, outcome in background:
            rec.background += 1
            rec.wrong_background += outcome != LOST and not verifier.accepts_step(
                action, outcome, checksum
            )
            rec.last_background_s = max(rec.last_background_s, ended_s)
            self.unsettled.append(
                (action.job, handed_s, handed_s, ended_s, outcome, True, handed_s, True)
            )
        if sold:
            counts = [0] * (max(sold) + 1)
            for product in sold:
                counts[product] += 1
            rec.sell(counts)

    def _place(self, window: Window, now_s: float, edges: tuple[float, float] | None) -> None:
        """Add to the recording each checked job whose side of both edges is known."""
        if edges is not None:
            (opens_s, closes_s), horizon_s = edges, math.inf
        elif not window.conducted:
            opens_s, closes_s, horizon_s = window.measure_s, window.stop_s, math.inf
        else:
            shared = ledger(window.ledger or "")
            opens_s, closes_s = shared.read(0) or math.inf, shared.read(1) or math.inf
            horizon_s = math.inf if closes_s < math.inf else now_s - GRACE_S
            opened, closed = self.blind_s
            self.blind_s = (
                max(opened, horizon_s) if opens_s == math.inf else opened,
                max(closed, horizon_s) if closes_s == math.inf else closed,
            )
        waiting = []
        for checked in self.unsettled:
            if checked[3] >= horizon_s:
                waiting.append(checked)
            else:
                self._count(checked, window.arrivals is None, opens_s, closes_s)
        self.unsettled = waiting

    def _count(self, checked: Checked, closed: bool, opens_s: float, closes_s: float) -> None:
        index, submitted_s, started_s, ended_s, outcome, fine, taken_s, step = checked
        rec = self.recording
        retries = self.retries_of.pop(index, 0)
        # Closed load: the jobs that ended in the window. Open load: the jobs due in it, every
        # one of them, however late it ended: a stalled model cannot hide its queue.
        counted = opens_s <= (ended_s if closed else submitted_s) < closes_s
        if counted:
            rec.retries += retries
        if step:
            return
        if opens_s <= ended_s < closes_s:
            if submitted_s < opens_s:
                rec.before_s += opens_s - submitted_s
            if fine and outcome == OK:
                rec.served += 1
                rec.spans.add(ended_s - opens_s, ended_s - submitted_s)
        elif ended_s >= closes_s and submitted_s < closes_s:
            rec.after_s += closes_s - max(submitted_s, opens_s)
        if not counted:
            return
        rec.jobs += 1
        if not fine:
            rec.errors += 1
            return
        rec.latency.record((ended_s - submitted_s) * 1000.0)
        if not closed:
            rec.service.record((ended_s - started_s) * 1000.0)
            rec.queue.record((started_s - submitted_s) * 1000.0)
            rec.delay.record((started_s - max(submitted_s, taken_s)) * 1000.0)
        rec.ok += outcome == OK
        rec.failed += outcome == FAILED
        rec.timeouts += outcome == TIMED_OUT


def handed_step(window: Window, job: int, outcome: int, checksum: int) -> Action:
    """The background step of job `job` that ended with `outcome` and `checksum`, for an
    engine whose steps report back only their job's index: one that checks out, if any does."""
    steps = [a for stage in window.job_at(job).stages for a in background(stage)]
    return next((a for a in steps if _verifier().accepts_step(a, outcome, checksum)), steps[0])


def _take(items: list[Any]) -> list[Any]:
    """The items now in a list that other threads append to, removed from it."""
    taken = items[: len(items)]
    del items[: len(taken)]
    return taken


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
    client: str | None = None  # the HTTP client library of steps via "http"; None: the wire
    database: Database | None = None  # where the stock lives; None: in the model's memory
    driver: str | None = None  # the database driver of steps via "postgres" (`models.db`)
    db_pool: int | None = None  # connections in all pools (--db-pool); None: one per user
    arrivals: tuple[float, ...] | None = None  # open load: when each job is due, from the start
    engine: Engine = field(default_factory=Engine)  # dask's and celery's cluster or broker
    # A closed load's ledger file, shared with the model's processes: they publish their jobs
    # to it, and a conductor may pick the window's edges in it (warmup_s and duration_s are
    # then caps). None: no ledger, fixed edges.
    ledger: str | None = None
    ramp_s: float | None = None  # how long users take to join; None: the whole warm-up
    conducted: bool = False  # a conductor picks the edges in the ledger as the point runs
    keep: bool = False  # keep every record too (`Tally.kept`): for tests that read each job
    started_s: float = 0.0
    tally: Tally | None = field(default=None, compare=False, repr=False)  # this process's

    def connections(self, users: int | None = None) -> int:
        """How many connections to open before the window: one per I/O step a user may await,
        for `users` users (a process's share of them), or all N."""
        if not self.service:
            return 0
        return (self.concurrency if users is None else users) * self.scenario.max_io_width()

    def wire_connections(self, users: int | None = None) -> int:
        """How many of those speak the wire protocol: all, unless every I/O step goes over
        HTTP (whose client libraries keep pools of their own)."""
        if self.client is not None and not self.wire_too():
            return 0
        return self.connections(users)

    def wire_too(self) -> bool:
        """Whether some I/O step speaks the wire protocol beside HTTP's and the database's:
        one routed to the service, or to a database while the stock is in memory."""
        return self.scenario.routes("service") or (
            self.database is None and self.scenario.routes("postgres")
        )

    def start(self, tally: Tally | None = None, at_s: float | None = None) -> Window:
        """This window, starting at `at_s` (given by a process that shares a start), or now;
        `tally`: where this process records its jobs, which it publishes to the ledger."""
        if tally is not None and self.keep:
            tally.kept = Log()
        if at_s is not None:
            return replace(self, started_s=at_s, tally=tally)
        started = replace(self, started_s=time.perf_counter(), tally=tally)
        started.announce()
        return started

    def announce(self) -> None:
        """Tell the point's monitor when the clock started (if it listens)."""
        if self.announce_fd is not None:
            os.write(self.announce_fd, struct.pack("d", self.started_s))

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
        if self.arrivals is None:  # every closed job is due as it is taken: no clock to read
            return 0.0
        return max(0.0, self.due_s(index, 0.0) - time.perf_counter())

    def drain_limit_s(self) -> float:
        """How long after the window an open load may work off its queue: a rate far beyond
        what the model can serve must not keep the point running until its hard timeout."""
        return self.stop_s + max(self.duration_s, _MIN_DRAIN_S)

    def job(self, index: int) -> Job | None:
        """Job `index`, or None once the window has closed (open load: once no job is due
        before the close, or the queue could not be worked off in time). Folds this process's
        ended jobs first (`Tally.fold`)."""
        now_s = time.perf_counter()
        if self.tally is not None:
            self.tally.fold(self, now_s)
        if (
            (self.max_jobs is not None and index >= self.max_jobs)
            or (self.arrivals is None and now_s >= self.stop_s)
            or (
                self.arrivals is not None
                and (
                    index >= len(self.arrivals)
                    or self.started_s + self.arrivals[index] >= self.stop_s
                    or now_s >= self.drain_limit_s()
                )
            )
        ):
            if self.tally is not None:
                self.tally.discarded.append(index)
            return None
        if self.arrivals is not None and self.tally is not None:
            self.tally.taken_s[index] = now_s
        return self.job_at(index)

    def job_at(self, index: int) -> Job:
        """Job `index` as every model draws it."""
        return draw_job(self.scenario, self.calibration, self.seed, index)
