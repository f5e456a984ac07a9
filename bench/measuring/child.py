"""The point process: run one model at one load level, then write what it measured.

The sweep starts `python -P -m bench.measuring.child RESULT ALIVE_FD` afresh for every point and
writes the point's spec (`PointSpec`) as JSON on its stdin; the process writes its
`PointResult` to the file RESULT, and ends with its whole process group if the pipe ALIVE_FD
closes (the sweep died). It imports only the runtime dependencies (no pandas, no matplotlib),
so it can run under another interpreter.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from bench.analysing.steady import Tick, throughput_error
from bench.analysing.thresholds import LATE_START_S
from bench.files.run_dir import write_atomically
from bench.measuring.monitor import Conductor, Stall, TreeMonitor, TreeUsage
from bench.measuring.point import PointResult, PointSpec
from models import MODELS, db, web
from models.bare import Count
from models.load import STOCK_START, Ledger, Tally, Window
from models.recording import Histogram, Spans

# A closed point whose jobs stop ending for STALL_S plus STALL_PATHS critical paths is failed
# then, not at its hard timeout: a healthy model ends N jobs per job length, and a job 20 times
# the mean of an exponential wait comes once in 10^9.
STALL_S = 10.0
STALL_PATHS = 20.0


def measure(spec: PointSpec, folder: Path) -> PointResult:
    """Run the point `spec` and summarise it (`folder`: where its ledger file goes)."""
    announce_read, announce_write = os.pipe()
    conductor = None
    path = shared = None
    # A closed load's users publish their jobs to the ledger; a bare loop has none to publish,
    # and a model in another language keeps its jobs until it ends (fixed edges, no conductor).
    if spec.rate is None and not spec.bare and MODELS[spec.model].language is None:
        path = str(folder / "ledger")
        # A slot per process that may serve users: at most one per user, and the parent.
        shared = Ledger.create(path, spec.concurrency + 1)
        if spec.goal is not None:
            ramp_s = spec.warmup_s if spec.ramp_s is None else spec.ramp_s
            conductor = Conductor(shared, spec.concurrency, ramp_s, spec.goal)
    window = spec.window(announce_write, path)
    model = MODELS[spec.model]
    # No job of a closed load ending for this long: the model, or its service, has stopped.
    stall_s = STALL_S + STALL_PATHS * spec.scenario.critical_path_ms() / 1000.0
    monitor = TreeMonitor(
        announce_read,
        window.warmup_s,
        window.duration_s,
        spec.service_pid,
        conductor,
        None if shared is None else Stall(shared, stall_s),
        own_memory=model.language is None,
    )
    monitor.start()
    # What exists now (the imports, the harness) moves out of the collector's way: a full
    # collection in the window then walks what the model allocated, as in a bare loop.
    gc.freeze()
    run = model.bare_runner() if spec.bare else model.runner()
    if window.database is not None:  # the stock starts full, outside the clock
        db.prepare(window.database, window.scenario.products(), STOCK_START)
    outcome = run(window)
    if window.database is not None and isinstance(outcome, Tally):  # the table, as it ended
        outcome.stock = db.levels(window.database, window.scenario.products())
    returned_s = time.perf_counter()
    monitor.finished.set()
    os.close(announce_write)  # unblocks the monitor if the window never started
    monitor.join()
    if monitor.failure is not None:
        raise RuntimeError(f"the point's monitor failed: {monitor.failure!r}")
    if isinstance(outcome, Count):
        return bare_result(outcome, monitor.usage)
    return summarize(window, outcome, monitor.usage, returned_s)


def bare_result(count: Count, usage: TreeUsage) -> PointResult:
    """A bare loop's point: its jobs in the window and the tree's resources; it measures no
    latency, and checks nothing (it has nothing to check: its jobs are constant waits)."""
    return PointResult(
        submitted=count.jobs,
        completed=count.jobs,
        jobs=count.jobs,
        ok=count.jobs,
        served=count.jobs,
        throughput_error=math.nan,
        edge_n=math.nan,
        failed=0,
        timeouts=0,
        errors=0,
        retries=0,
        elapsed_s=count.closes_s - count.opens_s,
        warmup_s=max(count.opens_s - usage.started_s, 0.0),
        steady=usage.steady,
        drain_s=math.nan,
        background_drain_s=math.nan,
        cpu_s=usage.cpu_s,
        service_cpu_s=usage.service_cpu_s,
        ctx_switches=usage.ctx_switches,
        rss_peak_mb=usage.rss_peak_mb,
        pss_peak_mb=usage.pss_peak_mb,
        late_starts=0,
        unserved=0,
        histogram=Histogram(),
        service_histogram=Histogram(),
        queue_histogram=Histogram(),
        samples=tuple(usage.samples),
    )


def summarize(window: Window, tally: Tally, usage: TreeUsage, returned_s: float) -> PointResult:
    """Place the jobs the model's folds left, then read the point off its recording; check that
    no job was lost, no stock update was lost and every background step ended."""
    # Edges the monitor did not record (the model ended first) are the window's planned ones.
    measure_s = usage.started_s + window.warmup_s if math.isnan(usage.opens_s) else usage.opens_s
    closes_s = measure_s + window.duration_s if math.isnan(usage.closes_s) else usage.closes_s
    stop_s = min(closes_s, returned_s)
    tally.fold(window, returned_s, edges=(measure_s, stop_s))
    rec, closed = tally.recording, window.arrivals is None
    problems = _lost_jobs(tally) + _lost_updates(tally) + _unfinished(tally)
    blind_open_s, blind_close_s = tally.blind_s
    if blind_open_s > measure_s or blind_close_s > stop_s:
        problems.append(
            "the conductor wrote an edge of the window after jobs past it had been counted"
        )
    elapsed_s = max(stop_s - measure_s, 0.0)
    return PointResult(
        submitted=rec.submitted,
        completed=rec.completed,
        jobs=rec.jobs,
        ok=rec.ok,
        served=rec.served,
        throughput_error=_throughput_error(rec.spans, elapsed_s),
        edge_n=(rec.before_s + rec.after_s) / elapsed_s if elapsed_s > 0 else math.nan,
        failed=rec.failed,
        timeouts=rec.timeouts,
        errors=rec.errors,
        retries=rec.retries,
        elapsed_s=elapsed_s,
        warmup_s=max(measure_s - usage.started_s, 0.0),
        steady=usage.steady,
        drain_s=(rec.last_end_s if rec.submitted else stop_s) - stop_s,
        background_drain_s=(
            max(0.0, rec.last_background_s - stop_s) if rec.background else math.nan
        ),
        cpu_s=usage.cpu_s,
        service_cpu_s=usage.service_cpu_s,
        ctx_switches=usage.ctx_switches,
        rss_peak_mb=usage.rss_peak_mb,
        pss_peak_mb=usage.pss_peak_mb,
        late_starts=rec.delay.above(LATE_START_S * 1000.0),
        unserved=_unserved(window, usage.started_s, measure_s, stop_s, rec.jobs),
        histogram=rec.latency,
        service_histogram=rec.latency if closed else rec.service,
        queue_histogram=Histogram.constant(0.0, rec.latency.total) if closed else rec.queue,
        error_examples=tuple(tally.errors),
        problems=tuple(problems),
        samples=tuple(usage.samples),
        client_version=(
            web.version(window.client)
            if window.client
            else db.version(window.driver)
            if window.driver
            else ""
        ),
        db_pool_wait_ms=(1000.0 * rec.pool_wait_s / rec.pool_waits if rec.pool_waits else math.nan),
    )


def _throughput_error(spans: Spans, elapsed_s: float) -> float:
    """The relative standard error of the window's throughput, by batch means over its jobs'
    ends (`throughput_error`); infinite when the window is too short to tell."""
    if elapsed_s <= 0:
        return math.inf
    edges = [min(i * spans.width_s, elapsed_s) for i in range(len(spans.jobs) + 1)]
    if edges[-1] < elapsed_s:
        edges.append(elapsed_s)  # the last span, empty, up to the window's close
    ticks = [Tick(edges[0], 0.0, 0.0)]
    for i, at_s in enumerate(edges[1:]):
        jobs, latency_s = (spans.jobs[i], spans.latency_s[i]) if i < len(spans.jobs) else (0, 0.0)
        ticks.append(Tick(at_s, ticks[-1].jobs + jobs, ticks[-1].latency_s + latency_s))
    return throughput_error(ticks)[0]


def _unserved(
    window: Window, started_s: float, measure_s: float, stop_s: float, served: int
) -> int:
    """Open load: jobs due in the window that never ran (the queue outlasted the drain)."""
    if window.arrivals is None:
        return 0
    return sum(measure_s <= started_s + at < stop_s for at in window.arrivals) - served


def _lost_jobs(tally: Tally) -> list[str]:
    """Jobs that ran twice, or were taken and never ended: users take indices from one
    counter, so the jobs that ended and those taken once none was left are each index below
    the highest, once."""
    rec, discarded = tally.recording, tally.discarded
    taken = max(rec.top_index, max(discarded, default=-1)) + 1
    count = taken - len(discarded)
    total = taken * (taken - 1) // 2 - sum(discarded)
    squares = (taken - 1) * taken * (2 * taken - 1) // 6 - sum(i * i for i in discarded)
    if rec.submitted > count:
        return [f"{rec.submitted - count} jobs ran twice"]
    if rec.submitted < count:
        return [f"{count - rec.submitted} jobs were taken but never finished"]
    if (rec.index_sum, rec.index_squares) != (total, squares):
        return ["some jobs ran twice and as many were taken but never finished"]
    return []


def _lost_updates(tally: Tally) -> list[str]:
    """Products whose stock is not its start minus what was sold: an update was lost."""
    sold = tally.recording.sold
    wrong = [
        f"product {p}: stock {level}, expected {STOCK_START - count}"
        for p, level in enumerate(tally.stock)
        if level != STOCK_START - (count := sold[p] if p < len(sold) else 0)
    ]
    if not wrong:
        return []
    return [f"stock updates were lost on {len(wrong)} products ({'; '.join(wrong[:3])})"]


def _unfinished(tally: Tally) -> list[str]:
    """Background steps that never ended, or ended with a wrong result."""
    rec, problems = tally.recording, []
    if rec.background != tally.handed:
        problems.append(
            f"{tally.handed - rec.background} of {tally.handed} background steps never finished"
        )
    if rec.wrong_background:
        problems.append(f"{rec.wrong_background} background steps ended with a wrong result")
    return problems


def end_with_parent(alive_fd: int) -> None:
    """End this process and everything it started (its process group: workers, a private
    Redis, a dask cluster) as soon as `alive_fd`, a pipe the sweep holds open, closes: the
    sweep has died, and nothing of the point may outlive it."""

    def watch() -> None:
        while os.read(alive_fd, 1):
            pass
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="end-with-parent").start()


def main() -> None:
    """Read a point spec from stdin, measure it, write the result to the file named by argv
    (with the pipe to watch for the sweep's death)."""
    result, alive_fd = sys.argv[1:]
    end_with_parent(int(alive_fd))
    # Every connection is a file descriptor: allow as many as the system lets this user have.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    measured = measure(PointSpec.from_json(sys.stdin.read()), Path(result).parent)
    write_atomically(Path(result), measured.to_json())


if __name__ == "__main__":
    main()
