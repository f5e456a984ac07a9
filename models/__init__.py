"""The workload and its implementations, one module per concurrency model."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from models.load import Tally, Window

if TYPE_CHECKING:
    from models.bare import Count


@dataclass(frozen=True)
class Model:
    """A registry entry: which module runs the model, and on what."""

    name: str
    module: str
    description: str
    cap: Literal["threads", "processes"] | None = None  # which --max-* flag limits N
    requires: str | None = None  # a package that must be importable
    loop: str | None = None  # a module whose new_event_loop runs the model instead of asyncio's
    backend: str | None = None  # the event loop an anyio model runs on
    default: bool = True  # whether `bench run` runs it when no --models is given
    twin: str | None = None  # the native model this one wraps: the report shows the price
    one_at_a_time: bool = False  # serves one job at a time, whatever N
    one_loop: bool = False  # runs every job's Python work on one thread (one core at most)
    engine: bool = False  # sends jobs through a task-queue engine to workers (dask, celery)
    # The broker a celery model starts for each point, unless the user names one: "redis" or
    # "rabbitmq" (`models.cluster.private_broker`).
    broker: Literal["redis", "rabbitmq"] | None = None
    # Models that run the same blocking steps in one process: an engine's floor is measured
    # against the first of them that a run holds.
    references: tuple[str, ...] = ()
    start_method: Literal["forkserver"] | None = None  # how a model starts worker processes
    colour: str = "#8c564b"  # the same in every figure
    # The runtime of the bare loop (`models.bare`) the model is held to; None: it has none.
    bare: str | None = None
    # The HTTP client libraries it runs with over `--transport http` (`models.web`), the one
    # a plain name means first; () for none.
    clients: tuple[str, ...] = ()
    # The database drivers it runs with over `--transport postgres` (`models.db`), the one a
    # plain name means first; () for none.
    drivers: tuple[str, ...] = ()
    # A model in another language (`models.foreign`): the program that runs its points.
    language: str | None = None

    def available(self) -> bool:
        """Whether this platform can run the model."""
        return not self.missing()

    def missing(self) -> str:
        """What this platform lacks to run the model, and how to get it ("" if nothing)."""
        if self.language is not None:
            from models.foreign import LANGUAGES

            return LANGUAGES[self.language].missing()
        if self.requires is not None and importlib.util.find_spec(self.requires) is None:
            return f"{self.requires} is not installed on this platform"
        return ""

    def runner(self) -> Callable[[Window], Tally]:
        """The model's `run` function, bound to its runtime."""
        run: Callable[..., Tally] = importlib.import_module(self.module).run
        if self.backend is not None:
            return functools.partial(run, backend=self.backend)
        if self.loop is not None:
            return functools.partial(
                run, loop_factory=importlib.import_module(self.loop).new_event_loop
            )
        if self.start_method is not None:
            return functools.partial(run, start_method=self.start_method)
        if self.broker is not None:
            return functools.partial(run, broker=self.broker)
        if self.language is not None:
            return functools.partial(run, language=self.language)
        return run

    def bare_runner(self) -> Callable[[Window], Count]:
        """The model's bare loop (`models.bare.run`), bound to its runtime."""
        from models import bare

        if self.bare is None:
            raise ValueError(f"{self.name} has no bare loop")
        loop = None if self.loop is None else importlib.import_module(self.loop).new_event_loop
        return functools.partial(
            bare.run, runtime=self.bare, loop_factory=loop, backend=self.backend
        )


