"""Bare loops: for each runtime, the least code that does a scenario's waits in a closed loop.

They are the reference a model is held to (`bench overhead`): N users on the runtime's own
primitives, each waiting the scenario's waits in a loop, with the users' ramp and the window's
edges of the models' points, and nothing else. No draws, no records, no checks: a user counts
its jobs in a slot of its own and the main thread or task reads their sum at the edges. What
the model pays on top of this is the harness's and the model's own code.

They are defined for scenarios whose jobs are constant waits in series (`io-bound`): those
need no draw per job, so the bare loop's work is exactly the model's.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any

from models.load import Window
from models.wire import RESPONSE, request_bytes
from models.workload import IoStep, Scenario

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@dataclass(frozen=True)
class Trip:
    """One wait of a job: its length, and on `tcp` the request and the answer's size."""

    seconds: float
    request: bytes
    answer_bytes: int  # header included: a bare loop reads the answer in one go


@dataclass(frozen=True)
class Count:
    """The jobs that ended between the window's edges, and when the edges were read."""

    jobs: int
    opens_s: float
    closes_s: float


def unfit(scenario: Scenario) -> str:
    """Why a bare loop cannot do `scenario`'s work ("" if it can)."""
    for stage in scenario.stages:
        if len(stage.steps) != 1 or not isinstance(step := stage.steps[0], IoStep):
            return f"stage {stage.name!r} is not one I/O wait"
        if step.wait.kind != "constant":
            return f"step {step.name!r} waits a {step.wait.kind} time, not a constant one"
        if step.fail_rate or step.timeout_ms is not None or step.lock or step.background:
            return f"step {step.name!r} can fail, time out, lock or run in the background"
    return ""


def trips(scenario: Scenario) -> tuple[Trip, ...]:
    """A job's waits, in order (the scenario must be fit: see `unfit`)."""
    steps = [stage.steps[0] for stage in scenario.stages]
    return tuple(
        Trip(
            step.wait.mean_ms / 1000.0,
            request_bytes(step.wait.mean_ms / 1000.0, step.request_bytes, step.response_bytes),
            RESPONSE.size + step.response_bytes,
        )
        for step in steps
        if isinstance(step, IoStep)
    )


def run(
    window: Window,
    runtime: str,
    loop_factory: LoopFactory | None = None,
    backend: str | None = None,
) -> Count:
    """Run the bare loop of `runtime` (a registry entry's `bare`) over `window`."""
    job = trips(window.scenario)
    if runtime in ("sync", "threads"):
        return _threads(window, job, 1 if runtime == "sync" else window.concurrency)
    if runtime == "processes":
        return _processes(window, job, window.concurrency, _blocking_worker)
    if runtime == "processes-asyncio":
        workers = min(len(os.sched_getaffinity(0)), window.concurrency)
        return _processes(window, job, workers, _asyncio_worker)
    if runtime == "asyncio":
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_asyncio_main(window, job))
    if runtime == "trio":
        return _trio(window, job)
    if runtime == "anyio":
        return _anyio(window, job, backend or "asyncio")
    raise ValueError(f"no bare loop for {runtime!r}")


def _edges(window: Window, done: Sequence[int], sleep: Callable[[float], object]) -> Count:
    """Wait for each edge of the window (blocking) and read the users' count there."""
    sleep(max(0.0, window.measure_s - time.perf_counter()))
    opens_s, at_open = time.perf_counter(), sum(done)
    sleep(max(0.0, window.stop_s - time.perf_counter()))
    return Count(sum(done) - at_open, opens_s, time.perf_counter())


def _blocking_loop(
    window: Window, job: Sequence[Trip], user: int, done: MutableSequence[int], going: Any
) -> None:
    """One user on blocking calls: a connection of its own (on tcp), waits in a loop."""
    sock = None if window.service is None else socket.create_connection(window.service)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    time.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while going.value:
        for trip in job:
            if sock is None:
                time.sleep(trip.seconds)
            else:
                sock.sendall(trip.request)
                sock.recv(trip.answer_bytes, socket.MSG_WAITALL)
        done[user] += 1


class _Flag:
    """A thread-shared `going` flag, read as a multiprocessing Value's is."""

    value = True


def _threads(window: Window, job: Sequence[Trip], users: int) -> Count:
    done, going = [0] * users, _Flag()
    window = window.start()
    threads = [
        threading.Thread(target=_blocking_loop, args=(window, job, user, done, going))
        for user in range(users)
    ]
    for thread in threads:
        thread.start()
    count = _edges(window, done, time.sleep)
    going.value = False
    for thread in threads:
        thread.join()
    return count


