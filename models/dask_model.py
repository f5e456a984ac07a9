"""dask: each job a task on a dask.distributed cluster's worker threads, awaited as a future."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from distributed import Client, LocalCluster, Lock, Queue, Variable, fire_and_forget, get_client

from models.cluster import to_perf_s, worker_io
from models.load import STOCK_START, Record, Tally, Window, handed_step
from models.wire import Transport
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

# One Lock object per product in each worker process, shared by its threads: a new one would
# register with the scheduler on every use (0.4 ms of the 2.3 ms a lock, a read and a write of
# the stock take from a worker, measured here). Bounded: a user's workers outlive many runs.
product_lock = functools.lru_cache(maxsize=4096)(Lock)


@dataclass
class Shared:
    """What one job's task uses on its worker: the run's name (its locks, stock and queue are
    named after it), the job's own tally, and the worker process's I/O and steps pool."""

    run_id: str
    service: tuple[str, int] | None
    client: Client  # the worker's own, for locks, stock and hand-offs from any of its threads
    tally: Tally  # this job's, handed back with its result
    transport: Transport  # this worker's blocking I/O, pooled connections
    steps: ThreadPoolExecutor  # this worker's: runs a stage's other steps


def run(window: Window) -> Tally:
    """Start a LocalCluster (no dashboard) unless given a scheduler, run the window's jobs, stop
    it; the cluster starts and stops outside the window."""
    engine = window.engine
    with contextlib.ExitStack() as stack:
        address = engine.dask_address
        if address is None:
            cluster = LocalCluster(
                n_workers=engine.workers,
                threads_per_worker=engine.threads,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            address = stack.enter_context(cluster).scheduler_address
        return asyncio.run(start_users(window, address))


async def start_users(window: Window, address: str) -> Tally:
    """Connect, stock the shelves, start one client task per user; then wait for the background
    steps to report and read the stock back."""
    run_id = f"bench-{uuid.uuid4().hex}"
    tally = Tally()
    products = range(window.scenario.products())
    async with Client(address, asynchronous=True) as client:
        stock = [Variable(f"{run_id}-stock-{p}", client=client) for p in products]
        await asyncio.gather(*(level.set(STOCK_START) for level in stock))
        indices = itertools.count()
        started = window.start(tally)
        async with asyncio.TaskGroup() as users:
            for user in range(window.concurrency):
                users.create_task(serve(started, user, indices, client, run_id, tally))
        reports = Queue(run_id, client=client)
        # The background steps report on the run's queue as they end, wherever they ran.
        with contextlib.suppress(TimeoutError):
            for _ in range(tally.handed_total):
                left_s = max(1.0, started.drain_limit_s() - time.perf_counter())
                (job, handed_s, ended_s, checksum, outcome), step_tally = await reports.get(
                    timeout=left_s
                )
                handed_s, ended_s = to_perf_s(handed_s), to_perf_s(ended_s)
                step = handed_step(started, job, outcome, checksum)
                tally.background.append((step, handed_s, handed_s, ended_s, checksum, outcome))
                tally.merge(step_tally)
        tally.stock = list(await asyncio.gather(*(level.get() for level in stock)))
        for level in stock:  # the cluster may be the user's own
            level.delete()
    return tally


async def serve(
    window: Window, user: int, indices: Iterator[int], client: Client, run_id: str, tally: Tally
) -> None:
    """Join at this user's turn, then submit jobs one after another (open load: each when it is
    due) and await each one's future, until the window closes."""
    await asyncio.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(next(indices))) is not None:
        if (early_s := window.wait_s(job.index)) > 0:  # open load: wait until it is due
            await asyncio.sleep(early_s)
        started_s = time.perf_counter()
        left_s = max(1.0, window.drain_limit_s() - started_s)
        try:  # pure=False: equal jobs are still separate orders, never merged into one task
            async with asyncio.timeout(left_s):  # a cluster that went away must not hang us
                checksum, outcome, done = await client.submit(
                    run_job, job, run_id, window.service, pure=False
                )
        except TimeoutError:  # not a step's timeout: the job itself never came back
            lost = RuntimeError(f"no result from the cluster within {left_s:.0f} s")
            checksum, outcome, done = 0, tally.outcome(lost), Tally()
        except Exception as error:  # the engine lost the task
            checksum, outcome, done = 0, tally.outcome(error), Tally()
        ended_s = time.perf_counter()
        tally.merge(done)
        submitted_s = window.due_s(job.index, started_s)
        record: Record = (job, submitted_s, started_s, ended_s, checksum, outcome)
        tally.records.append(record)


def run_job(job: Job, run_id: str, service: tuple[str, int] | None) -> tuple[int, int, Tally]:
    """On a worker: run the stages in order; a stage that fails ends the job. Returns (checksum,
    outcome, what the job did to the shared state)."""
    shared = Shared(run_id, service, get_client(), Tally(), *worker_io(service))
    results = []
    try:
        for stage in job.stages:
            results.append(run_stage(stage, shared))
    except Exception as error:
        return 0, shared.tally.outcome(error), shared.tally
    return combine(results), OK, shared.tally


def run_stage(stage: tuple[Action, ...], shared: Shared) -> int:
    """Hand off the background steps as tasks of their own, run the first step in this thread
    and the others on the worker's pool, at the same time."""
    for action in background(stage):
        shared.tally.handed_off.append(action.job)
        # fire_and_forget: the step runs to its end though no one holds its future.
        fire_and_forget(
            shared.client.submit(
                hand_off, action, shared.run_id, shared.service, time.time(), pure=False
            )
        )
    steps = foreground(stage)
    others = [shared.steps.submit(run_step, action, shared) for action in steps[1:]]
    try:
        first = run_step(steps[0], shared)
    finally:
        concurrent.futures.wait(others)  # a thread cannot be cancelled: the stage waits for all
    return combine([first, *(future.result() for future in others)])


def hand_off(
    action: Action, run_id: str, service: tuple[str, int] | None, handed_wall_s: float
) -> None:
    """On a worker: run a background step to its end and report how it ended on the run's
    queue."""
    shared = Shared(run_id, service, get_client(), Tally(), *worker_io(service))
    try:
        checksum, outcome = run_step(action, shared), OK
    except Exception as error:
        checksum, outcome = 0, shared.tally.outcome(error)
    # Wall-clock times: the client may be on another machine, with another perf_counter.
    Queue(run_id, client=shared.client).put(
        ((action.job, handed_wall_s, time.time(), checksum, outcome), shared.tally)
    )


def run_step(action: Action, shared: Shared) -> int:
    """Run one step; a step that updates stock reads, works and writes under its product's
    distributed lock, held by the scheduler for every worker."""
    if action.product is None:
        return run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
    client = shared.client  # named: a pool thread has no worker for dask to find it by
    with product_lock(f"{shared.run_id}-lock-{action.product}", client.scheduler, client.loop):
        stock = Variable(f"{shared.run_id}-stock-{action.product}", client)
        level = stock.get()
        result = run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
        stock.set(level - 1)
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
    """One try on a blocking socket (or a sleep), blocking this worker thread; a socket timeout
    ends it, since a thread cannot be cancelled. Returns the response's size."""
    return shared.transport.call(wait, attempt)


def do_cpu(work: Compute) -> int:
    """Compute in the worker process, on its own GIL."""
    return compute(work)
