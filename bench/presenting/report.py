"""report.html: one self-contained page (figures inline as SVG, no network) for a run."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from bench.analysing.findings import KEY_FINDINGS, findings, open_findings, share_text
from bench.analysing.levels import client_costs, engine_floors, language_costs, twin_ratios
from bench.analysing.memory import drifts
from bench.analysing.overhead import medians as overhead_medians
from bench.files.meta import MicroCost, RunMeta
from bench.files.results import Results, load_results, write_summary
from bench.files.run_dir import write_atomically
from bench.files.scenarios import describe_step
from bench.presenting import plots
from bench.presenting.page import document, escape, number, script, table, verdict_html
from bench.presenting.svg import TOGGLE_CSS, inline_svg, toggles
from models.recording import jobs_for

_TABLE_COLUMNS = (
    ("model", "model"),
    ("N", "concurrency"),
    ("rate/s", "rate"),
    ("status", "status"),
    ("jobs/s", "throughput"),
    ("bound", "bound"),
    ("efficiency", "efficiency"),
    ("p50 ms", "latency_p50_ms"),
    ("p90 ms", "latency_p90_ms"),
    ("p99 ms", "latency_p99_ms"),
    ("p99.9 ms", "latency_p999_ms"),
    ("max ms", "latency_max_ms"),
    ("repeat", "repeat"),
    ("CPU cores", "cpu_util"),
    ("RSS MB", "rss_peak_mb"),
    ("ctx switches", "ctx_switches"),
    ("errors", "errors"),
    ("failed", "failed"),
    ("timeouts", "timeouts"),
    ("late starts", "late_starts"),
    ("service p99 ms", "service_p99_ms"),
    ("queue p99 ms", "queue_p99_ms"),
    ("retries", "retries"),
    ("background drain s", "background_drain_s"),
    ("service CPU", "service_cpu_util"),
    ("pool wait ms", "db_pool_wait_ms"),
    ("reason / warning", "reason"),
)

_LEVEL_COLUMNS = (
    ("model", "model"),
    ("N", "concurrency"),
    ("rate/s", "rate"),
    ("status", "status"),
    ("ok repeats", "repeats"),
    ("jobs/s (median)", "throughput"),
    ("95% CI", "throughput_ci"),
    ("CV", "throughput_cv"),
    ("efficiency", "efficiency"),
    ("p99 ms (pooled)", "latency_p99_ms"),
    ("95% CI", "latency_p99_ms_ci"),
    ("jobs", "latency_jobs"),
    ("CPU cores", "cpu_util"),
    ("service CPU", "service_cpu_util"),
    ("RSS MB", "rss_peak_mb"),
    ("reason / warning", "reason"),
)


def build_report(run_dir: Path) -> Path:
    """Write `run_dir/report.html` and summary.csv from the run's files (an interrupted run's
    too) and return the report's path."""
    results = load_results(run_dir)
    write_summary(results)
    return write_report(results)


def write_report(results: Results) -> Path:
    """Write the report of a run already read back and return its path."""
    path = results.run_dir / "report.html"
    write_atomically(path, render(results))
    return path


