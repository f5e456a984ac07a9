"""User scenarios from TOML files, checked field by field as they are read.

Every problem is a `ScenarioFileError` naming the file, the field (`stages[1].steps[0].wait`)
and what is wrong. The format is documented in the README.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, NoReturn, get_args

from bench.errors import BenchError
from models.workload import (
    CpuKind,
    CpuStep,
    Dist,
    DistKind,
    IoStep,
    Lock,
    Scenario,
    Stage,
    Via,
)

# Which parameters each distribution takes.
_DIST_PARAMS: dict[str, tuple[str, ...]] = {
    "constant": ("mean_ms",),
    "exponential": ("mean_ms",),
    "uniform": ("low_ms", "high_ms"),
    "lognormal": ("p50_ms", "p99_ms"),
}


# The largest values a scenario may hold, so that a point can run what it accepts: an hour for
# any time (the wire carries a wait in 32-bit microseconds, 71 minutes), 1 MiB a message (the
# wire's buffer of zeros), and
# sizes of a scenario a person writes (a Zipf table of 10^9 products, or 10^4 steps in a stage,
# would take the suite minutes to describe).
_MOST_MS = 3_600_000.0
_MOST_BYTES = 2**20
_MOST_RETRIES = 100
_MOST_PRODUCTS = 100_000
_MOST_SKEW = 10.0
_MOST_STEPS = 100  # per stage, and stages per scenario

# Optional keys of I/O steps, and of every step.
_IO_OPTIONS = ("fail_rate", "retries", "backoff_ms", "timeout_ms", "via")
_SHARED_OPTIONS = ("lock", "background")


class ScenarioFileError(BenchError, ValueError):
    """Raised when a scenario file cannot be read or breaks the format."""


def load_scenario_file(path: Path) -> Scenario:
    """Read and check the scenario in `path`."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ScenarioFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(f"{path}: not valid TOML: {exc}") from None
    return _Reader(path).scenario(data)


