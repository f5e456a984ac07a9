"""The closed-loop sweep: plan the points, run each in a fresh process, hand each result on."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import resource
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.analysing.budget import Need, budget_for, plan_windows
from bench.analysing.stats import bound_per_s
from bench.analysing.steady import Goal
from bench.analysing.thresholds import (
    ERROR_SHARE,
    GOAL_PERCENT,
    GOAL_THROUGHPUT_CI,
    STEADY_JOBS,
)
from bench.analysing.verdicts import meets_target, point_warnings
from bench.errors import BenchError
from bench.files.meta import Interpreter
from bench.files.run_dir import Point
from bench.measuring.engines import engine_shortfall
from bench.measuring.interpreters import own_tag
from bench.measuring.point import PointFailed, PointResult, PointSpec, measure_point
from bench.measuring.service import Service
from models import MODELS, db, split_label, web
from models.cluster import Engine
from models.db import Database
from models.recording import Histogram, jobs_for
from models.workload import Calibration, Scenario

# Grace on top of warm-up and measured window for starting the runtime and draining jobs.
_TIMEOUT_GRACE_S = 60.0
# `--rate auto`: the search gives up doubling here, and refines the knee in this many steps.
_MAX_RATE = 1e6
# An open point holds the schedule of its arrivals in memory (8 bytes each, and a record per
# job that ran): past this many a point would take gigabytes, so no rate may ask for more.
MOST_ARRIVALS = 10_000_000
_MIN_RATE = 0.1
_BISECTIONS = 3
# File descriptors a process needs besides its connections: the interpreter's own, pipes, logs.
_SPARE_FDS = 64
# A budgeted point: users join over at most RAMP_S; the warm-up's cap is three times what the
# level is expected to need, and at least WARMUP_CAP_FLOOR_S; windows last at least
# SHORTEST_WINDOW_S (the throughput interval's batches need it) when the budget allows, and
# TICK_FLOOR_S (two of the conductor's looks) when it does not; a point's start and stop is
# taken to cost OVERHEAD_PRIOR_S, and its warm-up at least WARMUP_PRIOR_S, until points of it
# have measured them.
RAMP_S = 0.5
WARMUP_CAP_FLOOR_S = 5.0
SHORTEST_WINDOW_S = 1.0
TICK_FLOOR_S = 0.2
OVERHEAD_PRIOR_S = 1.5
WARMUP_PRIOR_S = 2.0


@dataclass(frozen=True)
class Progress:
    """Callbacks a caller can pass to follow a run (the terminal draws its progress with them)."""

    on_run_dir: Callable[[Path], None] = lambda run_dir: None
    on_start: Callable[[int, int, PointSpec], None] = lambda i, n, spec: None
    on_point: Callable[[Point], None] = lambda point: None
    on_deadline: Callable[[float], None] = lambda epoch_s: None  # when a budgeted run ends


@dataclass(frozen=True)
class SweepConfig:
    """Everything that decides which points run and how."""

    scenario: Scenario
    models: tuple[str, ...]
    concurrency: tuple[int, ...]
    warmup_s: float
    duration_s: float
    seed: int
    max_processes: int
    max_threads: int
    repeat: int = 1
    transport: str = "sleep"
    local_service: bool = True  # with tcp: the run starts its own service (else --service)
    timeout_s: float | None = None  # per point; default: 2 x (warm-up + window) + grace
    load: str = "closed"
    rates: tuple[float, ...] = ()  # open load: offered jobs per second; () searches (auto)
    arrivals: str = "constant"
    slo_ms: float = math.inf  # open load: the p99 a rate must keep to count as served
    interpreters: tuple[Interpreter, ...] = ()  # --python; () runs points under this one
    engine: Engine = field(default_factory=Engine)  # dask's and celery's cluster or broker
    # Closed load: seconds the sweep may take, spread over its points, each measuring until its
    # figures are supported (warmup_s and duration_s are then unused). None: fixed windows.
    budget_s: float | None = None
    # --transport postgres: where the stock lives, or why it cannot (its points are skipped),
    # and the connections of all pools of a point (--db-pool; None: one per user).
    database: Database | None = None
    database_missing: str = ""
    db_pool: int | None = None

    def point_timeout_s(self, spec: PointSpec | None = None) -> float:
        """The hard timeout of each point, or of `spec` with its own caps (an open point may
        also work off its queue)."""
        if self.timeout_s is not None:
            return self.timeout_s
        warmup_s, duration_s = (
            (self.warmup_s, self.duration_s) if spec is None else (spec.warmup_s, spec.duration_s)
        )
        drain_s = max(duration_s, 5.0) if self.load == "open" else 0.0
        return 2 * (warmup_s + duration_s) + drain_s + _TIMEOUT_GRACE_S


@dataclass(frozen=True)
class Planned:
    """A point to run, or to record as skipped with `skip_reason`."""

    spec: PointSpec
    skip_reason: str = ""


def fd_shortfall(config: SweepConfig, model: str, level: int, fd_limit: int) -> str:
    """Why `level` cannot run over tcp within `fd_limit` descriptors per process ("" if it can)."""
    if config.transport == "sleep":
        return ""
    scenario = config.scenario
    per_job = scenario.max_io_width() + scenario.background_steps()
    total = level * per_job + _SPARE_FDS  # the service holds the other end of every connection
    name, client_library = split_label(model)
    if client_library is not None and (scenario.routes("service") or scenario.routes("postgres")):
        total += level * per_job  # a pool of wire connections beside the HTTP client's
    client = per_job + _SPARE_FDS if MODELS[name].cap == "processes" else total
    needed = max(client, total if config.local_service else 0)
    if needed <= fd_limit:
        return ""
    return (
        f"N={level} needs about {needed} open files (connections to the latency service) "
        f"but the limit is {fd_limit}; raise it (`ulimit -n {needed}` in this shell, "
        "or nofile in /etc/security/limits.conf) and run again"
    )


def plan_points(config: SweepConfig, calibration: Calibration) -> list[Planned]:
    """Every model at every level, round after round; points above a model's cap are skipped.

    Rounds are interleaved (round 1 of every model, then round 2, ...) so that drift on a shared
    machine spreads over all models. A skipped point is recorded once, in round 1.
    """
    caps = {"threads": config.max_threads, "processes": config.max_processes}
    flags = {"threads": "--max-threads", "processes": "--max-processes"}
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # points raise theirs to the hard
    planned = []
    rates: tuple[float | None, ...] = config.rates if config.load == "open" else (None,)
    pythons: tuple[Interpreter | None, ...] = config.interpreters or (None,)
    for repeat, python in itertools.product(range(1, config.repeat + 1), pythons):
        for model in config.models:
            name, client = split_label(model)
            info = MODELS[name]
            for level, rate in itertools.product(config.concurrency, rates):
                reason = ""
                if python is None and not info.available():
                    reason = info.missing()
                elif python is not None and info.requires not in (None, *python.modules):
                    reason = f"{info.requires} is not installed for Python {python.tag} " + (
                        f"(install the engines there: `{python.path} -m pip install distributed "
                        "'celery[redis]'`)"
                        if info.engine
                        else "(`python -m bench interpreter add` tries to install it)"
                    )
                elif info.cap is not None and level > caps[info.cap]:
                    reason = (
                        f"N={level} is above the {info.cap} cap of {caps[info.cap]}; "
                        f"raise it with {flags[info.cap]}"
                    )
                else:
                    reason = (
                        engine_shortfall(name, config.engine)
                        or fd_shortfall(config, model, level, fd_limit)
                        or _stack_shortfall(config, client, python)
                    )
                if reason and repeat > 1:
                    continue
                spec = _spec(config, calibration, name, level, repeat, rate)
                driver = client if client in db.DRIVERS else None
                spec = dataclasses.replace(
                    spec,
                    python=_path(python),
                    client=None if driver else client,
                    driver=driver,
                    database=config.database if driver else None,
                    db_pool=config.db_pool,
                )
                planned.append(Planned(spec, reason))
    return planned


def _stack_shortfall(config: SweepConfig, stack: str | None, python: Interpreter | None) -> str:
    """Why the point's HTTP client or database driver cannot run ("" if it can, or the point
    has none): it is not installed, or (a driver) the database could not be had."""
    if stack is None:
        return ""
    driver = stack in db.DRIVERS
    if driver and config.database_missing:
        return config.database_missing
    installed = db.version(stack) if driver else web.version(stack)
    if stack in python.modules if python else installed:
        return ""
    where = f"for Python {python.tag}" if python else "here"
    pip = f"{python.path} -m pip" if python else "pip"
    packages = " ".join(db.PACKAGES[stack]) if driver else stack
    return f"{stack} is not installed {where} (`{pip} install {packages}`)"


def _path(python: Interpreter | None) -> str | None:
    return None if python is None else python.path


def _spec(
    config: SweepConfig,
    calibration: Calibration,
    model: str,
    level: int,
    repeat: int,
    rate: float | None,
) -> PointSpec:
    return PointSpec(
        model,
        config.scenario,
        calibration,
        level,
        repeat,
        config.seed,
        config.warmup_s,
        config.duration_s,
        rate=rate,
        arrivals=config.arrivals,
        engine=config.engine,
    )


def run_sweep(
    config: SweepConfig,
    calibration: Calibration,
    cores: int,
    on_start: Callable[[int, int, PointSpec], None] = lambda i, n, spec: None,
    on_point: Callable[[Point], None] = lambda point: None,
    service: Service | None = None,
    on_advice: Callable[[float], None] = lambda budget_s: None,
) -> list[Point]:
    """Run every planned point in turn; a failed point is recorded and the sweep goes on.

    With the tcp transport, every point does its I/O with `service`. With a budget, each
    point's caps and goal are planned just before it runs, from what the points before it
    measured; at the end `on_advice` hears the budget that would have bought every level's
    jobs.
    """
    points: list[Point] = []

    def measure(i: int, total: int, item: Planned) -> Point:
        on_start(i, total, item.spec)
        if item.skip_reason:
            point = _unmeasured(config, item.spec, cores, "skipped", item.skip_reason)
        else:
            point = _run_point(config, item.spec, cores, service)
        points.append(point)
        on_point(point)
        return point

    if config.load == "open" and not config.rates:
        _search_knees(config, calibration, cores, measure)
        return points
    planned = plan_points(config, calibration)
    budget = None if config.budget_s is None else Budget(config, planned, cores)
    for i, item in enumerate(planned):
        if budget is None or item.skip_reason:
            measure(i, len(planned), item)
            continue
        started_s = time.perf_counter()
        spec = budget.spec(i, item.spec)
        point = measure(i, len(planned), Planned(spec))
        budget.record(spec, point, time.perf_counter() - started_s)
    if budget is not None:
        on_advice(budget.advice_s())
    return points


class Budget:
    """A closed sweep's time budget: before each point, its warm-up cap, window cap and goal,
    planned from what the points before it measured (`plan_windows`)."""

    def __init__(self, config: SweepConfig, planned: list[Planned], cores: int) -> None:
        assert config.budget_s is not None
        self.config = config
        self.deadline_s = time.perf_counter() + config.budget_s
        self.planned = planned
        self.cores = cores
        self.goal_jobs = jobs_for(GOAL_PERCENT)
        self.jobs: dict[LevelKey, int] = collections.Counter()
        self.throughputs: dict[LevelKey, list[float]] = collections.defaultdict(list)
        self.warmups: dict[LevelKey, list[float]] = collections.defaultdict(list)
        self.overheads: list[float] = []
        self.funded: set[Hashable] = set()  # levels a plan has bought: kept bought after it
        # Users join over two job lengths: enough that their jobs do not end in bunches.
        self.ramp_s = min(RAMP_S, 2 * config.scenario.critical_path_ms() / 1000.0)

    def spec(self, i: int, spec: PointSpec) -> PointSpec:
        """Point `i` of the plan (`spec`), with its caps and goal."""
        key = _level_key(spec)
        needs = self.needs(i)
        plan = plan_windows(
            needs,
            self.deadline_s - time.perf_counter(),
            self.overhead_s(),
            SHORTEST_WINDOW_S,
            self.funded,
        )
        self.funded |= plan.funded
        need = next(n for n in needs if n.key == key)
        window_s = plan.windows_s[key]
        goal = Goal(
            jobs=math.ceil(need.jobs / need.points),
            throughput_ci=GOAL_THROUGHPUT_CI * math.sqrt(self.config.repeat),
            min_s=min(SHORTEST_WINDOW_S, window_s),
            # However short the budget, long enough for a median: a window without one is not a
            # measurement.
            cap_s=max(window_s, TICK_FLOOR_S, jobs_for(50) / max(need.throughput, 1e-9)),
        )
        return dataclasses.replace(
            spec,
            warmup_s=max(WARMUP_CAP_FLOOR_S, 3 * need.warmup_s),
            duration_s=goal.cap_s,
            goal=goal,
            ramp_s=self.ramp_s,
        )

    def needs(self, start: int = 0) -> list[Need]:
        """What the levels of the points from `start` on still need."""
        left = collections.Counter(
            _level_key(item.spec) for item in self.planned[start:] if not item.skip_reason
        )
        return [self._need(key, points) for key, points in left.items()]

    def _need(self, key: LevelKey, points: int) -> Need:
        model, _, level = key
        one = MODELS[model].one_at_a_time
        measured = self.throughputs[key]
        throughput = (
            statistics.median(measured)
            if measured
            else bound_per_s(self.config.scenario, 1 if one else level, self.cores)
        )
        # Steady once every user has joined, the queue has filled (a latency of N / X, by
        # Little's law) and the detector has seen its jobs.
        # A level not yet measured is taken to need WARMUP_PRIOR_S at least: the bound's
        # throughput is optimistic, and a plan that overspends early starves the last points.
        prior_s = max(
            WARMUP_PRIOR_S,
            self.ramp_s + (level + max(STEADY_JOBS, level / 2)) / max(throughput, 1e-9),
        )
        warmup_s = max(self.warmups[key]) if self.warmups[key] else prior_s
        return Need(key, points, max(0, self.goal_jobs - self.jobs[key]), throughput, warmup_s)

    def overhead_s(self) -> float:
        """What a point costs besides its warm-up and window: starting and stopping it."""
        return statistics.fmean(self.overheads) if self.overheads else OVERHEAD_PRIOR_S

    def record(self, spec: PointSpec, point: Point, wall_s: float) -> None:
        """Learn from a point that ran."""
        row = point.row
        if row["status"] != "ok":
            return
        key = _level_key(spec)
        self.jobs[key] += int(row["jobs"])
        self.throughputs[key].append(float(row["throughput"]))
        self.warmups[key].append(float(row["warmup_s"]))
        self.overheads.append(max(0.0, wall_s - row["warmup_s"] - row["elapsed_s"]))

    def advice_s(self) -> float:
        """The budget that would have bought every level's jobs, as measured."""
        totals = collections.Counter(
            _level_key(item.spec) for item in self.planned if not item.skip_reason
        )
        needs = [
            dataclasses.replace(self._need(key, points), jobs=self.goal_jobs)
            for key, points in totals.items()
        ]
        return budget_for(needs, self.overhead_s(), SHORTEST_WINDOW_S)


