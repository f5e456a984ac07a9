"""The point process: run one model at one load level, then print what it measured as JSON.

The sweep starts `python -m bench.child` afresh for every point, writes the point's spec as
JSON on its stdin and reads one JSON object from its stdout. It imports only the runtime
dependencies (no pandas, no matplotlib), so it can run under another interpreter.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import json
import math
import os
import resource
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.scenarios import scenario_from_dict
from bench.stats import Histogram
from models import MODELS
from models.cluster import Engine
from models.load import STOCK_START, Finished, Tally, Window, arrivals, finished
from models.workload import (
    FAILED,
    LOST,
    OK,
    TIMED_OUT,
    Calibration,
    Verifier,
    background,
    draw_job,
)

# Peak RSS is sampled, not tracked: often enough to catch a peak that lasts, rarely enough that
# the monitor's own reads stay a small part of the tree's CPU.
_SAMPLE_PERIOD_S = 0.2
# A job that starts later than this after it was due, with a user free, started late; epoll
# waits in whole milliseconds, so a timer may fire up to 1 ms late with nothing wrong.
LATE_START_S = 0.002
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class TreeUsage:
    """CPU and context switches of the point's process tree over the measured window."""

    started_s: float = 0.0
    cpu_s: float = 0.0
    ctx_switches: int = 0
    rss_peak_mb: float = 0.0
    service_cpu_s: float = math.nan  # the latency service's CPU, when the run started it


class TreeMonitor(threading.Thread):
    """Waits for the window to start, then reads the process tree exactly at its edges."""

    def __init__(
        self, announce_fd: int, warmup_s: float, duration_s: float, service_pid: int | None
    ) -> None:
        super().__init__(daemon=True)
        self.announce_fd = announce_fd
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.finished = threading.Event()
        self.usage = TreeUsage()
        self.process = psutil.Process()
        self.tree: list[psutil.Process] = [self.process]
        self.rss_sample_s = 0.0  # how long the last RSS sample took
        # The run's latency service: outside the tree, its CPU is read at the same edges.
        self.service = None if service_pid is None else psutil.Process(service_pid)

    def run(self) -> None:
        """Sample RSS until the model ends; read CPU and switches as the window opens and closes."""
        announced = os.read(self.announce_fd, 8)
        if len(announced) < 8:  # the model ended before starting its window
            return
        self.usage.started_s = struct.unpack("d", announced)[0]
        measure_s = self.usage.started_s + self.warmup_s
        self._sample_rss_until(measure_s)
        at_open, service_at_open = self._usage(), self._service_cpu_s()
        self._sample_rss_until(measure_s + self.duration_s)
        at_close, service_at_close = self._usage(), self._service_cpu_s()
        if service_at_open is not None and service_at_close is not None:
            self.usage.service_cpu_s = service_at_close - service_at_open
        # Totals, not per-process deltas: a worker reaped during the window moves its CPU into
        # its parent's count of reaped children, and a process that appeared counts from zero.
        self.usage.cpu_s = sum(cpu for cpu, _ in at_close.values()) - sum(
            cpu for cpu, _ in at_open.values()
        )
        self.usage.ctx_switches = sum(
            ctx - at_open[pid][1] for pid, (_, ctx) in at_close.items() if pid in at_open
        )
        self._sample_rss_until(math.inf)

    def _service_cpu_s(self) -> float | None:
        return None if self.service is None else _cpu_s(self.service)

    def _sample_rss_until(self, until_s: float) -> None:
        """Sample the tree's RSS every period until `until_s` (or the model's end).

        On busy cores a sample of a large tree can take longer than the period, so none starts
        unless it can end well before the window's edge.
        """
        while not self.finished.is_set() and (left := until_s - time.perf_counter()) > 0:
            if left > _SAMPLE_PERIOD_S + 3 * self.rss_sample_s:
                started = time.perf_counter()
                self._sample_rss()
                self.rss_sample_s = time.perf_counter() - started
                left = until_s - time.perf_counter()
            self.finished.wait(max(0.0, min(_SAMPLE_PERIOD_S, left)))

    def _sample_rss(self) -> None:
        self.tree = [self.process, *self.process.children(recursive=True)]
        rss = sum(_quietly(lambda p: p.memory_info().rss, proc, 0) for proc in self.tree)
        self.usage.rss_peak_mb = max(self.usage.rss_peak_mb, rss / 2**20)

    def _usage(self) -> dict[int, tuple[float, int]]:
        """CPU seconds and context switches (all threads) per process of the known tree.

        CPU is read first, in one quick pass over /proc/<pid>/stat: with every core busy this
        thread gets the CPU only now and then, and a slow pass would smear the window's edge.
        It counts reaped children too, so a worker that exits right at the edge is not lost.
        """
        cpu = {proc.pid: _cpu_s(proc) for proc in self.tree}
        return {
            pid: (seconds, _ctx_switches(proc))
            for proc in self.tree
            if (seconds := cpu[(pid := proc.pid)]) is not None
        }


