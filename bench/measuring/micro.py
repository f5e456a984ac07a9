"""Micro-benchmarks of the runtimes' own costs: spawning, switching, handing off, idling.

They explain the macro results (a model that falls behind at high N spends its time somewhere),
they do not replace them. Every figure is the median of a few repeats of many operations, so
one call's setup (an event loop, a worker) is amortised away or kept out of the clock.

This module imports only the standard library, trio, psutil and (where installed) uvloop, so it
runs in a plain CPython; it does nothing at import time, so forkserver children may import it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import json
import math
import multiprocessing
import queue
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Any

import psutil
import trio

from bench.errors import UsageError
from bench.files.meta import MicroCost
from bench.measuring.environment import child_environment, python_command

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

# Tasks are spawned in groups of this size and awaited together, as a stage's steps are: one
# huge batch would time the garbage collector walking thousands of live tasks instead.
SPAWN_BATCH = 100
# Odd effects (a page fault, the machine's neighbours) hit one repeat, not the median of five.
_REPEATS = 5
# Memory is measured over this many batches, each parked on top of the ones before.
_MEMORY_BATCHES = 3
# Memory is counted in 4 KiB pages: below these counts the growth can hide in pages that
# the allocator already holds, whatever the scale.
_MIN_PARKED_TASKS = 1_000
_MIN_PARKED_THREADS = 50


def measure_micro(scale: float = 1.0) -> list[MicroCost]:
    """Measure every cost on every runtime available here; `scale` multiplies the counts.

    Takes 10-20 s at scale 1 on a 2-core machine. Starts forkserver processes, which re-run the
    caller's main script: guard its entry point with `if __name__ == "__main__":`, and keep its
    imports light, or every process spawned will pay for them (see `spawn_process`).
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise UsageError(f"scale must be a positive number, got {scale!r}")

    def count(base: int, floor: int = 1) -> int:
        return max(floor, round(base * scale))

    context = multiprocessing.get_context("forkserver")
    return [
        *_spawn_costs(count, context),
        *_switch_costs(count),
        *_handoff_costs(count, context),
        *_memory_costs(count(10_000, _MIN_PARKED_TASKS), count(500, _MIN_PARKED_THREADS), context),
    ]


def _spawn_costs(count: Callable[[int], int], context: ForkServerContext) -> list[MicroCost]:
    """What it costs to start one unit of concurrency that does nothing, and see it end."""
    results = _on_each_loop(
        "spawn",
        f"asyncio.create_task + await, in batches of {SPAWN_BATCH}",
        spawn_asyncio_tasks,
        count(20_000),
    )
    return [
        *results,
        _per_op(
            "spawn",
            "trio",
            f"nursery.start_soon, a nursery per batch of {SPAWN_BATCH}",
            lambda count: trio.run(spawn_trio_tasks, count),
            count(10_000),
        ),
        _per_op(
            "spawn",
            "threads",
            "threading.Thread start + join",
            _repeat_calls(spawn_thread),
            count(2_000),
        ),
        _per_op(
            "spawn",
            "processes",
            "forkserver Process start + join",
            _repeat_calls(spawn_process, context),
            count(10),
        ),
    ]


def _switch_costs(count: Callable[[int], int]) -> list[MicroCost]:
    """What it costs for one task (or thread) to give way and another to resume."""
    results = _on_each_loop(
        "switch",
        "two tasks alternating on await asyncio.sleep(0)",
        switch_asyncio_tasks,
        count(20_000),
        ops_per_count=2,
    )
    results.append(
        _per_op(
            "switch",
            "trio",
            "two tasks alternating on await trio.lowlevel.checkpoint()",
            lambda count: trio.run(switch_trio_tasks, count),
            count(20_000),
            ops_per_count=2,
        )
    )
    with thread_partner() as ping:
        results.append(
            _per_op(
                "switch",
                "threads",
                "two threads ping-ponging through a pair of threading.Event",
                _repeat_calls(ping),
                count(3_000),
                ops_per_count=2,
            )
        )
    return results


