"""Verdicts on one measured point (or a level's medians): what makes it less trustworthy, and
whether it met an open load's target. Plain Python: the sweep judges points with it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.analysing.thresholds import (
    ERROR_SHARE,
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
    if (row.get("late_starts") or 0) > LATE_SHARE * row["jobs"]:
        found.append(
            f"{row['late_starts']:.0f} jobs started over {LATE_START_S * 1000:g} ms late "
            "after they were due and in a user's hands: the runtime's timers ran late (the load "
            "fell behind its schedule); their latency counts it"
        )
    n, littles_n = row["concurrency"], row["littles_n"]
    # The jobs in flight as the window opens and closes put their time outside it into the
    # estimate, or their time inside it out of it: that much of a gap is the edges', not a
    # fault (a run older than the column: none).
    edges = row.get("edge_n")
    edges = 0.0 if edges is None or math.isnan(edges) else edges
    if row.get("load", "closed") == "closed" and abs(littles_n - n) > (
        LITTLE_TOLERANCE * n + edges
    ):
        found.append(
            f"Little's law gives {littles_n:.0f} jobs in flight, not N={n}: the window "
            + (
                "opened before steady state (the warm-up reached its cap first; the machine "
                "may be busy)"
                if row.get("steady") == 0
                else "caught a transient, or the harness queued; without --warmup the run "
                "waits for steady state itself"
            )
        )
    return found


def meets_target(row: Mapping[Any, Any], slo_ms: float) -> bool:
    """Whether an open point kept its p99 within the SLO, with at most 1% errors."""
    return bool(
        row["status"] == "ok"
        and row["latency_p99_ms"] <= slo_ms
        and row["errors"] <= ERROR_SHARE * max(row["jobs"], 1)
    )