LevelKey = tuple[str, str | None, int]  # model, interpreter's path, N


def _level_key(spec: PointSpec) -> LevelKey:
    return spec.model, spec.python, spec.concurrency


def _search_knees(
    config: SweepConfig,
    calibration: Calibration,
    cores: int,
    measure: Callable[[int, int, Planned], Point],
) -> None:
    """`--rate auto`: for each model and cap, start at one user's pace (1 / critical path) and
    double the rate until a point misses the target (p99 over the SLO, over 1% errors, or not
    served) — or halve it until one meets it — then bisect between the two."""
    probes = itertools.count()
    for model, level in itertools.product(config.models, config.concurrency):
        # One search per model, level and interpreter: each probe is a point of its own, and
        # the bisection's rates differ between searches, so repeats would not line up.
        probe = dataclasses.replace(
            config, models=(model,), concurrency=(level,), rates=(1.0,), repeat=1
        )
        for first in plan_points(probe, calibration):  # one per interpreter
            if first.skip_reason:
                measure(next(probes), 0, first)
            else:
                _bracket_knee(
                    config, first.spec, lambda spec: measure(next(probes), 0, Planned(spec))
                )


def _bracket_knee(
    config: SweepConfig, spec: PointSpec, measure: Callable[[PointSpec], Point]
) -> None:
    """Search one model's knee: bracket it by doubling (or halving), then bisect."""

    def meets(rate: float) -> bool:
        point = measure(dataclasses.replace(spec, rate=round(rate, 3)))
        # The search needs a direction even where too few jobs support a reported p99 (a low
        # rate): it steers by the jobs it has; the row itself still says not measured.
        steering = point.row | {"latency_p99_ms": point.histogram.percentile(99)}
        return meets_target(steering, config.slo_ms)

    good, bad = 1000.0 / config.scenario.critical_path_ms(), 0.0  # one user's pace
    if meets(good):
        bad = good * 2
        highest = min(_MAX_RATE, MOST_ARRIVALS / (config.warmup_s + config.duration_s))
        while meets(bad) and bad < highest:
            good, bad = bad, bad * 2
    else:
        good, bad = good / 2, good
        while not meets(good) and good > _MIN_RATE:
            good, bad = good / 2, good
    for _ in range(_BISECTIONS):
        middle = math.sqrt(good * bad)
        good, bad = (middle, bad) if meets(middle) else (good, middle)