def _handoff_costs(count: Callable[[int], int], context: ForkServerContext) -> list[MicroCost]:
    """What it costs to hand a job to a worker and get its result back."""
    results = []
    for name, runtime, note, worker in (
        ("queue_round_trip", "threads", "queue.Queue to a thread and back", queue_worker()),
        (
            "executor_round_trip",
            "threads",
            "ThreadPoolExecutor.submit(...).result(), one worker",
            executor_worker(),
        ),
        (
            "pipe_round_trip",
            "processes",
            "multiprocessing Pipe to a forkserver process and back",
            pipe_worker(context),
        ),
    ):
        with worker as round_trip:
            results.append(_per_op(name, runtime, note, _repeat_calls(round_trip, 1), count(5_000)))
    return results


def _memory_costs(tasks: int, threads: int, context: ForkServerContext) -> list[MicroCost]:
    """What one parked unit of concurrency holds in memory."""
    results = [
        _idle_memory(
            runtime,
            f"tasks awaiting an asyncio.Event, batches of {tasks}",
            functools.partial(_park_asyncio_tasks, factory),
            tasks,
            context,
        )
        for runtime, factory in event_loops().items()
    ]
    return [
        *results,
        _idle_memory(
            "trio",
            f"tasks in trio.sleep_forever(), batches of {tasks}",
            _park_trio_tasks,
            tasks,
            context,
        ),
        _idle_memory(
            "threads",
            f"threads waiting on a threading.Event, batches of {threads}",
            _park_threads,
            threads,
            context,
        ),
    ]


def event_loops() -> dict[str, LoopFactory | None]:
    """The asyncio event loops to measure: the default, and uvloop's where it is installed."""
    loops: dict[str, LoopFactory | None] = {"asyncio": None}
    try:
        import uvloop
    except ImportError:  # uvloop does not build on Windows
        return loops
    loops["uvloop"] = uvloop.new_event_loop
    return loops


# The operations, public so that tests/benchmarks times the very same code.


async def spawn_asyncio_tasks(count: int) -> None:
    """Create `count` asyncio tasks that return at once, awaiting them batch by batch."""
    for start in range(0, count, SPAWN_BATCH):
        tasks = [asyncio.create_task(_return()) for _ in range(min(SPAWN_BATCH, count - start))]
        for task in tasks:
            await task


async def spawn_trio_tasks(count: int) -> None:
    """Start `count` trio tasks that return at once, a nursery per batch."""
    for start in range(0, count, SPAWN_BATCH):
        async with trio.open_nursery() as nursery:
            for _ in range(min(SPAWN_BATCH, count - start)):
                nursery.start_soon(_return)


def spawn_thread() -> None:
    """Start a thread that does nothing and join it."""
    thread = threading.Thread()
    thread.start()
    thread.join()


def spawn_process(context: ForkServerContext) -> None:
    """Start a process that does nothing and join it.

    The child has no target, so it imports nothing of this module. It still re-runs the caller's
    main script, as every multiprocessing child does (a `python -m package` entry point, which
    runs `package/__main__.py`, is spared): part of what a process costs in that program.
    """
    process = context.Process()
    process.start()
    process.join()


async def switch_asyncio_tasks(count: int) -> None:
    """Two asyncio tasks that each yield to the loop `count` times, so they alternate."""
    async with asyncio.TaskGroup() as group:
        for _ in range(2):
            group.create_task(_yield_asyncio(count))


async def switch_trio_tasks(count: int) -> None:
    """Two trio tasks that each checkpoint `count` times, so they alternate."""
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(_yield_trio, count)


