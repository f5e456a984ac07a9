"""asyncio: one task per in-flight job on one event loop; a stage's other steps run as tasks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, MutableSequence, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from models import db, web
from models.load import Part, Record, Tally, Window, whole
from models.wire import RESPONSE, check_answer, encode_request
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

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Shared:
    """What the tasks of a run share; one thread, so nothing here needs a lock of its own."""

    window: Window
    tally: Tally
    locks: Sequence[AbstractAsyncContextManager[object]]  # one per product
    stock: MutableSequence[int]  # each product's stock, guarded by its lock
    idle: list[Connection] = field(default_factory=list)  # the connection pool
    handed_off: set[asyncio.Task[None]] = field(default_factory=set)  # background steps
    client: web.AsyncClient | None = None  # the HTTP client library of steps via "http"
    db: db.AsyncStock | None = None  # the database's pool, for steps via "postgres"


def run(
    window: Window,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    part: Part | None = None,
) -> Tally:
    """Start the event loop (uvloop's, given its factory), run the window's jobs (or this
    process's part of them), close it."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(start_users(window, part))


async def start_users(window: Window, part: Part | None = None) -> Tally:
    """Open the connections, start one task per user, wait for them and for background work."""
    part = part or whole(window, asyncio.Lock)
    tally = Tally()
    async with db.open_async(window, tally, len(part.users)) as stock:
        shared = Shared(window, tally, part.locks, part.stock, db=stock)
        if window.service is not None:
            for _ in range(window.wire_connections(len(part.users))):
                shared.idle.append(await asyncio.open_connection(*window.service))
        window = window.start(shared.tally, at_s=part.start())
        try:
            async with web.open_client(window, len(part.users)) as shared.client:
                async with asyncio.TaskGroup() as users:
                    for user in part.users:
                        users.create_task(serve(window, user, part.take, shared))
                while shared.handed_off:  # the background work must end before the point does
                    await asyncio.wait(shared.handed_off)
        finally:
            for _, writer in shared.idle:
                writer.close()
    shared.tally.stock = list(shared.stock)
    return shared.tally


async def serve(window: Window, user: int, take: Callable[[], int], shared: Shared) -> None:
    """Join at this user's turn, then run jobs back to back (open load: each when it is due)
    until the window closes."""
    await asyncio.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(take())) is not None:
        if (early_s := window.wait_s(job.index)) > 0:  # open load: wait until it is due
            await asyncio.sleep(early_s)
        started_s = time.perf_counter()
        checksum, outcome = await run_job(job, shared)
        ended_s = time.perf_counter()
        submitted_s = window.due_s(job.index, started_s)
        record: Record = (job, submitted_s, started_s, ended_s, checksum, outcome)
        shared.tally.records.append(record)


async def run_job(job: Job, shared: Shared) -> tuple[int, int]:
    """Run the stages in order; a stage that fails ends the job. Returns (checksum, outcome)."""
    results = []
    try:
        for stage in job.stages:
            results.append(await run_stage(stage, shared))
    except Exception as error:
        return 0, shared.tally.outcome(error)
    return combine(results), OK


async def run_stage(stage: tuple[Action, ...], shared: Shared) -> int:
    """Hand off the background steps, run the first step in this task and the others as tasks."""
    for action in background(stage):
        shared.tally.handed_off.append(action.job)
        task = asyncio.create_task(hand_off(action, shared))
        shared.handed_off.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(shared.handed_off.discard)
    steps = foreground(stage)
    if len(steps) == 1:  # a task group costs a context manager; a lone step needs none
        return combine([await run_step(steps[0], shared)])
    async with asyncio.TaskGroup() as group:  # a failing step cancels the others
        others = [group.create_task(run_step(action, shared)) for action in steps[1:]]
        first = await run_step(steps[0], shared)
    return combine([first, *(task.result() for task in others)])


async def hand_off(action: Action, shared: Shared) -> None:
    """Run a background step to its end and record how it ended."""
    handed_s = time.perf_counter()
    try:
        checksum, outcome = await run_step(action, shared), OK
    except Exception as error:
        checksum, outcome = 0, shared.tally.outcome(error)
    shared.tally.background.append(
        (action, handed_s, handed_s, time.perf_counter(), checksum, outcome)
    )


async def run_step(action: Action, shared: Shared) -> int:
    """Run one step; a step that updates stock reads, works and writes under its product's lock."""
    if action.product is None or shared.db is not None:  # the row lock is the database's
        return await run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
    async with shared.locks[action.product]:
        level = shared.stock[action.product]
        result = await run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
        shared.stock[action.product] = level - 1
        shared.tally.sold.append(action.product)
    return result


async def run_attempts(wait: Wait, shared: Shared) -> int:
    """Try until a try succeeds, pausing before each retry; the last try's error is the step's."""
    for attempt, retry in itertools.pairwise(wait.attempts):
        with contextlib.suppress(StepFailed, TimeoutError):
            return await do_io(wait, attempt, shared)
        shared.tally.retried.append(wait.job)
        await asyncio.sleep(retry.backoff_s)
    return await do_io(wait, wait.attempts[-1], shared)


async def do_io(wait: Wait, attempt: Attempt, shared: Shared) -> int:
    """One try: an HTTP request through the client library (with its own pool and timeout),
    or a transaction through the database's pool, or a round trip on a pooled connection (or
    the loop's timer), cancelled at the timeout. Returns the response's size."""
    if shared.client is not None and wait.via == "http":
        return await shared.client.call(wait, attempt)
    # A step without a timeout gets no timeout scope: a scope costs even when it never fires.
    limit = contextlib.nullcontext() if wait.timeout_s is None else asyncio.timeout(wait.timeout_s)
    async with limit:
        if shared.db is not None and wait.via == "postgres":
            return await shared.db.call(wait, attempt)
        if shared.window.service is None:
            await asyncio.sleep(attempt.seconds)
            failed, size = attempt.fails, wait.response_bytes
        else:
            reader, writer = connection = (
                shared.idle.pop()
                if shared.idle
                else await asyncio.open_connection(*shared.window.service)
            )
            try:
                writer.write(encode_request(wait, attempt))
                failed, size = RESPONSE.unpack(await reader.readexactly(RESPONSE.size))
                check_answer(wait, failed, size)
                await reader.readexactly(size)
            except BaseException:  # cancelled or broken mid-request: the answer may still come
                writer.close()
                raise
            shared.idle.append(connection)
    if failed:
        raise StepFailed
    return size


def do_cpu(work: Compute) -> int:
    """Compute on the loop's thread: no other task runs meanwhile."""
    return compute(work)