def _quietly(read: Any, proc: psutil.Process, default: Any) -> Any:
    """Read a process that may have just exited."""
    try:
        return read(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return default


def _cpu_s(proc: psutil.Process) -> float | None:
    """User and system CPU of a process and of its reaped children (None once it is gone)."""
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as stat:
            data = stat.read()
    except FileNotFoundError:
        return None
    except OSError:  # not Linux: psutil's slower reading
        times = _quietly(lambda p: p.cpu_times(), proc, None)
        return None if times is None else sum(times[:4])
    # utime, stime, cutime, cstime are fields 14-17; the command name in () may hold spaces.
    fields = data[data.rindex(b")") + 2 :].split()
    return sum(int(x) for x in fields[11:15]) / _CLOCK_TICKS


def _ctx_switches(proc: psutil.Process) -> int:
    """Voluntary and involuntary switches of every thread (psutil counts only the main one)."""
    if proc.pid == os.getpid():  # this process: the kernel's total includes exited threads
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_nvcsw + usage.ru_nivcsw
    tasks = Path(f"/proc/{proc.pid}/task")
    if not tasks.is_dir():  # not Linux: the main thread is all psutil can see
        switches = _quietly(lambda p: p.num_ctx_switches(), proc, None)
        return 0 if switches is None else switches.voluntary + switches.involuntary
    total = 0
    for status in tasks.glob("*/status"):
        with contextlib.suppress(OSError):  # a thread that has just ended
            for line in status.read_text().splitlines():
                if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                    total += int(line.split(":")[1])
    return total


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the point described by `spec` and summarise it."""
    announce_read, announce_write = os.pipe()
    service = spec.get("service")
    window = Window(
        scenario=scenario_from_dict(spec["scenario"]),
        calibration=Calibration(**spec["calibration"]),
        seed=spec["seed"],
        concurrency=spec["concurrency"],
        warmup_s=spec["warmup_s"],
        duration_s=spec["duration_s"],
        max_jobs=spec.get("max_jobs"),
        announce_fd=announce_write,
        service=None if service is None else (service[0], service[1]),
        engine=Engine(**spec.get("engine", {})),
        arrivals=None
        if spec.get("rate") is None
        else arrivals(
            spec["rate"], spec["warmup_s"] + spec["duration_s"], spec["arrivals"], spec["seed"]
        ),
    )
    run = MODELS[spec["model"]].runner()
    monitor = TreeMonitor(
        announce_read, window.warmup_s, window.duration_s, spec.get("service_pid")
    )
    monitor.start()
    tally = run(window)
    returned_s = time.perf_counter()
    monitor.finished.set()
    os.close(announce_write)  # unblocks the monitor if the window never started
    monitor.join()
    slots = 1 if MODELS[spec["model"]].one_at_a_time else window.concurrency
    return summarize(window, tally, monitor.usage, returned_s, slots)


def summarize(
    window: Window, tally: Tally, usage: TreeUsage, returned_s: float, slots: int = 0
) -> dict[str, Any]:
    """Count, verify and time the jobs of the measured window; check that no job was lost, no
    stock update was lost and every background step ended. `slots`: how many jobs the model
    serves at once (default N)."""
    measure_s = usage.started_s + window.warmup_s
    stop_s = min(measure_s + window.duration_s, returned_s)
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
    problems = (
        _lost_jobs(window, records) + _lost_updates(tally) + _unfinished(window, tally, verifier)
    )
    background = finished(tally.background)
    return {
        "submitted": len(records),
        "completed": sum(r.outcome == OK for r in records) - len(bad),
        "jobs": len(in_window),
        "ok": sum(r.outcome == OK and r.job_index not in bad for r in in_window),
        "served": sum(r.outcome == OK and r.job_index not in bad for r in ended),
        "failed": sum(r.outcome == FAILED and r.job_index not in bad for r in in_window),
        "timeouts": sum(r.outcome == TIMED_OUT and r.job_index not in bad for r in in_window),
        "errors": sum(r.job_index in bad for r in in_window),
        "error_examples": tally.errors,
        "retries": sum(job in counted for job in tally.retried),
        "elapsed_s": max(stop_s - measure_s, 0.0),
        "drain_s": max((r.ended_s for r in records), default=stop_s) - stop_s,
        "background_drain_s": (
            max(0.0, max(r.ended_s for r in background) - stop_s) if background else math.nan
        ),
        "cpu_s": usage.cpu_s,
        "service_cpu_s": usage.service_cpu_s,
        "ctx_switches": usage.ctx_switches,
        "rss_peak_mb": usage.rss_peak_mb,
        "problems": problems,
        "histogram": latencies.to_dict(),
        "service_histogram": service.to_dict(),
        "queue_histogram": queue.to_dict(),
        "late_starts": _late_starts(in_window, records, slots or window.concurrency),
        "unserved": _unserved(window, usage.started_s, measure_s, stop_s, len(in_window)),
    }


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


def main() -> None:
    """Read a point spec from stdin, measure it, write the summary to stdout."""
    # Every connection is a file descriptor: allow as many as the system lets this user have.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.load(sys.stdin)
    summary = measure(spec)
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
