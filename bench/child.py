"""The point process: run one model at one load level, then print what it measured as JSON.

The sweep starts `python -m bench.child` afresh for every point, writes the point's spec as
JSON on its stdin and reads one JSON object from its stdout. It imports only the runtime
dependencies (no pandas, no matplotlib), so it can run under another interpreter.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil

from bench.scenarios import scenario_from_dict
from bench.stats import Histogram
from models import MODELS
from models.load import Finished, Window, finished
from models.workload import Calibration, Verifier, draw_job

# The tree is sampled (peak RSS; CPU of workers that exit as the window closes) every 0.2 s:
# about 100 us per process per sample: 3% of a core with 64 worker processes, 0.05% with one.
_SAMPLE_PERIOD_S = 0.2


@dataclass
class TreeUsage:
    """CPU and context switches of the point's process tree over the measured window."""

    started_s: float = 0.0
    cpu_s: float = 0.0
    ctx_switches: int = 0
    rss_peak_mb: float = 0.0


class TreeMonitor(threading.Thread):
    """Waits for the window to start, then samples the process tree at its edges."""

    def __init__(self, announce_fd: int, warmup_s: float, duration_s: float) -> None:
        super().__init__(daemon=True)
        self.announce_fd = announce_fd
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.finished = threading.Event()
        self.usage = TreeUsage()
        self.process = psutil.Process()
        self.latest: dict[int, tuple[float, int]] = {}

    def run(self) -> None:
        """Sample the tree until the model ends; keep its usage as the window opens and closes."""
        announced = os.read(self.announce_fd, 8)
        if len(announced) < 8:  # the model ended before starting its window
            return
        self.usage.started_s = struct.unpack("d", announced)[0]
        measure_s = self.usage.started_s + self.warmup_s
        at_open = self._sample_until(measure_s)
        at_close = self._sample_until(measure_s + self.duration_s)
        # A process that appeared during the window counts from zero.
        self.usage.cpu_s = sum(
            cpu - at_open.get(pid, (0.0, 0))[0] for pid, (cpu, _) in at_close.items()
        )
        self.usage.ctx_switches = sum(
            ctx - at_open.get(pid, (0.0, 0))[1] for pid, (_, ctx) in at_close.items()
        )
        self._sample_until(math.inf)

    def _sample_until(self, until_s: float) -> dict[int, tuple[float, int]]:
        """Sample every period until `until_s` (or the model's end); return the last sample."""
        while True:
            snapshot = self._sample()
            now = time.perf_counter()
            if now >= until_s or self.finished.is_set():
                return snapshot
            self.finished.wait(min(_SAMPLE_PERIOD_S, until_s - now))

    def _sample(self) -> dict[int, tuple[float, int]]:
        """CPU seconds and context switches per process; a process that exited keeps its last."""
        rss = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                with proc.oneshot():
                    times, switches = proc.cpu_times(), proc.num_ctx_switches()
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            self.latest[proc.pid] = (
                times.user + times.system,
                switches.voluntary + switches.involuntary,
            )
        self.usage.rss_peak_mb = max(self.usage.rss_peak_mb, rss / 2**20)
        return dict(self.latest)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the point described by `spec` and summarise it."""
    announce_read, announce_write = os.pipe()
    window = Window(
        scenario=scenario_from_dict(spec["scenario"]),
        calibration=Calibration(**spec["calibration"]),
        seed=spec["seed"],
        concurrency=spec["concurrency"],
        warmup_s=spec["warmup_s"],
        duration_s=spec["duration_s"],
        max_jobs=spec.get("max_jobs"),
        announce_fd=announce_write,
    )
    run = MODELS[spec["model"]].runner()
    monitor = TreeMonitor(announce_read, window.warmup_s, window.duration_s)
    monitor.start()
    records = finished(run(window))
    returned_s = time.perf_counter()
    monitor.finished.set()
    os.close(announce_write)  # unblocks the monitor if the window never started
    monitor.join()
    return summarize(window, records, monitor.usage, returned_s)


def summarize(
    window: Window, records: list[Finished], usage: TreeUsage, returned_s: float
) -> dict[str, Any]:
    """Count, verify and time the jobs that ended inside the measured window."""
    measure_s = usage.started_s + window.warmup_s
    stop_s = min(measure_s + window.duration_s, returned_s)
    verifier = Verifier()
    bad = {
        r.job_index
        for r in records
        if r.checksum
        != verifier.expected(
            draw_job(window.scenario, window.calibration, window.seed, r.job_index)
        )
    }
    in_window = [r for r in records if measure_s <= r.ended_s < stop_s]
    latencies = Histogram()
    for r in in_window:
        if r.job_index not in bad:
            latencies.record((r.ended_s - r.submitted_s) * 1000.0)
    indices = {r.job_index for r in records}
    # Users take indices from one counter; each may take one more after the window closes.
    lost = (max(indices) + 1 - len(indices)) if indices else 0
    problems = []
    if len(indices) != len(records):
        problems.append(f"{len(records) - len(indices)} jobs ran twice")
    if lost > window.concurrency:
        problems.append(f"{lost - window.concurrency} jobs were taken but never finished")
    return {
        "submitted": len(records),
        "completed": len(records) - len(bad),
        "failed": len(bad),
        "jobs": len(in_window),
        "errors": sum(1 for r in in_window if r.job_index in bad),
        "elapsed_s": max(stop_s - measure_s, 0.0),
        "drain_s": max((r.ended_s for r in records), default=stop_s) - stop_s,
        "cpu_s": usage.cpu_s,
        "ctx_switches": usage.ctx_switches,
        "rss_peak_mb": usage.rss_peak_mb,
        "problems": problems,
        "histogram": latencies.to_dict(),
    }


def main() -> None:
    """Read a point spec from stdin, measure it, write the summary to stdout."""
    spec = json.load(sys.stdin)
    summary = measure(spec)
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
