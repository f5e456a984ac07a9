"""The closed load: which job a user runs next, and when a point's windows open and close."""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, replace

from models.workload import Calibration, Job, Scenario, draw_job


@dataclass(frozen=True, slots=True)
class Record:
    """One finished job: when it was submitted, started and ended (perf_counter seconds)."""

    index: int
    submitted_s: float
    started_s: float
    ended_s: float
    checksum: int


@dataclass(frozen=True)
class Window:
    """N users keep a job each in flight from `start()` until the measured window closes.

    `perf_counter` is CLOCK_MONOTONIC on Linux, one clock for every process of the point.
    """

    scenario: Scenario
    calibration: Calibration
    seed: int
    concurrency: int
    warmup_s: float
    duration_s: float
    max_jobs: int | None = None  # stop after this many jobs too (tests want exact counts)
    announce_fd: int | None = None  # start() writes its time here, for the point's monitor
    started_s: float = 0.0

    def start(self, at_s: float | None = None) -> Window:
        """This window, starting at `at_s` (given by a process that shares a start), or now."""
        if at_s is not None:
            return replace(self, started_s=at_s)
        started = replace(self, started_s=time.perf_counter())
        if self.announce_fd is not None:
            os.write(self.announce_fd, struct.pack("d", started.started_s))
        return started

    @property
    def measure_s(self) -> float:
        """When the measured window opens."""
        return self.started_s + self.warmup_s

    @property
    def stop_s(self) -> float:
        """When the measured window closes and users stop taking jobs."""
        return self.measure_s + self.duration_s

    def job(self, index: int) -> Job | None:
        """Job `index`, or None once the window has closed."""
        if self.max_jobs is not None and index >= self.max_jobs:
            return None
        if time.perf_counter() >= self.stop_s:
            return None
        return draw_job(self.scenario, self.calibration, self.seed, index)
