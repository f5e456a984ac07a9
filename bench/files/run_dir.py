"""Run directories: meta.json, points.csv and histograms.jsonl, written as points finish.

Plain Python (no pandas), so the point process can write its result with `write_atomically`.

Schema history (`schema_version` in meta.json):
  1 — first version: closed-loop points, `sleep` transport.
  2 — the `tcp` transport and `service_cpu_util`; job outcomes `failed`, `timeouts`, `retries`;
      `background_drain_s`; throughput and bound count successful jobs. Open load: `rate`,
      `late_starts`, `service_p50_ms`, `service_p99_ms`, `queue_p99_ms`. `interpreter`: the
      Python each point ran under (meta.json `interpreters` describes each).
  3 — meta.json records `suite_version`; the point process's result no longer comes on its
      stdout (points.csv and the histograms are as in 2).
  4 — a percentile its jobs cannot support (no distribution-free 95% interval: a p99 needs 368
      jobs) is empty in points.csv, not a number. `warmup_s` (each point's, as its conductor
      picked it), `steady`, and `throughput_error` (the relative standard error of the point's
      throughput, by batch means; inf when its window is too short to tell); `edge_n` (how
      far the window's edges can move `littles_n`, in jobs); meta.json
      `config.budget_s` (then `warmup_s` and `duration_s` are null) and `budget_advice_s`.
  5 — `pss_peak_mb`; samples.csv: each point's process tree over time (`SAMPLE_COLUMNS`).
      `late_starts` counts jobs that started over 2 ms after they were both due and in a
      user's hands (before: due while a user was free).
  6 — the `http` transport: `client` and `client_version` (the HTTP client library of a point
      whose model label is "model+client"; empty otherwise); `transport` is each point's own
      (a `--transport tcp,http` run holds both).
  7 — memory in MB (10^6 bytes), as the names `rss_peak_mb`, `pss_peak_mb`, `rss_mb` and
      `pss_mb` say; before, MiB (2^20 bytes: 4.9% more than these figures). The `postgres`
      transport: `client` and `client_version` also name a point's database driver
      ("asyncio+asyncpg"), and `db_pool_wait_ms` is its database tries' mean wait for a pooled
      connection (empty without a database).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import OutputError
from bench.files.meta import RunMeta
from models.recording import Histogram

SCHEMA_VERSION = 7
LATENCY_PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99, 100.0)

POINT_COLUMNS = (
    "model",
    "load",
    "concurrency",
    "rate",
    "repeat",
    "status",
    "reason",
    "warning",
    "scenario",
    "transport",
    "client",
    "client_version",
    "interpreter",
    "submitted",
    "jobs",
    "errors",
    "failed",
    "timeouts",
    "retries",
    "elapsed_s",
    "warmup_s",
    "steady",
    "throughput",
    "throughput_error",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "latency_max_ms",
    "latency_mean_ms",
    "cpu_s",
    "cpu_util",
    "rss_peak_mb",
    "pss_peak_mb",
    "ctx_switches",
    "drain_s",
    "late_starts",
    "service_p50_ms",
    "service_p99_ms",
    "queue_p99_ms",
    "background_drain_s",
    "service_cpu_util",
    "db_pool_wait_ms",
    "littles_n",
    "edge_n",
    "bound",
    "efficiency",
)
# Without these a points.csv is not a run's.
ESSENTIAL_COLUMNS = ("model", "concurrency", "repeat", "status", "throughput", "latency_p99_ms")
TEXT_COLUMNS = (
    "model",
    "load",
    "status",
    "reason",
    "warning",
    "scenario",
    "transport",
    "client",
    "client_version",
    "interpreter",
)
# Counts are empty on skipped and failed rows, hence pandas' nullable integers; the rest is float.
COUNT_COLUMNS = (
    "concurrency",
    "repeat",
    "submitted",
    "jobs",
    "errors",
    "failed",
    "timeouts",
    "retries",
    "late_starts",
    "ctx_switches",
    "steady",
)


# The key of a point, in histograms.jsonl and samples.csv.
KEY_COLUMNS = ("model", "interpreter", "load", "concurrency", "rate", "repeat")
# samples.csv: a point's process tree over time (bench.measuring.monitor.Sample), after its key.
SAMPLE_COLUMNS = ("at_s", "rss_mb", "pss_mb", "cpu_s", "jobs", "latency_s")


@dataclass(frozen=True)
class Point:
    """One row of points.csv (keys of `POINT_COLUMNS`), the latency histogram behind it, and
    its samples over time (fields of `SAMPLE_COLUMNS`)."""

    row: dict[str, Any]
    histogram: Histogram
    samples: tuple[tuple[float, ...], ...] = ()


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Make sure files can be written under `out` (creating it), before any work starts; `flag`
    is the option that chooses it, for the error's advice."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write results to {str(out)!r} ({exc.strerror or exc}); "
            f"pass {flag} with a directory you can write"
        ) from None


def new_run_dir(out: Path, scenario: str, now: dt.datetime) -> Path:
    """Create `out/<run-id>/`, where the run id is the start time and the scenario."""
    check_out_dir(out)
    # A scenario's name is the user's text: only letters, digits, dots and dashes reach the path.
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", scenario).strip(".-") or "scenario"
    run_id = f"{now:%Y%m%d-%H%M%S}-{safe}"
    run_dir = out / run_id
    for suffix in range(1, 1000):  # two runs started in the same second
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            run_dir = out / f"{run_id}-{suffix}"
    raise OutputError(f"cannot find a free run folder name under {str(out)!r}; clean it up")


def write_meta(run_dir: Path, meta: RunMeta) -> None:
    """Write meta.json atomically, so a reader never sees half of it."""
    write_atomically(run_dir / "meta.json", json.dumps(meta.to_dict(), indent=2) + "\n")


class PointsWriter:
    """Appends each finished point to points.csv, histograms.jsonl and samples.csv at once."""

    def __init__(self, run_dir: Path) -> None:
        self.csv_path = run_dir / "points.csv"
        self.histograms_path = run_dir / "histograms.jsonl"
        self.samples_path = run_dir / "samples.csv"
        with self.csv_path.open("w", newline="") as f:
            csv.writer(f).writerow(POINT_COLUMNS)
        with self.samples_path.open("w", newline="") as f:
            csv.writer(f).writerow(KEY_COLUMNS + SAMPLE_COLUMNS)
        self.histograms_path.touch()

    def append(self, point: Point) -> None:
        """Write one point; each file gets one complete line, flushed to disk. A write that
        fails (a full disk) is an `OutputError`; the lines written before it stay whole."""
        key = {k: point.row.get(k) for k in KEY_COLUMNS}
        path = self.csv_path
        try:
            with path.open("a", newline="") as f:
                csv.writer(f).writerow([_cell(point.row.get(c)) for c in POINT_COLUMNS])
                f.flush()
                os.fsync(f.fileno())
            path = self.histograms_path
            with path.open("a") as f:
                f.write(json.dumps({**key, "latency_ms": point.histogram.to_dict()}) + "\n")
                f.flush()
            path = self.samples_path
            with path.open("a", newline="") as f:
                csv.writer(f).writerows(
                    # Ten digits: a long point's in-flight count is a slope of large sums.
                    [*(_cell(v) for v in key.values()), *(f"{v:.10g}" for v in sample)]
                    for sample in point.samples
                )
                f.flush()
        except OSError as exc:
            raise _unwritable(path, exc) from None


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def write_atomically(path: Path, text: str, flag: str = "--out") -> None:
    """Write `path` through a temporary file, so a reader sees the old file or the new one;
    a write that fails (a full disk) leaves no temporary file and is an `OutputError` whose
    advice names `flag`, the option that chooses where it goes."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _unwritable(path, exc, flag) from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _unwritable(path, exc, flag) from None


def _unwritable(path: Path, exc: OSError, flag: str = "--out") -> OutputError:
    return OutputError(
        f"cannot write {path.name} in {str(path.parent)!r} ({exc.strerror or exc}); "
        f"free some space there or pass {flag} with another directory"
    )
