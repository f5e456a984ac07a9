"""pytest-benchmark timings of the runtimes' own costs: the operations of `bench.measuring.micro`.

Outside the default run; `python -m pytest -m speed tests/benchmarks` runs them. Event-loop
operations are timed a batch at a time (one call into a loop costs more than one task does), so
their figures are per `BATCH` tasks or per `BATCH` switches of each of two tasks.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from multiprocessing.context import ForkServerContext

import pytest
import trio
from pytest_benchmark.fixture import BenchmarkFixture

from bench.measuring.micro import (
    event_loops,
    executor_worker,
    pipe_worker,
    queue_worker,
    spawn_asyncio_tasks,
    spawn_process,
    spawn_thread,
    spawn_trio_tasks,
    switch_asyncio_tasks,
    switch_trio_tasks,
    thread_partner,
)

pytestmark = pytest.mark.speed

BATCH = 1_000


@pytest.fixture(params=list(event_loops()))
def runner(request: pytest.FixtureRequest) -> Iterator[asyncio.Runner]:
    """An event loop (asyncio's, then uvloop's where installed), started outside the timing."""
    with asyncio.Runner(loop_factory=event_loops()[request.param]) as runner:
        yield runner


@pytest.fixture(scope="module")
def context() -> ForkServerContext:
    """The start method of the processes model, its server started outside the timing."""
    context = multiprocessing.get_context("forkserver")
    spawn_process(context)
    return context


def test_spawn_asyncio_tasks(benchmark: BenchmarkFixture, runner: asyncio.Runner) -> None:
    benchmark(lambda: runner.run(spawn_asyncio_tasks(BATCH)))


def test_spawn_trio_tasks(benchmark: BenchmarkFixture) -> None:
    benchmark(trio.run, spawn_trio_tasks, BATCH)  # each round also starts trio: a few percent


def test_spawn_thread(benchmark: BenchmarkFixture) -> None:
    benchmark(spawn_thread)


def test_spawn_process(benchmark: BenchmarkFixture, context: ForkServerContext) -> None:
    benchmark(spawn_process, context)


def test_switch_asyncio_tasks(benchmark: BenchmarkFixture, runner: asyncio.Runner) -> None:
    benchmark(lambda: runner.run(switch_asyncio_tasks(BATCH)))


def test_switch_trio_tasks(benchmark: BenchmarkFixture) -> None:
    benchmark(trio.run, switch_trio_tasks, BATCH)


def test_switch_threads(benchmark: BenchmarkFixture) -> None:
    with thread_partner() as ping:
        benchmark(ping)


def test_queue_round_trip(benchmark: BenchmarkFixture) -> None:
    with queue_worker() as round_trip:
        benchmark(round_trip, 1)


def test_executor_round_trip(benchmark: BenchmarkFixture) -> None:
    with executor_worker() as round_trip:
        benchmark(round_trip, 1)


def test_pipe_round_trip(benchmark: BenchmarkFixture, context: ForkServerContext) -> None:
    with pipe_worker(context) as round_trip:
        benchmark(round_trip, 1)
