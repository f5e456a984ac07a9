"""Worker processes that share one run: they start together, take jobs from one counter, and
hand their tallies back. Used by the models that run jobs in several processes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, MutableSequence, Sequence
from multiprocessing.context import ForkServerContext
from multiprocessing.queues import SimpleQueue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Lock

from models.load import STOCK_START, Tally, Window

# Long enough for 64 workers to start on a loaded 2-core machine; a worker that never
# arrives breaks the barrier instead of hanging the point.
_START_TIMEOUT_S = 120.0


class Crew:
    """What the parent and its workers share: the job counter, the start and the results."""

    def __init__(self, context: ForkServerContext, workers: int) -> None:
        self.counter: Synchronized[int] = context.Value("q", 0)
        self.started: Synchronized[float] = context.Value("d", 0.0)
        self.ready: Barrier = context.Barrier(workers + 1)
        self.results: SimpleQueue[Tally | Exception] = context.SimpleQueue()

    def take(self) -> int:
        """The next job's index, unique across the workers."""
        with self.counter.get_lock():
            index: int = self.counter.value
            self.counter.value = index + 1
        return index

    def start(self) -> float:
        """In a worker, once set up: wait for the others and the parent; the run's start."""
        self.ready.wait(_START_TIMEOUT_S)
        self.ready.wait(_START_TIMEOUT_S)
        return self.started.value

    def report(self, work: Callable[[], Tally]) -> None:
        """In a worker: do the work and hand its tally (or its error) to the parent."""
        try:
            tally = work()
        except Exception as exc:  # the parent is waiting for this worker's tally
            self.ready.abort()
            self.results.put(exc)
            raise
        self.results.put(tally)


def shared_stock(
    context: ForkServerContext, products: int
) -> tuple[list[Lock], MutableSequence[int]]:
    """A lock per product and the stock in shared memory, for every worker process."""
    locks = [context.Lock() for _ in range(products)]
    stock = context.Array("q", [STOCK_START] * products, lock=False)  # guarded by `locks`
    return locks, stock


def run_workers(
    window: Window,
    context: ForkServerContext,
    crew: Crew,
    target: Callable[..., None],
    args: Sequence[tuple[object, ...]],
) -> Tally:
    """Start one process per argument tuple (`target(crew, *args)`), start the clock once all
    are up, merge their tallies."""
    workers = [
        # Daemons: if one worker fails, the others must not keep the point alive.
        context.Process(target=target, args=(crew, *worker_args), daemon=True)
        for worker_args in args
    ]
    for worker in workers:
        worker.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed: its error follows
        crew.ready.wait(_START_TIMEOUT_S)  # every worker is up, connected and idle
        crew.started.value = window.start().started_s
        crew.ready.wait(_START_TIMEOUT_S)  # ... and now they go
    tally = Tally()
    for _ in workers:
        outcome = crew.results.get()
        if isinstance(outcome, Exception):
            for worker in workers:
                worker.terminate()
            raise outcome
        tally.merge(outcome)
    for worker in workers:
        worker.join()
    return tally
