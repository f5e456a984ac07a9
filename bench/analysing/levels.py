"""One row per model and level across repeats: medians, 95% confidence intervals, stability."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from bench.analysing.thresholds import CV_WARNING
from bench.analysing.verdicts import meets_target, point_warnings
from models import ENGINE_MODELS, MODELS, split_label
from models.recording import Histogram

_SUMMARISED = ("throughput", "latency_p99_ms")
# A point's latency histogram: (model, interpreter, concurrency, rate or None, repeat).
PointKey = tuple[str, str, int, float | None, int]
# The percentiles a level reports from its repeats' pooled jobs, by column.
PERCENTILES = {
    "latency_p50_ms": 50.0,
    "latency_p90_ms": 90.0,
    "latency_p99_ms": 99.0,
    "latency_p999_ms": 99.9,
}
# The columns a level's row sets itself (its identity, verdict and bound); every other numeric
# column of the points, but a repeat's number, is a median over the ok repeats.
_OWN = (
    "model",
    "interpreter",
    "load",
    "concurrency",
    "rate",
    "status",
    "reason",
    "repeats",
    "bound",
)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student's t confidence interval of the mean; NaN bounds for fewer than two values."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return math.nan, math.nan
    half = special.stdtrit(len(data) - 1, (1 + level) / 2) * data.std(ddof=1) / math.sqrt(len(data))
    mean = float(data.mean())
    return mean - float(half), mean + float(half)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation over mean; NaN for fewer than two values or a zero mean."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2 or data.mean() == 0:
        return math.nan
    return float(data.std(ddof=1) / data.mean())


def per_level(
    points: pd.DataFrame, histograms: Mapping[PointKey, Histogram] | None = None
) -> pd.DataFrame:
    """Collapse repeats: medians of the ok repeats, the throughput's CI (Student's t across
    repeats), and warnings. With the points' `histograms`, the latency percentiles come from
    the ok repeats' pooled jobs, each with its distribution-free 95% interval, and are NaN
    (not measured) when the jobs are too few for one; `latency_jobs` counts those jobs.
    Without them, each percentile is the median of the repeats' own.

    A level with no ok repeat keeps the status and reason of its first repeat. No points give
    a table with the same columns and no rows.
    """
    columns = [
        *_OWN,
        *_medians(points),
        *(f"{column}_ci_{end}" for column in _SUMMARISED for end in ("low", "high")),
        "latency_jobs",
        "throughput_cv",
        "warning",
    ]
    rows = []
    keys = [level_labels(points), "interpreter", "concurrency", "rate"]
    for (label, interpreter, level, rate), group in points.groupby(keys, sort=False, dropna=False):
        ok = group[group["status"] == "ok"]
        first = group.iloc[0]
        row: dict[str, object] = {
            "model": label,
            "interpreter": interpreter,
            "load": first["load"],
            "concurrency": level,
            "rate": rate,
            "status": "ok" if len(ok) else first["status"],
            "reason": "" if len(ok) else first["reason"],
            "repeats": len(ok),
            "bound": first["bound"],
        }
        source = ok if len(ok) else group
        for column in _medians(points):
            row[column] = float(source[column].astype(float).median())
        row["errors"] = float(ok["errors"].astype(float).sum())  # one error is too many
        low, high = mean_ci(list(ok["throughput"].astype(float)))
        row["throughput_ci_low"], row["throughput_ci_high"] = low, high
        row["latency_p99_ms_ci_low"] = row["latency_p99_ms_ci_high"] = math.nan
        row["latency_jobs"] = math.nan
        if histograms is not None:
            pooled = pooled_histogram(ok, histograms)
            row["latency_jobs"] = pooled.total
            for column, percent in PERCENTILES.items():
                row[column] = pooled.supported(percent)
            interval = pooled.percentile_interval(99.0)
            if interval is not None:
                row["latency_p99_ms_ci_low"], row["latency_p99_ms_ci_high"] = interval
        cv = coefficient_of_variation(list(ok["throughput"].astype(float)))
        row["throughput_cv"] = cv
        # Judged on the medians, so that K repeats give one coherent warning, not K variants;
        # but Little's law only where most repeats broke it, each over its own window (a median
        # of the estimates and one of the windows' lengths belong to no window).
        warnings = point_warnings(row) if len(ok) else []
        broke = ok["warning"].astype(str).str.contains("Little's law").sum()
        if 2 * broke <= len(ok):
            warnings = [w for w in warnings if not w.startswith("Little's law")]
        # Each repeat's throughput has its own sampling error (a short window of a job with a
        # heavy tail); only variation well beyond it says the machine moved.
        # (Unknown for a window too short to tell: then the machine cannot be blamed either.)
        sampling = float(ok["throughput_error"].astype(float).median())
        sampling = 0.0 if math.isnan(sampling) else sampling  # a run older than the column
        if cv >= CV_WARNING and cv > 3 * sampling:
            warnings.insert(
                0,
                f"throughput varied {cv:.0%} between repeats: the machine was busy or "
                "drifting; close other programs or add --repeat",
            )
        row["warning"] = "; ".join(warnings)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def pooled_histogram(
    group: pd.DataFrame, histograms: Mapping[PointKey, Histogram] | None
) -> Histogram:
    """The jobs of a group of points (a level's ok repeats), merged into one histogram."""
    pooled = Histogram()
    for row in group.to_dict("records"):
        rate = None if pd.isna(row["rate"]) else float(row["rate"])
        key = (str(row["model"]), str(row["interpreter"]), int(row["concurrency"]), rate)
        histogram = (histograms or {}).get((*key, int(row["repeat"])))
        if histogram is not None:
            pooled.merge(histogram)
    return pooled


def level_labels(points: pd.DataFrame) -> pd.Series[str]:
    """Each row's model as the tables name it: with several interpreters, each model runs once
    per interpreter ("threads @3.13.5t")."""
    if points["interpreter"].nunique() > 1:
        return (points["model"].astype(str) + " @" + points["interpreter"].astype(str)).rename(
            "model"
        )
    return points["model"].rename("model")


def _medians(points: pd.DataFrame) -> list[str]:
    """The measured columns: every number of a point but its identity and bound."""
    numbers = points.select_dtypes(include="number").columns
    return [str(c) for c in numbers if c not in (*_OWN, "repeat", "warning")]


def twin_ratios(levels: pd.DataFrame) -> pd.DataFrame:
    """For every model that wraps a native twin (anyio on asyncio, ...) and every level both
    ran: its throughput and p99 over the twin's, from the per-level medians (`per_level`)."""
    ok = {
        (str(r["model"]), int(r["concurrency"]), _rate(r["rate"])): r
        for r in levels[levels["status"] == "ok"].to_dict("records")
    }
    rows = []
    for (model, level, rate), row in ok.items():
        twin = MODELS[model].twin if model in MODELS else None
        native = ok.get((twin or "", level, rate))
        if twin is None or native is None:
            continue
        rows.append(
            {
                "model": model,
                "twin": twin,
                "concurrency": level,
                "throughput_ratio": row["throughput"] / native["throughput"],
                "p99_ratio": row["latency_p99_ms"] / native["latency_p99_ms"],
            }
        )
    return pd.DataFrame(
        rows, columns=["model", "twin", "concurrency", "throughput_ratio", "p99_ratio"]
    )


# The Python models a language model is set beside: one event loop, the faster loop, and the
# loops of every core.
LANGUAGE_REFERENCES = ("asyncio", "uvloop", "processes-asyncio")


def language_costs(levels: pd.DataFrame) -> pd.DataFrame:
    """Every level at which a model in another language was measured ok: it and the Python
    reference models (`LANGUAGE_REFERENCES`) the run holds there, each with its throughput,
    p99, CPU per job served, peak RSS, and memory per job in flight: the RSS it gained over its
    lowest level, per job more in flight (NaN at that level: nothing to set it against), from
    the per-level medians (`per_level`)."""
    ok = levels[(levels["status"] == "ok") & levels["rate"].isna()]
    names = ok["model"].map(lambda m: split_label(str(m))[0])
    foreign = names.map(lambda n: n in MODELS and MODELS[n].language is not None).astype(bool)
    measured = set(ok.loc[foreign, "concurrency"].astype(int))
    shown = ok[
        (foreign | names.isin(LANGUAGE_REFERENCES)) & ok["concurrency"].astype(int).isin(measured)
    ]
    lowest = {
        str(model): rows.sort_values("concurrency").iloc[0]
        for model, rows in ok.groupby("model", sort=False)
    }
    rows = []
    for r in shown.sort_values(["concurrency"], kind="stable").to_dict("records"):
        base, n = lowest[str(r["model"])], int(r["concurrency"])
        more = n - int(base["concurrency"])
        gained_mb = float(r["rss_peak_mb"]) - float(base["rss_peak_mb"])
        rows.append(
            {
                "model": r["model"],
                "concurrency": n,
                "throughput": r["throughput"],
                "latency_p99_ms": r["latency_p99_ms"],
                "cpu_ms_per_job": _cpu_ms_per_job(r),
                "rss_peak_mb": r["rss_peak_mb"],
                "kb_per_job_in_flight": 1000.0 * gained_mb / more if more else math.nan,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "concurrency",
            "throughput",
            "latency_p99_ms",
            "cpu_ms_per_job",
            "rss_peak_mb",
            "kb_per_job_in_flight",
        ],
    )


def engine_floors(levels: pd.DataFrame) -> pd.DataFrame:
    """What sending a job through dask or celery costs with one job in flight: each engine's
    p50 latency and CPU per job at N=1 beside those of a model that runs the same blocking
    steps in one process (threads, else sync; none if the run has neither), from the per-level
    medians (`per_level`)."""
    single = levels[
        (levels["status"] == "ok") & (levels["concurrency"] == 1) & levels["rate"].isna()
    ]
    # Keyed by the registry's name: with several interpreters a row's model is "dask @3.12.1".
    by_model = {
        (str(r["model"]).split(" @")[0], str(r["interpreter"])): r
        for r in single.to_dict("records")
    }
    rows = []
    for (model, interpreter), row in by_model.items():
        if model not in ENGINE_MODELS:
            continue
        references = [by_model.get((name, interpreter)) for name in MODELS[model].references]
        other = next((r for r in references if r is not None), None)
        beside = {  # without a reference in the run, the engine's own figures still show
            "reference": "" if other is None else other["model"],
            "reference_p50_ms": math.nan if other is None else other["latency_p50_ms"],
            "reference_cpu_ms_per_job": math.nan if other is None else _cpu_ms_per_job(other),
        }
        rows.append(
            {
                "model": row["model"],
                "p50_ms": row["latency_p50_ms"],
                "floor_ms": row["latency_p50_ms"] - beside["reference_p50_ms"],
                "cpu_ms_per_job": _cpu_ms_per_job(row),
                **beside,
            }
        )
    return pd.DataFrame(rows, columns=_FLOOR_COLUMNS)


def client_costs(levels: pd.DataFrame) -> pd.DataFrame:
    """Each stack ("asyncio+aiohttp", "asyncio+asyncpg") beside its model over the wire protocol
    (tcp, the stock in memory) at the same level and interpreter, from the per-level medians
    (`per_level`): throughput, p99, CPU per job, a database try's wait for a pooled connection,
    and the share of a stack's job's CPU that the tcp job does not spend (the client library or
    driver, and its protocol); NaN where the run has no tcp level to set it beside."""
    ok = levels[(levels["status"] == "ok") & levels["rate"].isna()]
    wire = {
        (split_label(str(r["model"]))[0], str(r["interpreter"]), int(r["concurrency"])): r
        for r in ok.to_dict("records")
        if split_label(str(r["model"]))[1] is None
    }
    rows = []
    for row in ok.to_dict("records"):
        name, client = split_label(str(row["model"]))
        if client is None:
            continue
        other = wire.get((name, str(row["interpreter"]), int(row["concurrency"])))
        cpu, tcp_cpu = _cpu_ms_per_job(row), math.nan if other is None else _cpu_ms_per_job(other)
        rows.append(
            {
                "model": row["model"],
                "client": client,
                "concurrency": int(row["concurrency"]),
                "throughput": row["throughput"],
                "latency_p99_ms": row["latency_p99_ms"],
                "cpu_ms_per_job": cpu,
                "tcp_throughput": math.nan if other is None else other["throughput"],
                "tcp_latency_p99_ms": math.nan if other is None else other["latency_p99_ms"],
                "tcp_cpu_ms_per_job": tcp_cpu,
                "client_share": 1.0 - tcp_cpu / cpu if cpu > 0 else math.nan,
                "db_pool_wait_ms": row.get("db_pool_wait_ms", math.nan),
            }
        )
    return pd.DataFrame(rows, columns=_CLIENT_COLUMNS)


_CLIENT_COLUMNS = [
    "model",
    "client",
    "concurrency",
    "throughput",
    "latency_p99_ms",
    "cpu_ms_per_job",
    "tcp_throughput",
    "tcp_latency_p99_ms",
    "tcp_cpu_ms_per_job",
    "client_share",
    "db_pool_wait_ms",
]
_FLOOR_COLUMNS = [
    "model",
    "reference",
    "p50_ms",
    "reference_p50_ms",
    "floor_ms",
    "cpu_ms_per_job",
    "reference_cpu_ms_per_job",
]


def _cpu_ms_per_job(row: dict[Hashable, Any]) -> float:
    """CPU milliseconds of the whole process tree (engine included) per job served."""
    throughput = float(row["throughput"])
    return 1000.0 * float(row["cpu_util"]) / throughput if throughput > 0 else math.nan


def _rate(value: Any) -> float | None:
    """An open point's rate, None for a closed one (NaN in the frame, which equals nothing)."""
    return None if value is None or pd.isna(value) else float(value)


def knees(levels: pd.DataFrame, slo_ms: float) -> dict[tuple[str, int], float | None]:
    """Open load: per model and cap, the highest offered rate that kept its p99 within
    `slo_ms` with at most 1% errors (None if no rate did)."""
    found: dict[tuple[str, int], float | None] = {}
    for r in levels[levels["load"] == "open"].to_dict("records"):
        key = (str(r["model"]), int(r["concurrency"]))
        best = found.get(key)
        found[key] = max(best or 0.0, float(r["rate"])) if meets_target(r, slo_ms) else best
    return found
