"""The task-queue engines of the dask and celery models: the user's cluster or broker, checked
before anything runs, and the settings of the workers a point starts for itself."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.errors import BenchError
from models import MODELS, split_label
from models.cluster import CELERY_ACKS_LATE, CELERY_PREFETCH_MULTIPLIER, Engine, missing_server
from models.workload import Scenario

# How long a check of the user's scheduler or broker may take before it counts as down.
_CHECK_TIMEOUT_S = 5


class EngineError(BenchError, OSError):
    """Raised when a scheduler or broker given by the user is malformed or does not answer."""


def make_engine(
    dask_address: str | None,
    broker: str | None,
    result_backend: str | None,
    scenario: Scenario,
    concurrency: Sequence[int],
    cores: int,
) -> Engine:
    """The engine settings of a run, checked: worker processes, one per core, with threads
    enough for the highest level's jobs and their background steps."""
    if dask_address is not None and not dask_address.startswith(("tcp://", "tls://", "ws://")):
        raise EngineError(
            f"--dask-address {dask_address!r} is not a scheduler address; "
            "give tcp://HOST:8786 (what `dask scheduler` prints)"
        )
    if broker is not None and broker.startswith("sqs://"):
        raise EngineError(
            f"--broker {broker!r}: SQS is not supported (Celery has no remote control over "
            "SQS, with which the run finds its workers); give redis://HOST:6379/0 or amqp://HOST"
        )
    if broker is not None and not broker.startswith(("redis://", "rediss://", "amqp://")):
        raise EngineError(
            f"--broker {broker!r} is not a broker URL; give redis://HOST:6379/0 or amqp://HOST, "
            "or run the celery-rabbitmq model for a private RabbitMQ per point"
        )
    if result_backend is not None and broker is None:
        raise EngineError("--result-backend needs --broker: a private broker keeps its results")
    store = result_backend or broker
    if store is not None and not store.startswith(("redis://", "rediss://")):
        raise EngineError(
            f"--broker {broker!r} needs --result-backend redis://HOST:6379/0: "
            "the results, the stock and its locks live in Redis"
        )
    top = max(concurrency)
    threads = math.ceil((top + scenario.handoff_workers(top)) / cores)
    return Engine(dask_address, broker, result_backend, workers=cores, threads=threads)


def check_engines(engine: Engine, models: Sequence[str]) -> None:
    """Check that the scheduler or broker the user gave is for a model that runs, and that it
    answers, with workers behind it."""
    private = [m for m in _celery_models(models) if m != "celery"]
    if engine.broker is not None and private:
        raise EngineError(
            f"--broker is for the celery model; {private[0]} starts a private broker per point: "
            "leave it out of --models, or run it without --broker"
        )
    for flag, value, model in (
        ("--dask-address", engine.dask_address, "dask"),
        ("--broker", engine.broker, "celery"),
    ):
        if value is not None and model not in models:
            raise EngineError(f"{flag} is for the {model} model; add {model} to --models")
    if "dask" in models and engine.dask_address is not None:
        _check_dask(engine.dask_address)
    if engine.broker is not None:
        _check_celery(engine.broker, engine.store() or engine.broker)


def _check_dask(address: str) -> None:
    from distributed import Client

    try:
        with Client(address, timeout=_CHECK_TIMEOUT_S) as client:
            workers = len(client.scheduler_info()["workers"])
    except OSError as error:
        raise EngineError(
            f"cannot reach the dask scheduler at {address} ({error}); start one there with "
            "`dask scheduler` and workers with `dask worker ADDRESS`"
        ) from None
    if not workers:
        raise EngineError(
            f"the dask scheduler at {address} has no workers; start some with "
            f"`dask worker {address}` on machines where this suite is installed"
        )


def _check_celery(broker: str, store: str) -> None:
    import redis
    from celery import Celery

    client = Celery("bench-check", broker=broker, backend=store, set_as_current=False)
    try:
        with client.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=_CHECK_TIMEOUT_S)
        redis.Redis.from_url(store, socket_timeout=_CHECK_TIMEOUT_S).ping()
        workers = client.control.ping(timeout=1.0)
    except Exception as error:  # kombu and redis raise their own kinds of connection error
        raise EngineError(
            f"cannot reach the Celery broker at {broker} or its result backend "
            f"({type(error).__name__}: {error}); start the broker, or leave --broker out to "
            "let each point start a private redis-server"
        ) from None
    if not workers:
        raise EngineError(
            f"no Celery worker answers on {broker}; start workers with "
            f"`celery -A models.celery_model -b {broker} --result-backend {store} worker "
            "--pool threads --concurrency 64`"
        )


def engine_shortfall(model: str, engine: Engine) -> str:
    """Why `model` cannot run on this machine with `engine` ("" if it can)."""
    broker = MODELS[model].broker
    return "" if broker is None or engine.broker is not None else missing_server(broker)


def describe_engines(engine: Engine, models: Sequence[str]) -> dict[str, Any]:
    """The engine knobs of a run, for meta.json: who runs the workers, and how."""
    described: dict[str, Any] = {}
    if "dask" in models:
        mine = engine.dask_address is None
        described["dask"] = {
            "cluster": "LocalCluster per point" if mine else engine.dask_address,
            "workers": engine.workers if mine else "yours",
            "threads_per_worker": engine.threads if mine else "yours",
        }
    for model in _celery_models(models):
        mine = engine.broker is None
        described[model] = {
            "broker": f"private {MODELS[model].broker}-server per point" if mine else engine.broker,
            "result_backend": _result_backend(engine, model),
            "workers": engine.workers if mine else "yours",
            "threads_per_worker": engine.threads if mine else "yours",
            "pool": "threads" if mine else "yours",
            "prefetch_multiplier": CELERY_PREFETCH_MULTIPLIER,
            "acks_late": CELERY_ACKS_LATE,
        }
    return described


def _celery_models(labels: Sequence[str]) -> list[str]:
    """The run's models that send jobs through a Celery broker."""
    names = dict.fromkeys(split_label(label)[0] for label in labels)
    return [name for name in names if MODELS[name].broker is not None]


def _result_backend(engine: Engine, model: str) -> str:
    """Where a celery model keeps its results, the stock and its locks, for meta.json."""
    if engine.store() is not None:
        return str(engine.store())
    return "the broker" if MODELS[model].broker == "redis" else "private redis-server per point"
