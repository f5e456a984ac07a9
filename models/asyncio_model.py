"""asyncio: one task per in-flight job on one event loop; a stage's other steps run as tasks."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from models.load import Record, Window
from models.workload import Action, Compute, Job, Wait, combine, compute, io_result


def run(
    window: Window, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> list[Record]:
    """Start the event loop (uvloop's, given its factory), run the window's jobs, close it."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(start_users(window))


async def start_users(window: Window) -> list[Record]:
    """Start one task per user and wait for all of them."""
    records: list[Record] = []
    take = itertools.count().__next__  # one thread: no lock needed
    window = window.start()
    async with asyncio.TaskGroup() as users:
        for user in range(window.concurrency):
            users.create_task(serve(window, user, take, records))
    return records


async def serve(window: Window, user: int, take: Callable[[], int], records: list[Record]) -> None:
    """Join at this user's turn, then run jobs back to back until the window closes."""
    await asyncio.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(take())) is not None:
        started_s = time.perf_counter()
        checksum = await run_job(job)
        records.append((job.index, started_s, started_s, time.perf_counter(), checksum))


async def run_job(job: Job) -> int:
    """Run the stages in order."""
    return combine([await run_stage(stage) for stage in job.stages])


async def run_stage(stage: tuple[Action, ...]) -> int:
    """Run the first step in this task and the others as tasks, at the same time."""
    if len(stage) == 1:  # a task group costs a context manager; a lone step needs none
        return combine([await run_step(stage[0])])
    async with asyncio.TaskGroup() as group:
        others = [group.create_task(run_step(action)) for action in stage[1:]]
        first = await run_step(stage[0])
    return combine([first, *(task.result() for task in others)])


async def run_step(action: Action) -> int:
    """Run one step."""
    return await do_io(action) if isinstance(action, Wait) else do_cpu(action)


async def do_io(wait: Wait) -> int:
    """Wait on the loop's timer, letting other tasks run."""
    await asyncio.sleep(wait.seconds)
    return io_result(wait)


def do_cpu(work: Compute) -> int:
    """Compute on the loop's thread: no other task runs meanwhile."""
    return compute(work)