@contextmanager
def thread_partner() -> Iterator[Callable[[], None]]:
    """A thread that answers every ping; yields the ping (two switches: there and back)."""
    ping, pong = threading.Event(), threading.Event()
    stop = False

    def answer() -> None:
        while True:
            ping.wait()
            ping.clear()  # before pong.set(): the next ping can only come after it
            if stop:
                return
            pong.set()

    def send() -> None:
        ping.set()
        pong.wait()
        pong.clear()

    partner = threading.Thread(target=answer)
    partner.start()
    try:
        yield send
    finally:
        stop = True
        ping.set()
        partner.join()


@contextmanager
def queue_worker() -> Iterator[Callable[[int], int]]:
    """A thread that echoes what it reads from a `queue.Queue`; yields the round trip."""
    inbox: queue.Queue[int | None] = queue.Queue()
    outbox: queue.Queue[int] = queue.Queue()
    worker = threading.Thread(target=_echo_queue, args=(inbox, outbox))
    worker.start()

    def round_trip(item: int) -> int:
        inbox.put(item)
        return outbox.get()

    try:
        yield round_trip
    finally:
        inbox.put(None)
        worker.join()


@contextmanager
def executor_worker() -> Iterator[Callable[[int], int]]:
    """A one-thread `ThreadPoolExecutor`; yields the round trip of submit and result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_echo, 0).result()  # the pool starts its thread on the first submit
        yield lambda item: pool.submit(_echo, item).result()


@contextmanager
def pipe_worker(context: ForkServerContext) -> Iterator[Callable[[int], int]]:
    """A process that echoes what it reads from a `Pipe`; yields the round trip."""
    here, there = context.Pipe()
    worker = context.Process(target=_echo_pipe, args=(there,))
    worker.start()
    there.close()  # the child's end: the child holds its own copy

    def round_trip(item: int) -> int:
        here.send(item)
        reply: int = here.recv()
        return reply

    try:
        round_trip(0)  # the child is up and echoing before anyone times it
        yield round_trip
    finally:
        here.send(None)
        worker.join()
        here.close()


# How each figure is timed.


def _on_each_loop(
    name: str,
    note: str,
    operation: Callable[[int], Coroutine[Any, Any, None]],
    count: int,
    ops_per_count: int = 1,
) -> list[MicroCost]:
    """`_per_op` of one coroutine operation on asyncio's loop and on each alternative loop."""
    results = []
    for runtime, factory in event_loops().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            results.append(
                _per_op(name, runtime, note, _on_loop(runner, operation), count, ops_per_count)
            )
    return results


