"""sync: one job at a time, steps in sequence; the other users' jobs wait their turn in a queue."""

from __future__ import annotations

import collections
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from models.db import with_database
from models.load import STOCK_START, Record, Tally, Window
from models.wire import Transport, open_transport
from models.workload import (
    OK,
    Action,
    Attempt,
    Compute,
    Job,
    StepFailed,
    Wait,
    background,
    combine,
    compute,
    foreground,
)


@dataclass
class Shared:
    """What the jobs of a run share: one thread, so the stock needs no lock."""

    window: Window
    tally: Tally
    stock: list[int]
    transport: Transport  # blocking I/O, over one connection
    handed_off: list[Action] = field(default_factory=list)  # run once the job has answered


def run(window: Window) -> Tally:
    """Open the connection, run the window's jobs, close it."""
    tally = Tally(stock=[STOCK_START] * window.scenario.products())
    # One request at a time: one connection.
    transport = with_database(
        open_transport(window.service, 1, window.client, window.wire_too()), window, tally, 1
    )
    try:
        start_users(Shared(window, tally, tally.stock, transport))
    finally:
        transport.close()
    return tally


def start_users(shared: Shared) -> None:
    """Serve the window's N users from this one thread."""
    serve(shared.window.start(shared.tally), itertools.count().__next__, shared)


def serve(window: Window, take: Callable[[], int], shared: Shared) -> None:
    """Run jobs first come, first served; each user submits again when its job ends (open load:
    each job is submitted when it is due)."""
    # Users join one by one across the warm-up; then a user's next job is submitted when its
    # last one ends, and waits for the jobs submitted before it.
    submitted = collections.deque(window.user_start_s(u) for u in range(window.concurrency))
    while (job := window.job(take())) is not None:
        submitted_s = window.due_s(job.index, submitted.popleft())
        time.sleep(max(0.0, submitted_s - time.perf_counter()))  # idle until the next job comes
        started_s = time.perf_counter()
        checksum, outcome = run_job(job, shared)
        ended_s = time.perf_counter()
        record: Record = (job, submitted_s, started_s, ended_s, checksum, outcome)
        shared.tally.records.append(record)
        submitted.append(ended_s)
        while shared.handed_off:  # the user has its answer; the next job waits for this work
            hand_off(shared.handed_off.pop(0), shared)


def run_job(job: Job, shared: Shared) -> tuple[int, int]:
    """Run the stages in order; a stage that fails ends the job. Returns (checksum, outcome)."""
    results = []
    try:
        for stage in job.stages:
            results.append(run_stage(stage, shared))
    except Exception as error:
        return 0, shared.tally.outcome(error)
    return combine(results), OK


def run_stage(stage: tuple[Action, ...], shared: Shared) -> int:
    """Put the background steps aside for later, run the others one after another."""
    for action in background(stage):
        shared.tally.handed_off.append(action.job)
        shared.handed_off.append(action)
    return combine([run_step(action, shared) for action in foreground(stage)])


def hand_off(action: Action, shared: Shared) -> None:
    """Run a background step to its end and record how it ended."""
    handed_s = time.perf_counter()
    try:
        checksum, outcome = run_step(action, shared), OK
    except Exception as error:
        checksum, outcome = 0, shared.tally.outcome(error)
    shared.tally.background.append(
        (action, handed_s, handed_s, time.perf_counter(), checksum, outcome)
    )


def run_step(action: Action, shared: Shared) -> int:
    """Run one step; a step that updates stock reads, works and writes (no one else can run)."""
    if action.product is None or shared.window.database is not None:  # the row lock is the db's
        return run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
    level = shared.stock[action.product]
    result = run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
    shared.stock[action.product] = level - 1
    shared.tally.sold.append(action.product)
    return result


def run_attempts(wait: Wait, shared: Shared) -> int:
    """Try until a try succeeds, pausing before each retry; the last try's error is the step's."""
    for attempt, retry in itertools.pairwise(wait.attempts):
        with contextlib.suppress(StepFailed, TimeoutError):
            return do_io(wait, attempt, shared)
        shared.tally.retried.append(wait.job)
        time.sleep(retry.backoff_s)
    return do_io(wait, wait.attempts[-1], shared)


def do_io(wait: Wait, attempt: Attempt, shared: Shared) -> int:
    """One try on a blocking socket (or a sleep), blocking the only thread; a socket timeout
    ends it. Returns the response's size."""
    return shared.transport.call(wait, attempt)


def do_cpu(work: Compute) -> int:
    """Compute."""
    return compute(work)
