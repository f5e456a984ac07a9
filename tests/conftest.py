"""Shared fixtures: a tiny scenario and a fixed calibration, so tests never depend on speed."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator

import pytest
from celery import Celery
from distributed import Client

from bench.measuring.service import LocalService
from models.cluster import (
    Engine,
    celery_worker_command,
    free_port,
    missing_server,
    private_broker,
    private_redis,
    wait_for_celery_workers,
    worker_processes,
)
from models.recording import Histogram
from models.workload import (
    FAILED,
    OK,
    TIMED_OUT,
    Action,
    Calibration,
    Compute,
    CpuStep,
    Dist,
    IoStep,
    Scenario,
    Stage,
)

# Fixed, small: a "millisecond" of CPU is a few hundred kernel steps, whatever the machine.
TINY_CALIBRATION = Calibration(
    python_iterations_per_ms=500.0, native_blocks_per_ms=4.0, json_orders_per_ms=2.0
)

TINY = Scenario(
    "tiny",
    "Sub-millisecond steps of every kind, with a stage of three parallel steps.",
    (
        Stage("check", (CpuStep("check", Dist("constant", 0.5), "python"),)),
        Stage(
            "fan out",
            (
                IoStep("call a", Dist("exponential", 0.2), 100, 10),
                IoStep("call b", Dist("constant", 0.0), 0, 20),
                CpuStep("hash", Dist("exponential", 0.5), "native"),
            ),
        ),
    ),
)


def histogram_of(values_ms: list[float]) -> Histogram:
    """A histogram holding `values_ms`."""
    histogram = Histogram()
    for value in values_ms:
        histogram.record(value)
    return histogram


@pytest.fixture
def tiny() -> Scenario:
    """The tiny scenario."""
    return TINY


@contextlib.contextmanager
def dask_scheduler() -> Iterator[str]:
    """`dask scheduler` on a free loopback port, answering; yields its address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
               "--port", str(port), "--no-dashboard"]  # fmt: skip
    with worker_processes([command]):
        with Client(address, timeout=60):  # up and answering
            pass
        yield address


@contextlib.contextmanager
def celery_workers(broker: str, store: str) -> Iterator[None]:
    """Two Celery workers of 16 threads on `broker`, started as the README's commands start a
    user's own, answering."""
    with worker_processes([celery_worker_command(broker, store, 16, n) for n in range(2)]):
        wait_for_celery_workers(Celery(broker=broker, set_as_current=False), 2)
        yield


@pytest.fixture(scope="session")
def engines() -> Iterator[Engine]:
    """A dask scheduler with workers and a Redis broker with Celery workers, started once with
    the commands the README gives for a cluster of one's own, and shared by the tests."""
    with dask_scheduler() as scheduler, private_redis() as broker:
        dask = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--nworkers", "2",
                "--nthreads", "16", "--no-dashboard"]  # fmt: skip
        with worker_processes([dask]), celery_workers(broker, broker):
            with Client(scheduler, timeout=60) as client:
                client.wait_for_workers(2, timeout=60)
            yield Engine(dask_address=scheduler, broker=broker)


# The RabbitMQ tests need Debian's rabbitmq-server, which .ci/run installs.
NEEDS_RABBITMQ = pytest.mark.skipif(
    bool(missing_server("rabbitmq")),
    reason="rabbitmq-server is not installed (.ci/run installs it)",
)


@pytest.fixture(scope="session")
def rabbitmq_engine() -> Iterator[Engine]:
    """A RabbitMQ broker with a Redis result backend and Celery workers, as a user gives them
    (`--broker amqp://HOST --result-backend redis://HOST:6379/0`), started once and shared."""
    if reason := missing_server("rabbitmq"):
        pytest.skip(reason)
    with private_broker("rabbitmq") as (broker, store), celery_workers(broker, store):
        yield Engine(broker=broker, result_backend=store)


def step_outcome(action: Action) -> int:
    """How a step ends by its draws, on a runtime that is never late (the tests' oracle)."""
    if isinstance(action, Compute):
        return OK
    outcome = OK
    for attempt in action.attempts:
        if action.timeout_s is not None and attempt.seconds > action.timeout_s:
            outcome = TIMED_OUT
        elif attempt.fails:
            outcome = FAILED
        else:
            return OK
    return outcome


def retries_needed(action: Action) -> int:
    """How many retries a step makes by its draws, on a runtime that is never late."""
    if isinstance(action, Compute):
        return 0
    for k, attempt in enumerate(action.attempts):
        timed_out = action.timeout_s is not None and attempt.seconds > action.timeout_s
        if not timed_out and not attempt.fails:
            return k
    return len(action.attempts) - 1


@pytest.fixture(scope="module")
def latency_service() -> Iterator[tuple[str, int]]:
    """The run's own latency service (wire protocol and HTTP), for a module's tests."""
    running = LocalService()
    running.ensure()
    yield running.address
    running.close()


def assert_offline(page: str) -> None:
    """An HTML page of the suite opens with no network: its one script inline, nothing fetched
    by a tag, a URL, a stylesheet import or the script."""
    assert not re.search(r"<(link|img|iframe)\b", page)
    assert re.findall(r"<script\b[^>]*>", page) == ["<script>"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page
    assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket)\b", page)