def _run_point(config: SweepConfig, spec: PointSpec, cores: int, service: Service | None) -> Point:
    try:
        measured = measure_with(spec, service, config.point_timeout_s(spec))
    except PointFailed as exc:
        return _unmeasured(config, spec, cores, "failed", str(exc))
    died = service.died() if service is not None else ""
    return _measured(config, spec, cores, measured, died)


def measure_with(spec: PointSpec, service: Service | None, timeout_s: float) -> PointResult:
    """Measure `spec` with its I/O going to `service`; PointFailed says why it could not be,
    the service's death first."""
    try:
        if service is not None:
            service.ensure()
            spec = spec.with_service(service.address, service.pid)
        return measure_point(spec, timeout_s)
    except (PointFailed, BenchError) as exc:
        died = "" if service is None else service.died() or service.stalled()
        raise PointFailed(f"{died}: {exc}" if died else str(exc)) from None


def _base_row(config: SweepConfig, spec: PointSpec, cores: int) -> dict[str, Any]:
    bound = bound_per_s(config.scenario, spec.concurrency, cores)
    if spec.rate is not None:  # no model serves more than is offered
        bound = min(bound, spec.rate * config.scenario.success_rate())
    return {
        "model": spec.label,
        "load": config.load,
        "concurrency": spec.concurrency,
        "rate": spec.rate,
        "repeat": spec.repeat,
        "scenario": config.scenario.name,
        # A `tcp,http` run: the points with a client are its http ones (with a driver, its
        # postgres ones).
        "transport": "http"
        if spec.client
        else "postgres"
        if spec.driver
        else config.transport.split(",")[0],
        "client": spec.client or spec.driver or "",
        "interpreter": next(
            (i.tag for i in config.interpreters if i.path == spec.python), own_tag()
        ),
        "bound": bound,
    }