def render(results: Results) -> str:
    """The report as one HTML string; every user-supplied text is escaped."""
    meta = results.meta
    title = f"{meta.scenario.name} — Python concurrency models"
    subtitle = (
        f"{meta.created} · {meta.machine.cpu}, {meta.cores} cores · Python {meta.python.version}"
    )
    slo_ms = meta.config.slo_ms if meta.config.load == "open" else None
    if slo_ms is not None:
        sentences = open_findings(results.levels, slo_ms)
    else:
        sentences = findings(
            results.levels,
            meta.cores,
            meta.costs(),
            results.fits,
            drifts(results.samples, results.points),
        )
    if not (results.levels["status"] == "ok").any():  # nothing to draw on a log scale
        figures = ["<p>No figure: no point was measured ok; the tables give each reason.</p>"]
    else:
        figures = _figures(results) if slo_ms is None else _open_figures(results, slo_ms)
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class='sub'>{escape(subtitle)}</p>",
        *_verdict_html(results),
        _findings_html(sentences),
        "<section id='scenario'><h2>Scenario</h2>",
        _scenario_html(results),
        "</section>",
        "<section id='figures'><h2>Figures</h2>",
        toggles(
            list(dict.fromkeys(results.levels["model"])),
            dict(zip(results.levels["model"], results.levels["interpreter"], strict=True)),
        ),
        *figures,
        "</section>",
        "<section id='levels'><h2>Per model and level</h2>",
        "<p>Medians over the ok repeats, with the throughput's 95% confidence interval "
        "(Student's t, across repeats). Latency percentiles come from the repeats' jobs pooled, "
        f"with a distribution-free 95% interval (order statistics); with fewer jobs than it "
        f"needs ({jobs_for(99)} for a p99) a percentile is not measured: n/a.</p>",
        table(_levels(results), _LEVEL_COLUMNS),
        "</section>",
        *_twins_html(results),
        *_clients_html(results),
        *_engines_html(results),
        *_languages_html(results),
        "<section id='usl'><h2>Scalability fits (Universal Scalability Law)</h2>",
        "<p>X(N) = &lambda;N / (1 + &sigma;(N&minus;1) + &kappa;N(N&minus;1)): &sigma; is the "
        "share of each job that serialises (a lock, the GIL, one event loop), &kappa; the cost "
        "of keeping N jobs in step, which makes throughput fall past N*. Fitted to every ok "
        "repeat by least squares of the loss shown (relative: the repeats' noise grows with "
        "throughput; R's usl package and usl4j use absolute); 95% Wald intervals with "
        "Student's t at the residual degrees of freedom. N* is given only where the data show "
        "a peak: kappa's interval above 0, and a level measured past it significantly below "
        "the best.</p>",
        _usl_table(results),
        "</section>",
        *_overhead_html(results),
        "<section id='micro'><h2>Runtime costs (micro-benchmarks)</h2>",
        _micro_table(meta.micro),
        "</section>",
        "<section id='points'><h2>All points</h2>",
        _download_html(results),
        table(results.points.to_dict("records"), _TABLE_COLUMNS),
        "</section>",
        "<section id='environment'><h2>Environment</h2>",
        f"<pre>{escape(json.dumps(_environment(meta), indent=2))}</pre>",
        "</section>",
    ]
    return document(title, body, head=TOGGLE_CSS, script=script())


def _download_html(results: Results) -> str:
    """Every point, embedded in the page as CSV, to download with a click."""
    data = base64.b64encode(results.points.to_csv(index=False).encode()).decode()
    return (
        f"<p><a id='download-csv' download='points.csv' href='data:text/csv;base64,{data}'>"
        "Download every point as CSV</a> (the columns of points.csv).</p>"
    )


def _findings_html(sentences: list[str]) -> str:
    """The first findings in view; the rest behind a click."""
    key, more = sentences[:KEY_FINDINGS], sentences[KEY_FINDINGS:]
    items = "".join(f"<li>{escape(sentence)}</li>" for sentence in key)
    details = "".join(f"<li>{escape(sentence)}</li>" for sentence in more)
    return (
        f"<section id='findings'><h2>Findings</h2><ul class='findings'>{items}</ul>"
        + (
            f"<details><summary>{len(more)} more findings</summary>"
            f"<ul class='findings'>{details}</ul></details>"
            if more
            else ""
        )
        + "</section>"
    )


def _scenario_html(results: Results) -> str:
    scenario = results.scenario
    parts = [f"<p><b>{escape(scenario.name)}</b>: {escape(scenario.description)}</p><ol>"]
    for stage in scenario.stages:
        together = " — steps at the same time" if len(stage.steps) > 1 else ""
        parts.append(f"<li>{escape(stage.name)}{together}<ul>")
        parts.extend(f"<li>{escape(describe_step(step))}</li>" for step in stage.steps)
        parts.append("</ul></li>")
    parts.append("</ol>")
    parts.append(
        f"<p>Critical path {scenario.critical_path_ms():.1f} ms and CPU work "
        f"{scenario.cpu_ms():.1f} ms per job (means, retries included), "
        f"{scenario.success_rate():.2%} of jobs can succeed: the inputs of the bound.</p>"
    )
    return "".join(parts)


def _figures(results: Results) -> list[str]:
    drawn = [
        ("throughput", plots.throughput(results)),
        ("latency", plots.latency(results)),
        ("efficiency", plots.efficiency(results)),
        ("resources", plots.resources(results)),
        ("scalability", plots.scalability(results)),
    ]
    if not plots.long_points(results).empty:
        drawn.append(("memory", plots.memory(results)))
    return [
        *(f"<figure id='fig-{name}'>{inline_svg(fig, name)}</figure>" for name, fig in drawn),
        _spectra_html(results),
    ]