def _processes(
    window: Window, job: Sequence[Trip], workers: int, target: Callable[..., None]
) -> Count:
    """`workers` processes, worker w serving users w, w + workers, ...; the count is shared."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    done = context.RawArray("Q", window.concurrency)
    going = context.RawValue("b", 1)
    ready = context.Barrier(workers + 1)
    started = context.RawValue("d", 0.0)
    processes = [
        context.Process(
            target=target,
            args=(window, job, range(w, window.concurrency, workers), done, going, ready, started),
            daemon=True,
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    ready.wait()  # every worker is up and connected
    window = window.start()
    started.value = window.started_s
    ready.wait()
    count = _edges(window, done, time.sleep)
    going.value = 0
    for process in processes:
        process.join()
    return count


def _blocking_worker(
    window: Window,
    job: Sequence[Trip],
    users: range,
    done: MutableSequence[int],
    going: Any,
    ready: Any,
    started: Any,
) -> None:
    """A worker process of `processes`: one user on blocking calls."""
    (user,) = users
    ready.wait()
    ready.wait()
    _blocking_loop(window.start(at_s=started.value), job, user, done, going)


def _asyncio_worker(
    window: Window,
    job: Sequence[Trip],
    users: range,
    done: MutableSequence[int],
    going: Any,
    ready: Any,
    started: Any,
) -> None:
    """A worker process of `processes-asyncio`: its users as tasks on uvloop where installed."""
    factory: LoopFactory | None = None
    if importlib.util.find_spec("uvloop") is not None:
        factory = importlib.import_module("uvloop").new_event_loop

    async def main() -> None:
        connections = await _asyncio_connect(window, len(users))
        ready.wait()
        ready.wait()
        started_window = window.start(at_s=started.value)
        async with asyncio.TaskGroup() as group:
            for user, connection in zip(users, connections, strict=True):
                group.create_task(_asyncio_user(started_window, job, user, connection, done, going))

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter] | None


async def _asyncio_connect(window: Window, users: int) -> list[Connection]:
    if window.service is None:
        return [None] * users
    return [await asyncio.open_connection(*window.service) for _ in range(users)]


async def _asyncio_user(
    window: Window,
    job: Sequence[Trip],
    user: int,
    connection: Connection,
    done: MutableSequence[int],
    going: Any,
) -> None:
    await asyncio.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while going.value:
        for trip in job:
            if connection is None:
                await asyncio.sleep(trip.seconds)
            else:
                reader, writer = connection
                writer.write(trip.request)
                await reader.readexactly(trip.answer_bytes)
        done[user] += 1


async def _asyncio_main(window: Window, job: Sequence[Trip]) -> Count:
    done, going = [0] * window.concurrency, _Flag()
    connections = await _asyncio_connect(window, window.concurrency)
    window = window.start()
    async with asyncio.TaskGroup() as group:
        for user, connection in enumerate(connections):
            group.create_task(_asyncio_user(window, job, user, connection, done, going))
        count = await _async_edges(window, done, asyncio.sleep)
        going.value = False
    return count


async def _async_edges(
    window: Window, done: Sequence[int], sleep: Callable[[float], Coroutine[Any, Any, None]]
) -> Count:
    """`_edges`, awaiting the runtime's own sleep."""
    await sleep(max(0.0, window.measure_s - time.perf_counter()))
    opens_s, at_open = time.perf_counter(), sum(done)
    await sleep(max(0.0, window.stop_s - time.perf_counter()))
    return Count(sum(done) - at_open, opens_s, time.perf_counter())


def _trio(window: Window, job: Sequence[Trip]) -> Count:
    import trio  # here, not above: a point of another model need not load it

    async def main() -> Count:
        done, going = [0] * window.concurrency, _Flag()
        streams: list[trio.SocketStream | None] = [None] * window.concurrency
        if window.service is not None:
            streams = [await trio.open_tcp_stream(*window.service) for _ in streams]
        started = window.start()

        async def user(index: int, stream: trio.SocketStream | None) -> None:
            await trio.sleep(max(0.0, started.user_start_s(index) - time.perf_counter()))
            while going.value:
                for trip in job:
                    if stream is None:
                        await trio.sleep(trip.seconds)
                    else:
                        await stream.send_all(trip.request)
                        wanted = trip.answer_bytes
                        while wanted:
                            wanted -= len(await stream.receive_some(wanted))
                done[index] += 1

        async with trio.open_nursery() as nursery:
            for index, stream in enumerate(streams):
                nursery.start_soon(user, index, stream)
            count = await _async_edges(started, done, trio.sleep)
            going.value = False
        return count

    result: Count = trio.run(main)
    return result


def _anyio(window: Window, job: Sequence[Trip], backend: str) -> Count:
    import anyio  # here, not above: a point of another model need not load it
    import anyio.abc

    from models.anyio_model import BACKENDS

    async def main() -> Count:
        done, going = [0] * window.concurrency, _Flag()
        streams: list[anyio.abc.SocketStream | None] = [None] * window.concurrency
        if window.service is not None:
            streams = [await anyio.connect_tcp(*window.service) for _ in streams]
        started = window.start()

        async def user(index: int, stream: anyio.abc.SocketStream | None) -> None:
            await anyio.sleep(max(0.0, started.user_start_s(index) - time.perf_counter()))
            while going.value:
                for trip in job:
                    if stream is None:
                        await anyio.sleep(trip.seconds)
                    else:
                        await stream.send(trip.request)
                        wanted = trip.answer_bytes
                        while wanted:
                            wanted -= len(await stream.receive(wanted))
                done[index] += 1

        async with anyio.create_task_group() as group:
            for index, stream in enumerate(streams):
                group.start_soon(user, index, stream)
            count = await _async_edges(started, done, anyio.sleep)
            going.value = False
        return count

    name, options = BACKENDS[backend]
    result: Count = anyio.run(main, backend=name, backend_options=options)
    return result