def _unmeasured(
    config: SweepConfig, spec: PointSpec, cores: int, status: str, reason: str
) -> Point:
    row = _base_row(config, spec, cores) | {"status": status, "reason": reason}
    return Point(row, Histogram())


def _measured(
    config: SweepConfig, spec: PointSpec, cores: int, measured: PointResult, died: str
) -> Point:
    row = _base_row(config, spec, cores)
    latency = measured.histogram
    per_s = measured.per_s
    throughput = measured.served * per_s
    status, reason = "ok", ""
    if died:
        status, reason = "failed", died
    elif measured.unserved:
        status = "failed"
        reason = (
            f"overloaded: {measured.unserved} jobs due in the window never started (the queue "
            f"outlasted the drain); {spec.rate:g} jobs/s is beyond what {spec.model} serves "
            f"at N={spec.concurrency}"
        )
    elif measured.errors > ERROR_SHARE * measured.jobs:
        status = "failed"
        reason = f"{measured.errors} of {measured.jobs} jobs ended in an error" + "".join(
            f"; {example}" for example in measured.error_examples[:1]
        )
    elif latency.total == 0:
        status = "failed"
        reason = "no job finished inside the measured window; lengthen --duration"
    elif measured.served == 0:  # not a throughput of 0: something stopped every job
        status = "failed"
        reason = (
            f"no job succeeded in the window ({measured.failed} failed, {measured.timeouts} "
            f"timed out, of {measured.jobs})"
        )
    row |= {
        "status": status,
        "reason": reason,
        "client_version": measured.client_version,
        "db_pool_wait_ms": measured.db_pool_wait_ms,
        "submitted": measured.submitted,
        "jobs": measured.jobs,
        "errors": measured.errors,
        "failed": measured.failed,
        "timeouts": measured.timeouts,
        "retries": measured.retries,
        "elapsed_s": measured.elapsed_s,
        "throughput": throughput,
        "throughput_error": measured.throughput_error,
        # A percentile too few jobs support is not measured: NaN, never a guess.
        "latency_p50_ms": latency.supported(50),
        "latency_p90_ms": latency.supported(90),
        "latency_p99_ms": latency.supported(99),
        "latency_p999_ms": latency.supported(99.9),
        "latency_max_ms": latency.max_ms if latency.total else math.nan,
        "latency_mean_ms": latency.mean_ms,
        "cpu_s": measured.cpu_s,
        "cpu_util": measured.cpu_util,
        "rss_peak_mb": measured.rss_peak_mb,
        "pss_peak_mb": measured.pss_peak_mb,
        "ctx_switches": measured.ctx_switches,
        "warmup_s": measured.warmup_s,
        "steady": int(measured.steady),
        "drain_s": measured.drain_s,
        "late_starts": measured.late_starts if spec.rate is not None else None,
        "service_p50_ms": measured.service_histogram.supported(50),
        "service_p99_ms": measured.service_histogram.supported(99),
        "queue_p99_ms": measured.queue_histogram.supported(99),
        "background_drain_s": measured.background_drain_s,
        "service_cpu_util": measured.service_cpu_s * per_s,
        # Every job that ended was in flight, whatever its outcome.
        "littles_n": latency.total * per_s * latency.mean_ms / 1000.0,
        "edge_n": measured.edge_n,
        "efficiency": throughput / row["bound"] if row["bound"] > 0 else math.nan,
    }
    row["warning"] = "; ".join(point_warnings(row))
    return Point(row, latency, measured.samples)
