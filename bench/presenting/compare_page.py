"""compare.html: two runs side by side, their verdicts, and what changed from A to B.

One self-contained page (no network), from the same `compare_runs` output that `bench compare`
prints, so the page and the terminal never disagree.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysing.compare import METRIC_NAMES, Change, real_change_rule
from bench.files.results import Results
from bench.files.run_dir import write_atomically
from bench.presenting.page import document, escape, script, table, verdict_html

# A regression must stand out at a glance; a level that only one run measured ok is greyed.
_STYLE = """
tr.worse td { background: #fde8e8; font-weight: 600; } tr.better td { background: #e6f4ea; }
tr.missing td { color: #888; }
table.runs { width: 100%; table-layout: fixed; }
table.runs td, table.runs th { text-align: left; vertical-align: top; }
table.runs th:first-child { width: 7em; }
"""
_CHANGE_COLUMNS = (
    ("model", "model"),
    ("N", "concurrency"),
    ("rate/s", "rate"),
    ("metric", "metric"),
    ("A", "before"),
    ("B", "after"),
    ("change", "change"),
    ("p (Holm)", "p_value"),
    ("verdict", "verdict"),
)
_LEVEL_COLUMNS = (
    ("model", "model"),
    ("N", "concurrency"),
    ("rate/s", "rate"),
    ("jobs/s A", "throughput_a"),
    ("jobs/s B", "throughput_b"),
    ("p99 ms A", "latency_p99_ms_a"),
    ("p99 ms B", "latency_p99_ms_b"),
    ("note", "note"),
)
_LEVEL_KEYS = ["model", "concurrency", "rate"]


def write_compare_page(
    path: Path,
    a: Results,
    b: Results,
    changes: Sequence[Change],
    min_effect: Mapping[str, float],
) -> Path:
    """Write the page judging run `b` against the baseline `a` to `path` and return the path;
    a write that fails is an `OutputError` that points to --html."""
    write_atomically(path, render_comparison(a, b, changes, min_effect, path), "--html")
    return path


def render_comparison(
    a: Results,
    b: Results,
    changes: Sequence[Change],
    min_effect: Mapping[str, float],
    path: Path,
) -> str:
    """The page as one HTML string (`path`: where it goes, for links to each run's report);
    every user-supplied text is escaped."""
    title = f"{b.meta.scenario.name}: {b.run_dir.name} against {a.run_dir.name}"
    worse = sum(c.regression for c in changes)
    better = sum(c.verdict == "better" for c in changes)
    summary = (
        f"B judged against the baseline A: {worse} significantly worse, {better} significantly "
        f"better, {len(changes) - worse - better} without a real change (or too few to test)."
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class='sub'>{escape(summary)}</p>",
        "<section id='runs'><h2>The runs and their verdicts</h2>",
        _runs_table(a, b, path.parent),
        "</section>",
        "<section id='changes'><h2>What changed</h2>",
        "<p>Every model and level that both runs measured ok. A change is real when it has "
        f"{escape(real_change_rule(min_effect))}.</p>",
        table(_change_records(changes), _CHANGE_COLUMNS, text=("model", "metric", "verdict")),
        "</section>",
        "<section id='levels'><h2>Per model and level</h2>",
        "<p>Each run's medians over its ok repeats; p99 from the repeats' jobs pooled (n/a: too "
        "few jobs to measure it).</p>",
        table(_level_records(a, b), _LEVEL_COLUMNS, text=("model", "note")),
        "</section>",
    ]
    # The report's script: here it sorts the tables (the rest finds nothing to act on).
    return document(title, body, head=_STYLE, script=script())


def _runs_table(a: Results, b: Results, folder: Path) -> str:
    """The two runs in two columns, a row per fact, their verdicts last."""
    cells = [_run_cells(run, folder) for run in (a, b)]
    rows = ["<table class='runs'><thead><tr><th></th><th>A (baseline)</th><th>B</th></tr>"]
    rows.append("</thead><tbody>")
    rows.extend(
        f"<tr><th>{escape(name)}</th><td>{cells[0][name]}</td><td>{cells[1][name]}</td></tr>"
        for name in cells[0]
    )
    rows.append("</tbody></table>")
    return "".join(rows)


def _run_cells(results: Results, folder: Path) -> dict[str, str]:
    """One run's column of the runs table, as HTML by row name."""
    meta = results.meta
    report = results.run_dir / "report.html"
    # Relative, so the page and the runs can be moved together and it still opens offline.
    link = (
        f" (<a href='{escape(urllib.parse.quote(os.path.relpath(report, folder)))}'>report</a>)"
        if report.is_file()
        else ""
    )
    return {
        "run": f"<b>{escape(results.run_dir.name)}</b>{link}<br><code>"
        f"{escape(results.run_dir)}</code>",
        "created": escape(meta.created or "?"),
        "scenario": f"<b>{escape(meta.scenario.name)}</b>: {escape(meta.scenario.description)}",
        "load": escape(f"{meta.config.load}, over {meta.config.transport}"),
        "machine": escape(f"{meta.machine.cpu}, {meta.cores} cores"),
        "Python": escape(meta.python.version),
        "verdict": _verdict_html(results),
    }


def _verdict_html(results: Results) -> str:
    """A run's verdict: the choice in bold, then what limits each model."""
    if results.verdict is None:
        return (
            "<p>No verdict: the run offered an open load (jobs arriving at set rates), and "
            "the verdict chooses among models under a closed one; see its report's findings.</p>"
        )
    return verdict_html(results.verdict)


def _change_records(changes: Sequence[Change]) -> list[dict[Hashable, Any]]:
    """The changes as table rows, each row's class its verdict (better, worse or same)."""
    return [
        {
            "status": c.verdict if c.verdict in ("better", "worse") else "same",
            "model": c.model,
            "concurrency": c.concurrency,
            "rate": c.rate,
            "metric": "throughput, jobs/s" if c.metric == "throughput" else "p99 ms",
            "before": c.before,
            "after": c.after,
            "change": "" if math.isnan(c.change) else f"{c.change:+.1%}",
            "p_value": c.p_value,
            "verdict": c.verdict,
        }
        for c in changes
    ]


def _level_records(a: Results, b: Results) -> list[dict[Hashable, Any]]:
    """Every model and level of either run, A's figures beside B's; a level that one run did
    not measure ok has its figures left blank and says why in its note."""
    columns = [*_LEVEL_KEYS, "status", "reason", *METRIC_NAMES]
    # pandas matches a missing rate (a closed level) with a missing rate, as this needs.
    both = pd.merge(
        a.levels[columns], b.levels[columns], on=_LEVEL_KEYS, how="outer", suffixes=("_a", "_b")
    )
    records = both.to_dict("records")
    for record in records:
        notes = []
        for side in ("a", "b"):
            status, reason = record[f"status_{side}"], record[f"reason_{side}"]
            if status == "ok":
                continue
            for metric in METRIC_NAMES:
                record[f"{metric}_{side}"] = math.nan
            run = side.upper()
            if pd.isna(status):
                notes.append(f"not in {run}")
            else:
                notes.append(f"{run}: {status}" + (f" ({reason})" if reason else ""))
        record["note"] = "; ".join(notes)
        record["status"] = "missing" if notes else "ok"
    return records