def _spectra_html(results: Results) -> str:
    """Latency by percentile, one drawing per level with an ok point; a menu picks the level
    (the one where the most models were measured, to begin with)."""
    ok = results.points[results.points["status"] == "ok"]
    levels = sorted({int(n) for n in ok["concurrency"]})
    first = plots.default_spectrum_level(results.points)
    options = "".join(
        f"<option value='{n}'{' selected' if n == first else ''}>{n}</option>" for n in levels
    )
    drawings = "".join(
        f"<div class='spectrum' data-level='{n}'{'' if n == first else ' hidden'}>"
        f"{inline_svg(plots.spectrum(results, n), f'spectrum-{n}')}</div>"
        for n in levels
    )
    return (
        "<figure id='fig-spectrum'><label>Latency by percentile at N = "
        f"<select id='spectrum-level'>{options}</select></label>{drawings}</figure>"
    )


def _open_figures(results: Results, slo_ms: float) -> list[str]:
    drawn = [
        ("open-load", plots.open_load(results, slo_ms)),
        ("resources", plots.resources(results)),
    ]
    return [f"<figure id='fig-{name}'>{inline_svg(fig, name)}</figure>" for name, fig in drawn]


def _levels(results: Results) -> list[dict[Hashable, Any]]:
    records = results.levels.to_dict("records")
    for r in records:
        for column in ("throughput", "latency_p99_ms"):
            low, high = r[f"{column}_ci_low"], r[f"{column}_ci_high"]
            r[f"{column}_ci"] = "" if math.isnan(low) else f"{number(low)} - {number(high)}"
    return records


def _verdict_html(results: Results) -> list[str]:
    if results.verdict is None:
        return []
    return ["<section id='verdict'><h2>Verdict</h2>", verdict_html(results.verdict), "</section>"]


def _twins_html(results: Results) -> list[str]:
    ratios = twin_ratios(results.levels)
    if ratios.empty:
        return []
    rows = [
        "<section id='twins'><h2>The price of an abstraction</h2>",
        "<p>Each wrapped model beside the native model it runs on, level by level: throughput "
        "and p99 latency over the native model's (medians). Below 1 in throughput, above 1 in "
        "p99: what the layer costs.</p>",
        "<table><tr><th>model</th><th>on</th><th>N</th><th>throughput ratio</th>"
        "<th>p99 ratio</th></tr>",
    ]
    rows.extend(
        f"<tr><td class=text>{escape(r['model'])}</td><td class=text>{escape(r['twin'])}</td>"
        f"<td>{escape(r['concurrency'])}</td><td>{r['throughput_ratio']:.2f}</td>"
        f"<td>{r['p99_ratio']:.2f}</td></tr>"
        for r in ratios.to_dict("records")
    )
    rows.append("</table></section>")
    return rows


def _clients_html(results: Results) -> list[str]:
    costs = client_costs(results.levels)
    if costs.empty:
        return []
    versions = {name: info.get("version", "") for name, info in results.meta.http_clients.items()}
    records = [
        r
        | {
            "status": "ok",
            "client": f"{r['client']} {versions.get(r['client'], '')}".strip(),
            "client_share": "" if math.isnan(r["client_share"]) else share_text(r["client_share"]),
        }
        for r in costs.to_dict("records")
    ]
    return [
        "<section id='clients'><h2>Stacks side by side: HTTP clients and database drivers</h2>",
        "<p>Each model with each HTTP client library or database driver, beside the same model "
        "over the wire protocol (tcp, its stock in memory) at the same level, where the run has "
        "it (medians). CPU counts the model's whole process tree per job served (not the "
        "database server's); the client's share is the part of a stack's job's CPU that the "
        "tcp job does not spend: the library or driver, and its protocol. Pool wait: a database "
        "try's mean wait for a pooled connection, part of its latency.</p>",
        table(
            records,
            (
                ("stack", "model"),
                ("client", "client"),
                ("N", "concurrency"),
                ("jobs/s", "throughput"),
                ("p99 ms", "latency_p99_ms"),
                ("CPU ms per job", "cpu_ms_per_job"),
                ("tcp jobs/s", "tcp_throughput"),
                ("tcp p99 ms", "tcp_latency_p99_ms"),
                ("tcp CPU ms per job", "tcp_cpu_ms_per_job"),
                ("client's share of CPU", "client_share"),
                ("pool wait ms", "db_pool_wait_ms"),
            ),
        ),
        "</section>",
    ]


def _languages_html(results: Results) -> list[str]:
    costs = language_costs(results.levels)
    if costs.empty:
        return []
    return [
        "<section id='languages'><h2>Beyond Python</h2>",
        "<p>The same jobs (the same draws, CPU work and checks) in other languages' runtimes, "
        "beside Python's event loops, at each level where a language model was measured "
        "(medians). CPU counts each model's whole process tree per job served; memory per job "
        "in flight is the peak RSS it gained over its lowest level, per job more in flight.</p>",
        table(
            [r | {"status": "ok"} for r in costs.to_dict("records")],
            (
                ("model", "model"),
                ("N", "concurrency"),
                ("jobs/s", "throughput"),
                ("p99 ms", "latency_p99_ms"),
                ("CPU ms per job", "cpu_ms_per_job"),
                ("RSS MB", "rss_peak_mb"),
                ("kB per job in flight", "kb_per_job_in_flight"),
            ),
        ),
        "</section>",
    ]