def _per_op(
    name: str,
    runtime: str,
    note: str,
    run: Callable[[int], object],
    count: int,
    ops_per_count: int = 1,
) -> MicroCost:
    """Median over repeats of the time of `run(count)`, per operation, in µs."""
    run(max(1, count // 10))  # warm-up: lazily created threads, the forkserver, caches
    samples = []
    for _ in range(_REPEATS):
        started = time.perf_counter()
        run(count)
        samples.append((time.perf_counter() - started) / (count * ops_per_count) * 1e6)
    return MicroCost(name, runtime, statistics.median(samples), "µs", note)


def _on_loop(
    runner: asyncio.Runner, operation: Callable[[int], Coroutine[Any, Any, None]]
) -> Callable[[int], None]:
    """`run(count)` for an asyncio operation, on the runner's loop (started once, untimed)."""
    return lambda count: runner.run(operation(count))


def _repeat_calls(operation: Callable[..., object], *args: object) -> Callable[[int], None]:
    """`run(count)` for a single operation: call it `count` times."""

    def run(count: int) -> None:
        for _ in range(count):
            operation(*args)

    return run


def _idle_memory(
    runtime: str,
    note: str,
    park: Callable[[int, int], list[int]],
    count: int,
    context: ForkServerContext,
) -> MicroCost:
    """Median over batches of the RSS growth per parked unit, measured in a fresh process.

    A fresh process, because memory freed by the other measurements stays in this process's
    allocator (and glibc keeps the stacks of joined threads), so parking would reuse it and grow
    by almost nothing. For the same reason the batches stay parked until the last is counted.
    """
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_report_growth, args=(park, count, sender))
    child.start()
    sender.close()  # so that recv() fails instead of hanging if the child dies
    try:
        growths_bytes: list[int] = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the {runtime} memory probe died: {child.exitcode=}") from None
    finally:
        child.join()
        receiver.close()
    per_unit_kib = statistics.median(growth / count / 1024 for growth in growths_bytes)
    return MicroCost("idle_memory", runtime, per_unit_kib, "KiB", f"RSS growth per unit; {note}")


def _report_growth(park: Callable[[int, int], list[int]], count: int, sender: Connection) -> None:
    """In the fresh process: send the RSS growth, in bytes, of each batch `park` parked."""
    sender.send(park(count, _MEMORY_BATCHES))
    sender.close()


def _rss_bytes() -> int:
    gc.collect()  # garbage from before the batch was parked should not count
    return int(psutil.Process().memory_info().rss)


def _park_asyncio_tasks(loop_factory: LoopFactory | None, count: int, batches: int) -> list[int]:
    async def park() -> list[int]:
        release = asyncio.Event()
        tasks: list[asyncio.Task[bool]] = []
        growths = []
        for _ in range(batches):
            before = _rss_bytes()
            tasks.extend(asyncio.create_task(release.wait()) for _ in range(count))
            await asyncio.sleep(0)  # queued after the new tasks' first steps: all are parked
            growths.append(_rss_bytes() - before)
        release.set()
        await asyncio.gather(*tasks)
        return growths

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(park())


def _park_trio_tasks(count: int, batches: int) -> list[int]:
    async def park() -> list[int]:
        growths = []
        async with trio.open_nursery() as nursery:
            for _ in range(batches):
                before = _rss_bytes()
                for _ in range(count):
                    nursery.start_soon(trio.sleep_forever)
                # trio may run a batch of tasks in any order: wait until none is left to run.
                while trio.lowlevel.current_statistics().tasks_runnable:
                    await trio.lowlevel.checkpoint()
                growths.append(_rss_bytes() - before)
            nursery.cancel_scope.cancel()
        return growths

    return trio.run(park)


def _park_threads(count: int, batches: int) -> list[int]:
    release = threading.Event()
    threads: list[threading.Thread] = []
    growths = []
    for _ in range(batches):
        before = _rss_bytes()
        for _ in range(count):
            thread = threading.Thread(target=release.wait)
            thread.start()  # returns once the thread runs: its stack is touched
            threads.append(thread)
        growths.append(_rss_bytes() - before)
    release.set()
    for thread in threads:
        thread.join()
    return growths


# What the measured units run.


async def _return() -> None:
    return None


async def _yield_asyncio(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def _yield_trio(count: int) -> None:
    for _ in range(count):
        await trio.lowlevel.checkpoint()


def _echo(item: int) -> int:
    return item


def _echo_queue(inbox: queue.Queue[int | None], outbox: queue.Queue[int]) -> None:
    while (item := inbox.get()) is not None:
        outbox.put(item)


def _echo_pipe(connection: Connection) -> None:
    while (item := connection.recv()) is not None:
        connection.send(item)
    connection.close()


def run_micro(scale: float = 1.0) -> list[MicroCost]:
    """`measure_micro` in a fresh interpreter, away from the caller's threads, heap and imports.

    Started with `-c`, so the forkserver children it spawns have no main script to re-run.
    Raises `subprocess.CalledProcessError` when the measurement crashes.
    """
    code = f"import bench.measuring.micro as m; m.print_json({scale!r})"
    out = subprocess.run(
        python_command(None, "-c", code),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env=child_environment(),
    ).stdout
    return [MicroCost.from_dict(item) for item in json.loads(out)]


def print_json(scale: float) -> None:
    """Print `measure_micro(scale)` as one JSON list (what `run_micro` reads)."""
    print(json.dumps([dataclasses.asdict(r) for r in measure_micro(scale)]))
