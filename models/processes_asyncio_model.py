"""processes-asyncio: the asyncio model in one process per core, each with N/P jobs in flight."""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import os
from collections.abc import Callable, MutableSequence
from multiprocessing.context import ForkServerContext
from multiprocessing.synchronize import Lock
from types import TracebackType
from typing import Literal

from models.asyncio_model import run as run_loop
from models.load import Part, Tally, Window
from models.workers import Crew, run_workers, shared_stock


class ProcessLock:
    """A product's lock across processes, taken without blocking the event loop: the tasks of
    one process queue on an asyncio.Lock, and the one at the front waits for the process lock
    in a thread."""

    def __init__(self, lock: Lock) -> None:
        self.local = asyncio.Lock()
        self.shared = lock

    async def __aenter__(self) -> None:
        await self.local.acquire()
        acquiring = asyncio.ensure_future(asyncio.to_thread(self.shared.acquire))
        try:
            await asyncio.shield(acquiring)
        except BaseException:  # cancelled while waiting: let go once the thread has the lock
            acquiring.add_done_callback(lambda _: self.shared.release())
            self.local.release()
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shared.release()
        self.local.release()


def run(window: Window, start_method: Literal["forkserver"] = "forkserver") -> Tally:
    """Start one worker process per core (at most one per user, started as the registry says),
    run the window's jobs."""
    context = multiprocessing.get_context(start_method)
    context.set_forkserver_preload([__name__])
    locks, stock = shared_stock(context, window.scenario.products())
    tally = start_users(window, context, locks, stock)
    tally.stock = list(stock)
    return tally


def start_users(
    window: Window, context: ForkServerContext, locks: list[Lock], stock: MutableSequence[int]
) -> Tally:
    """Give each worker every P-th user (so all of them ramp up together), gather their tallies."""
    workers = min(len(os.sched_getaffinity(0)), window.concurrency)
    crew = Crew(context, workers)
    shares = [(window, range(w, window.concurrency, workers), locks, stock) for w in range(workers)]
    return run_workers(window, context, crew, serve, shares)


def serve(
    crew: Crew, window: Window, users: range, locks: list[Lock], stock: MutableSequence[int]
) -> None:
    """In a worker process: run its users on an event loop (uvloop's where installed), as the
    asyncio model does (its very code), then report."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        loop_factory = uvloop.new_event_loop

    def work() -> Tally:
        part = Part(users, crew.take, crew.start, [ProcessLock(lock) for lock in locks], stock)
        return run_loop(window, loop_factory, part)

    crew.report(work)
