"""What the task-queue models (dask, celery) share: how they reach their engine, the I/O of each
worker process, and the private brokers (Redis, RabbitMQ) and worker processes started for a
point."""

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
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psutil

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
RABBITMQ_MISSING = (
    "rabbitmq-server is not installed; install it (`apt-get install rabbitmq-server`, "
    "`brew install rabbitmq`) or give --broker amqp://HOST --result-backend redis://HOST:6379/0 "
    "to the celery model, with workers of your own"
)
_MISSING: Final = {
    "redis-server": REDIS_MISSING,
    "rabbitmq-server": RABBITMQ_MISSING,
    "epmd": "epmd is not on the PATH; add the bin folder of the Erlang rabbitmq-server runs on",
}
# The servers each private broker needs: over RabbitMQ a Redis still holds the results, the
# stock and its locks, and the node registers with an epmd (Erlang's port mapper).
_SERVERS: Final = {
    "redis": ("redis-server",),
    "rabbitmq": ("rabbitmq-server", "epmd", "redis-server"),
}
# A worker's steps pool starts threads only as stages need them; this only bounds it.
_MAX_STEP_THREADS = 1024
# How long a private server or a worker may take to answer after it is started, and a
# private server to stop once asked (a RabbitMQ node closes its queues first).
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0


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


def missing_server(broker: str) -> str:
    """Why a point cannot start the private `broker` ("redis" or "rabbitmq") and the servers
    beside it ("" if it can)."""
    return next((_MISSING[name] for name in _SERVERS[broker] if shutil.which(name) is None), "")


@contextlib.contextmanager
def private_broker(broker: str) -> Iterator[tuple[str, str]]:
    """The private `broker` ("redis" or "rabbitmq") of this point, and the Redis that holds
    its results, the stock and its locks; yields their URLs and stops them on the way out."""
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(private_redis())
        yield (store if broker == "redis" else stack.enter_context(private_rabbitmq())), store


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of this point's own, on a free loopback port, with no persistence;
    yields its URL and stops it on the way out."""
    program = _installed("redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        command = [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                   "--appendonly", "no", "--dir", folder, "--loglevel", "warning"]  # fmt: skip
        with _server(command, os.environ, port):
            yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def private_rabbitmq() -> Iterator[str]:
    """A rabbitmq-server of this point's own: its node, data, logs, configuration and Erlang
    cookie in a temporary folder, its AMQP and distribution ports free loopback ones, and an
    epmd of its own; yields its AMQP URL once it accepts connections, and stops it on the way
    out."""
    program, epmd = _rabbitmq_script(_installed("rabbitmq-server")), _installed("epmd")
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-rabbitmq-") as folder:
        base = Path(folder)
        (base / "rabbitmq.conf").write_text("")  # RabbitMQ's defaults, not /etc/rabbitmq's
        (base / "enabled_plugins").write_text("[].\n")  # no management plugin beside it
        env = os.environ | {
            "HOME": folder,  # where Erlang keeps the node's cookie
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),  # none
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_NODENAME": f"bench-{os.getpid()}-{port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            # Otherwise the AMQP port + 20000, which may be past the last port.
            "RABBITMQ_DIST_PORT": str(dist_port),
            # The node registers with this point's epmd, not with a machine-wide daemon that
            # would outlive the point; and its schedulers sleep when idle instead of spinning,
            # as RabbitMQ advises where it shares the cores (here with the client and workers).
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false "
            "+sbwt none +sbwtdcpu none +sbwtdio none",
        }
        # epmd says on stderr that a probe of its port sent no request: nothing to show.
        epmd_command = [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"]
        with (
            _server(epmd_command, env, epmd_port, stderr=subprocess.DEVNULL),
            _server([program], env, port),
        ):
            yield f"amqp://guest:guest@127.0.0.1:{port}//"


def _installed(program: str) -> str:
    """The path of `program`, a server a private broker needs; RuntimeError says how to
    install it."""
    found = shutil.which(program)
    if found is None:
        raise RuntimeError(_MISSING[program])
    return found


def _rabbitmq_script(program: str) -> str:
    """The script that runs a RabbitMQ node in the foreground, as any user."""
    # Debian's rabbitmq-server on the PATH is a wrapper that switches to the rabbitmq user,
    # who could not write to this point's folder; the real script is its sibling.
    script = Path(program).resolve().with_name("rabbitmq-server")
    return str(script) if script.is_file() else program


@contextlib.contextmanager
def _server(
    command: Sequence[str], env: Mapping[str, str], port: int, stderr: int | None = None
) -> Iterator[None]:
    """Start a server as a child of this point (its CPU counts in the point's tree, and it
    ends with the point's process group if the run dies), wait until it accepts connections
    on `port`, and stop it on the way out."""
    server = subprocess.Popen(list(command), env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait_for_port(Path(command[0]).name, port, server)
        yield
    finally:
        # RabbitMQ's script passes SIGTERM on to its node and waits for it to stop cleanly.
        server.terminate()
        try:
            server.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # a kill would reach the script, not the node
            with contextlib.suppress(psutil.NoSuchProcess):
                for process in psutil.Process(server.pid).children(recursive=True):
                    process.kill()
            server.kill()
            server.wait()


def _wait_for_port(name: str, port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{name} exited with status {server.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.01)
    raise RuntimeError(f"{name} did not listen on port {port} within {_START_TIMEOUT_S} s")


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
