"""One point: its spec and its result (the typed seam between the sweep and the point process),
and a fresh process that runs one model at one load level under a hard timeout."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.analysing.steady import Goal
from bench.measuring.environment import child_environment, python_command
from bench.measuring.monitor import Sample
from models.cluster import Engine
from models.db import Database
from models.load import Window, arrivals
from models.recording import Histogram
from models.workload import Calibration, Scenario, scenario_from_dict, scenario_to_dict


@dataclass(frozen=True)
class PointSpec:
    """What one point runs."""

    model: str
    scenario: Scenario
    calibration: Calibration
    concurrency: int
    repeat: int
    seed: int
    warmup_s: float
    duration_s: float
    max_jobs: int | None = None
    service: tuple[str, int] | None = None  # the latency service; None: the sleep transport
    service_pid: int | None = None  # its process, when the run started it
    rate: float | None = None  # open load: jobs per second offered; None: closed
    python: str | None = None  # the interpreter the point runs under; None: this one
    arrivals: str = "constant"  # open load: constant or poisson
    engine: Engine = field(default_factory=Engine)  # the dask and celery models' cluster or broker
    # A closed point that measures until its figures are supported: what its window must
    # reach (warmup_s and duration_s are then caps, and users join over ramp_s). None: fixed.
    goal: Goal | None = None
    ramp_s: float | None = None
    bare: bool = False  # run the model's bare loop (`models.bare`) instead of the model
    client: str | None = None  # --transport http: the HTTP client library (`models.web`)
    # --transport postgres: the database driver (`models.db`), the server and the pools' size.
    driver: str | None = None
    database: Database | None = None
    db_pool: int | None = None

    @property
    def label(self) -> str:
        """The model as rows name it: with its HTTP client ("threads+requests") or database
        driver ("asyncio+asyncpg"), if any."""
        stack = self.client or self.driver
        return self.model if stack is None else f"{self.model}+{stack}"

    def with_service(self, address: tuple[str, int], pid: int | None) -> PointSpec:
        """This point, doing its I/O with the service at `address`."""
        return dataclasses.replace(self, service=address, service_pid=pid)

    def window(self, announce_fd: int | None = None, ledger: str | None = None) -> Window:
        """The jobs this point runs and when (`announce_fd`: where the window's start is
        written for the resource monitor; `ledger`: the file its conductor shares)."""
        return Window(
            scenario=self.scenario,
            calibration=self.calibration,
            seed=self.seed,
            concurrency=self.concurrency,
            warmup_s=self.warmup_s,
            duration_s=self.duration_s,
            max_jobs=self.max_jobs,
            announce_fd=announce_fd,
            service=self.service,
            client=self.client,
            database=self.database,
            driver=self.driver,
            db_pool=self.db_pool,
            engine=self.engine,
            ledger=ledger,
            ramp_s=self.ramp_s,
            conducted=self.goal is not None and self.rate is None,
            arrivals=None
            if self.rate is None
            else arrivals(self.rate, self.warmup_s + self.duration_s, self.arrivals, self.seed),
        )

    def to_json(self) -> str:
        """The spec as the point process reads it."""
        data = dataclasses.asdict(self)
        data["scenario"] = scenario_to_dict(self.scenario)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> PointSpec:
        """The inverse of `to_json`."""
        data = json.loads(text)
        service = data["service"]
        return cls(
            **data
            | {
                "scenario": scenario_from_dict(data["scenario"]),
                "calibration": Calibration(**data["calibration"]),
                "service": None if service is None else (str(service[0]), int(service[1])),
                "engine": Engine(**data["engine"]),
                "goal": None if data["goal"] is None else Goal(**data["goal"]),
                "database": None if data["database"] is None else Database(**data["database"]),
            }
        )


@dataclass(frozen=True)
class PointResult:
    """What the point process measured: counts, times and histograms of the measured window,
    the process tree's resources, and the problems that make the point fail."""

    submitted: int  # every job that ended, in or out of the window
    completed: int  # of those, the ones that succeeded and checked out
    jobs: int  # counted in the window (closed: ended in it; open: due in it)
    ok: int
    served: int  # succeeded, checked out and ended in the window: the throughput's count
    throughput_error: float  # relative standard error of the throughput (batch means)
    edge_n: float  # how far the window's edges can move Little's estimate, in jobs
    failed: int
    timeouts: int
    errors: int  # lost, or a wrong result
    retries: int
    elapsed_s: float
    warmup_s: float  # how long the warm-up ran before the window opened
    steady: bool  # whether the load was steady when it opened (fixed edges: not judged)
    drain_s: float  # how long the last job ran on after the window
    background_drain_s: float  # NaN without background steps
    cpu_s: float
    service_cpu_s: float  # NaN unless the run started the latency service
    ctx_switches: int
    rss_peak_mb: float
    pss_peak_mb: float  # NaN where the kernel does not report it
    late_starts: int
    unserved: int  # open load: jobs due in the window that never ran
    histogram: Histogram  # latency, ms
    service_histogram: Histogram  # from start to end, ms
    queue_histogram: Histogram  # from due to start, ms
    error_examples: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # lost jobs or stock updates, unfinished background work
    samples: tuple[Sample, ...] = ()  # the process tree over the point's time
    client_version: str = ""  # the HTTP client's or database driver's, in the point's Python
    db_pool_wait_ms: float = math.nan  # a database try's mean wait for a pooled connection

    def to_json(self) -> str:
        """The result as the point process writes it."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("histogram", "service_histogram", "queue_histogram"):
            data[name] = data[name].to_dict()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> PointResult:
        """The inverse of `to_json`."""
        data: dict[str, Any] = json.loads(text)
        return cls(
            **data
            | {
                name: Histogram.from_dict(data[name])
                for name in ("histogram", "service_histogram", "queue_histogram")
            }
            | {
                "error_examples": tuple(data["error_examples"]),
                "samples": tuple(Sample(*(float(v) for v in row)) for row in data["samples"]),
                "pss_peak_mb": float(data["pss_peak_mb"]),
                "problems": tuple(data["problems"]),
                "background_drain_s": float(data["background_drain_s"]),
                "service_cpu_s": float(data["service_cpu_s"]),
            }
        )

    @property
    def per_s(self) -> float:
        """One over the window's length (0 for an empty window)."""
        return 1.0 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_util(self) -> float:
        """CPU seconds of the tree per wall second of the window."""
        return self.cpu_s / self.elapsed_s if self.elapsed_s > 0 else math.nan


