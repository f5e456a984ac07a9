"""A run read back: its points as a DataFrame, its meta.json as a `RunMeta`, its histograms."""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.analysing.levels import PointKey, per_level
from bench.analysing.overhead import COLUMNS as OVERHEAD_COLUMNS
from bench.analysing.overhead import CSV_NAME as OVERHEAD_CSV
from bench.analysing.thresholds import DEFAULT_SLO_PATHS
from bench.analysing.usl import UslFit, fit_models
from bench.analysing.verdict import Verdict, decide
from bench.errors import ResultsError, UnknownNameError
from bench.files.meta import RunMeta
from bench.files.run_dir import (
    COUNT_COLUMNS,
    ESSENTIAL_COLUMNS,
    KEY_COLUMNS,
    LATENCY_PERCENTILES,
    POINT_COLUMNS,
    SAMPLE_COLUMNS,
    TEXT_COLUMNS,
    write_atomically,
)
from models.recording import Histogram
from models.workload import Scenario


@dataclass(frozen=True)
class Results:
    """A run read back: its points (every repeat) as a DataFrame, its meta.json and where it
    lives; `levels` collapses the repeats, once."""

    run_dir: Path
    points: pd.DataFrame
    meta: RunMeta
    notes: tuple[str, ...] = ()  # what was wrong with the files and left out

    @functools.cached_property
    def levels(self) -> pd.DataFrame:
        """One row per model and level across repeats (`bench.analysing.levels.per_level`),
        computed on first use and shared by the report, its findings and its figures."""
        return per_level(self.points, self.histograms())

    @functools.cached_property
    def verdict(self) -> Verdict | None:
        """What to choose at the run's p99 target (`bench.analysing.verdict.decide`; a run
        older than the closed target: 10 x the critical path); None for an open load."""
        if self.meta.config.load == "open":
            return None
        slo_ms = self.meta.config.slo_ms
        if slo_ms is None:
            slo_ms = DEFAULT_SLO_PATHS * self.meta.scenario.critical_path_ms()
        scenario = self.meta.scenario
        lock_bound = scenario.lock_limit_per_s() * scenario.success_rate()
        return decide(self.levels, self.meta.cores, slo_ms, lock_bound)

    @functools.cached_property
    def fits(self) -> dict[str, UslFit]:
        """Each model's Universal Scalability Law fit over its ok repeats (`fit_models`),
        computed on first use."""
        return fit_models(self.points)

    @functools.cached_property
    def samples(self) -> pd.DataFrame:
        """Every point's process tree over time (samples.csv: `KEY_COLUMNS`, then
        `SAMPLE_COLUMNS`); empty for a run older than schema 5."""
        path = self.run_dir / "samples.csv"
        if not path.is_file():
            return pd.DataFrame(columns=[*KEY_COLUMNS, *SAMPLE_COLUMNS])
        rows = _complete_lines(path)[0]
        return pd.read_csv(
            io.StringIO("".join(rows)),
            dtype={c: str for c in ("model", "interpreter", "load")},
            keep_default_na=False,
            na_values={c: ["", "nan"] for c in ("rate", *SAMPLE_COLUMNS)},
        )

    @functools.cached_property
    def overhead(self) -> pd.DataFrame:
        """The run's overhead study (overhead.csv: `OVERHEAD_COLUMNS`, a row per model and
        its bare loop); empty when the run did not hold its models to them."""
        path = self.run_dir / OVERHEAD_CSV
        if not path.is_file():
            return pd.DataFrame(columns=list(OVERHEAD_COLUMNS))
        return read_overhead(path)

    def histograms(self) -> dict[PointKey, Histogram]:
        """Every point's latency histogram, by (model, interpreter, concurrency, rate, repeat);
        a run older than schema 3 did not record the interpreter: the run's own."""
        interpreters = set(self.points["interpreter"])
        own = interpreters.pop() if len(interpreters) == 1 else ""
        found = {}
        for line in _complete_lines(self.run_dir / "histograms.jsonl")[0]:
            entry = json.loads(line)
            rate = entry["rate"]
            key = (
                str(entry["model"]),
                str(entry.get("interpreter") or own),
                int(entry["concurrency"]),
                None if rate is None else float(rate),
                int(entry["repeat"]),
            )
            found[key] = Histogram.from_dict(entry["latency_ms"])
        return found

    def histogram(self, model: str, concurrency: int) -> Histogram | None:
        """The latency histogram of one model and level, merged over repeats (None if absent)."""
        merged = None
        for (name, _, level, _, _), histogram in self.histograms().items():
            if name == model and level == concurrency:
                merged = merged or Histogram()
                merged.merge(histogram)
        return merged

    def latency(
        self, model: str, concurrency: int, percentiles: Sequence[float] = LATENCY_PERCENTILES
    ) -> pd.DataFrame:
        """Percentiles of one model and level, recomputed from its stored histograms (pooled
        over repeats); NaN for a percentile too few jobs support."""
        histogram = self.histogram(model, concurrency)
        if histogram is None:
            raise UnknownNameError(
                f"no point for model {model!r} at N={concurrency} in {str(self.run_dir)!r}; "
                "see .points for what the run holds"
            )
        return pd.DataFrame(
            {
                "percentile": list(percentiles),
                "latency_ms": [histogram.supported(p) for p in percentiles],
            }
        )

    @property
    def scenario(self) -> Scenario:
        """The scenario the run measured."""
        return self.meta.scenario


