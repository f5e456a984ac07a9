"""Findings in plain sentences, derived from a run's points (never written by hand)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from bench.analysing.levels import client_costs, engine_floors, knees, language_costs
from bench.analysing.memory import Drift
from bench.analysing.thresholds import (
    DEGRADATION,
    LATE_SHARE,
    SATURATION_GAIN,
    SERVICE_BUSY,
    TIE,
)
from bench.analysing.usl import UslFit
from bench.analysing.verdict import limit
from models import registered
from models.db import DRIVERS

# The report lists this many findings under its verdict, the rest a click away.
KEY_FINDINGS = 6


def findings(
    levels: pd.DataFrame,
    cores: int,
    costs: Mapping[tuple[str, str], float] | None = None,
    fits: Mapping[str, UslFit] | None = None,
    memory: Sequence[Drift] = (),
) -> list[str]:
    """Sentences on the run, each with its figure, in the order a reader choosing a model needs
    them: who leads at each load, what one-at-a-time serving and degradation cost, what a
    client library, an engine or an interpreter changes (when the run has them), the largest
    gap to the bound, memory that grew and jobs that failed; then the detail: each model's
    saturation, the latency service, the scalability fits, the runtime's own costs (given the
    run's micro-benchmarks as `costs`: (name, runtime) -> value), memory that held (given the
    long points' `memory`) and the points not measured.

    `levels` is the per-level table (`per_level`): each level judged by its median over the
    ok repeats.
    """
    ok = levels[levels["status"] == "ok"]
    if ok.empty:
        return ["No point completed, so there is nothing to conclude; see the table for reasons."]
    return [
        *_best_per_range(ok),
        *_one_at_a_time_latency(ok),
        *_degradation(ok),
        *_client_costs(levels),
        *_engine_floors(levels),
        *_languages(levels),
        *_interpreters(ok),
        _largest_gap(ok, cores),
        *_memory(memory, grew=True),
        *_outcomes(ok),
        *(
            _saturation(ok[ok["model"] == m], m)
            for m in dict.fromkeys(ok["model"])
            if not _one_at_a_time(m)  # serves one job at any N: its own sentence above
        ),
        *_service(ok),
        *_scalability(fits or {}),
        *_runtime_costs(costs or {}),
        *_memory(memory, grew=False),
        *_not_measured(levels),
    ]


def _memory(memory: Sequence[Drift], *, grew: bool) -> list[str]:
    """Given `grew`: each point whose memory grew over a long window while its work in flight
    held (a leak, or a cache without a bound). Otherwise the longest window whose memory held."""
    if grew:
        return [
            f"{d.model}'s memory grew over its {d.window_s:.0f} s window at N={d.concurrency}: "
            f"{d.first_mb:.0f} MB of RSS in its first quarter, {d.last_mb:.0f} in its last "
            f"(+{d.last_mb / d.first_mb - 1:.0%})"
            + (
                ""
                if math.isnan(d.in_flight[0])
                else f", with {d.in_flight[0]:.0f} and {d.in_flight[1]:.0f} jobs in flight"
            )
            + ": something it keeps grows with the jobs it has run."
            for d in memory
            if d.grew
        ]
    held = [d for d in memory if not d.rose]
    if not held:
        return []
    d = max(held, key=lambda d: d.window_s)
    return [
        f"Memory held over the longest window, {d.model}'s {d.window_s:.0f} s at "
        f"N={d.concurrency}: {d.first_mb:.0f} MB of RSS in its first quarter, "
        f"{d.last_mb:.0f} in its last."
    ]


def _best_per_range(ok: pd.DataFrame) -> list[str]:
    """Consecutive levels with the same leader become one sentence."""
    leaders: list[tuple[int, str, float]] = []
    for level, rows in ok.groupby("concurrency"):
        best = rows.sort_values("throughput").iloc[-1]
        # Tied with the best: within a few percent of it, or its interval reaching the best's
        # (a lead the repeats cannot tell from noise is no lead).
        tied = rows[
            (rows["throughput"] >= best["throughput"] * (1 - TIE))
            | (rows["throughput_ci_high"] >= best["throughput_ci_low"])
        ].sort_values("throughput", ascending=False)
        leaders.append((int(str(level)), _and(list(tied["model"])), float(best["throughput"])))
    sentences = []
    start = 0
    for i in range(1, len(leaders) + 1):
        if i == len(leaders) or leaders[i][1] != leaders[start][1]:
            first, last = leaders[start][0], leaders[i - 1][0]
            span = f"N={first}" if first == last else f"N={first} to {last}"
            models = leaders[start][1]
            verb = "lead" if " and " in models else "leads"
            sentences.append(
                f"Best throughput at {span}: {models} {verb} "
                f"(up to {max(t for _, _, t in leaders[start:i]):.1f} jobs/s)."
            )
            start = i
    return sentences


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _saturation(rows: pd.DataFrame, model: str) -> str:
    rows = rows.sort_values("concurrency")
    levels = [int(n) for n in rows["concurrency"]]
    values = list(rows["throughput"])
    cpu = list(rows["cpu_util"])
    for i in range(1, len(values)):
        if values[i] < values[i - 1] * (1 + SATURATION_GAIN):
            return (
                f"{model} saturates at N={levels[i - 1]} ({values[i - 1]:.1f} jobs/s, "
                f"{cpu[i - 1]:.2f} cores busy): more jobs in flight past it add latency, "
                "not throughput."
            )
    return f"{model} was still scaling at N={levels[-1]} ({values[-1]:.1f} jobs/s)."


def _degradation(ok: pd.DataFrame) -> list[str]:
    sentences = []
    for model, rows in ok.groupby("model", sort=False):
        rows = rows.sort_values("concurrency")
        peak = rows.sort_values("throughput").iloc[-1]
        after = rows[rows["concurrency"] > peak["concurrency"]]
        if after.empty:
            continue
        worst = after.sort_values("throughput").iloc[0]
        loss = 1 - worst["throughput"] / peak["throughput"]
        # A fall the repeats' intervals cannot tell from noise is not a finding.
        overlap = peak.get("throughput_ci_low", math.nan) <= worst.get(
            "throughput_ci_high", math.nan
        )
        if loss >= DEGRADATION and not overlap:
            sentences.append(
                f"{model} degrades under load: {peak['throughput']:.1f} jobs/s at "
                f"N={peak['concurrency']} falls to {worst['throughput']:.1f} at "
                f"N={worst['concurrency']} ({loss:.0%} less)"
                + (
                    ""
                    if math.isnan(peak["latency_p99_ms"]) or math.isnan(worst["latency_p99_ms"])
                    else f", while its p99 goes from {peak['latency_p99_ms']:.0f} to "
                    f"{worst['latency_p99_ms']:.0f} ms"
                )
                + "."
            )
    return sentences


def _one_at_a_time(label: str) -> bool:
    model = registered(label)
    return model is not None and model.one_at_a_time


def _one_at_a_time_latency(ok: pd.DataFrame) -> list[str]:
    sentences = []
    for model in dict.fromkeys(m for m in ok["model"] if _one_at_a_time(m)):
        rows = ok[ok["model"] == model].sort_values("concurrency")
        if len(rows) < 2:
            continue
        first, last = rows.iloc[0], rows.iloc[-1]
        # The p99 where both ends measured it, else the median (measured at far fewer jobs).
        column, name = (
            ("latency_p99_ms", "p99")
            if not (math.isnan(first["latency_p99_ms"]) or math.isnan(last["latency_p99_ms"]))
            else ("latency_p50_ms", "median latency")
        )
        if math.isnan(first[column]) or math.isnan(last[column]):
            continue
        sentences.append(
            f"{model} serves one job at a time: its {name} grows from "
            f"{first[column]:.0f} ms at N={first['concurrency']} to "
            f"{last[column]:.0f} ms at N={last['concurrency']} "
            f"({last[column] / first[column]:.0f}x), while its throughput "
            f"stays near {rows['throughput'].median():.1f} jobs/s: every user waits for all "
            "the others."
        )
    return sentences


def _outcomes(ok: pd.DataFrame) -> list[str]:
    """Where the most and the fewest jobs failed or timed out: a loaded runtime is late."""
    sentences = []
    for column, verb in (("timeouts", "timed out"), ("failed", "failed")):
        share = ok[column].astype(float) / ok["jobs"].astype(float)
        if not share.max() > 0:
            continue
        worst, best = (
            ok.iloc[int(share.to_numpy().argmax())],
            ok.iloc[int(share.to_numpy().argmin())],
        )
        sentences.append(
            f"The most jobs {verb} with {worst['model']} at N={worst['concurrency']:.0f}: "
            f"{share.max():.2%} of them; the fewest with {best['model']} at "
            f"N={best['concurrency']:.0f}: {share.min():.2%}."
        )
    return sentences


def _interpreters(ok: pd.DataFrame) -> list[str]:
    """With several interpreters: each model's speed on each relative to the first one, at the
    lowest and highest level (the single-thread cost of a build, and what it does under load),
    and whether threads overtook processes on any of them."""
    tags = list(dict.fromkeys(ok["interpreter"]))
    if len(tags) < 2:
        return []
    base = ok.assign(model=ok["model"].str.split(" @").str[0])
    sentences = []
    for model in dict.fromkeys(base["model"]):
        rows = base[base["model"] == model]
        for level in sorted({int(rows["concurrency"].min()), int(rows["concurrency"].max())}):
            at = rows[rows["concurrency"] == level].set_index("interpreter")["throughput"]
            if tags[0] not in at or len(at) < 2:
                continue
            ratios = ", ".join(f"{at[t] / at[tags[0]]:.2f}x on {t}" for t in tags[1:] if t in at)
            sentences.append(f"{model} at N={level}: {ratios} of its {tags[0]} throughput.")
    for tag in tags:
        rows = base[base["interpreter"] == tag]
        threads = rows[rows["model"] == "threads"].set_index("concurrency")["throughput"]
        processes = rows[rows["model"] == "processes"].set_index("concurrency")["throughput"]
        ahead = sorted(
            int(n) for n in threads.index if n in processes and threads[n] > processes[n]
        )
        if len(threads) and len(processes):
            sentences.append(
                f"On {tag}, threads "
                + (
                    f"beat processes at N={', '.join(map(str, ahead))}."
                    if ahead
                    else "never beat processes."
                )
            )
    return sentences


def _engine_floors(levels: pd.DataFrame) -> list[str]:
    """What one job through dask or celery costs over the same steps run in one process."""
    return [
        f"With one job in flight, {r['model']} adds {r['floor_ms']:.1f} ms to the p50 latency "
        f"of {r['reference']} ({r['p50_ms']:.1f} vs {r['reference_p50_ms']:.1f} ms) and uses "
        f"{r['cpu_ms_per_job']:.1f} ms of CPU per job against {r['reference_cpu_ms_per_job']:.1f}: "
        "the floor of sending a job through the engine and back."
        for r in engine_floors(levels).to_dict("records")
        if r["reference"]
    ]


def _languages(levels: pd.DataFrame) -> list[str]:
    """What the same order costs in each runtime, at the highest level a language model was
    measured: jobs served, CPU per job and memory per job in flight."""
    costs = language_costs(levels)
    if costs.empty:
        return []
    top = costs[costs["concurrency"] == costs["concurrency"].max()]
    parts = [
        f"{r['model']} {r['throughput']:.1f} jobs/s at {r['cpu_ms_per_job']:.2f} ms of CPU a job, "
        f"{r['rss_peak_mb']:.0f} MB"
        + (
            ""
            if math.isnan(r["kb_per_job_in_flight"])
            else f" ({r['kb_per_job_in_flight']:.0f} kB a job in flight)"
        )
        for r in top.to_dict("records")
    ]
    return [
        f"The same jobs in other runtimes at N={int(top['concurrency'].iloc[0])}: "
        + "; ".join(parts)
        + "."
    ]


def _client_costs(levels: pd.DataFrame) -> list[str]:
    """What each HTTP stack's client library costs a job in CPU, against the same model over
    tcp, at the highest level both measured."""
    costs = client_costs(levels).dropna(subset=["client_share"])
    if costs.empty:
        return []
    top = costs.sort_values("concurrency").groupby("model", sort=False).last()
    sentences = []
    for drivers, opening in (
        (False, "Over HTTP, the share of a job's CPU that the same model over tcp does not "
         "spend (the client library, and HTTP itself): "),
        (True, "With the stock in PostgreSQL, the share of a job's CPU that the same model with "
         "its stock in memory does not spend (the driver and its pool; the server's own CPU is "
         "not the model's), and a try's wait for a pooled connection: "),
    ):  # fmt: skip
        parts = [
            f"{model} {share_text(r['client_share'])} at N={r['concurrency']} "
            f"({r['cpu_ms_per_job']:.2f} ms of CPU a job against {r['tcp_cpu_ms_per_job']:.2f} "
            "over tcp"
            + (f", {r['db_pool_wait_ms']:.2f} ms waiting for a connection" if drivers else "")
            + ")"
            for model, r in top.iterrows()
            if (r["client"] in DRIVERS) == drivers
        ]
        if parts:
            sentences.append(opening + "; ".join(parts) + ".")
    return sentences


def share_text(share: float) -> str:
    """A stack's share of a job's CPU in words; none where the HTTP job spent no more (a
    negative share is the repeats' noise, not a saving)."""
    return "none measured" if share <= 0 else f"{share:.0%}"


def _service(ok: pd.DataFrame) -> list[str]:
    """How busy the latency service was: whether it, not a model, could have been the limit."""
    busy = ok["service_cpu_util"].astype(float)
    if busy.isna().all():
        return []
    top = ok.iloc[int(busy.fillna(-1.0).to_numpy().argmax())]
    verdict = (
        "so it may have been the limit there (see the warnings)"
        if busy.max() > SERVICE_BUSY
        else "so the models, not the service, set the pace"
    )
    return [
        f"The latency service used at most {busy.max():.0%} of a core (during "
        f"{top['model']} at N={top['concurrency']:.0f}), {verdict}."
    ]


def _largest_gap(ok: pd.DataFrame, cores: int) -> str:
    concurrent = ok[~ok["model"].map(_one_at_a_time).astype(bool)]
    rows = concurrent if not concurrent.empty else ok
    worst = rows.sort_values("efficiency").iloc[0]
    model = str(worst["model"])
    cause = limit(worst, cores)
    return (
        f"Largest gap to the bound: {model} at N={worst['concurrency']} reaches "
        f"{worst['efficiency']:.2f} of it ({worst['throughput']:.1f} of "
        f"{worst['bound']:.1f} jobs/s); {cause}."
    )


def _scalability(fitted: Mapping[str, UslFit]) -> list[str]:
    """The most contended model and the peaks the data show, from the USL fits that hold."""
    # A model that serves one job at a time serialises by design (sigma = 1): it has its own
    # sentence. A fit with too few points has no interval to judge it by.
    fits = {
        m: f
        for m, f in fitted.items()
        if not math.isnan(f.sigma) and math.isfinite(f.sigma_ci[1]) and not _one_at_a_time(m)
    }
    if not fits:
        return []
    model, fit = max(fits.items(), key=lambda item: item[1].sigma)
    sentences = [
        f"USL fit: {model} shows the most contention (sigma {fit.sigma:.2f}, 95% interval "
        f"{fit.sigma_ci[0]:.2f} to {fit.sigma_ci[1]:.2f}: about {fit.sigma:.0%} of each job's "
        "work runs one at a time)."
    ]
    for name, peaked in fits.items():
        if peaked.peaks_in_range:
            sentences.append(
                f"USL fit: {name}'s throughput peaks near N={peaked.peak_n:.0f} "
                f"({peaked.peak_throughput:.0f} jobs/s) and falls beyond it "
                f"(coherency kappa {peaked.kappa:.1e}, its interval above 0)."
            )
    return sentences


def _runtime_costs(costs: Mapping[tuple[str, str], float]) -> list[str]:
    """The per-job overheads behind the macro results, relative to asyncio's."""
    if ("spawn", "asyncio") not in costs or ("switch", "asyncio") not in costs:
        return []
    parts = [
        f"{runtime} {costs[('spawn', runtime)]:.1f} us to spawn a task and "
        f"{costs[('switch', runtime)]:.1f} us per switch"
        for runtime in ("asyncio", "uvloop", "trio")
        if ("spawn", runtime) in costs and ("switch", runtime) in costs
    ]
    sentence = "Runtime costs measured on this machine: " + "; ".join(parts)
    if ("spawn", "threads") in costs and ("switch", "threads") in costs:
        sentence += (
            f"; a thread {costs[('spawn', 'threads')]:.0f} us to start and "
            f"{costs[('switch', 'threads')]:.0f} us per switch"
        )
    if ("spawn", "processes") in costs:
        sentence += f"; a process {costs[('spawn', 'processes')] / 1000:.1f} ms to start"
    return [
        sentence + ". Every job pays a few spawns and switches, so at high N the runtime "
        "with the costlier ones saturates its core first."
    ]


def _not_measured(points: pd.DataFrame) -> list[str]:
    missing = points[points["status"] != "ok"]
    if missing.empty:
        return []
    listed = ", ".join(
        f"{r['model']} N={r['concurrency']}"
        + ("" if pd.isna(r["rate"]) else f" at {r['rate']:g}/s")
        + f" ({r['status']})"
        for r in missing.to_dict("records")
    )
    return [f"Not measured: {listed}; the table gives each reason."]


def open_findings(levels: pd.DataFrame, slo_ms: float) -> list[str]:
    """Open load: each model's knee (the highest offered rate whose p99 kept within the SLO),
    best first, and where the load generator fell behind (`levels` as from `per_level`)."""
    found = knees(levels, slo_ms)
    if not found:
        return ["No open-load point was measured; see the table for reasons."]
    ranked = sorted(found.items(), key=lambda item: -(item[1] or 0.0))
    sentences = [
        f"Knees (the highest offered rate with p99 within {slo_ms:g} ms and at most 1% errors): "
        + "; ".join(
            f"{model} (N={cap}) {'none met it' if knee is None else f'{knee:g} jobs/s'}"
            for (model, cap), knee in ranked
        )
        + "."
    ]
    late = levels[levels["late_starts"].astype(float) > LATE_SHARE * levels["jobs"].astype(float)]
    if len(late):
        sentences.append(
            "The load fell behind its schedule (jobs started late with a user free) for "
            + _and([f"{r['model']} at {r['rate']:g}/s" for r in late.to_dict("records")])
            + ": their runtime's timers ran late, and the latency counts it."
        )
    return [*sentences, *_not_measured(levels)]
