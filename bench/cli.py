"""The command line: parse arguments, call the API, print progress and results."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pandas as pd
import psutil

from bench import api
from bench.analysing.overhead import medians as overhead_medians
from bench.analysing.stats import bound_per_s
from bench.analysing.thresholds import MIN_EFFECT
from bench.analysing.verdict import sentences
from bench.errors import BenchError, UsageError
from bench.files.exports import export
from bench.files.results import Results, load_results, read_overhead
from bench.files.run_dir import check_out_dir
from bench.files.scenarios import describe_scenario, resolve_scenario
from bench.measuring import interpreters
from bench.measuring import overhead as overhead_study
from bench.measuring.database import INSTALL, server_programs
from bench.measuring.environment import usable_cores
from bench.measuring.micro import run_micro
from bench.measuring.service import run_service
from bench.presenting.report import build_report
from bench.presenting.terminal import Display, overhead_table
from models import MODELS, Model, db, web
from models.recording import jobs_for
from models.scenarios import SCENARIOS

if TYPE_CHECKING:
    pass


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one `bench: error: ...` line (via BenchError)."""

    def error(self, message: str) -> NoReturn:
        command = " ".join(["python -m bench", *self.prog.split()[1:]])  # prog: "bench run"
        raise UsageError(f"{message}; see `{command} --help`")