def _engines_html(results: Results) -> list[str]:
    floors = engine_floors(results.levels)
    if floors.empty:
        return []
    return [
        "<section id='engines'><h2>The engines' floor</h2>",
        "<p>One job in flight (N=1): what sending it through the engine and back costs, beside "
        "a model that runs the same blocking steps in one process. The difference in p50 latency "
        "is the engine's floor: no job through it ends sooner. CPU counts the whole tree "
        "(client, scheduler or broker, workers) per job served. Without threads or sync at "
        "N=1 in the run there is nothing to set it beside: add threads to --models.</p>",
        table(
            [r | {"status": "ok"} for r in floors.to_dict("records")],
            (
                ("engine", "model"),
                ("p50 ms", "p50_ms"),
                ("beside", "reference"),
                ("its p50 ms", "reference_p50_ms"),
                ("floor ms", "floor_ms"),
                ("CPU ms per job", "cpu_ms_per_job"),
                ("beside's CPU ms per job", "reference_cpu_ms_per_job"),
            ),
        ),
        "</section>",
    ]


_OVERHEAD_COLUMNS = (
    ("transport", "transport"),
    ("model", "model"),
    ("N", "concurrency"),
    ("repeats", "repeats"),
    ("jobs/s", "throughput"),
    ("bare loop jobs/s", "bare_throughput"),
    ("share", "share"),
    ("CPU us/job", "cpu_us_per_job"),
    ("bare loop CPU us/job", "bare_cpu_us_per_job"),
    ("service CPU us/trip", "service_cpu_us_per_trip"),
)


def _overhead_html(results: Results) -> list[str]:
    held = overhead_medians(results.overhead)
    if held.empty:
        return []
    return [
        "<section id='overhead'><h2>The harness's own cost</h2>",
        "<p>Each model beside its runtime's bare loop: the least code that does the same waits "
        "(io-bound) with the same users, ramp and window, and no draws, records or checks "
        "(models/bare.py). Share = the model's jobs/s over the bare loop's, in the same run; "
        "1.0 means the harness costs nothing the bare loop does not pay. Medians over "
        "repeats.</p>",
        table(held.to_dict("records"), _OVERHEAD_COLUMNS),
        "</section>",
    ]


def _micro_table(micro: tuple[MicroCost, ...] | None) -> str:
    if not micro:
        return "<p>Not measured in this run.</p>"
    rows = ["<table><tr><th>cost</th><th>runtime</th><th>value</th><th>how</th></tr>"]
    rows.extend(
        f"<tr><td class=text>{escape(m.name)}</td><td class=text>{escape(m.runtime)}</td>"
        f"<td>{escape(number(m.value))} {escape(m.unit)}</td>"
        f"<td class=text>{escape(m.note)}</td></tr>"
        for m in micro
    )
    rows.append("</table>")
    return "".join(rows)


def _usl_table(results: Results) -> str:
    rows = [
        "<table><tr><th>model</th><th>&sigma;</th><th>&kappa;</th><th>&lambda; jobs/s</th>"
        "<th>N*</th><th>peak jobs/s</th><th>points</th><th>loss</th><th>warning</th></tr>"
    ]
    for model, fit in results.fits.items():
        cells = [
            f"{fit.sigma:.3g} [{fit.sigma_ci[0]:.3g}, {fit.sigma_ci[1]:.3g}]",
            f"{fit.kappa:.3g} [{fit.kappa_ci[0]:.3g}, {fit.kappa_ci[1]:.3g}]",
            f"{fit.lambda_:.3g} [{fit.lambda_ci[0]:.3g}, {fit.lambda_ci[1]:.3g}]",
            fit.shown_peak_n(),
            number(fit.peak_throughput) if fit.peaks_in_range else "",
            str(fit.points),
            fit.loss,
        ]
        rows.append(
            f"<tr><td class=text>{escape(model)}</td>"
            + "".join(f"<td>{escape(c)}</td>" for c in cells)
            + f"<td class=text>{escape(fit.warning)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _environment(meta: RunMeta) -> dict[str, Any]:
    return {k: v for k, v in meta.to_dict().items() if k != "scenario"}
