"""The workload and its implementations, one module per concurrency model."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from models.load import Tally, Window


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
    engine: bool = False  # sends jobs through a task-queue engine to workers (dask, celery)

    def available(self) -> bool:
        """Whether this platform can run the model."""
        return self.requires is None or importlib.util.find_spec(self.requires) is not None

    def runner(self) -> Callable[[Window], Tally]:
        """The model's `run` function, bound to its runtime."""
        run: Callable[..., Tally] = importlib.import_module(self.module).run
        if self.backend is not None:
            return functools.partial(run, backend=self.backend)
        if self.loop is not None:
            return functools.partial(
                run, loop_factory=importlib.import_module(self.loop).new_event_loop
            )
        return run


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "sync", "models.sync_model", "one job at a time, steps in sequence", one_at_a_time=True
        ),
        Model("threads", "models.threads_model", "a thread per in-flight job", cap="threads"),
        Model(
            "processes", "models.processes_model", "a process per in-flight job", cap="processes"
        ),
        Model("asyncio", "models.asyncio_model", "asyncio tasks on the default event loop"),
        Model(
            "uvloop",
            "models.asyncio_model",
            "the asyncio model on uvloop's event loop",
            requires="uvloop",
            loop="uvloop",
        ),
        Model("trio", "models.trio_model", "trio tasks in nurseries"),
        Model(
            "processes-asyncio",
            "models.processes_asyncio_model",
            "one asyncio loop (uvloop where installed) per core, N/P jobs each",
        ),
        Model(
            "dask",
            "models.dask_model",
            "each job a task on a dask.distributed cluster, awaited as a future",
            requires="distributed",
            default=False,
            engine=True,
        ),
        Model(
            "celery",
            "models.celery_model",
            "each job a Celery task through a Redis broker to worker processes",
            requires="celery",
            default=False,
            engine=True,
        ),
        Model(
            "anyio-asyncio",
            "models.anyio_model",
            "the anyio model on asyncio's event loop",
            backend="asyncio",
            default=False,
            twin="asyncio",
        ),
        Model(
            "anyio-uvloop",
            "models.anyio_model",
            "the anyio model on uvloop's event loop",
            requires="uvloop",
            backend="uvloop",
            default=False,
            twin="uvloop",
        ),
        Model(
            "anyio-trio",
            "models.anyio_model",
            "the anyio model on trio",
            backend="trio",
            default=False,
            twin="trio",
        ),
    )
}
