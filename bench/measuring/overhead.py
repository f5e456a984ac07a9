"""The harness's own cost: each model beside its bare loop (`models.bare`), same N, same run.

A model's point and its bare loop's run the same waits (`io-bound`) with the same users' ramp
and window, each in a fresh point process; the pair alternates its order from one repeat to the
next so that drift on a shared machine falls on both. The share is the model's throughput over
the bare loop's: 1.0 means the harness, the draws, the records and the checks cost nothing a
competent engineer's minimal loop would not pay.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.analysing.overhead import COLUMNS
from bench.errors import OutputError, UsageError
from bench.measuring.point import PointFailed, PointResult, PointSpec
from bench.measuring.service import Service
from bench.measuring.sweep import measure_with
from models import MODELS, Model
from models.bare import trips
from models.scenarios import SCENARIOS
from models.workload import Calibration

SCENARIO = SCENARIOS["io-bound"]
# Each kind of runtime's reference N: a thousand tasks, but a thread per user costs a stack and
# a process per user a whole interpreter, so fewer of those.
REFERENCE_LEVELS = {"one": 1, "threads": 256, "processes": 16, "tasks": 1000}
WARMUP_S, DURATION_S, REPEAT = 2.0, 5.0, 3
# On top of the warm-up and the window: starting N processes or connections, and the drain.
_TIMEOUT_GRACE_S = 60.0


def reference_level(model: Model) -> int:
    """The N a model is held to its bare loop at, unless the user names one."""
    if model.one_at_a_time:
        return REFERENCE_LEVELS["one"]
    if model.cap is not None:
        return REFERENCE_LEVELS[model.cap]
    return REFERENCE_LEVELS["tasks"]


def with_bare_loops(names: Sequence[str]) -> tuple[str, ...]:
    """The models among `names` that have a bare loop and can run here."""
    return tuple(n for n in names if MODELS[n].bare is not None and MODELS[n].available())


def check_models(names: Sequence[str]) -> tuple[str, ...]:
    """`names`, or a UsageError naming the first that has no bare loop."""
    for name in names:
        if MODELS[name].bare is None:
            runs = ", ".join(n for n, m in MODELS.items() if m.bare is not None)
            raise UsageError(
                f"{name} has no bare loop: an engine's cost is its floor (see the report's "
                f"engines table); models with one: {runs}"
            )
        if not MODELS[name].available():
            raise UsageError(f"{name} needs {MODELS[name].requires}, which is not installed")
    return tuple(names)


@dataclass(frozen=True)
class Study:
    """What an overhead study runs."""

    models: tuple[str, ...]
    transports: tuple[str, ...]  # "sleep", "tcp"
    concurrency: int | None = None  # None: each model's reference level
    warmup_s: float = WARMUP_S
    duration_s: float = DURATION_S
    repeat: int = REPEAT
    seed: int = 0

    def pairs(self) -> list[tuple[int, str, str, int]]:
        """(repeat, transport, model, N) in the order they run: rounds interleaved."""
        return [
            (repeat, transport, model, self.concurrency or reference_level(MODELS[model]))
            for repeat in range(1, self.repeat + 1)
            for transport in self.transports
            for model in self.models
        ]


def run_study(
    study: Study,
    calibration: Calibration,
    services: Callable[[str], Service | None],
    on_start: Callable[[int, int, str, str, int], None] = lambda i, n, model, t, level: None,
    on_row: Callable[[dict[str, Any]], None] = lambda row: None,
) -> list[dict[str, Any]]:
    """Measure each model and its bare loop; a row per pair (`COLUMNS`), handed on as it ends.
    `services(transport)` is the latency service a tcp point talks to (None on sleep)."""
    rows = []
    pairs = study.pairs()
    for i, (repeat, transport, model, level) in enumerate(pairs):
        on_start(i, len(pairs), model, transport, level)
        spec = PointSpec(
            model,
            SCENARIO,
            calibration,
            level,
            repeat,
            study.seed,
            study.warmup_s,
            study.duration_s,
        )
        service = services(transport)
        timeout_s = 2 * (study.warmup_s + study.duration_s) + _TIMEOUT_GRACE_S
        order = (False, True) if repeat % 2 else (True, False)
        measured: dict[bool, PointResult] = {}
        reason = ""
        for bare in order:
            try:
                measured[bare] = measure_with(replace(spec, bare=bare), service, timeout_s)
            except PointFailed as exc:
                reason = f"{'the bare loop' if bare else model}: {exc}"
                break
        row = _row(model, transport, level, repeat, measured, reason)
        rows.append(row)
        on_row(row)
    return rows


def _row(
    model: str,
    transport: str,
    level: int,
    repeat: int,
    measured: dict[bool, PointResult],
    reason: str,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": model,
        "transport": transport,
        "concurrency": level,
        "repeat": repeat,
        "status": "failed" if reason else "ok",
        "reason": reason,
    }
    trips_per_job = len(trips(SCENARIO))
    for bare, prefix in ((False, ""), (True, "bare_")):
        point = measured.get(bare)
        jobs = point.served if point is not None else 0
        figures = (math.nan, math.nan, math.nan)
        if point is not None and jobs:
            figures = (
                jobs * point.per_s,
                point.cpu_s / jobs * 1e6,
                point.service_cpu_s / (jobs * trips_per_job) * 1e6,
            )
        for name, value in zip(
            ("throughput", "cpu_us_per_job", "service_cpu_us_per_trip"), figures, strict=True
        ):
            row[prefix + name] = value
    bare_throughput = row["bare_throughput"]
    row["share"] = row["throughput"] / bare_throughput if bare_throughput > 0 else math.nan
    return row


class OverheadWriter:
    """Writes a study's rows to a CSV (`COLUMNS`) as each pair ends, so a stopped study keeps
    what it measured."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)
        except OSError as exc:
            raise OutputError(
                f"cannot write {path.name} in {str(path.parent)!r} ({exc.strerror or exc}); "
                "free some space there or pass --out with another directory"
            ) from None

    def append(self, row: dict[str, Any]) -> None:
        """Add `row`, its whole line in one write."""
        line = io.StringIO()
        csv.writer(line).writerow(
            ["" if isinstance(v, float) and math.isnan(v) else v for v in map(row.get, COLUMNS)]
        )
        with self.path.open("a", newline="") as f:
            f.write(line.getvalue())
