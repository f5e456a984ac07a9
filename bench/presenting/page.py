"""The pieces every HTML page of the suite shares: escaping, the style, tables, the frame."""

from __future__ import annotations

import html
import math
from collections.abc import Hashable
from importlib import resources
from typing import Any

import pandas as pd

from bench.analysing.verdict import Verdict, sentences

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } .sub { color: #666; margin-top: 0; }
section { margin: 2em 0; } figure { margin: 1.5em 0; } svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; } td.text { text-align: left; }
tr.failed td { background: #fde8e8; } tr.skipped td { color: #888; }
.findings li { margin: .35em 0; } code, pre { background: #f6f6f6; }
pre { padding: .7em; overflow-x: auto; font-size: 12px; }
.verdict { font-size: 17px; font-weight: 600; }
"""


def escape(text: object) -> str:
    """`text` as HTML, quotes included: every user-supplied string goes through here."""
    return html.escape(str(text), quote=True)


def script() -> str:
    """The pages' script (report.js): toggles, values on hover, the spectrum's level, sortable
    tables; each part acts only on the elements a page has."""
    return resources.files("bench.presenting").joinpath("report.js").read_text()


def document(title: str, body: list[str], *, head: str = "", script: str = "") -> str:
    """One self-contained HTML page: `body`'s parts, the shared style, and any script inline."""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{CSS}{head}</style></head><body>\n"
        + "\n".join(body)
        + (f"\n<script>{script}</script>" if script else "")
        + "\n</body></html>\n"
    )


def table(
    records: list[dict[Hashable, Any]],
    columns: tuple[tuple[str, str], ...],
    text: tuple[str, ...] = ("model", "status", "reason"),
) -> str:
    """A sortable table of `records` (each with a `status`, its row's class), one column per
    (title, key), the `text` ones left-aligned; a percentile its jobs were too few to support
    reads `n/a` with the jobs it had."""
    rows = ["<table class='sortable'><thead><tr>"]
    rows.extend(f"<th>{escape(title)}</th>" for title, _ in columns)
    rows.append("</tr></thead><tbody>")
    for record in records:
        rows.append(f"<tr class='{escape(record['status'])}'>")
        for _, column in columns:
            value = record[column]
            if column == "reason":
                value = record["reason"] or record["warning"]
            elif _not_measured(record, column):
                jobs = record.get("latency_jobs", record.get("jobs"))
                value = "n/a" + ("" if pd.isna(jobs) else f", {jobs:.0f} jobs")
            left = column in text
            rows.append(f"<td{' class=text' if left else ''}>{escape(number(value))}</td>")
        rows.append("</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def _not_measured(record: dict[Hashable, Any], column: str) -> bool:
    """A percentile of an ok point or level that its jobs were too few to support."""
    value = record[column]
    return (
        record["status"] == "ok"
        and column.startswith("latency_p")
        and isinstance(value, float)
        and math.isnan(value)
    )


def number(value: Any) -> str:
    """A cell's text: three significant digits, whole numbers from 100, blank for missing."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def verdict_html(verdict: Verdict) -> str:
    """A run's verdict: the choice in bold, then what limits each model."""
    head, *limits = sentences(verdict)
    items = "".join(f"<li>{escape(line)}</li>" for line in limits)
    return (
        f"<p class='verdict'>{escape(head)}</p>"
        f"<p>What limits each model, at its highest level:</p><ul class='limits'>{items}</ul>"
    )
