"""processes: a worker process per in-flight job, as a prefork server; steps overlap on threads."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.context import ForkServerContext
from multiprocessing.queues import SimpleQueue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier
from typing import Final

from models.load import Record, Window
from models.workload import Action, Compute, Job, Wait, combine, compute, io_result

# forkserver: workers fork from a clean, pre-imported server, fast and without the
# hazards of forking a process that has threads.
START_METHOD: Final = "forkserver"
# Long enough for 64 workers to start on a loaded 2-core machine; a worker that never
# arrives breaks the barrier instead of hanging the point.
_START_TIMEOUT_S = 120.0


def run(window: Window) -> list[Record]:
    """Start the worker processes, run the window's jobs, stop the workers."""
    context = multiprocessing.get_context(START_METHOD)
    context.set_forkserver_preload([__name__])
    return start_users(window, context)


def start_users(window: Window, context: ForkServerContext) -> list[Record]:
    """Start one process per user, start the clock once all are up, gather their records."""
    counter: Synchronized[int] = context.Value("q", 0)
    started: Synchronized[float] = context.Value("d", 0.0)
    ready = context.Barrier(window.concurrency + 1)
    results: SimpleQueue[list[Record] | Exception] = context.SimpleQueue()
    users = [
        # Daemons: if one worker fails, the others must not keep the point alive.
        context.Process(
            target=serve, args=(window, user, counter, started, ready, results), daemon=True
        )
        for user in range(window.concurrency)
    ]
    for user in users:
        user.start()
    ready.wait(_START_TIMEOUT_S)  # every worker is up and idle
    started.value = window.start().started_s
    ready.wait(_START_TIMEOUT_S)  # ... and now they go
    records: list[Record] = []
    for _ in users:
        outcome = results.get()
        if isinstance(outcome, Exception):
            for user in users:
                user.terminate()
            raise outcome
        records.extend(outcome)
    for user in users:
        user.join()
    return records


def serve(
    window: Window,
    user: int,
    counter: Synchronized[int],
    started: Synchronized[float],
    ready: Barrier,
    results: SimpleQueue[list[Record] | Exception],
) -> None:
    """In a worker process: join at this user's turn, run jobs back to back until the window
    closes, then report."""
    records: list[Record] = []
    with ThreadPoolExecutor(max_workers=max(1, window.scenario.max_width() - 1)) as pool:
        ready.wait(_START_TIMEOUT_S)
        ready.wait(_START_TIMEOUT_S)
        window = window.start(at_s=started.value)
        time.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))

        def take() -> int:
            with counter.get_lock():
                index: int = counter.value
                counter.value = index + 1
            return index

        try:
            while (job := window.job(take())) is not None:
                started_s = time.perf_counter()
                checksum = run_job(job, pool)
                records.append((job.index, started_s, started_s, time.perf_counter(), checksum))
        except Exception as exc:  # the parent is waiting for this worker's records
            results.put(exc)
            raise
    results.put(records)


def run_job(job: Job, pool: ThreadPoolExecutor) -> int:
    """Run the stages in order."""
    return combine(run_stage(stage, pool) for stage in job.stages)


def run_stage(stage: tuple[Action, ...], pool: ThreadPoolExecutor) -> int:
    """Run the first step in this thread and the others on the worker's pool, at the same time."""
    others = [pool.submit(run_step, action) for action in stage[1:]]
    first = run_step(stage[0])
    return combine([first, *(future.result() for future in others)])


def run_step(action: Action) -> int:
    """Run one step."""
    return do_io(action) if isinstance(action, Wait) else do_cpu(action)


def do_io(wait: Wait) -> int:
    """Wait, blocking this worker's thread."""
    time.sleep(wait.seconds)
    return io_result(wait)


def do_cpu(work: Compute) -> int:
    """Compute in this process, on its own GIL."""
    return compute(work)