class PointFailed(Exception):
    """Raised by `measure_point` when the point process hangs, crashes or loses jobs."""


def measure_point(spec: PointSpec, timeout_s: float) -> PointResult:
    """Run `spec` in a fresh process and return what it measured.

    The result comes back in a file of its own, not on stdout, so that nothing a model or a
    library prints can corrupt it.
    """
    # The point watches the read end of this pipe: when this process dies, however it dies,
    # the kernel closes the write end and the point ends its whole process group.
    alive_read, alive_write = os.pipe()
    with tempfile.TemporaryDirectory(prefix="bench-point-") as folder:
        result = Path(folder) / "result.json"
        command = ["-m", "bench.measuring.child", str(result), str(alive_read)]
        try:
            # A session of its own: Ctrl-C reaches the sweep, which then stops the whole tree.
            child = subprocess.Popen(
                python_command(spec.python, *command),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=child_environment(),
                start_new_session=True,
                pass_fds=(alive_read,),
            )
        finally:
            os.close(alive_read)
        with child:
            try:
                _, err = child.communicate(spec.to_json(), timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise PointFailed(
                    f"timed out after {timeout_s:.0f} s (the point's hard timeout)"
                ) from None
            finally:
                _kill_tree(child.pid)
                os.close(alive_write)
        if child.returncode != 0:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            last = lines[-1] if lines else "no error output"
            raise PointFailed(f"point process exited with status {child.returncode}: {last}")
        try:
            measured = PointResult.from_json(result.read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PointFailed(f"the point process left no readable result ({exc})") from None
    if measured.problems:
        raise PointFailed("; ".join(measured.problems))
    return measured


def _kill_tree(pid: int) -> None:
    """Kill a point process and every process it started, if any is left."""
    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(tree, timeout=5)
