"""threads: one OS thread per in-flight job; a stage's other steps run on a shared thread pool."""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
    """What the threads of a run share."""

    window: Window
    tally: Tally
    locks: list[threading.Lock]  # one per product
    stock: list[int]  # each product's stock, guarded by its lock
    transport: Transport  # blocking I/O, with a pool of connections
    steps: ThreadPoolExecutor  # runs a stage's other steps
    handed_off: ThreadPoolExecutor  # runs the background steps


def run(window: Window) -> Tally:
    """Open the connections and the pools, run the window's jobs, wait for background work."""
    products = window.scenario.products()
    tally = Tally(stock=[STOCK_START] * products)
    transport = with_database(
        open_transport(window.service, window.connections(), window.client, window.wire_too()),
        window,
        tally,
        window.concurrency,
    )
    # Enough pool threads that no stage waits for one (N users x the extra steps of a stage),
    # and enough to keep up with the background work the users hand off.
    extra_steps = window.scenario.max_width() - 1
    handed_off = window.scenario.handoff_workers(window.concurrency)
    try:
        with (
            ThreadPoolExecutor(max(1, window.concurrency * extra_steps)) as steps,
            ThreadPoolExecutor(handed_off) as later,
        ):
            locks = [threading.Lock() for _ in range(products)]
            start_users(Shared(window, tally, locks, tally.stock, transport, steps, later))
    finally:
        transport.close()
    return tally  # the pools have ended, background work included


def start_users(shared: Shared) -> None:
    """Start one thread per user and wait for all of them."""
    lock = threading.Lock()
    indices = itertools.count()

    def take() -> int:
        with lock:  # itertools.count is not guaranteed thread-safe without the GIL
            return next(indices)

    # A thread starts in about 0.1 ms (bench micro): well inside the warm-up.
    window = shared.window.start(shared.tally)
    users = [
        threading.Thread(target=serve, args=(window, user, take, shared))
        for user in range(window.concurrency)
    ]
    for user in users:
        user.start()
    for user in users:
        user.join()


def serve(window: Window, user: int, take: Callable[[], int], shared: Shared) -> None:
    """Join at this user's turn, then run jobs back to back (open load: each when it is due)
    until the window closes."""
    time.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(take())) is not None:
        if (early_s := window.wait_s(job.index)) > 0:  # open load: wait until it is due
            time.sleep(early_s)
        started_s = time.perf_counter()
        checksum, outcome = run_job(job, shared)
        ended_s = time.perf_counter()
        submitted_s = window.due_s(job.index, started_s)
        record: Record = (job, submitted_s, started_s, ended_s, checksum, outcome)
        shared.tally.records.append(record)


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
    """Hand off the background steps, run the first step in this thread and the others on the
    pool, at the same time."""
    for action in background(stage):
        shared.tally.handed_off.append(action.job)
        shared.handed_off.submit(hand_off, action, shared)
    steps = foreground(stage)
    others = [shared.steps.submit(run_step, action, shared) for action in steps[1:]]
    try:
        first = run_step(steps[0], shared)
    finally:
        concurrent.futures.wait(others)  # a thread cannot be cancelled: the stage waits for all
    return combine([first, *(future.result() for future in others)])


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
    """Run one step; a step that updates stock reads, works and writes under its product's lock."""
    if action.product is None or shared.window.database is not None:  # the row lock is the db's
        return run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
    with shared.locks[action.product]:
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
    """One try on a blocking socket (or a sleep), blocking this thread only; a socket timeout
    ends it, since a thread cannot be cancelled. Returns the response's size."""
    return shared.transport.call(wait, attempt)


def do_cpu(work: Compute) -> int:
    """Compute; python work holds the GIL, native work releases it."""
    return compute(work)
