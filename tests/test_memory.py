"""Memory over a point's window: a slope while the work in flight holds is named; a flat line
and a short window are not."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.analysing.findings import _memory
from bench.analysing.memory import drifts
from bench.measuring.monitor import MAX_SAMPLES, TreeMonitor, _ctx_switches


def run(rss_per_s: float, window_s: float = 60.0, in_flight_per_s: float = 0.0) -> list[str]:
    """A point of `window_s` after a 2 s warm-up, sampled every 0.5 s: its RSS starts at 40 MB
    and rises by `rss_per_s`; 100 jobs in flight, rising by `in_flight_per_s`."""
    times = [0.5 * i for i in range(int((window_s + 2.0) / 0.5) + 1)]
    latency_s, summed = [], 0.0
    for before, at in zip([0.0, *times], times, strict=False):
        summed += (100.0 + in_flight_per_s * at) * (at - before)
        latency_s.append(summed)
    samples = pd.DataFrame(
        {
            "model": "asyncio",
            "interpreter": "3.11",
            "load": "closed",
            "concurrency": 100,
            "rate": float("nan"),
            "repeat": 1,
            "at_s": times,
            "rss_mb": [40.0 + rss_per_s * at for at in times],
            "pss_mb": float("nan"),
            "cpu_s": times,
            "jobs": [10.0 * at for at in times],
            "latency_s": latency_s,
        }
    )
    points = pd.DataFrame(
        [
            {
                "model": "asyncio",
                "interpreter": "3.11",
                "concurrency": 100,
                "repeat": 1,
                "status": "ok",
                "warmup_s": 2.0,
                "elapsed_s": window_s,
            }
        ]
    )
    measured = drifts(samples, points)
    return [*_memory(measured, grew=True), *_memory(measured, grew=False)]


def test_memory_that_grows_while_the_work_in_flight_holds_is_named() -> None:
    (sentence,) = run(rss_per_s=0.5)  # +30 MB over a minute
    assert sentence.startswith("asyncio's memory grew over its 60 s window at N=100")
    assert "with 100 and 100 jobs in flight" in sentence


def test_flat_memory_says_it_held_and_short_windows_say_nothing() -> None:
    (sentence,) = run(rss_per_s=0.0)
    assert sentence.startswith("Memory held over the longest window, asyncio's 60 s")
    assert run(rss_per_s=0.5, window_s=10.0) == []


def test_memory_that_follows_more_work_in_flight_is_not_a_leak() -> None:
    assert run(rss_per_s=0.5, in_flight_per_s=5.0) == []  # jobs in flight triple


def test_a_long_point_keeps_a_bounded_number_of_samples() -> None:
    read, write = os.pipe()
    monitor = TreeMonitor(read, 0.0, 1.0, None)
    monitor.sample_period_s = 0.0  # keep every sample
    for _ in range(MAX_SAMPLES + 100):
        monitor._sample_rss()
    samples = monitor.usage.samples
    assert MAX_SAMPLES // 2 <= len(samples) <= MAX_SAMPLES
    assert all(s.rss_mb > 0 and s.cpu_s > 0 for s in samples)
    assert monitor.usage.pss_peak_mb > 0  # Linux reports it
    os.close(read)
    os.close(write)


def test_memory_is_read_in_megabytes_as_the_columns_say() -> None:
    read, write = os.pipe()
    monitor = TreeMonitor(read, 0.0, 1.0, None)
    monitor._sample_rss()
    tree_bytes = sum(process.memory_info().rss for process in monitor.tree)
    # 10^6 bytes, not MiB: the two differ by 4.9%, far more than the RSS moves between reads.
    assert monitor.usage.rss_peak_mb == pytest.approx(tree_bytes / 1e6, rel=0.01)
    os.close(read)
    os.close(write)


@pytest.mark.parametrize("late_s", [0.0, 0.5])
def test_cpu_read_late_at_an_edge_is_not_measured(
    late_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    read, write = os.pipe()
    monitor = TreeMonitor(read, 0.0, 2.0, None)  # a 2 s window: 5% of it is 0.1 s
    usage = monitor._usage

    def starved() -> dict[int, tuple[float, int]]:  # the thread got the GIL only this late
        time.sleep(late_s)
        return usage()

    monkeypatch.setattr(monitor, "_usage", starved)
    monitor.start()
    os.write(write, struct.pack("d", time.perf_counter()))
    time.sleep(3.0)
    monitor.finished.set()
    monitor.join()
    assert math.isnan(monitor.usage.cpu_s) == (late_s > 0)
    os.close(read)
    os.close(write)


def test_a_process_that_ends_while_its_threads_are_read_counts_no_switches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:

        def gone(self: Path, pattern: str) -> Iterator[Path]:  # it exits between two reads
            raise FileNotFoundError(2, "No such file or directory", str(self))

        monkeypatch.setattr(Path, "glob", gone)
        assert _ctx_switches(psutil.Process(child.pid)) == 0
    finally:
        child.kill()
        child.wait()
