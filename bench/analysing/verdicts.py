"""Verdicts on one measured point (or a level's medians): what makes it less trustworthy, and
whether it met an open load's target. Plain Python: the sweep judges points with it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.analysing.thresholds import (
    ERROR_SHARE,
    JOBS_FOR_P99,
    LATE_SHARE,
    LATE_START_S,
    LITTLE_TOLERANCE,
    SERVICE_BUSY,
)


def point_warnings(row: Mapping[Any, Any]) -> list[str]:
    """What makes a measured point (or a level's medians) less trustworthy, and what to do."""
    found = []
    if row["errors"]:
        found.append(
            f"{row['errors']:.0f} jobs ended in an error (a lost connection or a wrong result)"
        )
    if row["status"] != "ok":
        return found
    if row.get("service_cpu_util", 0) > SERVICE_BUSY:
        found.append(
            f"the latency service used {row['service_cpu_util']:.0%} of a core: it, not the "
            "model, may be the limit; run it on another machine (bench serve, then --service)"
        )
    if row["jobs"] < JOBS_FOR_P99:
        found.append(
            f"only {row['jobs']:.0f} jobs ended in the window, too few for a p99 "
            f"({JOBS_FOR_P99} needed): lengthen --duration to about "
            f"{math.ceil(JOBS_FOR_P99 / max(row['throughput'], 1e-9))} s"
        )
    if (row.get("late_starts") or 0) > LATE_SHARE * row["jobs"]:
        found.append(
            f"{row['late_starts']:.0f} jobs started over {LATE_START_S * 1000:g} ms late "
            "although a user was free: the runtime's timers ran late (the load fell behind its "
            "schedule); their latency counts it"
        )
    n, littles_n = row["concurrency"], row["littles_n"]
    if row.get("load", "closed") == "closed" and abs(littles_n - n) > LITTLE_TOLERANCE * n:
        found.append(
            f"Little's law gives {littles_n:.0f} jobs in flight, not N={n}: the window "
            "caught the start-up transient (or the harness queued); users join across the "
            "warm-up, so lengthen --warmup by a few job cycles, 3 x N / throughput = "
            f"{3 * n / max(row['throughput'], 1e-9):.1f} s"
        )
    return found


def meets_target(row: Mapping[Any, Any], slo_ms: float) -> bool:
    """Whether an open point kept its p99 within the SLO, with at most 1% errors."""
    return bool(
        row["status"] == "ok"
        and row["latency_p99_ms"] <= slo_ms
        and row["errors"] <= ERROR_SHARE * max(row["jobs"], 1)
    )