class _Reader:
    """Walks the parsed TOML, keeping the file name for every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> NoReturn:
        raise ScenarioFileError(f"{self.path}: {field}: {problem}")

    def table(
        self, data: Any, field: str, required: tuple[str, ...], optional: tuple[str, ...]
    ) -> None:
        if not isinstance(data, dict):
            self.fail(field, f"must be a table, not {type(data).__name__}")
        for key in data:
            if key not in required + optional:
                self.fail(
                    f"{field}.{key}" if field else key,
                    f"unknown key; allowed here: {', '.join(required + optional)}",
                )
        for key in required:
            if key not in data:
                self.fail(f"{field}.{key}" if field else key, "missing (required)")

    def text(self, data: dict[str, Any], key: str, field: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(field, "must be a non-empty string")
        return value

    def number(
        self,
        data: dict[str, Any],
        key: str,
        field: str,
        default: float | None = None,
        most: float = _MOST_MS,
    ) -> float:
        value = data.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.fail(field, f"must be a number, not {value!r}")
        if value < 0:
            self.fail(field, f"{value} is negative; durations and sizes are 0 or more")
        if value > most:
            self.fail(field, f"{value:g} is above the most the suite runs, {most:g}")
        return float(value)

    def scenario(self, data: dict[str, Any]) -> Scenario:
        self.table(data, "", ("name", "stages"), ("description",))
        stages = data["stages"]
        if not isinstance(stages, list) or not stages:
            self.fail("stages", "must be a non-empty array of tables ([[stages]])")
        if len(stages) > _MOST_STEPS:
            self.fail("stages", f"{len(stages)} stages; the suite runs at most {_MOST_STEPS}")
        return Scenario(
            self.text(data, "name", "name"),
            str(data.get("description", "")),
            tuple(self.stage(stage, f"stages[{i}]") for i, stage in enumerate(stages)),
        )

    def stage(self, data: Any, field: str) -> Stage:
        self.table(data, field, ("name", "steps"), ())
        steps = data["steps"]
        if not isinstance(steps, list) or not steps:
            self.fail(f"{field}.steps", "must be a non-empty array of tables ([[stages.steps]])")
        if len(steps) > _MOST_STEPS:
            self.fail(f"{field}.steps", f"{len(steps)} steps; a stage holds at most {_MOST_STEPS}")
        stage = Stage(
            self.text(data, "name", f"{field}.name"),
            tuple(self.step(step, f"{field}.steps[{i}]") for i, step in enumerate(steps)),
        )
        if all(step.background for step in stage.steps):
            self.fail(
                f"{field}.steps",
                "every step is in the background; a stage needs a step its job waits for "
                "(put background steps beside one)",
            )
        return stage

    def step(self, data: Any, field: str) -> IoStep | CpuStep:
        if not isinstance(data, dict):
            self.fail(field, "must be a table")
        kind = data.get("type")
        if kind == "io":
            self.table(
                data,
                field,
                ("name", "type", "wait"),
                ("request_bytes", "response_bytes", *_IO_OPTIONS, *_SHARED_OPTIONS),
            )
            timeout = data.get("timeout_ms")
            if timeout is not None and self.number(data, "timeout_ms", f"{field}.timeout_ms") == 0:
                self.fail(f"{field}.timeout_ms", "must be more than 0 (leave it out for none)")
            fail_rate = self.number(data, "fail_rate", f"{field}.fail_rate", 0.0)
            if fail_rate >= 1:
                self.fail(f"{field}.fail_rate", f"{fail_rate:g} is not a probability below 1")
            via = data.get("via", "http")
            if via not in get_args(Via):
                routes = ", ".join(get_args(Via))
                self.fail(f"{field}.via", f"{via!r} is not one of: {routes}")
            return IoStep(
                self.text(data, "name", f"{field}.name"),
                self.dist(data["wait"], f"{field}.wait"),
                self.count(data, "request_bytes", field),
                self.count(data, "response_bytes", field),
                fail_rate=fail_rate,
                retries=self.count(data, "retries", field, most=_MOST_RETRIES),
                backoff_ms=self.number(data, "backoff_ms", f"{field}.backoff_ms", 0.0),
                timeout_ms=None if timeout is None else float(timeout),
                lock=self.lock(data, field),
                background=self.flag(data, "background", field),
                via=via,
            )
        if kind == "cpu":
            self.table(data, field, ("name", "type", "cpu"), ("kind", *_SHARED_OPTIONS))
            cpu_kind = data.get("kind", "python")
            if cpu_kind not in get_args(CpuKind):
                kinds = ", ".join(get_args(CpuKind))
                self.fail(f"{field}.kind", f"{cpu_kind!r} is not one of: {kinds}")
            return CpuStep(
                self.text(data, "name", f"{field}.name"),
                self.dist(data["cpu"], f"{field}.cpu"),
                cpu_kind,
                lock=self.lock(data, field),
                background=self.flag(data, "background", field),
            )
        self.fail(f"{field}.type", f"{kind!r} is not a step type; use 'io' or 'cpu'")

    def lock(self, data: dict[str, Any], field: str) -> Lock | None:
        if "lock" not in data:
            return None
        lock = data["lock"]
        self.table(lock, f"{field}.lock", (), ("products", "skew"))
        products = self.count(lock, "products", f"{field}.lock", Lock.products, _MOST_PRODUCTS)
        if products < 1:
            self.fail(f"{field}.lock.products", "must be 1 or more")
        skew = self.number(lock, "skew", f"{field}.lock.skew", Lock.skew, _MOST_SKEW)
        return Lock(products, skew)

    def flag(self, data: dict[str, Any], key: str, field: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{field}.{key}", f"must be true or false, not {value!r}")
        return value

    def count(
        self, data: dict[str, Any], key: str, field: str, default: int = 0, most: int = _MOST_BYTES
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(f"{field}.{key}", f"{value!r} is not a whole number, 0 or more")
        if value > most:
            self.fail(f"{field}.{key}", f"{value} is above the most the suite runs, {most}")
        return value

    def dist(self, data: Any, field: str) -> Dist:
        if not isinstance(data, dict) or "dist" not in data:
            self.fail(
                field, "must be a table with a `dist` key, e.g. { dist = 'constant', mean_ms = 5 }"
            )
        kind = data["dist"]
        if kind not in get_args(DistKind):
            self.fail(
                f"{field}.dist",
                f"unknown distribution {kind!r}; choose from: {', '.join(_DIST_PARAMS)}",
            )
        params = _DIST_PARAMS[kind]
        self.table(data, field, ("dist", *params), ())
        values = {p: self.number(data, p, f"{field}.{p}") for p in params}
        if kind == "uniform" and values["high_ms"] < values["low_ms"]:
            self.fail(
                f"{field}.high_ms", f"{values['high_ms']:g} is below low_ms {values['low_ms']:g}"
            )
        if kind == "lognormal":
            if values["p50_ms"] <= 0:
                self.fail(f"{field}.p50_ms", "must be more than 0 for a lognormal")
            if values["p99_ms"] <= values["p50_ms"]:
                self.fail(
                    f"{field}.p99_ms",
                    f"{values['p99_ms']:g} is not above p50_ms {values['p50_ms']:g}; "
                    "a lognormal's p99 must exceed its p50",
                )
        return Dist(kind, **values)
