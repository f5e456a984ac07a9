"""The Python API behind the CLI and notebooks: `run` a sweep, `load` a run; never reads argv."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.analysing.overhead import CSV_NAME as OVERHEAD_CSV
from bench.analysing.thresholds import DEFAULT_SLO_PATHS
from bench.errors import UnknownNameError, UsageError
from bench.files.meta import MicroCost, RunConfig, RunMeta
from bench.files.results import Results, latest_run, load_results, write_summary
from bench.files.run_dir import (
    SCHEMA_VERSION,
    Point,
    PointsWriter,
    check_out_dir,
    new_run_dir,
    write_meta,
)
from bench.files.scenarios import resolve_scenario
from bench.measuring import database as database_module
from bench.measuring.engines import check_engines, describe_engines, make_engine
from bench.measuring.environment import (
    describe_machine,
    describe_python,
    load_average,
    package_versions,
    suite_commit,
    usable_cores,
)
from bench.measuring.interpreters import check_runtime, own, probe
from bench.measuring.micro import run_micro
from bench.measuring.overhead import (
    DURATION_S,
    REPEAT,
    WARMUP_S,
    OverheadWriter,
    Study,
    run_study,
    with_bare_loops,
)
from bench.measuring.overhead import check_models as check_bare_models
from bench.measuring.service import LocalService, Service, check_reachable
from bench.measuring.sweep import MOST_ARRIVALS, Progress, SweepConfig, run_sweep
from bench.presenting.report import write_report
from bench.version import __version__
from models import MODELS, pairs, split_label, web
from models.db import DRIVERS
from models.db import version as db_version
from models.workload import Scenario, calibrate

# A full run: 7 models x 4 levels (the fewest a scalability fit needs) x 2 repeats in its 5
# minutes. Each point costs about 1.2 s to start and stop and 1 s to reach steady state (sync
# at N: N job lengths) before its window: with 3 repeats those would leave the windows under a
# fifth of the budget, too little for a p99 anywhere but at the fastest levels.
DEFAULT_CONCURRENCY = (1, 8, 32, 128)
QUICK_CONCURRENCY = (16,)
# A closed run's whole time, set-up and report included, spread over its points, each of which
# measures until its figures are supported; --warmup or --duration fix the windows instead.
DEFAULT_BUDGET_S, QUICK_BUDGET_S = 300.0, 30.0
# Kept back from the budget for what follows the last point: the summary and the report.
_REPORT_S = 5.0
# Fixed windows: the open load's (and any closed run given one of --warmup, --duration).
DEFAULT_WARMUP_S, QUICK_WARMUP_S = 1.0, 0.3
DEFAULT_DURATION_S, QUICK_DURATION_S = 2.0, 1.0
DEFAULT_REPEAT, QUICK_REPEAT = 2, 1
DEFAULT_MAX_PROCESSES = 64
# The micro-benchmarks' scale: 3.2 s measured here (0.1 would take 2.8 s: mostly start-up).
MICRO_SCALE = 0.2
# Threads beyond ~1000 mostly measure the kernel's scheduler and 8 MiB stacks per thread;
# raise --max-threads to go further.
DEFAULT_MAX_THREADS = 1024
TRANSPORTS = ("tcp", "sleep", "http", "postgres")
# What one run may hold together: the models over tcp beside their HTTP stacks.
_TRANSPORT_SETS = ({"tcp"}, {"sleep"}, {"http"}, {"postgres"}, {"tcp", "http"}, {"tcp", "postgres"})
LOADS = ("closed", "open")
ARRIVALS = ("constant", "poisson")
# Open load: the in-flight cap, high enough that the async models' knees are theirs, not the cap's.
DEFAULT_OPEN_CONCURRENCY = (1000,)
# A warm-up or window longer than a day is a typo, and past it timers and timeouts overflow.
_MOST_SECONDS = 86_400.0


def run(
    scenario: str = "ecommerce",
    models: Sequence[str] | None = None,
    concurrency: Sequence[int] | None = None,
    *,
    warmup_s: float | None = None,
    duration_s: float | None = None,
    seed: int = 0,
    repeat: int | None = None,
    out: str | Path = "results",
    max_processes: int = DEFAULT_MAX_PROCESSES,
    max_threads: int = DEFAULT_MAX_THREADS,
    transport: str = "tcp",
    service: str | None = None,
    load: str = "closed",
    rate: Sequence[float] | str | None = None,
    arrivals: str = "constant",
    slo_ms: float | None = None,
    python: Sequence[str] = (),
    dask_address: str | None = None,
    broker: str | None = None,
    result_backend: str | None = None,
    database: str | None = None,
    db_pool: int | None = None,
    quick: bool = False,
    budget_s: float | None = None,
    begun_s: float | None = None,
    timeout_s: float | None = None,
    overhead: bool = False,
    command: Sequence[str] = (),
    progress: Progress | None = None,
) -> Results:
    """Run a closed-loop sweep and return its results; every point is on disk as it finishes.

    A closed load spreads `budget_s` (default 5 min; `quick`: 30 s) over its points, each of
    which warms up until steady state and measures until its p99 and throughput are supported
    (or its share of the budget is spent); `warmup_s` and `duration_s` fix the windows instead.
    The budget counts from `begun_s` (a `time.time()`; the CLI gives its process's start),
    else from this call.
    `quick` shortens the defaults (N=1,16, one repeat, a 30 s budget).
    With `transport="tcp"` jobs make real round trips to a latency service: `service`
    ("HOST:PORT") if given, else one the run starts for itself.
    `slo_ms` is the p99 target (default 10 x the critical path): of the closed run's verdict, or
    of an open run's rates. `load="open"` offers jobs at each `rate` (jobs per second, or
    "auto" to search each model's knee against `slo_ms`), with `concurrency` as the in-flight
    cap. `python` lists other
    interpreters to run every point under (each with the runtime set installed).
    `dask_address` (a scheduler), `broker` and `result_backend` (Celery's) send the dask and
    celery models' jobs to workers the user runs; without them each point starts its own.
    `overhead` also holds each model that has a bare loop to it (`overhead`), on the run's
    transport, after the sweep; the rows go to the run's overhead.csv.
    With `transport="postgres"` (or "tcp,postgres") the stock is in PostgreSQL: `database`
    (a postgresql:// URL) if given, else a private cluster the run starts; each process's
    pools hold `db_pool` connections in all (default: one per user).
    Raises `BenchError` for bad arguments, before anything runs.
    """
    begun_s = time.time() if begun_s is None else begun_s
    address = check_transport(transport, service)
    transports = check_transports(transport)
    if overhead and transports == ("http",):
        raise UsageError(
            "--overhead holds models to bare loops over sleep or tcp; give --transport tcp,http"
        )
    rates = check_rates(load, rate, arrivals)
    interpreters = tuple(check_runtime(probe(path)) for path in dict.fromkeys(python))
    scenario_spec = _check_succeeds(resolve_scenario(scenario))
    _check_database(transports, scenario_spec, database, db_pool)
    slo = _check_slo(slo_ms, scenario_spec)
    default_levels = DEFAULT_OPEN_CONCURRENCY if load == "open" else DEFAULT_CONCURRENCY
    levels = check_concurrency(
        concurrency or (QUICK_CONCURRENCY if quick and load == "closed" else default_levels)
    )
    budget = check_budget(budget_s, quick, load, warmup_s, duration_s)
    cores = usable_cores()
    engine = make_engine(dask_address, broker, result_backend, scenario_spec, levels, cores)
    config = SweepConfig(
        scenario=scenario_spec,
        models=check_labels(models if models is not None else _default_models(), transports),
        concurrency=levels,
        warmup_s=_check_seconds(
            "--warmup",
            warmup_s if warmup_s is not None else (QUICK_WARMUP_S if quick else DEFAULT_WARMUP_S),
            allow_zero=True,
        ),
        duration_s=_check_seconds(
            "--duration",
            duration_s
            if duration_s is not None
            else (QUICK_DURATION_S if quick else DEFAULT_DURATION_S),
            allow_zero=False,
        ),
        seed=seed,
        repeat=_check_positive(
            "--repeat",
            repeat if repeat is not None else (QUICK_REPEAT if quick else DEFAULT_REPEAT),
        ),
        max_processes=_check_positive("--max-processes", max_processes),
        max_threads=_check_positive("--max-threads", max_threads),
        transport=",".join(transports),
        local_service=address is None,
        timeout_s=timeout_s,
        load=load,
        rates=rates,
        arrivals=arrivals,
        slo_ms=slo,
        interpreters=interpreters,
        engine=engine,
        budget_s=budget,
        db_pool=db_pool,
    )
    _check_arrivals(config)
    progress = progress or Progress()
    now = dt.datetime.now().astimezone()
    check_out_dir(Path(out))
    if address is not None:
        check_reachable(address)
    check_engines(engine, config.models)
    # Before the run's folder: a --database that cannot be reached is bad input, not a run.
    store = _open_database(config, database)
    if store is not None:
        config = dataclasses.replace(config, database=store.database)
    elif "postgres" in transports:  # no server to be had: its points are skipped, saying why
        config = dataclasses.replace(config, database_missing=database_module.MISSING)
    server: Service | None = None
    try:  # the run's database is closed however the run ends, from here on
        calibration = calibrate()
        micro = _quick_micro()
        # Only now, so that Ctrl-C during the set-up above leaves no run without its meta.json.
        run_dir = new_run_dir(Path(out), config.scenario.name, now)
        progress.on_run_dir(run_dir)
        meta = RunMeta(
            scenario=config.scenario,
            schema_version=SCHEMA_VERSION,
            created=now.isoformat(timespec="seconds"),
            command=tuple(command),
            suite_version=__version__,
            suite_commit=suite_commit(),
            machine=describe_machine(),
            python=describe_python(),
            packages=package_versions(),
            processes_start_method=MODELS["processes"].start_method,
            interpreters=interpreters or (own(),),
            calibration=calibration,
            micro=micro,
            config=RunConfig(
                load=load,
                rates=(rates or "auto") if load == "open" else None,
                arrivals=arrivals if load == "open" else None,
                slo_ms=slo,
                transport=config.transport,
                service=service if service else (None if transport == "sleep" else "local"),
                models=config.models,
                concurrency=config.concurrency,
                warmup_s=None if budget else config.warmup_s,
                duration_s=None if budget else config.duration_s,
                budget_s=budget,
                seed=config.seed,
                repeat=config.repeat,
                max_processes=config.max_processes,
                max_threads=config.max_threads,
                point_timeout_s=None if budget else config.point_timeout_s(),
                cores=cores,
            ),
            engines=describe_engines(engine, config.models) | _describe_database(config, database),
            http_clients=describe_clients(config),
        )
        write_meta(run_dir, meta)
        writer = PointsWriter(run_dir)

        def keep(point: Point) -> None:
            writer.append(point)
            progress.on_point(point)

        server = None if transport == "sleep" else Service(address) if address else LocalService()
        advice: list[float] = []
        if budget is not None:  # what is left of it once the set-up is done, less the report's
            left_s = budget - (time.time() - begun_s) - _REPORT_S
            config = dataclasses.replace(config, budget_s=max(0.0, left_s))
            progress.on_deadline(time.time() + left_s + _REPORT_S)
        run_sweep(config, calibration, cores, progress.on_start, keep, server, advice.append)
        wire_models = [label for label in config.models if split_label(label)[1] is None]
        if overhead and (held := with_bare_loops(wire_models)):
            study_csv = OverheadWriter(run_dir / OVERHEAD_CSV)
            run_study(
                Study(held, (transports[0],), repeat=config.repeat, seed=seed),
                calibration,
                lambda _: server,
                on_row=study_csv.append,
            )
    finally:
        if server is not None:
            server.close()
        if store is not None:
            store.close()
    finished = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    budget_advice = None
    if advice and budget is not None:  # the points' time, the set-up and the report: in minutes
        budget_advice = 60.0 * math.ceil((advice[0] + budget - (config.budget_s or 0.0)) / 60.0)
    write_meta(
        run_dir,
        dataclasses.replace(
            meta,
            finished=finished,
            load_average_end=load_average(),
            budget_advice_s=budget_advice,
        ),
    )
    results = load_results(run_dir)
    write_summary(results)
    write_report(results)
    return results


def overhead(
    models: Sequence[str] | None = None,
    transports: Sequence[str] = ("sleep", "tcp"),
    concurrency: int | None = None,
    *,
    warmup_s: float = WARMUP_S,
    duration_s: float = DURATION_S,
    repeat: int = REPEAT,
    seed: int = 0,
    service: str | None = None,
    out: str | Path = "results",
    on_start: Callable[[int, int, str, str, int], None] = lambda i, n, model, t, level: None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Hold each model to its bare loop (`io-bound`, each at its reference N unless
    `concurrency` is given) on each transport; returns the CSV the rows went to, as each pair
    ended, and the rows. Raises `BenchError` for bad arguments, before anything runs."""
    names = check_bare_models(
        check_labels(models, ("tcp",)) if models is not None else with_bare_loops(_default_models())
    )
    for transport in transports:
        check_transport(transport, service if transport == "tcp" else None)
        if transport == "http":
            raise UsageError(
                "bare loops wait on sleep and tcp; over http a model's cost is its client "
                "library's (`bench run --transport tcp,http` sets the two side by side)"
            )
    caps = {"threads": DEFAULT_MAX_THREADS, "processes": DEFAULT_MAX_PROCESSES}
    for name in names:
        cap = MODELS[name].cap
        if concurrency is not None and cap is not None and concurrency > caps[cap]:
            raise UsageError(
                f"--concurrency {concurrency} is above the {cap} cap of {caps[cap]} for {name}; "
                "leave it out (each model then runs at its reference N) or name other models"
            )
    study = Study(
        names,
        tuple(dict.fromkeys(transports)),
        None if concurrency is None else _check_positive("--concurrency", concurrency),
        _check_seconds("--warmup", warmup_s, allow_zero=True),
        _check_seconds("--duration", duration_s, allow_zero=False),
        _check_positive("--repeat", repeat),
        seed,
    )
    address = check_transport("tcp", service) if "tcp" in study.transports else None
    if address is not None:
        check_reachable(address)
    folder = Path(out) / "overhead"
    check_out_dir(Path(out))
    folder.mkdir(exist_ok=True)
    path = folder / f"{dt.datetime.now().astimezone():%Y%m%d-%H%M%S}.csv"
    writer = OverheadWriter(path)
    calibration = calibrate()
    server = Service(address) if address else LocalService()
    try:
        rows = run_study(
            study, calibration, lambda t: server if t == "tcp" else None, on_start, writer.append
        )
    finally:
        server.close()
    return path, rows


def _quick_micro() -> tuple[MicroCost, ...] | None:
    """The runtimes' own costs at a small scale, for the findings; None if it fails."""
    try:
        return tuple(run_micro(MICRO_SCALE))
    except (subprocess.SubprocessError, OSError, ValueError):
        return None  # the sweep's numbers do not depend on it; the report says it is missing


def load(path: str | Path = "latest", out: str | Path = "results") -> Results:
    """Read a run directory back; `"latest"` is the newest run under `out`."""
    run_dir = latest_run(Path(out)) if str(path) == "latest" else Path(path)
    return load_results(run_dir)


def _default_models() -> list[str]:
    return [name for name, model in MODELS.items() if model.default and model.available()]


def check_concurrency(levels: Sequence[int]) -> tuple[int, ...]:
    """The concurrency levels, checked positive; duplicates dropped, order kept."""
    for level in levels:
        if level < 1:
            raise UsageError(f"concurrency {level} is not positive; give levels of 1 or more")
    return tuple(dict.fromkeys(levels))


def check_rates(load: str, rate: Sequence[float] | str | None, arrivals: str) -> tuple[float, ...]:
    """The offered rates of an open load (() for `auto`), checked against the load."""
    if load not in LOADS:
        raise UnknownNameError(f"unknown load {load!r}; choose from: {', '.join(LOADS)}")
    if arrivals not in ARRIVALS:
        raise UnknownNameError(f"unknown arrivals {arrivals!r}; choose from: {', '.join(ARRIVALS)}")
    if load == "closed":
        if rate is not None:
            raise UsageError("--rate needs --load open: a closed load has no arrival rate")
        return ()
    if rate is None:
        raise UsageError("--load open needs --rate R1,R2,... (jobs per second) or --rate auto")
    if rate == "auto":
        return ()
    if isinstance(rate, str):
        raise UsageError(f"--rate {rate!r} is not a list of rates or auto")
    for value in rate:
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"rate {value!r} is not positive; give jobs per second above 0")
    return tuple(dict.fromkeys(float(value) for value in rate))


def _check_arrivals(config: SweepConfig) -> None:
    """Open load: every rate's schedule fits in a point's memory."""
    window_s = config.warmup_s + config.duration_s
    for rate in config.rates:
        if rate * window_s > MOST_ARRIVALS:
            raise UsageError(
                f"--rate {rate:g} over a {window_s:g} s point is {rate * window_s:.3g} arrivals; "
                f"a point holds at most {MOST_ARRIVALS:.0e}: lower the rate or the window"
            )


def _check_slo(slo_ms: float | None, scenario: Scenario) -> float:
    """The p99 target of `--rate auto`: by default 10 x the job's critical path."""
    if slo_ms is None:
        return DEFAULT_SLO_PATHS * scenario.critical_path_ms()
    if not (math.isfinite(slo_ms) and slo_ms > 0):
        raise UsageError(f"--slo-ms {slo_ms!r} is not valid; give milliseconds above 0")
    return slo_ms


def _check_database(
    transports: Sequence[str], scenario: Scenario, database: str | None, db_pool: int | None
) -> None:
    """Raise UsageError unless the database flags fit the run: its stock must be all in the
    database (every locked step an I/O step routed there), and a URL must be PostgreSQL's."""
    if "postgres" not in transports:
        if database is not None or db_pool is not None:
            raise UsageError(
                "--database and --db-pool are for the stock in PostgreSQL; give --transport "
                "postgres (or tcp,postgres)"
            )
        return
    if database is not None and not database.startswith(("postgresql://", "postgres://")):
        raise UsageError(
            f"--database {database!r} is not a PostgreSQL URL; give postgresql://USER@HOST/DB"
        )
    if db_pool is not None:
        _check_positive("--db-pool", db_pool)
    if not scenario.routes("postgres"):
        raise UsageError(
            f"scenario {scenario.name!r} sends no step to the database; over postgres give one "
            'whose steps say via = "postgres" (ecommerce reserves its stock there)'
        )
    locked = [s.name for s in scenario.steps() if s.lock and getattr(s, "via", "") != "postgres"]
    if locked:
        raise UsageError(
            f"scenario {scenario.name!r} locks stock in steps not routed to the database "
            f'({", ".join(locked)}); with the stock in PostgreSQL give them via = "postgres"'
        )


def _describe_database(config: SweepConfig, url: str | None) -> dict[str, dict[str, str]]:
    """The database of a run with the stock in PostgreSQL, for meta.json: the server, the
    pools and each driver's version."""
    drivers = sorted({d for label in config.models if (d := split_label(label)[1]) in DRIVERS})
    if not drivers:
        return {}
    return {
        "postgres": {
            "server": "a private cluster the run started (initdb, loopback)"
            if url is None
            else database_module.without_password(url),
            "pool": f"{config.db_pool} connections per point across its processes"
            if config.db_pool
            else "one connection per user each process serves",
            **{driver: db_version(driver) or "not installed" for driver in drivers},
        }
    }


def _open_database(
    config: SweepConfig, url: str | None
) -> database_module.LocalDatabase | database_module.UserDatabase | None:
    """The run's database when some point needs one: the user's (`url`), else a private
    cluster sized for every pool of a point; None when PostgreSQL is not installed."""
    if not any(split_label(label)[1] in DRIVERS for label in config.models):
        return None
    if url is not None:
        return database_module.UserDatabase(url)
    if database_module.server_programs() is None:
        return None
    connections = config.db_pool or max(config.concurrency) * config.scenario.max_io_width()
    return database_module.LocalDatabase(connections)


def check_transports(transport: str) -> tuple[str, ...]:
    """The transports of `--transport` ("tcp,http": the models over tcp, then over HTTP)."""
    parts = tuple(dict.fromkeys(part.strip() for part in transport.split(",")))
    for part in parts:
        if part not in TRANSPORTS:
            raise UnknownNameError(
                f"unknown transport {part!r}; choose from: {', '.join(TRANSPORTS)}"
            )
    if set(parts) not in _TRANSPORT_SETS:
        raise UsageError(
            f"--transport {transport!r} cannot run in one run; give one of "
            f"{', '.join(TRANSPORTS)}, tcp,http or tcp,postgres"
        )
    return tuple(t for t in TRANSPORTS if t in parts)


def check_labels(names: Sequence[str], transports: Sequence[str]) -> tuple[str, ...]:
    """The points' models, checked: over tcp or sleep each model by name, over http each with
    its HTTP client ("asyncio+aiohttp"), over postgres each with its database driver
    ("asyncio+asyncpg"); a plain name takes the model's first."""
    if not names:
        raise UsageError(f"no models given; choose from: {', '.join(MODELS)}")
    labels = []
    for transport in transports:
        for label in names:
            name, stack = split_label(label)
            if name not in MODELS:
                raise UnknownNameError(f"unknown model {name!r}; choose from: {', '.join(MODELS)}")
            kind = "database driver" if transport == "postgres" else "HTTP client"
            stacks = MODELS[name].drivers if transport == "postgres" else MODELS[name].clients
            if transport not in _STACKED:
                if stack is not None and not set(_STACKED) & set(transports):
                    named = "postgres" if stack in MODELS[name].drivers else "http"
                    raise UsageError(
                        f"{label!r} names "
                        + ("a database driver" if named == "postgres" else "an HTTP client")
                        + f"; give --transport {named} (or tcp,{named})"
                    )
                labels.append(name)
            elif stack is not None and stack not in stacks:
                raise UnknownNameError(
                    f"{name} has no {kind} {stack!r}; choose from: "
                    + (", ".join(f"{name}+{c}" for c in stacks) or "none")
                )
            elif not stacks:
                missing = "makes no HTTP calls" if transport == "http" else "has no database driver"
                raise UsageError(
                    f"{name} {missing} here; over {transport} choose from: "
                    + ", ".join(pairs(transport))
                )
            else:
                labels.append(f"{name}+{stack or stacks[0]}")
    return tuple(dict.fromkeys(labels))


# The transports whose points name a stack: an HTTP client, or a database driver.
_STACKED = ("http", "postgres")


def describe_clients(config: SweepConfig) -> dict[str, dict[str, str]]:
    """The HTTP clients of the run, for meta.json: each one's version, and its pool as the
    suite sized it beside the library's default."""
    clients = {c for label in config.models if (c := split_label(label)[1]) in web.POOLS}
    return {
        client: {
            "version": web.version(client) or "not installed",
            "pool": f"{web.POOLS[client][0]} (the library's default: {web.POOLS[client][1]})",
            "timeout": "each step's timeout_ms, through the library; none without one",
        }
        for client in sorted(clients)
    }


def check_transport(transport: str, service: str | None) -> tuple[str, int] | None:
    """The address of `--service` (None: the run starts its own), checked against the transport."""
    transports = check_transports(transport)
    if service is None:
        return None
    if transports == ("sleep",):
        raise UsageError("--service needs --transport tcp: the sleep transport makes no calls")
    host, _, port = service.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--service {service!r} is not HOST:PORT (e.g. 10.0.0.5:8765)")
    return host.strip("[]"), int(port)


def check_budget(
    budget_s: float | None,
    quick: bool,
    load: str,
    warmup_s: float | None,
    duration_s: float | None,
) -> float | None:
    """The run's time budget in seconds, or None when its windows are fixed (an open load, or
    --warmup or --duration given)."""
    fixed = warmup_s is not None or duration_s is not None
    if budget_s is None:
        return None if fixed or load == "open" else QUICK_BUDGET_S if quick else DEFAULT_BUDGET_S
    if fixed:
        raise UsageError(
            "--budget plans each point's warm-up and window itself; give --budget, or "
            "--warmup and --duration, not both"
        )
    if load == "open":
        raise UsageError(
            "--budget plans closed points; an open load's windows are fixed (--duration)"
        )
    return _check_seconds("--budget", budget_s, allow_zero=False)


def _check_seconds(flag: str, value: float, *, allow_zero: bool) -> float:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        wanted = "0 or more" if allow_zero else "more than 0"
        raise UsageError(f"{flag} {value!r} is not a valid duration; give seconds, {wanted}")
    if value > _MOST_SECONDS:
        raise UsageError(
            f"{flag} {value:g} is longer than a point may run; give at most {_MOST_SECONDS:g} s"
        )
    return value


def _check_succeeds(scenario: Scenario) -> Scenario:
    """A scenario some of whose jobs can succeed: the bound, throughput and efficiency count
    successful jobs, so with none there is nothing to measure."""
    if scenario.success_rate() == 0:
        raise UsageError(
            f"no job of scenario {scenario.name!r} can succeed: a step's timeout_ms is below "
            "every wait it draws (or it always fails); raise the timeout or shorten the wait"
        )
    return scenario


def _check_positive(flag: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"{flag} {value} is not positive; give 1 or more")
    return value
