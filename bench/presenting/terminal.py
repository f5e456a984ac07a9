"""The terminal: progress while a sweep runs, then the table of levels and its warnings; rich
on a terminal, plain text elsewhere (a pipe, a CI log, NO_COLOR)."""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.files.run_dir import Point
from bench.measuring.point import PointSpec
from bench.measuring.sweep import Progress

# (title, column, format, which value is best: max, min or neither)
_COLUMNS = (
    ("model", "model", "{}", None),
    ("N", "concurrency", "{}", None),
    ("rate/s", "rate", "{:g}", None),
    ("status", "status", "{}", None),
    ("runs", "repeats", "{}", None),
    ("jobs/s", "throughput", "{:.1f}", max),
    ("95% CI", "throughput_ci", "{}", None),
    ("bound", "bound", "{:.1f}", None),
    ("eff.", "efficiency", "{:.2f}", max),
    ("p50 ms", "latency_p50_ms", "{:.1f}", min),
    ("p99 ms", "latency_p99_ms", "{:.1f}", min),
    ("CPU", "cpu_util", "{:.2f}", None),
    ("RSS MB", "rss_peak_mb", "{:.0f}", min),
)


def _cell(row: dict[str, Any], column: str, fmt: str) -> str:
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        # A percentile of an ok level is NaN only when its jobs were too few to support it.
        measured = row.get("status") == "ok" and column.startswith("latency_p")
        return "n/a" if measured else "-"
    return fmt.format(value)


class Display:
    """Progress while the sweep runs and a table at the end: rich on a terminal, else plain."""

    def __init__(self, plain: bool, quiet: bool) -> None:
        self.plain = plain
        self.quiet = quiet
        self.done = 0
        self.total = 0
        self.run_dir = Path()
        self._bar: Any = None
        self._task: Any = None
        self.deadline_s: float | None = None  # a budgeted run's end, which the ETA counts to

    def progress(self) -> Progress:
        """The callbacks that draw this display."""
        return Progress(
            on_run_dir=self._run_dir,
            on_start=self._start,
            on_point=self._point,
            on_deadline=self._deadline,
        )

    def _deadline(self, epoch_s: float) -> None:
        self.deadline_s = epoch_s

    def _run_dir(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _open_bar(self, total: int) -> None:
        self.total = total
        if not self.plain and not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar
            from rich.text import Text

            deadline_s = self.deadline_s

            class UntilDeadline(TimeRemainingColumn):
                """The time left of the budget (which the sweep plans its points to fit)."""

                def render(self, task: Any) -> Text:
                    left_s = max(0, round((deadline_s or 0) - time.time()))
                    return Text(f"{left_s // 60}:{left_s % 60:02d}", style="progress.remaining")

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn() if deadline_s is None else UntilDeadline(),
            )
            self._task = self._bar.add_task("starting", total=total or None)  # 0: unknown
            self._bar.start()

    def _start(self, i: int, total: int, spec: PointSpec) -> None:
        if i == 0:
            self._open_bar(total)
        if self._bar is not None:
            self._bar.update(self._task, description=f"{spec.model:<10} N={spec.concurrency:<5}")

    def _point(self, point: Point) -> None:
        self.done += 1
        if self.quiet:
            return
        row = point.row
        if row["status"] == "ok":
            p99 = row["latency_p99_ms"]
            text = (
                f"{row['throughput']:.1f} jobs/s, "
                + (f"p99 n/a ({row['jobs']} jobs)" if math.isnan(p99) else f"p99 {p99:.1f} ms")
                + f", efficiency {row['efficiency']:.2f}"
            )
        else:
            text = f"{row['status']}: {row['reason']}"
        if row.get("warning"):
            text += f" (warning: {row['warning']})"
        rate = "" if row.get("rate") is None else f" at {row['rate']:g}/s"
        of = f"/{self.total}" if self.total else ""
        line = f"[{self.done}{of}] {row['model']} N={row['concurrency']}{rate}: {text}"
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
            self._bar.advance(self._task)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def summary(self, levels: pd.DataFrame) -> None:
        """The table of levels (medians over repeats); the best of each column starred or bold."""
        if self.quiet:
            return
        records = [{str(k): v for k, v in r.items()} for r in levels.to_dict("records")]
        for record in records:
            low, high = record["throughput_ci_low"], record["throughput_ci_high"]
            record["throughput_ci"] = "" if math.isnan(low) else f"{low:.1f}-{high:.1f}"
        open_load = any(r.get("load") == "open" for r in records)
        columns = [c for c in _COLUMNS if open_load or c[1] != "rate"]
        headers = [title for title, _, _, _ in columns]
        rows = [[_cell(r, column, fmt) for _, column, fmt, _ in columns] for r in records]
        best = _best_cells(records, columns)
        warnings = [
            f"{r['model']} N={r['concurrency']}"
            + ("" if r.get("load") != "open" else f" at {r['rate']:g}/s")
            + f": {r['warning']}"
            for r in records
            if r["warning"]
        ]
        if self.plain:
            marked = [
                [c + ("*" if (r, k) in best else " ") for k, c in enumerate(row)]
                for r, row in enumerate(rows)
            ]
            widths = [max(len(h) + 1, *(len(m[i]) for m in marked)) for i, h in enumerate(headers)]
            print("  ".join(h.rjust(w - 1) + " " for h, w in zip(headers, widths, strict=True)))
            for m in marked:
                print("  ".join(c.rjust(w) for c, w in zip(m, widths, strict=True)))
            print("* best in its column; medians over repeats, 95% CI of the mean throughput")
        else:
            from rich.console import Console
            from rich.table import Table

            table = Table(
                *headers,
                caption="bold green: best in its column; medians over repeats, "
                "95% CI of the mean throughput",
            )
            for r, row in enumerate(rows):
                table.add_row(
                    *(f"[bold green]{c}[/]" if (r, k) in best else c for k, c in enumerate(row))
                )
            Console().print(table)
        for warning in warnings:
            print(f"warning: {warning}")


