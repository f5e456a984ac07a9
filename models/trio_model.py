"""trio: one task per in-flight job in a nursery; a stage's other steps run in a nested nursery."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import trio

from models.load import Record, Window
from models.workload import Action, Compute, Job, Wait, combine, compute, io_result


def run(window: Window) -> list[Record]:
    """Start trio's run loop, run the window's jobs, let it finish."""
    return trio.run(start_users, window)


async def start_users(window: Window) -> list[Record]:
    """Start one task per user and wait for all of them."""
    records: list[Record] = []
    take = itertools.count().__next__  # one thread: no lock needed
    window = window.start()
    async with trio.open_nursery() as users:
        for user in range(window.concurrency):
            users.start_soon(serve, window, user, take, records)
    return records


async def serve(window: Window, user: int, take: Callable[[], int], records: list[Record]) -> None:
    """Join at this user's turn, then run jobs back to back until the window closes."""
    await trio.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(take())) is not None:
        started_s = time.perf_counter()
        checksum = await run_job(job)
        records.append((job.index, started_s, started_s, time.perf_counter(), checksum))


async def run_job(job: Job) -> int:
    """Run the stages in order."""
    return combine([await run_stage(stage) for stage in job.stages])


async def run_stage(stage: tuple[Action, ...]) -> int:
    """Run the first step in this task and the others in a nursery, at the same time."""
    if len(stage) == 1:  # a nursery costs a cancel scope; a lone step needs none
        return combine([await run_step(stage[0])])
    results = [0] * len(stage)

    async def step(i: int) -> None:
        results[i] = await run_step(stage[i])

    async with trio.open_nursery() as group:
        for i in range(1, len(stage)):
            group.start_soon(step, i)
        await step(0)
    return combine(results)


async def run_step(action: Action) -> int:
    """Run one step."""
    return await do_io(action) if isinstance(action, Wait) else do_cpu(action)


async def do_io(wait: Wait) -> int:
    """Wait on trio's timer, letting other tasks run."""
    await trio.sleep(wait.seconds)
    return io_result(wait)


def do_cpu(work: Compute) -> int:
    """Compute on the run loop's thread: no other task runs meanwhile."""
    return compute(work)
