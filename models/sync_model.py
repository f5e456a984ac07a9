"""sync: one job at a time, steps in sequence; the other users' jobs wait their turn in a queue."""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable

from models.load import Record, Window
from models.workload import Action, Compute, Job, Wait, combine, compute, io_result


def run(window: Window) -> list[Record]:
    """Run the window's jobs; plain synchronous code has no runtime to start."""
    return start_users(window)


def start_users(window: Window) -> list[Record]:
    """Serve the window's N users from this one thread."""
    records: list[Record] = []
    window = window.start()
    serve(window, itertools.count().__next__, records)
    return records


def serve(window: Window, take: Callable[[], int], records: list[Record]) -> None:
    """Run jobs first come, first served; each user submits again when its job ends."""
    # Users join one by one across the warm-up; then a user's next job is submitted when its
    # last one ends, and waits for the jobs submitted before it.
    submitted = collections.deque(window.user_start_s(u) for u in range(window.concurrency))
    while (job := window.job(take())) is not None:
        time.sleep(max(0.0, submitted[0] - time.perf_counter()))  # idle until the next user joins
        started_s = time.perf_counter()
        checksum = run_job(job)
        ended_s = time.perf_counter()
        records.append((job.index, submitted.popleft(), started_s, ended_s, checksum))
        submitted.append(ended_s)


def run_job(job: Job) -> int:
    """Run the stages in order."""
    return combine(run_stage(stage) for stage in job.stages)


def run_stage(stage: tuple[Action, ...]) -> int:
    """Run the steps one after another."""
    return combine(run_step(action) for action in stage)


def run_step(action: Action) -> int:
    """Run one step."""
    return do_io(action) if isinstance(action, Wait) else do_cpu(action)


def do_io(wait: Wait) -> int:
    """Wait, blocking the only thread."""
    time.sleep(wait.seconds)
    return io_result(wait)


def do_cpu(work: Compute) -> int:
    """Compute."""
    return compute(work)