def _best_cells(
    records: list[dict[str, Any]], columns: list[tuple[str, str, str, Any]]
) -> set[tuple[int, int]]:
    """(row, column) of the best ok value in each column that has a best."""
    cells = set()
    for k, (_, column, _, pick) in enumerate(columns):
        if pick is None:
            continue
        values = [(rec[column], r) for r, rec in enumerate(records) if rec["status"] == "ok"]
        if values:
            target = pick(v for v, _ in values)
            cells |= {(r, k) for v, r in values if v == target}
    return cells


def overhead_table(medians: list[dict[Hashable, Any]]) -> str:
    """The overhead study as plain text: each model's share of its bare loop, and why."""
    headers = ("transport", "model", "N", "jobs/s", "bare jobs/s", "share", "CPU us/job", "bare")
    rows = [
        (
            m["transport"],
            m["model"],
            str(m["concurrency"]),
            f"{m['throughput']:,.0f}",
            f"{m['bare_throughput']:,.0f}",
            f"{m['share']:.3f}",
            f"{m['cpu_us_per_job']:.1f}",
            f"{m['bare_cpu_us_per_job']:.1f}",
        )
        for m in medians
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    trips = [m for m in medians if m["transport"] == "tcp"]
    if trips:  # at its busiest: a quiet service's fixed costs spread over few round trips
        busiest = max(trips, key=lambda m: m["bare_throughput"])
        lines.append(
            f"latency service: {busiest['bare_service_cpu_us_per_trip']:.1f} us of CPU per round "
            f"trip at its busiest ({busiest['bare_throughput']:,.0f}/s, {busiest['model']}'s "
            f"bare loop), {busiest['service_cpu_us_per_trip']:.1f} us beside the model"
        )
    lines.append("medians over repeats; share = jobs/s over the bare loop's, same N, same run")
    return "\n".join(lines)
