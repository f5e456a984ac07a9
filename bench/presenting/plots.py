"""Figures of a run, one function each; every model keeps its colour on every axis.

Each function takes a run's `Results` (or just its points DataFrame) and returns a matplotlib
Figure, so notebooks draw exactly what the report shows. Skipped and failed points are drawn as
such (a cross on the axis, a labelled cell), never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.analysing.levels import knees, per_level
from bench.analysing.thresholds import LONG_WINDOW_S
from bench.analysing.usl import fit_models
from bench.files.results import Results
from models import registered, split_label

# A model the registry does not know (a run older than a rename): a colour of its own.
_UNKNOWN = "#393b79"
SPECTRUM_PERCENTILES = (0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99)
# An artist drawn for a model carries this prefix and the model's label as its gid: the report
# finds a model's lines, bars and crosses in the SVG by it, to hide them or show their values.
SERIES_GID = "series:"


def series_gid(model: str) -> str:
    """The gid of every artist drawn for `model`."""
    return SERIES_GID + model


def model_colour(model: str) -> str:
    """The colour of `model`, the same in every figure (and on every interpreter)."""
    entry = registered(model)
    return _UNKNOWN if entry is None else entry.colour


# An HTTP stack is drawn in its model's colour, dashed by its client ("-o" is the wire's).
_CLIENT_STYLES = {"requests": "--s", "httpx": ":^", "aiohttp": "-.D"}
_INTERPRETER_STYLES = ("-o", "--s", ":^", "-.v")


def _style(points: pd.DataFrame, model: str, style: str) -> str:
    """The line style of `model`: its HTTP client's (in its model's colour), else its
    interpreter's when the run has several."""
    client = split_label(model.split(" @")[0])[1]
    if client is not None and style == "-o":
        return _CLIENT_STYLES.get(client, "--x")
    tags = list(dict.fromkeys(points["interpreter"]))
    if len(tags) < 2 or style != "-o":
        return style
    tag = str(points.loc[points["model"] == model, "interpreter"].iloc[0])
    return _INTERPRETER_STYLES[tags.index(tag) % len(_INTERPRETER_STYLES)]