def build_parser() -> argparse.ArgumentParser:
    """The `bench` command and its subcommands."""
    parser = _Parser(prog="bench", description="Python concurrency models, measured.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a sweep and write results/<run-id>/")
    run.add_argument(
        "--scenario", default="ecommerce", help="a built-in scenario (see `list`) or a .toml file"
    )
    run.add_argument(
        "--models", help="comma-separated models (default: the available ones not starred in list)"
    )
    run.add_argument(
        "--concurrency",
        help="comma-separated jobs in flight "
        f"(default {_join(api.DEFAULT_CONCURRENCY)}; --quick: {_join(api.QUICK_CONCURRENCY)})",
    )
    run.add_argument(
        "--load",
        default="closed",
        help="closed (N jobs in flight, default) or open (jobs arrive at --rate, N is the cap)",
    )
    run.add_argument(
        "--rate",
        help="open load: comma-separated jobs per second, or auto (find each model's knee)",
    )
    run.add_argument(
        "--arrivals", default="constant", help="open load: constant (default) or poisson"
    )
    run.add_argument(
        "--slo-ms",
        type=float,
        help="the p99 target: the verdict's (closed load) or --rate auto's (open load); "
        "default 10 x the critical path",
    )
    run.add_argument(
        "--python",
        metavar="PATH[,PATH...]",
        help="run every point under each of these interpreters too (see `interpreter add`)",
    )
    run.add_argument(
        "--transport",
        default="tcp",
        help="how jobs wait: tcp (round trips to the latency service, default), sleep (each "
        "runtime's timer: pure scheduling cost), http (HTTP requests to the service through a "
        "client library: name pairs such as asyncio+aiohttp in --models, see `bench list`), "
        "postgres (the stock in PostgreSQL, each model through its database driver: pairs such "
        "as asyncio+asyncpg; the other steps over tcp), or tcp,http or tcp,postgres (side by "
        "side)",
    )
    run.add_argument(
        "--database",
        metavar="postgresql://USER@HOST/DB",
        help="with postgres: your own server, the suite's table in a schema of its own that is "
        "dropped afterwards (default: a private cluster the run starts and stops)",
    )
    run.add_argument(
        "--db-pool",
        type=int,
        metavar="N",
        help="with postgres: connections in all of a point's pools (default: one per user)",
    )
    run.add_argument(
        "--service",
        metavar="HOST:PORT",
        help="with tcp or http: a latency service already running (`bench serve`), on this "
        "machine or another, instead of one the run starts",
    )
    run.add_argument(
        "--dask-address",
        metavar="tcp://HOST:8786",
        help="the dask model: a scheduler already running, with its workers, instead of a "
        "LocalCluster per point",
    )
    run.add_argument(
        "--broker",
        metavar="URL",
        help="the celery model: a broker already running (redis://HOST:6379/0 or amqp://HOST), "
        "with workers you started, instead of a private redis-server and workers per point "
        "(the celery-rabbitmq model starts a private RabbitMQ)",
    )
    run.add_argument(
        "--result-backend",
        metavar="URL",
        help="the celery model: the Redis for results, stock and locks (default: the broker)",
    )
    run.add_argument(
        "--budget",
        metavar="T",
        help="closed load: the run's whole time (300, 90s, 5m, 1h; default 5m, --quick: 30s), "
        "spread over the points, each measuring until its p99 and throughput are supported",
    )
    run.add_argument(
        "--duration", type=float, help="a fixed measured window per point, seconds (no budget)"
    )
    run.add_argument(
        "--warmup", type=float, help="a fixed uncounted warm-up per point, seconds (no budget)"
    )
    run.add_argument("--seed", type=int, default=0, help="seed of the job draws (default 0)")
    run.add_argument(
        "--repeat",
        type=int,
        help=f"rounds of every point, each in a fresh process (default {api.DEFAULT_REPEAT}; "
        f"--quick: {api.QUICK_REPEAT})",
    )
    run.add_argument("--out", default="results", help="where run folders go (default results)")
    run.add_argument(
        "--max-processes",
        type=int,
        default=api.DEFAULT_MAX_PROCESSES,
        help="most worker processes for `processes` (default %(default)s)",
    )
    run.add_argument(
        "--max-threads",
        type=int,
        default=api.DEFAULT_MAX_THREADS,
        help="most user threads for `threads` (default %(default)s)",
    )
    run.add_argument("--quick", action="store_true", help="a short sweep for a first look")
    run.add_argument(
        "--overhead",
        action="store_true",
        help="then hold each model to its bare loop (as `overhead` does) on this transport",
    )
    run.add_argument("--quiet", action="store_true", help="print only the report's path")
    run.add_argument(
        "--json",
        action="store_true",
        help="print the run's folder, verdict and per-level medians as JSON, and nothing else",
    )
    run.set_defaults(handler=_run)

    overhead = commands.add_parser(
        "overhead", help="each model's throughput as a share of its runtime's bare loop"
    )
    overhead.add_argument(
        "--models", help="comma-separated models (default: the default ones with a bare loop)"
    )
    overhead.add_argument(
        "--transport", default="sleep,tcp", help="sleep, tcp or both (default sleep,tcp)"
    )
    overhead.add_argument(
        "--concurrency",
        type=int,
        help="one N for every model (default: 1000 for tasks, 256 threads, 16 processes, 1 sync)",
    )
    overhead.add_argument(
        "--warmup",
        type=float,
        default=overhead_study.WARMUP_S,
        help="seconds (default %(default)s)",
    )
    overhead.add_argument(
        "--duration",
        type=float,
        default=overhead_study.DURATION_S,
        help="measured seconds per point (default %(default)s)",
    )
    overhead.add_argument(
        "--repeat", type=int, default=overhead_study.REPEAT, help="rounds (default %(default)s)"
    )
    overhead.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    overhead.add_argument("--service", help="HOST:PORT of a running `bench serve` for tcp")
    overhead.add_argument("--out", default="results", help="its CSV goes to OUT/overhead/")
    overhead.add_argument("--json", action="store_true", help="print the medians as JSON")
    overhead.set_defaults(handler=_overhead)

    report = commands.add_parser("report", help="(re)build a run's report.html")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a folder made by `bench run`")
    report.set_defaults(handler=_report)

    compare = commands.add_parser(
        "compare", help="what changed between two runs, and if it is real"
    )
    compare.add_argument("run_a", metavar="RUN_A", help="the baseline run folder")
    compare.add_argument("run_b", metavar="RUN_B", help="the run to judge against it")
    compare.add_argument(
        "--min-effect",
        help="smallest change in %% that counts, on top of the significance test: one number "
        "for every metric, or per metric as throughput=5,p99=5 (the defaults)",
    )
    compare.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit with status 1 when B is significantly worse anywhere (for CI)",
    )
    compare.add_argument(
        "--html",
        metavar="PATH",
        help="where to write the HTML page of the two runs side by side (a folder: "
        "compare.html in it); default RUN_B/compare.html",
    )
    compare.add_argument("--json", action="store_true", help="print the changes as JSON")
    compare.set_defaults(handler=_compare)

    micro = commands.add_parser("micro", help="the runtimes' own costs: spawn, switch, handoff")
    micro.add_argument(
        "--scale", type=float, default=1.0, help="multiplies the operation counts (default 1)"
    )
    micro.set_defaults(handler=_micro)

    serve = commands.add_parser(
        "serve", help="run the latency service (wire protocol and HTTP), for other machines"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    # A run's own service stops when this descriptor (a pipe from the run) closes.
    serve.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)

    interpreter = commands.add_parser(
        "interpreter", help="environments for other Pythons to run points under (--python)"
    )
    actions = interpreter.add_subparsers(dest="action", required=True, parser_class=_Parser)
    adding = actions.add_parser(
        "add", help="make an environment for PATH with the runtime set; print its python"
    )
    adding.add_argument("path", metavar="PATH", help="a python executable, e.g. python3.13t")
    adding.set_defaults(handler=_interpreter_add)
    actions.add_parser("list", help="the environments made so far").set_defaults(
        handler=_interpreter_list
    )
    export = commands.add_parser(
        "export", help="a run's results in other tools' formats: HdrHistogram, pyperf"
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run folder")
    export.add_argument(
        "--format",
        default="hdrh",
        help="hdrh: latency.hlog and hgrm/*.hgrm (each point's latency); pyperf: pyperf.json "
        "(seconds per job, for `pyperf compare_to` and `pyperf hist`); default hdrh",
    )
    export.set_defaults(handler=_export)

    listing = commands.add_parser("list", help="the models and scenarios")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(handler=_list)

    describe = commands.add_parser("describe", help="a scenario's stages and steps, as a tree")
    describe.add_argument("scenario", metavar="SCENARIO", help="a built-in name or a .toml file")
    describe.set_defaults(handler=_describe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input is one line on stderr and exit status 2."""
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # named here, where the command is known, not by the top-level parser
            raise UsageError(
                f"unrecognized arguments: {' '.join(extra)}; "
                f"see `python -m bench {args.command} --help`"
            )
        code: int = args.handler(args)
        return code
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2


def _stop(signum: int, frame: object) -> None:
    """SIGTERM ends a run as Ctrl-C does: points kept, the latency service stopped."""
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    plain = not sys.stdout.isatty() or "NO_COLOR" in os.environ
    display = Display(plain=plain, quiet=args.quiet or args.json)
    signal.signal(signal.SIGTERM, _stop)
    try:
        results = api.run(
            scenario=args.scenario,
            models=_parse_names("--models", args.models) if args.models is not None else None,
            concurrency=_parse_levels(args.concurrency) if args.concurrency is not None else None,
            warmup_s=args.warmup,
            duration_s=args.duration,
            seed=args.seed,
            repeat=args.repeat,
            out=args.out,
            max_processes=args.max_processes,
            max_threads=args.max_threads,
            transport=args.transport,
            service=args.service,
            load=args.load,
            rate=_parse_rates(args.rate) if args.rate is not None else None,
            arrivals=args.arrivals,
            slo_ms=args.slo_ms,
            python=_parse_names("--python", args.python) if args.python is not None else (),
            dask_address=args.dask_address,
            broker=args.broker,
            result_backend=args.result_backend,
            database=args.database,
            db_pool=args.db_pool,
            quick=args.quick,
            budget_s=_parse_seconds("--budget", args.budget) if args.budget is not None else None,
            overhead=args.overhead,
            begun_s=psutil.Process().create_time(),  # the budget counts the imports too
            command=["python", "-m", "bench", *sys.argv[1:]],
            progress=display.progress(),
        )
    except KeyboardInterrupt:
        display.close()
        print(f"interrupted: {display.done} points kept in {display.run_dir}", file=sys.stderr)
        if display.done:
            print(f"report: {build_report(display.run_dir)}")
        return 130
    display.close()
    if args.json:
        print(_to_json(_run_json(results)))
        return run_status(results)
    display.summary(results.levels)
    if not args.quiet:
        for note in budget_notes(results):
            print(f"note: {note}")
        if results.verdict is not None:
            head, *limits = sentences(results.verdict)
            print(f"verdict: {head}")
            for line in limits:
                print(f"  {line}")
    report = results.run_dir / "report.html"
    print(report if args.quiet else f"report: {report}")
    return run_status(results)


def run_status(results: Results) -> int:
    """The exit status of a run: 0 when every point that was planned and not skipped is ok,
    1 when one failed or none was measured."""
    status = results.points["status"]
    measured = status[status != "skipped"]
    return 0 if len(measured) and (measured == "ok").all() else 1


def budget_notes(results: Results) -> list[str]:
    """What the budget could not buy: the levels whose p99 is not measured (too few jobs for
    its interval), and the budget that would measure them."""
    levels = results.levels
    ok = levels[levels["status"] == "ok"]
    short = ok[ok["latency_p99_ms"].isna()]
    advice = results.meta.budget_advice_s
    if short.empty or results.meta.config.budget_s is None:
        return []
    names = ", ".join(f"{r['model']} N={r['concurrency']}" for r in short.to_dict("records"))
    more = "" if advice is None else f"; --budget {_minutes(advice)} would measure them"
    return [
        f"p99 not measured at {len(short)} of {len(ok)} levels ({names}): their jobs are too "
        f"few for its 95% interval ({jobs_for(99)} needed) within the "
        f"{_minutes(results.meta.config.budget_s)} budget{more}"
    ]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:.0f}s"


def _parse_seconds(flag: str, text: str) -> float:
    """A duration as seconds: a number, or one ending in s, m or h."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not a duration; give seconds (300) or 90s, 5m, 1h"
        ) from None
    return value


def _report(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args.run_dir)
    _print_notes(load_results(run_dir))
    print(f"report: {build_report(run_dir)}")
    return 0


def _print_notes(results: Results) -> None:
    """What loading a run left out (a line cut short by a crash), one warning each."""
    for note in results.notes:
        print(f"warning: {note}", file=sys.stderr)


def _compare(args: argparse.Namespace) -> int:
    # Here, not at the top: its tests need scipy.stats, a second of imports every other
    # command (a --quick run above all) would pay for nothing.
    from bench.analysing.compare import compare_runs, real_change_rule
    from bench.presenting.compare_page import write_compare_page

    a, b = load_results(_run_dir(args.run_a)), load_results(_run_dir(args.run_b))
    for run in (a, b):
        _print_notes(run)
    min_effect = _parse_min_effect(args.min_effect)
    html = _page_path(args.html, b.run_dir)
    check_out_dir(html.parent, "--html")  # before the tests, which take seconds
    changes = compare_runs(a.points, b.points, min_effect, a.histograms(), b.histograms())
    write_compare_page(html, a, b, changes, min_effect)
    regressions = [c for c in changes if c.regression]
    status = 1 if regressions and args.fail_on_regression else 0
    if args.json:
        print(
            _to_json(
                {
                    "a": str(a.run_dir),
                    "b": str(b.run_dir),
                    "min_effect": min_effect,
                    "changes": [dataclasses.asdict(c) for c in changes],
                    "regressions": len(regressions),
                    "html": str(html),
                }
            )
        )
        return status
    print(f"A: {a.run_dir}\nB: {b.run_dir}")
    rows = [
        [
            c.model,
            str(c.concurrency) + ("" if c.rate is None else f" @{c.rate:g}/s"),
            "jobs/s" if c.metric == "throughput" else "p99 ms",
            f"{c.before:.1f}",
            f"{c.after:.1f}",
            f"{c.change:+.1%}",
            "-" if math.isnan(c.p_value) else f"{c.p_value:.3f}",
            c.verdict,
        ]
        for c in changes
    ]
    headers = ["model", "N", "metric", "A", "B", "change", "p (Holm)", "verdict"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
    print(f"real change: {real_change_rule(min_effect)}")
    if status:
        print(f"{len(regressions)} regressions", file=sys.stderr)
    print(f"page: {html}")
    return status


def _parse_min_effect(text: str | None) -> dict[str, float]:
    """`--min-effect`: a percentage for every metric, or metric=percentage pairs."""
    if text is None:
        return dict(MIN_EFFECT)
    from bench.analysing.compare import METRIC_NAMES  # as in _compare: scipy loads slowly

    by_name = {name: metric for metric, name in METRIC_NAMES.items()}

    def percent(value: str) -> float:
        try:
            return float(value) / 100.0
        except ValueError:
            raise UsageError(
                f"--min-effect {text!r}: {value.strip()!r} is not a number; give a percentage "
                "such as 5, or throughput=5,p99=10"
            ) from None

    if "=" not in text:
        return {metric: percent(text) for metric in MIN_EFFECT}
    effects = dict(MIN_EFFECT)
    for part in text.split(","):
        name, _, value = (s.strip() for s in part.partition("="))
        if name not in by_name:
            raise UsageError(
                f"--min-effect {text!r}: unknown metric {name!r}; choose from: {', '.join(by_name)}"
            )
        effects[by_name[name]] = percent(value)
    return effects


def _page_path(text: str | None, run_b: Path) -> Path:
    """Where `compare` writes its page: `--html` (a folder: compare.html in it), else RUN_B's
    compare.html, for the page judges B against A."""
    path = run_b if text is None else Path(text)
    return path / "compare.html" if path.is_dir() else path


def _run_dir(path: str) -> Path:
    run_dir = Path(path)
    if not (run_dir / "meta.json").is_file():
        raise UsageError(
            f"{str(run_dir)!r} is not a run directory (no meta.json); "
            "give a folder made by `python -m bench run`, e.g. results/<run-id>"
        )
    return run_dir


def _list(args: argparse.Namespace) -> int:
    if args.json:
        print(_to_json(_list_json()))
        return 0
    print("models (* not run unless named in --models):")
    for name, model in MODELS.items():
        note = f"  ({missing})" if (missing := model.missing()) else ""
        print(f"  {name:<17}{' ' if model.default else '*'} {model.description}{note}")
    print("over --transport http, each model with an HTTP client (the first is a plain name's):")
    _print_stacks(lambda model: model.clients, web.version)
    postgres = "" if server_programs() else f" (PostgreSQL not installed: `{INSTALL}`)"
    print(f"over --transport postgres, each model with a database driver{postgres}:")
    _print_stacks(lambda model: model.drivers, db.version)
    print("scenarios (critical path, CPU per job, bound at N=1 on this machine; mean times):")
    for name, scenario in SCENARIOS.items():
        print(
            f"  {name:<10} {scenario.critical_path_ms():6.1f} ms  CPU {scenario.cpu_ms():4.1f} ms  "
            f"{bound_per_s(scenario, 1, usable_cores()):6.1f} jobs/s  {scenario.description}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    results = load_results(_run_dir(args.run_dir))
    _print_notes(results)
    for path in export(results, args.format):
        print(path)
    return 0


def _print_stacks(
    stacks_of: Callable[[Model], tuple[str, ...]], version: Callable[[str], str]
) -> None:
    """Each model's stacks (`stacks_of` it: HTTP clients or database drivers), marking those
    whose library is not installed."""
    for name, model in MODELS.items():
        if stacks := stacks_of(model):
            listed = ", ".join(
                f"{name}+{stack}" + ("" if version(stack) else " (not installed)")
                for stack in stacks
            )
            print(f"  {name:<18} {listed}")


def _list_json() -> dict[str, Any]:
    """What `bench list` prints, as data."""
    return {
        "models": [
            {
                "name": name,
                "description": model.description,
                "default": model.default,
                "available": model.available(),
                "requires": model.requires,
                "clients": [
                    {"name": client, "version": web.version(client) or None}
                    for client in model.clients
                ],
                "drivers": [
                    {"name": driver, "version": db.version(driver) or None}
                    for driver in model.drivers
                ],
            }
            for name, model in MODELS.items()
        ],
        "scenarios": [
            {
                "name": name,
                "description": scenario.description,
                "critical_path_ms": scenario.critical_path_ms(),
                "cpu_ms": scenario.cpu_ms(),
                "bound_at_1_per_s": bound_per_s(scenario, 1, usable_cores()),
            }
            for name, scenario in SCENARIOS.items()
        ],
    }


def _run_json(results: Results) -> dict[str, Any]:
    """A finished run as data: where it is, its verdict and its per-level medians."""
    verdict = results.verdict
    return {
        "run_dir": str(results.run_dir),
        "report": str(results.run_dir / "report.html"),
        "verdict": None if verdict is None else dataclasses.asdict(verdict),
        "levels": results.levels.to_dict("records"),
        "notes": list(budget_notes(results)),
    }


def _to_json(data: Any) -> str:
    """JSON with NaN (a figure not measured) and pandas' missing values as null."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return None
        if hasattr(value, "item"):  # a numpy scalar
            return clean(value.item())
        return value

    return json.dumps(clean(data), indent=2, allow_nan=False)


def _overhead(args: argparse.Namespace) -> int:
    def started(i: int, total: int, model: str, transport: str, level: int) -> None:
        if not args.json:
            print(f"[{i + 1}/{total}] {model} N={level} on {transport}", file=sys.stderr)

    path, rows = api.overhead(
        models=_parse_names("--models", args.models) if args.models is not None else None,
        transports=_parse_names("--transport", args.transport),
        concurrency=args.concurrency,
        warmup_s=args.warmup,
        duration_s=args.duration,
        repeat=args.repeat,
        seed=args.seed,
        service=args.service,
        out=args.out,
        on_start=started,
    )
    medians = overhead_medians(read_overhead(path)).to_dict("records")
    if args.json:
        print(json.dumps(medians, indent=2))
        return 0
    for row in rows:
        if row["status"] != "ok":
            print(f"failed: {row['model']} on {row['transport']}: {row['reason']}")
    print(overhead_table(medians))
    print(f"rows: {path}")
    return 0


def _micro(args: argparse.Namespace) -> int:
    if not (args.scale > 0 and math.isfinite(args.scale)):
        raise UsageError(f"--scale {args.scale!r} is not valid; give a number above 0, e.g. 0.2")
    results = run_micro(args.scale)
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{r.name:<{width}}  {r.runtime:<10} {r.value:>10.2f} {r.unit:<4} {r.note}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    def ready(host: str, port: int) -> None:
        print(f"latency service listening on {host}:{port} (Ctrl-C to stop)", flush=True)

    run_service(args.host, args.port, ready, args.parent_fd)
    return 0


def _interpreter_add(args: argparse.Namespace) -> int:
    made = interpreters.add(args.path, echo=False)
    gil = "GIL disabled" if not made.gil_enabled else "GIL enabled"
    skipped = [m for m in interpreters.OPTIONAL if m not in made.modules]
    note = f"; without {', '.join(skipped)} (its models are skipped there)" if skipped else ""
    print(f"Python {made.tag} ({gil}){note}; run points under it with --python {made.path}")
    return 0


def _interpreter_list(args: argparse.Namespace) -> int:
    found = interpreters.cached()
    if not found:
        print(f"no environments yet in {interpreters.cache_dir()}; make one with `interpreter add`")
    for made in found:
        gil = "GIL disabled" if not made.gil_enabled else "GIL enabled"
        print(f"{made.tag:<10} {gil:<13} {made.path}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    print("\n".join(describe_scenario(resolve_scenario(args.scenario))))
    return 0


def _parse_names(flag: str, text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError(f"{flag} {text!r} names nothing; give a comma-separated list")
    return names


_Number = TypeVar("_Number", int, float)


def _parse_list(
    flag: str, text: str, convert: Callable[[str], _Number], what: str, example: str
) -> list[_Number]:
    values = []
    for part in text.split(","):
        try:
            values.append(convert(part))
        except ValueError:
            raise UsageError(
                f"{flag} {text!r}: {part.strip()!r} is not {what}; give {example}"
            ) from None
    return values


def _parse_levels(text: str) -> list[int]:
    return _parse_list(
        "--concurrency", text, int, "a whole number", "a comma-separated list such as 1,16,256"
    )


def _parse_rates(text: str) -> list[float] | str:
    if text.strip() == "auto":
        return "auto"
    return _parse_list(
        "--rate", text, float, "a number", "jobs per second such as 100,200,400, or auto"
    )


def _join(levels: Sequence[int]) -> str:
    return ",".join(map(str, levels))
