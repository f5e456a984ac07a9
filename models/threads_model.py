"""threads: one OS thread per in-flight job; a stage's other steps run on a shared thread pool."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from models.load import Record, Window
from models.workload import Action, Compute, Job, Wait, combine, compute, io_result


def run(window: Window) -> list[Record]:
    """Start the step pool, run the window's jobs, stop the pool."""
    # Enough pool threads that no stage ever waits for one: N users x the extra steps of a stage.
    extra_steps = window.scenario.max_width() - 1
    with ThreadPoolExecutor(max_workers=max(1, window.concurrency * extra_steps)) as pool:
        return start_users(window, pool)


def start_users(window: Window, pool: ThreadPoolExecutor) -> list[Record]:
    """Start one thread per user and wait for all of them."""
    records: list[Record] = []
    lock = threading.Lock()
    indices = itertools.count()

    def take() -> int:
        with lock:  # itertools.count is not guaranteed thread-safe without the GIL
            return next(indices)

    window = window.start()  # a thread starts in about 0.1 ms (bench micro): inside the warm-up
    users = [
        threading.Thread(target=serve, args=(window, user, take, records, pool))
        for user in range(window.concurrency)
    ]
    for user in users:
        user.start()
    for user in users:
        user.join()
    return records


def serve(
    window: Window,
    user: int,
    take: Callable[[], int],
    records: list[Record],
    pool: ThreadPoolExecutor,
) -> None:
    """Join at this user's turn, then run jobs back to back until the window closes."""
    time.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(take())) is not None:
        started_s = time.perf_counter()
        checksum = run_job(job, pool)
        records.append((job.index, started_s, started_s, time.perf_counter(), checksum))


def run_job(job: Job, pool: ThreadPoolExecutor) -> int:
    """Run the stages in order."""
    return combine(run_stage(stage, pool) for stage in job.stages)


def run_stage(stage: tuple[Action, ...], pool: ThreadPoolExecutor) -> int:
    """Run the first step in this thread and the others on the pool, at the same time."""
    others = [pool.submit(run_step, action) for action in stage[1:]]
    first = run_step(stage[0])
    return combine([first, *(future.result() for future in others)])


def run_step(action: Action) -> int:
    """Run one step."""
    return do_io(action) if isinstance(action, Wait) else do_cpu(action)


def do_io(wait: Wait) -> int:
    """Wait, blocking this thread only (time.sleep releases the GIL)."""
    time.sleep(wait.seconds)
    return io_result(wait)


def do_cpu(work: Compute) -> int:
    """Compute; python work holds the GIL, native work releases it."""
    return compute(work)