def _subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], sharey: bool = False
) -> tuple[Figure, Any]:
    """A figure of its own, outside pyplot: no global state to close, no backend to pick, and a
    notebook shows the returned figure once."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, sharey=sharey)


def _points(data: Results | pd.DataFrame) -> pd.DataFrame:
    """One row per model and level: the median over repeats, with confidence intervals (a
    run's own, computed once for all its figures)."""
    return data.levels if isinstance(data, Results) else per_level(data)


def _models(points: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(points["model"]))


def _levels(points: pd.DataFrame) -> list[int]:
    return sorted({int(n) for n in points["concurrency"]})


def _concurrency_axis(ax: Axes, levels: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(levels), [str(n) for n in levels])
    ax.minorticks_off()
    ax.set_xlabel("concurrency N (jobs in flight)")
    ax.grid(True, which="major", alpha=0.3)


def _plot_series(ax: Axes, points: pd.DataFrame, column: str, style: str = "-o") -> None:
    """One line per model through its ok levels (95% CI as a bar); a cross where none was ok."""
    for model in _models(points):
        rows = points[points["model"] == model].sort_values("concurrency")
        ok = rows[rows["status"] == "ok"]
        colour = model_colour(model)
        line = _style(points, model, style)
        gid = series_gid(model)
        ax.plot(
            ok["concurrency"], ok[column], line, color=colour, label=model, markersize=4, gid=gid
        )
        if f"{column}_ci_low" in ok and ok[f"{column}_ci_low"].notna().any():
            ax.vlines(
                ok["concurrency"],
                ok[f"{column}_ci_low"],
                ok[f"{column}_ci_high"],
                color=colour,
                linewidth=1,
                alpha=0.6,
                gid=gid,
            )
        _crosses(ax, rows[rows["status"] != "ok"]["concurrency"], colour, gid)


def _crosses(ax: Axes, xs: pd.Series[Any], colour: str, gid: str) -> None:
    """Skipped or failed points: a cross on the x axis, at their x."""
    if len(xs):
        ax.plot(
            xs,
            [0.02] * len(xs),
            "x",
            color=colour,
            markersize=8,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            gid=gid,
        )


def _note_missing(ax: Axes, points: pd.DataFrame) -> None:
    if (points["status"] != "ok").any():
        ax.plot([], [], "x", color="black", label="skipped / failed")


def throughput(data: Results | pd.DataFrame) -> Figure:
    """Throughput vs concurrency, with the bound every model is measured against."""
    points = _points(data)
    fig, ax = _subplots(figsize=(7.5, 4.5))
    bound = points.groupby("concurrency")["bound"].first().sort_index()
    ax.plot(
        bound.index, bound.to_numpy(dtype=float), "--", color="black", label="bound", linewidth=1
    )
    _plot_series(ax, points, "throughput")
    _note_missing(ax, points)
    _concurrency_axis(ax, _levels(points))
    ax.set_yscale("log")
    ax.set_ylabel("throughput (jobs/s)")
    ax.set_title("Throughput and the bound")
    ax.legend(fontsize="small")
    return fig


def latency(data: Results | pd.DataFrame) -> Figure:
    """p50 and p99 latency vs concurrency, log scale."""
    points = _points(data)
    fig, axes = _subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, column, name in zip(
        axes, ("latency_p50_ms", "latency_p99_ms"), ("p50", "p99"), strict=True
    ):
        _plot_series(ax, points, column)
        _concurrency_axis(ax, _levels(points))
        if (points[column] > 0).any():
            ax.set_yscale("log")
        else:  # a percentile its jobs did not support is left out, never drawn as a guess
            ax.text(0.5, 0.5, "not measured: too few jobs", transform=ax.transAxes, ha="center")
        ax.set_title(f"{name} latency")
    axes[0].set_ylabel("latency (ms)")
    _note_missing(axes[1], points)
    axes[1].legend(fontsize="small")
    return fig


def efficiency(data: Results | pd.DataFrame) -> Figure:
    """Efficiency (throughput / bound) as a heat map, model x concurrency."""
    points = _points(data)
    models, levels = _models(points), _levels(points)
    grid = np.full((len(models), len(levels)), np.nan)
    labels = [["" for _ in levels] for _ in models]
    for row in points.itertuples():
        i, j = models.index(str(row.model)), levels.index(int(str(row.concurrency)))
        if row.status == "ok":
            grid[i, j] = float(str(row.efficiency))
            labels[i][j] = f"{grid[i, j]:.2f}"
        else:
            labels[i][j] = str(row.status)
    fig, ax = _subplots(figsize=(1.1 * len(levels) + 2.5, 0.5 * len(models) + 1.5))
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(len(models)):
        for j in range(len(levels)):
            dark = math.isnan(grid[i, j]) or grid[i, j] > 0.6
            ax.text(
                j,
                i,
                labels[i][j],
                ha="center",
                va="center",
                fontsize="small",
                color="black" if dark else "white",
            )
    ax.set_xticks(range(len(levels)), [str(n) for n in levels])
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel("concurrency N (jobs in flight)")
    ax.set_title("Efficiency: throughput / bound")
    fig.colorbar(image, ax=ax, label="efficiency")
    return fig


def resources(data: Results | pd.DataFrame) -> Figure:
    """CPU utilisation and peak RSS vs concurrency."""
    points = _points(data)
    fig, axes = _subplots(1, 2, figsize=(10, 4.2))
    _plot_series(axes[0], points, "cpu_util")
    axes[0].set_ylabel("CPU (cores busy: CPU s / wall s)")
    axes[0].set_title("CPU use of the process tree")
    _plot_series(axes[1], points, "rss_peak_mb")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("peak RSS (MB)")
    axes[1].set_title("Peak memory of the process tree")
    for ax in axes:
        _concurrency_axis(ax, _levels(points))
    _note_missing(axes[1], points)
    axes[1].legend(fontsize="small")
    return fig


def long_points(results: Results) -> pd.DataFrame:
    """The ok points whose windows are long enough for memory over time to say something
    (none in a run older than its samples)."""
    points = results.points
    if results.samples.empty:
        return points.iloc[:0]
    return points[(points["status"] == "ok") & (points["elapsed_s"] >= LONG_WINDOW_S)]


def memory(results: Results) -> Figure:
    """RSS (solid) and PSS (dashed) of each long point's process tree over its time, its
    measured window shaded: a leak shows as a slope."""
    fig, ax = _subplots(figsize=(10, 4.2))
    for _, point in long_points(results).iterrows():
        key = ["model", "interpreter", "concurrency", "repeat"]
        mine = results.samples[(results.samples[key] == point[key].to_numpy()).all(axis=1)]
        colour = model_colour(str(point["model"]))
        label = f"{point['model']} N={point['concurrency']:.0f} #{point['repeat']:.0f}"
        gid = series_gid(str(point["model"]))
        ax.plot(mine["at_s"], mine["rss_mb"], "-", color=colour, label=f"{label} RSS", gid=gid)
        read = mine.dropna(subset=["pss_mb"])  # PSS is read less often on a large tree
        if not read.empty:
            ax.plot(read["at_s"], read["pss_mb"], "--", color=colour, label=f"{label} PSS", gid=gid)
        opens_s = float(point["warmup_s"])
        ax.axvspan(opens_s, opens_s + float(point["elapsed_s"]), color=colour, alpha=0.06)
    ax.set_xlabel("seconds from the point's start (its measured window shaded)")
    ax.set_ylabel("memory (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Memory of the process tree over each long point")
    ax.legend(fontsize="small")
    return fig


def scalability(data: Results | pd.DataFrame) -> Figure:
    """Measured throughput (medians) with each model's Universal Scalability Law fit (over
    every ok repeat); N* only where the data show a peak."""
    points = _points(data)
    fits = data.fits if isinstance(data, Results) else fit_models(data)
    fig, ax = _subplots(figsize=(7.5, 4.5))
    levels = _levels(points)
    grid = np.geomspace(1, max(levels), 200)
    for model, fit in fits.items():
        rows = points[(points["model"] == model) & (points["status"] == "ok")]
        colour = model_colour(model)
        gid = series_gid(model)
        ax.plot(rows["concurrency"], rows["throughput"], "o", color=colour, markersize=4, gid=gid)
        if math.isnan(fit.sigma):
            ax.plot([], [], "o", color=colour, label=f"{model}: no fit", gid=gid)
            continue
        peak = f"{fit.peak_n:.0f}" if fit.peaks_in_range else "none measured"
        ax.plot(
            grid,
            fit.predict(grid),
            "--",
            color=colour,
            linewidth=1,
            label=rf"{model}: $\sigma$={fit.sigma:.3f} $\kappa$={fit.kappa:.1e} N*={peak}",
            gid=gid,
        )
    _concurrency_axis(ax, levels)
    ax.set_yscale("log")
    ax.set_ylabel("throughput (jobs/s)")
    ax.set_title("Universal Scalability Law fits (dashed) over the measured medians")
    ax.legend(fontsize="x-small")
    return fig


def default_spectrum_level(points: pd.DataFrame) -> int:
    """The highest concurrency at which the most models have an ok point."""
    ok = points[points["status"] == "ok"].groupby("concurrency")["model"].nunique()
    if ok.empty:
        return int(points["concurrency"].max())
    return int(ok[ok == ok.max()].index.max())


def spectrum(results: Results, concurrency: int | None = None) -> Figure:
    """Latency by percentile at one concurrency (histograms merged over repeats), x as 1/(1-p)."""
    level = default_spectrum_level(results.points) if concurrency is None else concurrency
    fig, ax = _subplots(figsize=(7.5, 4.5))
    x = [1.0 / (1.0 - p / 100.0) for p in SPECTRUM_PERCENTILES]
    for model in _models(results.points):
        histogram = results.histogram(model, level)
        if histogram is None or histogram.total == 0:
            ax.plot(
                [],
                [],
                "x",
                color=model_colour(model),
                label=f"{model} (no data)",
                gid=series_gid(model),
            )
            continue
        # Only the percentiles its jobs support: the line stops where the data do.
        values = [histogram.supported(p) for p in SPECTRUM_PERCENTILES]
        ax.plot(
            x,
            values,
            "-o",
            color=model_colour(model),
            label=model,
            markersize=3,
            gid=series_gid(model),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [p for p in SPECTRUM_PERCENTILES if p in (0, 50, 90, 99, 99.9, 99.99)]
    ax.set_xticks([1.0 / (1.0 - p / 100.0) for p in ticks], [f"{p:g}%" for p in ticks])
    ax.minorticks_off()
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Latency by percentile at N={level}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def open_load(data: Results | pd.DataFrame, slo_ms: float) -> Figure:
    """Open load: p50 and p99 latency vs offered rate, the SLO and each model's knee (the
    highest rate within it); and the rate each model served vs the rate offered."""
    points = _points(data)
    points = points[points["load"] == "open"]
    fig, (ax, served) = _subplots(1, 2, figsize=(11, 4.4))
    found = knees(points, slo_ms)
    for model in _models(points):
        rows = points[points["model"] == model].sort_values("rate")
        ok = rows[rows["status"] == "ok"]
        colour, gid = model_colour(model), series_gid(model)
        ax.plot(
            ok["rate"],
            ok["latency_p99_ms"],
            "-o",
            color=colour,
            label=f"{model} p99",
            ms=4,
            gid=gid,
        )
        ax.plot(ok["rate"], ok["latency_p50_ms"], ":", color=colour, linewidth=1, gid=gid)
        served.plot(ok["rate"], ok["throughput"], "-o", color=colour, label=model, ms=4, gid=gid)
        for (name, _), knee in found.items():
            if name == model and knee is not None:
                ax.axvline(knee, color=colour, linestyle="--", linewidth=0.8, alpha=0.8, gid=gid)
        for axis in (ax, served):
            _crosses(axis, rows[rows["status"] != "ok"]["rate"], colour, gid)
    ax.axhline(slo_ms, color="black", linewidth=1, label=f"SLO p99 {slo_ms:g} ms")
    rates = points["rate"].dropna()
    if len(rates):
        line = [float(rates.min()), float(rates.max())]
        served.plot(line, line, "--", color="black", linewidth=1, label="served = offered")
    for axis in (ax, served):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("offered rate (jobs/s)")
        axis.grid(True, alpha=0.3)
    ax.set_ylabel("latency from the scheduled start (ms)")
    ax.set_title("Latency vs offered rate (p99 solid, p50 dotted; knee dashed)")
    served.set_ylabel("served (successful jobs/s)")
    served.set_title("What each model served")
    _note_missing(served, points)
    ax.legend(fontsize="x-small")
    served.legend(fontsize="x-small")
    return fig
