"""The point process: run one model at one load level, then write what it measured.

The sweep starts `python -P -m bench.measuring.child RESULT ALIVE_FD` afresh for every point and
writes the point's spec (`PointSpec`) as JSON on its stdin; the process writes its
`PointResult` to the file RESULT, and ends with its whole process group if the pipe ALIVE_FD
closes (the sweep died). It imports only the runtime dependencies (no pandas, no matplotlib),
so it can run under another interpreter.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import math
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from bench.analysing.stats import Histogram
from bench.analysing.steady import Tick, throughput_error
from bench.analysing.thresholds import LATE_START_S
from bench.files.run_dir import write_atomically
from bench.measuring.monitor import Conductor, Stall, TreeMonitor, TreeUsage
from bench.measuring.point import PointResult, PointSpec
from models import MODELS
from models.load import STOCK_START, Finished, Ledger, Tally, Window, finished
from models.workload import (
    FAILED,
    LOST,
    OK,
    TIMED_OUT,
    Verifier,
    background,
    draw_job,
)

# The window's ends are counted at this many edges, for batches of any length.
_EDGES = 100
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
    if spec.rate is None:  # a closed load's users publish their jobs to the ledger
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
    )
    monitor.start()
    tally = model.runner()(window)
    returned_s = time.perf_counter()
    monitor.finished.set()
    os.close(announce_write)  # unblocks the monitor if the window never started
    monitor.join()
    if monitor.failure is not None:
        raise RuntimeError(f"the point's monitor failed: {monitor.failure!r}")
    slots = 1 if model.one_at_a_time else window.concurrency
    return summarize(window, tally, monitor.usage, returned_s, slots)


def summarize(
    window: Window, tally: Tally, usage: TreeUsage, returned_s: float, slots: int = 0
) -> PointResult:
    """Count, verify and time the jobs of the measured window; check that no job was lost, no
    stock update was lost and every background step ended. `slots`: how many jobs the model
    serves at once (default N)."""
    # Edges the monitor did not record (the model ended first) are the window's planned ones.
    measure_s = usage.started_s + window.warmup_s if math.isnan(usage.opens_s) else usage.opens_s
    closes_s = measure_s + window.duration_s if math.isnan(usage.closes_s) else usage.closes_s
    stop_s = min(closes_s, returned_s)
    records = finished(tally.records)
    verifier = Verifier()
    jobs = {
        r.job_index: draw_job(window.scenario, window.calibration, window.seed, r.job_index)
        for r in records
    }
    bad = {
        r.job_index
        for r in records
        if r.outcome == LOST or not verifier.accepts(jobs[r.job_index], r.outcome, r.checksum)
    }
    ended = [r for r in records if measure_s <= r.ended_s < stop_s]
    # Closed load: the jobs that ended in the window. Open load: the jobs due in it, every one
    # of them, however late it ended: a stalled model cannot hide its queue.
    in_window = ended if window.arrivals is None else _due_in(records, measure_s, stop_s)
    latencies, service, queue = Histogram(), Histogram(), Histogram()
    for r in in_window:
        if r.job_index not in bad:
            latencies.record((r.ended_s - r.submitted_s) * 1000.0)
            service.record((r.ended_s - r.started_s) * 1000.0)
            queue.record((r.started_s - r.submitted_s) * 1000.0)
    counted = {r.job_index for r in in_window}
    served = [r for r in ended if r.outcome == OK and r.job_index not in bad]
    problems = (
        _lost_jobs(window, records) + _lost_updates(tally) + _unfinished(window, tally, verifier)
    )
    background = finished(tally.background)
    return PointResult(
        submitted=len(records),
        completed=sum(r.outcome == OK for r in records) - len(bad),
        jobs=len(in_window),
        ok=sum(r.outcome == OK and r.job_index not in bad for r in in_window),
        served=len(served),
        throughput_error=_throughput_error(served, measure_s, stop_s),
        edge_n=_edge_n(records, measure_s, stop_s),
        failed=sum(r.outcome == FAILED and r.job_index not in bad for r in in_window),
        timeouts=sum(r.outcome == TIMED_OUT and r.job_index not in bad for r in in_window),
        errors=sum(r.job_index in bad for r in in_window),
        retries=sum(job in counted for job in tally.retried),
        elapsed_s=max(stop_s - measure_s, 0.0),
        warmup_s=max(measure_s - usage.started_s, 0.0),
        steady=usage.steady,
        drain_s=max((r.ended_s for r in records), default=stop_s) - stop_s,
        background_drain_s=(
            max(0.0, max(r.ended_s for r in background) - stop_s) if background else math.nan
        ),
        cpu_s=usage.cpu_s,
        service_cpu_s=usage.service_cpu_s,
        ctx_switches=usage.ctx_switches,
        rss_peak_mb=usage.rss_peak_mb,
        late_starts=_late_starts(in_window, records, slots or window.concurrency),
        unserved=_unserved(window, usage.started_s, measure_s, stop_s, len(in_window)),
        histogram=latencies,
        service_histogram=service,
        queue_histogram=queue,
        error_examples=tuple(tally.errors),
        problems=tuple(problems),
    )


def _edge_n(records: list[Finished], measure_s: float, stop_s: float) -> float:
    """How far the window's edges can move Little's estimate (throughput x mean latency of the
    jobs that ended in it), in jobs in flight: the time before the window of the jobs that ended
    in it (counted, though not in the window), plus the time in the window of the jobs that
    ended after it (in the window, not counted), over the window's length."""
    if stop_s <= measure_s:
        return math.nan
    before = sum(measure_s - r.submitted_s for r in records if measure_s <= r.ended_s < stop_s
                 and r.submitted_s < measure_s)  # fmt: skip
    after = sum(stop_s - max(r.submitted_s, measure_s) for r in records
                if r.ended_s >= stop_s and r.submitted_s < stop_s)  # fmt: skip
    return (before + after) / (stop_s - measure_s)