# forkserver: workers fork from a clean, pre-imported server, fast and without the hazards of
# forking a process that has threads.
_FORKSERVER: Final = "forkserver"
# The HTTP clients of each ecosystem (`models.web`): requests and httpx's Client for blocking
# code, aiohttp and httpx's AsyncClient on asyncio; on trio and under anyio, httpx alone (it is
# written on anyio; aiohttp is asyncio's own).
_BLOCKING_CLIENTS = ("requests", "httpx")
_ASYNCIO_CLIENTS = ("aiohttp", "httpx")
# The database drivers of each ecosystem (`models.db`): psycopg for blocking code, asyncpg and
# psycopg's asyncio API on asyncio; on trio and under anyio psycopg's blocking API in threads
# (neither asyncio driver runs on trio).
_BLOCKING_DRIVERS = ("psycopg",)
_ASYNCIO_DRIVERS = ("asyncpg", "psycopg")
# Blocking models that run an engine's steps in one process, the first found is the reference.
_ENGINE_REFERENCES = ("threads", "sync")

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "sync",
            "models.sync_model",
            "one job at a time, steps in sequence",
            one_at_a_time=True,
            one_loop=True,
            colour="#7f7f7f",
            bare="sync",
            clients=_BLOCKING_CLIENTS,
            drivers=_BLOCKING_DRIVERS,
        ),
        Model(
            "threads",
            "models.threads_model",
            "a thread per in-flight job",
            cap="threads",
            colour="#1f77b4",
            bare="threads",
            clients=_BLOCKING_CLIENTS,
            drivers=_BLOCKING_DRIVERS,
        ),
        Model(
            "processes",
            "models.processes_model",
            "a process per in-flight job",
            cap="processes",
            start_method=_FORKSERVER,
            colour="#ff7f0e",
            bare="processes",
            clients=_BLOCKING_CLIENTS,
            drivers=_BLOCKING_DRIVERS,
        ),
        Model(
            "asyncio",
            "models.asyncio_model",
            "asyncio tasks on the default event loop",
            one_loop=True,
            colour="#2ca02c",
            bare="asyncio",
            clients=_ASYNCIO_CLIENTS,
            drivers=_ASYNCIO_DRIVERS,
        ),
        Model(
            "uvloop",
            "models.asyncio_model",
            "the asyncio model on uvloop's event loop",
            requires="uvloop",
            loop="uvloop",
            one_loop=True,
            colour="#17becf",
            bare="asyncio",
            clients=_ASYNCIO_CLIENTS,
            drivers=_ASYNCIO_DRIVERS,
        ),
        Model(
            "trio",
            "models.trio_model",
            "trio tasks in nurseries",
            one_loop=True,
            colour="#9467bd",
            bare="trio",
            clients=("httpx",),
            drivers=_BLOCKING_DRIVERS,
        ),
        Model(
            "processes-asyncio",
            "models.processes_asyncio_model",
            "one asyncio loop (uvloop where installed) per core, N/P jobs each",
            start_method=_FORKSERVER,
            colour="#d62728",
            bare="processes-asyncio",
            clients=_ASYNCIO_CLIENTS,
            drivers=_ASYNCIO_DRIVERS,
        ),
        Model(
            "dask",
            "models.dask_model",
            "each job a task on a dask.distributed cluster, awaited as a future",
            requires="distributed",
            default=False,
            engine=True,
            references=_ENGINE_REFERENCES,
            colour="#e377c2",
        ),
        Model(
            "celery",
            "models.celery_model",
            "each job a Celery task through a Redis broker to worker processes",
            requires="celery",
            default=False,
            engine=True,
            broker="redis",
            references=_ENGINE_REFERENCES,
            colour="#bcbd22",
        ),
        Model(
            "celery-rabbitmq",
            "models.celery_model",
            "the celery model through a RabbitMQ broker (results, stock and locks in Redis)",
            requires="celery",
            default=False,
            engine=True,
            broker="rabbitmq",
            references=_ENGINE_REFERENCES,
            colour="#dbdb8d",
        ),
        Model(
            "anyio-asyncio",
            "models.anyio_model",
            "the anyio model on asyncio's event loop",
            backend="asyncio",
            default=False,
            twin="asyncio",
            one_loop=True,
            colour="#98df8a",
            bare="anyio",
            clients=("httpx",),
            drivers=_BLOCKING_DRIVERS,
        ),
        Model(
            "anyio-uvloop",
            "models.anyio_model",
            "the anyio model on uvloop's event loop",
            requires="uvloop",
            backend="uvloop",
            default=False,
            twin="uvloop",
            one_loop=True,
            colour="#9edae5",
            bare="anyio",
            clients=("httpx",),
            drivers=_BLOCKING_DRIVERS,
        ),
        Model(
            "anyio-trio",
            "models.anyio_model",
            "the anyio model on trio",
            backend="trio",
            default=False,
            twin="trio",
            one_loop=True,
            colour="#c5b0d5",
            bare="anyio",
            clients=("httpx",),
            drivers=_BLOCKING_DRIVERS,
        ),
        Model(
            "go",
            "models.foreign",
            "Go: a goroutine per job, sync.Mutex, context deadlines, net connections",
            default=False,
            language="go",
            colour="#00add8",
        ),
        Model(
            "node",
            "models.foreign",
            "Node.js: async functions on its event loop, Promises, AbortSignal timeouts",
            default=False,
            one_loop=True,
            language="node",
            colour="#3c873a",
        ),
        Model(
            "java",
            "models.foreign",
            "Java 17: CompletableFuture chains on an executor, ReentrantLock, socket timeouts",
            default=False,
            language="java",
            colour="#b07219",
        ),
    )
}
ENGINE_MODELS = tuple(name for name, model in MODELS.items() if model.engine)


def registered(label: str) -> Model | None:
    """The registry entry behind a row's model label ("threads+httpx @3.13.5t" is threads), if
    any."""
    return MODELS.get(split_label(label)[0])


def split_label(label: str) -> tuple[str, str | None]:
    """A point's model label as its model and its HTTP client or database driver
    ("asyncio+aiohttp": asyncio, aiohttp; "asyncio": asyncio, None; an interpreter's tag,
    " @3.13.5t", left out)."""
    name, _, client = label.split(" @")[0].partition("+")
    return name, client or None


def pairs(transport: str = "http") -> list[str]:
    """Every model with every HTTP client (or, over postgres, database driver) it runs with, as
    points name them."""
    return [
        f"{name}+{stack}"
        for name, model in MODELS.items()
        for stack in (model.drivers if transport == "postgres" else model.clients)
    ]
