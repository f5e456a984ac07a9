"""trio: one task per in-flight job in a nursery; a stage's other steps run in a nested nursery."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, MutableSequence, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import trio

from models import db, web
from models.load import Record, Tally, Window, whole
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


@dataclass
class Shared:
    """What the tasks of a run share; one thread, so nothing here needs a lock of its own."""

    window: Window
    tally: Tally
    locks: Sequence[AbstractAsyncContextManager[object]]  # one per product
    stock: MutableSequence[int]  # each product's stock, guarded by its lock
    idle: list[BufferedStream]  # the connection pool
    handed_off: trio.Nursery  # background steps run here, outliving their jobs
    client: web.AsyncClient | None = None  # the HTTP client library of steps via "http"
    # The database's pool, for steps via "postgres": psycopg's blocking API in trio's threads,
    # as many as tries may be in flight, so a try waits for a connection in the pool, not here.
    db: db.BlockingStock | None = None
    threads: trio.CapacityLimiter | None = None


def run(window: Window) -> Tally:
    """Start trio's run loop, run the window's jobs, let it finish."""
    return trio.run(start_users, window)


async def start_users(window: Window) -> Tally:
    """Open the connections, start one task per user, wait for them and for background work."""
    part = whole(window, trio.Lock)
    idle: list[BufferedStream] = []
    tally = Tally()
    try:
        with db.open_blocking(window, tally, len(part.users)) as stock:
            async with trio.open_nursery() as handed_off:  # exits once the background work ends
                shared = Shared(window, tally, part.locks, part.stock, idle, handed_off, db=stock)
                shared.threads = trio.CapacityLimiter(
                    window.concurrency * window.scenario.max_io_width()
                )
                if window.service is not None:
                    for _ in range(window.wire_connections(len(part.users))):
                        idle.append(BufferedStream(await trio.open_tcp_stream(*window.service)))
                window = window.start(shared.tally, at_s=part.start())
                async with (
                    web.open_client(window, len(part.users)) as shared.client,
                    trio.open_nursery() as users,
                ):
                    for user in part.users:
                        users.start_soon(serve, window, user, part.take, shared)
    finally:
        for stream in idle:
            await stream.socket.aclose()
    shared.tally.stock = list(shared.stock)
    return shared.tally


async def serve(window: Window, user: int, take: Callable[[], int], shared: Shared) -> None:
    """Join at this user's turn, then run jobs back to back (open load: each when it is due)
    until the window closes."""
    await trio.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(take())) is not None:
        if (early_s := window.wait_s(job.index)) > 0:  # open load: wait until it is due
            await trio.sleep(early_s)
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
    """Hand off the background steps, run the first step in this task and the others in a
    nursery, at the same time."""
    for action in background(stage):
        shared.tally.handed_off.append(action.job)
        shared.handed_off.start_soon(hand_off, action, shared)
    steps = foreground(stage)
    if len(steps) == 1:  # a nursery costs a cancel scope; a lone step needs none
        return combine([await run_step(steps[0], shared)])
    results = [0] * len(steps)

    async def step(i: int) -> None:
        results[i] = await run_step(steps[i], shared)

    async with trio.open_nursery() as group:  # a failing step cancels the others
        for i in range(1, len(steps)):
            group.start_soon(step, i)
        await step(0)
    return combine(results)


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
        await trio.sleep(retry.backoff_s)
    return await do_io(wait, wait.attempts[-1], shared)


async def do_io(wait: Wait, attempt: Attempt, shared: Shared) -> int:
    """One try: an HTTP request through the client library (with its own pool and timeout),
    or a transaction through the database's pool, or a round trip on a pooled stream (or
    trio's timer), cancelled at the timeout. Returns the response's size."""
    if shared.client is not None and wait.via == "http":
        return await shared.client.call(wait, attempt)
    # A step without a timeout gets no cancel scope: a scope costs even when it never fires.
    limit = (
        contextlib.nullcontext() if wait.timeout_s is None else trio.move_on_after(wait.timeout_s)
    )
    with limit as scope:
        if shared.db is not None and wait.via == "postgres":  # at the timeout, the server cancels
            return await trio.to_thread.run_sync(
                shared.db.call, wait, attempt, limiter=shared.threads
            )
        if shared.window.service is None:
            await trio.sleep(attempt.seconds)
            failed, size = attempt.fails, wait.response_bytes
        else:
            stream = (
                shared.idle.pop()
                if shared.idle
                else BufferedStream(await trio.open_tcp_stream(*shared.window.service))
            )
            try:
                await stream.socket.send_all(encode_request(wait, attempt))
                failed, size = RESPONSE.unpack(await stream.receive_exactly(RESPONSE.size))
                check_answer(wait, failed, size)
                await stream.receive_exactly(size)
            except BaseException:  # cancelled or broken mid-request: the answer may still come
                await trio.aclose_forcefully(stream.socket)
                raise
            shared.idle.append(stream)
    if scope is not None and scope.cancelled_caught:
        raise TimeoutError("no answer before the timeout")
    if failed:
        raise StepFailed
    return size


def do_cpu(work: Compute) -> int:
    """Compute on the run loop's thread: no other task runs meanwhile."""
    return compute(work)


class BufferedStream:
    """A stream read through a buffer, as asyncio's and anyio's streams are: an answer's header
    and body usually arrive together, and each read of a trio stream is a checkpoint."""

    def __init__(self, socket: trio.SocketStream) -> None:
        self.socket = socket
        self.buffer = bytearray()

    async def receive_exactly(self, size: int) -> bytes:
        """Exactly `size` bytes (trio streams give what has arrived)."""
        while len(self.buffer) < size:
            chunk = await self.socket.receive_some()
            if not chunk:
                raise trio.BrokenResourceError("the service closed the connection")
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data