def _throughput_error(served: list[Finished], measure_s: float, stop_s: float) -> float:
    """The relative standard error of the window's throughput, by batch means over its jobs'
    ends (`throughput_error`); infinite when the window is too short to tell."""
    if stop_s <= measure_s:
        return math.inf
    ordered = sorted(served, key=lambda r: r.ended_s)
    ends = [r.ended_s for r in ordered]
    summed = [0.0, *itertools.accumulate(r.ended_s - r.submitted_s for r in ordered)]
    edges = [measure_s + (stop_s - measure_s) * i / _EDGES for i in range(_EDGES + 1)]
    ticks = [Tick(at_s, (ended := bisect.bisect_left(ends, at_s)), summed[ended]) for at_s in edges]
    return throughput_error(ticks)[0]


def _due_in(records: list[Finished], measure_s: float, stop_s: float) -> list[Finished]:
    return [r for r in records if measure_s <= r.submitted_s < stop_s]


def _unserved(
    window: Window, started_s: float, measure_s: float, stop_s: float, served: int
) -> int:
    """Open load: jobs due in the window that never ran (the queue outlasted the drain)."""
    if window.arrivals is None:
        return 0
    return sum(measure_s <= started_s + at < stop_s for at in window.arrivals) - served


def _late_starts(jobs: list[Finished], records: list[Finished], slots: int) -> int:
    """Jobs that started over LATE_START_S after they were due although a user was free then:
    the runtime, not the queue, made them wait (its timer or loop ran late)."""
    starts = sorted(r.started_s for r in records)
    ends = sorted(r.ended_s for r in records)
    return sum(
        r.started_s - r.submitted_s > LATE_START_S
        and bisect.bisect_right(starts, r.submitted_s) - bisect.bisect_right(ends, r.submitted_s)
        < slots
        for r in jobs
    )


def _lost_jobs(window: Window, records: list[Finished]) -> list[str]:
    """Jobs that ran twice, or were taken and never ended."""
    indices = {r.job_index for r in records}
    # Users take indices from one counter; each may take one more after the window closes.
    lost = (max(indices) + 1 - len(indices)) if indices else 0
    problems = []
    if len(indices) != len(records):
        problems.append(f"{len(records) - len(indices)} jobs ran twice")
    if lost > window.concurrency:
        problems.append(f"{lost - window.concurrency} jobs were taken but never finished")
    return problems


def _lost_updates(tally: Tally) -> list[str]:
    """Products whose stock is not its start minus what was sold: an update was lost."""
    sold = collections.Counter(tally.sold)
    wrong = [
        f"product {p}: stock {level}, expected {STOCK_START - sold[p]}"
        for p, level in enumerate(tally.stock)
        if level != STOCK_START - sold[p]
    ]
    if not wrong:
        return []
    return [f"stock updates were lost on {len(wrong)} products ({'; '.join(wrong[:3])})"]


def _unfinished(window: Window, tally: Tally, verifier: Verifier) -> list[str]:
    """Background steps that never ended, or ended with a wrong result."""
    problems = []
    if len(tally.background) != len(tally.handed_off):
        problems.append(
            f"{len(tally.handed_off) - len(tally.background)} of {len(tally.handed_off)} "
            "background steps never finished"
        )
    wrong = [
        r
        for r in finished(tally.background)
        if r.outcome != LOST
        and not any(
            verifier.accepts_step(action, r.outcome, r.checksum)
            for stage in draw_job(
                window.scenario, window.calibration, window.seed, r.job_index
            ).stages
            for action in background(stage)
        )
    ]
    if wrong:
        problems.append(f"{len(wrong)} background steps ended with a wrong result")
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