def write_summary(results: Results) -> None:
    """Write summary.csv: one row per model and level across repeats (`Results.levels`)."""
    text = results.levels.to_csv(index=False, float_format="%.6g")
    write_atomically(results.run_dir / "summary.csv", text)


def read_overhead(path: Path) -> pd.DataFrame:
    """An overhead.csv (`bench.analysing.overhead.COLUMNS`; a missing figure is NaN)."""
    return pd.read_csv(
        path,
        dtype={"model": str, "transport": str, "status": str, "reason": str},
        keep_default_na=False,
        na_values={c: [""] for c in OVERHEAD_COLUMNS[6:]},
    )


def latest_run(out: Path) -> Path:
    """The newest run directory under `out`."""
    runs = sorted(p for p in out.glob("*") if (p / "meta.json").is_file())
    if not runs:
        raise ResultsError(f"no runs in {str(out)!r}; run `python -m bench run` first")
    return runs[-1]


def load_results(run_dir: Path) -> Results:
    """Read a run directory; a missing or malformed file is a `ResultsError`."""
    notes = []
    try:
        meta = RunMeta.from_dict(json.loads((run_dir / "meta.json").read_text()))
        for name in ("points.csv", "histograms.jsonl", "samples.csv"):
            if (run_dir / name).is_file() and _complete_lines(run_dir / name)[1]:
                notes.append(
                    f"the last line of {run_dir / name} was cut short (the run was stopped while "
                    "writing it) and is left out"
                )
        rows = _complete_lines(run_dir / "points.csv")[0]
        points = pd.read_csv(
            io.StringIO("".join(rows)),
            dtype={
                c: str if c in TEXT_COLUMNS else "Int64" if c in COUNT_COLUMNS else float
                for c in POINT_COLUMNS
            },
            keep_default_na=False,
            na_values={c: [""] for c in POINT_COLUMNS if c not in TEXT_COLUMNS},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"cannot read run {str(run_dir)!r}: {exc}") from None
    missing = [c for c in ESSENTIAL_COLUMNS if c not in points.columns]
    if missing:
        raise ResultsError(f"{run_dir / 'points.csv'} lacks columns: {', '.join(missing)}")
    # A run of an earlier schema lacks the columns added since: empty, as for a closed point.
    for column in POINT_COLUMNS:
        if column not in points.columns:
            points[column] = (
                ""
                if column in TEXT_COLUMNS
                else pd.Series(pd.NA, index=points.index, dtype="Int64")
                if column in COUNT_COLUMNS
                else pd.Series(float("nan"), index=points.index, dtype=float)
            )
    return Results(run_dir, points[list(POINT_COLUMNS)], meta, tuple(notes))


def _complete_lines(path: Path) -> tuple[list[str], bool]:
    """The lines of a file that a writer finished (each point's line ends with a newline, so
    a line without one was being written when the run stopped), and whether one was cut."""
    lines = path.read_text().splitlines(keepends=True)
    torn = bool(lines) and not lines[-1].endswith("\n")
    return (lines[:-1] if torn else lines), torn
