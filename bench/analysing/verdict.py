"""The verdict of a closed-load run: which model serves the most jobs per second with its p99
within the user's target, which others are not significantly behind it, and what limits each.

Plain pandas over the per-level table (`per_level`): the report leads with it and the terminal
summary ends with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.analysing.thresholds import ONE_CORE, SERVICE_BUSY
from models import registered

# A model whose best level reached this share of the bound was held back by its users, not
# by itself: more of them would have been served.
_KEPT_UP = 0.9


@dataclass(frozen=True)
class Choice:
    """A model at its best level within the target: its throughput, with its 95% interval
    (NaN without repeats to give one), and its p99."""

    model: str
    concurrency: int
    throughput: float
    ci_low: float
    ci_high: float
    latency_p99_ms: float

    def beats(self, other: Choice) -> bool:
        """Whether this choice's throughput is significantly above `other`'s: their 95%
        intervals do not overlap. Without intervals nothing is significant."""
        return self.ci_low > other.ci_high


@dataclass(frozen=True)
class Verdict:
    """What to choose at `slo_ms`: the best choice (None if no model kept its p99 within the
    target at a level whose p99 was measured), the choices tied with it, and for every model
    the limit that binds it, in words."""

    slo_ms: float
    best: Choice | None
    tied: tuple[Choice, ...]
    limits: dict[str, str]


def decide(
    levels: pd.DataFrame, cores: int, slo_ms: float, lock_bound_per_s: float = math.inf
) -> Verdict:
    """The verdict of the per-level table at a p99 target of `slo_ms` (`lock_bound_per_s`: the
    bound's hottest-lock term, successful jobs per second; inf without a lock)."""
    ok = levels[(levels["status"] == "ok") & levels["rate"].isna()]
    within = ok[ok["latency_p99_ms"].notna() & (ok["latency_p99_ms"] <= slo_ms)]
    choices = [
        _choice(rows.sort_values("throughput").iloc[-1])
        for _, rows in within.groupby("model", sort=False)
    ]
    choices.sort(key=lambda c: c.throughput, reverse=True)
    best = choices[0] if choices else None
    tied = tuple(c for c in choices[1:] if best is not None and not best.beats(c))
    limits = {
        str(model): limit(rows.sort_values("concurrency").iloc[-1], cores, lock_bound_per_s)
        for model, rows in ok.groupby("model", sort=False)
    }
    return Verdict(slo_ms, best, tied, limits)


def _choice(row: pd.Series[float]) -> Choice:
    return Choice(
        str(row["model"]),
        int(row["concurrency"]),
        float(row["throughput"]),
        float(row["throughput_ci_low"]),
        float(row["throughput_ci_high"]),
        float(row["latency_p99_ms"]),
    )


def limit(row: pd.Series[float], cores: int, lock_bound_per_s: float = math.inf) -> str:
    """What held a model back at its highest level (`row`, its medians), from what was
    measured there: its users, the hottest lock (when the bound there is `lock_bound_per_s`),
    the machine's cores, the latency service, one core, the GIL, the engine, or waiting."""
    model, cpu = str(row["model"]), float(row["cpu_util"])
    entry = registered(model)
    n = int(row["concurrency"])
    if entry is not None and entry.one_at_a_time:
        return "it serves one job at a time, whatever N"
    if math.isnan(cpu):
        return (
            f"not measured: its CPU was not read at N={n} (a reading too late at a window's "
            f"edge); it reached {row['efficiency']:.0%} of the bound"
        )
    if cpu >= ONE_CORE * cores:
        if entry is not None and entry.engine:
            return (
                f"all {cores} cores were busy, mostly with the engine's own work (scheduling, "
                "messages, the broker): see the engines' floor"
            )
        return f"all {cores} cores were busy: the CPU work of the jobs is the limit"
    # The run's own latency service shares the machine: with it, the cores may be full.
    service = float(row.get("service_cpu_util", math.nan))
    if not math.isnan(service) and cpu + service >= ONE_CORE * cores:
        return (
            f"all {cores} cores were busy: {cpu:.2f} with the jobs' work and {service:.2f} with "
            "the latency service on the same machine (--service moves it to another)"
        )
    if service >= SERVICE_BUSY:  # one process answers every round trip of the run
        return (
            f"the latency service: it used {service:.0%} of a core (the model {cpu:.2f} cores); "
            "run it on another machine (bench serve, then --service) to find the model's own"
        )
    if float(row["efficiency"]) >= _KEPT_UP and float(row["bound"]) >= lock_bound_per_s * (
        1 - 1e-9
    ):
        return (
            f"a lock: the hottest product's lock lets {lock_bound_per_s:.1f} jobs/s through, "
            f"and it kept up with that at N={n}"
        )
    if float(row["efficiency"]) >= _KEPT_UP:
        return f"too few users: it kept up with the bound at N={n}; a higher N serves more"
    if cpu >= ONE_CORE and entry is not None and entry.one_loop:
        return "one core full: its event loop runs every job's code and scheduling"
    if cpu >= ONE_CORE and entry is not None and entry.cap == "threads":
        return "one core full: the GIL lets one thread run Python at a time"
    if entry is not None and entry.engine:
        return f"the engine: {cpu:.2f} cores busy, the rest is each job's trip through it"
    return (
        f"waiting or scheduling: {cpu:.2f} of {cores} cores busy at N={n}, "
        f"{row['efficiency']:.0%} of the bound"
    )


def sentences(verdict: Verdict) -> list[str]:
    """The verdict in words: the choice, the ties, then a line per model."""
    target = f"p99 within {verdict.slo_ms:.3g} ms"
    best = verdict.best
    if best is None:
        head = (
            f"No model kept its {target} at a level whose p99 was measured; give a larger "
            "--slo-ms, or a longer --budget for p99s that were not measured."
        )
    else:
        interval = (
            "" if math.isnan(best.ci_low) else f" (95% CI {best.ci_low:.1f}-{best.ci_high:.1f})"
        )
        head = (
            f"Choose {best.model}: {best.throughput:.1f} jobs/s{interval} at N={best.concurrency} "
            f"with {target} (p99 {best.latency_p99_ms:.1f} ms)."
        )
        if verdict.tied:
            head += (
                " Not significantly behind it: "
                + ", ".join(
                    f"{c.model} ({c.throughput:.1f} jobs/s at N={c.concurrency})"
                    for c in verdict.tied
                )
                + "."
            )
    return [head, *(f"{model}: {text}." for model, text in verdict.limits.items())]
