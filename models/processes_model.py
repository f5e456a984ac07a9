"""processes: a worker process per in-flight job, as a prefork server; steps overlap on threads."""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import multiprocessing
import time
from collections.abc import MutableSequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from multiprocessing.synchronize import Lock
from typing import Literal

from models.db import with_database
from models.load import Record, Tally, Window
from models.wire import Transport, open_transport
from models.workers import Crew, run_workers, shared_stock
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
    """What one worker's threads share; the stock and its locks are shared by every worker."""

    window: Window
    tally: Tally  # this worker's
    locks: list[Lock]  # one per product, across processes
    stock: MutableSequence[int]  # in shared memory
    transport: Transport  # this worker's blocking I/O and connections
    steps: ThreadPoolExecutor  # runs a stage's other steps
    handed_off: ThreadPoolExecutor  # runs the background steps


def run(window: Window, start_method: Literal["forkserver"] = "forkserver") -> Tally:
    """Start the worker processes (as the registry says), run the window's jobs, stop them."""
    context = multiprocessing.get_context(start_method)
    context.set_forkserver_preload([__name__])
    locks, stock = shared_stock(context, window.scenario.products())
    tally = start_users(window, context, locks, stock)
    tally.stock = list(stock)
    return tally


def start_users(
    window: Window, context: ForkServerContext, locks: list[Lock], stock: MutableSequence[int]
) -> Tally:
    """Start one process per user, start the clock once all are up, gather their tallies."""
    crew = Crew(context, window.concurrency)
    users = [(window, user, locks, stock) for user in range(window.concurrency)]
    return run_workers(window, context, crew, serve, users)


def serve(
    crew: Crew, window: Window, user: int, locks: list[Lock], stock: MutableSequence[int]
) -> None:
    """In a worker process: join at this user's turn, run jobs back to back (open load: each when
    it is due) until the window closes, wait for this worker's background work, then report."""

    def work() -> Tally:
        tally = Tally()
        transport = with_database(
            open_transport(
                window.service, window.scenario.max_io_width(), window.client, window.wire_too()
            ),
            window,
            tally,
            1,
        )
        extra_steps = window.scenario.max_width() - 1
        with (
            ThreadPoolExecutor(max(1, extra_steps)) as steps,
            ThreadPoolExecutor(window.scenario.handoff_workers(1)) as later,
        ):
            shared = Shared(window, tally, locks, stock, transport, steps, later)
            started = window.start(tally, at_s=crew.start())
            time.sleep(max(0.0, started.user_start_s(user) - time.perf_counter()))
            while (job := started.job(crew.take())) is not None:
                if (early_s := started.wait_s(job.index)) > 0:  # open load: until due
                    time.sleep(early_s)
                started_s = time.perf_counter()
                checksum, outcome = run_job(job, shared)
                ended_s = time.perf_counter()
                submitted_s = started.due_s(job.index, started_s)
                record: Record = (job, submitted_s, started_s, ended_s, checksum, outcome)
                tally.records.append(record)
        transport.close()
        return tally

    crew.report(work)


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
    worker's pool, at the same time."""
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
    """Run one step; a step that updates stock reads, works and writes under its product's lock,
    which every worker process shares."""
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
    """One try on a blocking socket (or a sleep), blocking this worker's thread; a socket
    timeout ends it. Returns the response's size."""
    return shared.transport.call(wait, attempt)


def do_cpu(work: Compute) -> int:
    """Compute in this process, on its own GIL."""
    return compute(work)
