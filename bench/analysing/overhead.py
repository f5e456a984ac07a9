"""An overhead study's pairs, collapsed: per model and transport, the medians over repeats."""

from __future__ import annotations

import pandas as pd

# A study's pairs go to overhead.csv, in a run's folder when the run held its models to their
# bare loops (`bench.measuring.overhead`), a row per pair: its key, then its figures.
CSV_NAME = "overhead.csv"
COLUMNS = (
    "model",
    "transport",
    "concurrency",
    "repeat",
    "status",
    "reason",
    "throughput",
    "bare_throughput",
    "share",
    "cpu_us_per_job",
    "bare_cpu_us_per_job",
    "service_cpu_us_per_trip",
    "bare_service_cpu_us_per_trip",
)
_KEYS = ["transport", "model", "concurrency"]
_FIGURES = list(COLUMNS[6:])


def medians(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per transport, model and N: the medians of its ok pairs, and how many (its
    status is ok, as a table of levels' is)."""
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=[*_KEYS, "repeats", "status", *_FIGURES])
    grouped = ok.groupby(_KEYS, sort=False)
    out = grouped[_FIGURES].median().reset_index()
    out.insert(3, "repeats", grouped.size().to_numpy())
    out.insert(4, "status", "ok")
    return out
