"""What the task-queue models (dask, celery) share: how they reach their engine, the I/O of each
worker process, and the private Redis and worker processes started for a point."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.wire import Transport, open_transport

if TYPE_CHECKING:  # imported where used: the dask model needs neither
    import redis
    from celery import Celery

# Celery's worker settings (the module's app sets them, so the user's workers have them too):
# a worker reserves one task per free thread, so that no task waits behind a busy thread while
# another worker idles; a task is acknowledged once it ran, so a worker that dies loses none.
CELERY_PREFETCH_MULTIPLIER = 1
CELERY_ACKS_LATE = True
# Why a celery point cannot start its own broker, and what to do.
REDIS_MISSING = (
    "redis-server is not installed; install it (`apt-get install redis-server`, "
    "`brew install redis`) or give --broker redis://HOST:6379/0 with workers of your own"
)
# A worker's steps pool starts threads only as stages need them; this only bounds it.
_MAX_STEP_THREADS = 1024
# How long a private redis-server or a worker may take to answer after it is started.
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Engine:
    """How the dask and celery models reach their workers, and the knobs of those they start.

    An address left None means the model starts its own for the point, outside the measured
    window: a `LocalCluster`, or a private `redis-server` and Celery workers on this machine.
    """

    dask_address: str | None = None  # an existing scheduler, e.g. tcp://10.0.0.5:8786
    broker: str | None = None  # an existing Celery broker; its workers are the user's
    result_backend: str | None = None  # Celery results, stock and locks; None: the broker
    workers: int = 2  # worker processes a model starts
    threads: int = 4  # threads per worker process it starts: jobs each one runs at once

    def store(self) -> str | None:
        """The Redis that holds Celery's results, the stock and its locks (None: private)."""
        return self.result_backend or self.broker


def worker_io(
    service: Sequence[str | int] | None,
) -> tuple[Transport, ThreadPoolExecutor]:
    """This worker process's I/O to the latency service (a pool of connections that grows as
    its threads need them) and the pool that runs a stage's other steps; made on first use
    and kept for the worker's life, as a worker keeps its database pool."""
    # A service that came through JSON is a list: made a tuple, it is one key of the cache.
    return _worker_io(None if service is None else (str(service[0]), int(service[1])))


@functools.cache
def _worker_io(
    service: tuple[str, int] | None,
) -> tuple[Transport, ThreadPoolExecutor]:
    return open_transport(service, 0), ThreadPoolExecutor(_MAX_STEP_THREADS)


@functools.cache
def redis_store(url: str) -> redis.Redis:
    """This worker process's client of the Redis that holds the stock and its locks (its
    connection pool is shared by the worker's threads)."""
    import redis

    return redis.Redis.from_url(url)


def celery_worker_command(broker: str, store: str, threads: int, number: int) -> list[str]:
    """A Celery worker of the celery model: one process whose `threads` threads each run a job
    (blocking sockets, as the threads model's)."""
    return [
        sys.executable, "-m", "celery", "-A", "models.celery_model", "-b", broker,
        "--result-backend", store, "worker", "--pool", "threads", "--concurrency", str(threads),
        "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
        "--hostname", f"bench{number}@%h",
    ]  # fmt: skip


def wait_for_celery_workers(client: Celery, workers: int) -> None:
    """Wait until `workers` Celery workers answer a ping through the broker."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while len(client.control.ping(timeout=0.5) or []) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{workers} Celery workers did not start within {_START_TIMEOUT_S} s"
            )


def to_perf_s(wall_s: float) -> float:
    """A `time.time()` taken on a worker (perhaps another machine), on this process's
    perf_counter clock; as exact as the machines' clocks agree."""
    return wall_s - time.time() + time.perf_counter()


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of this point's own, on a free loopback port, with no persistence;
    yields its URL and stops it on the way out."""
    program = shutil.which("redis-server")
    if program is None:
        raise RuntimeError(REDIS_MISSING)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        command = [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                   "--appendonly", "no", "--dir", folder, "--loglevel", "warning"]  # fmt: skip
        server = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, server)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait()


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {server.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.01)
    raise RuntimeError(f"redis-server did not listen on port {port} within {_START_TIMEOUT_S} s")


@contextlib.contextmanager
def worker_processes(commands: Sequence[Sequence[str]]) -> Iterator[None]:
    """Start the given worker commands as children of this point (their CPU counts in its
    tree) and stop them on the way out."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(list(command), env=env, stdout=subprocess.DEVNULL) for command in commands
    ]
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
