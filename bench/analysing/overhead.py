"""An overhead study's pairs, collapsed: per model and transport, the medians over repeats."""

from __future__ import annotations

import pandas as pd

from bench.files.run_dir import OVERHEAD_COLUMNS

_KEYS = ["transport", "model", "concurrency"]
_FIGURES = list(OVERHEAD_COLUMNS[6:])


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


def read(path: str) -> pd.DataFrame:
    """An overhead.csv (its figures as floats, a missing one as NaN)."""
    return pd.read_csv(
        path,
        dtype={"model": str, "transport": str, "status": str, "reason": str},
        keep_default_na=False,
        na_values={c: [""] for c in _FIGURES},
    )
