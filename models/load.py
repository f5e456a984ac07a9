"""The closed load: which job a user runs next, and when a point's windows open and close."""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, replace
from typing import NamedTuple

from models.workload import Calibration, Job, Scenario, draw_job

# One finished job: (job index, submitted_s, started_s, ended_s, checksum), in perf_counter seconds.
# A plain tuple of numbers, not a dataclass: the garbage collector stops tracking such tuples,
# so the 100,000 records of a busy point do not slow down the collections the model's runtime
# triggers (measured, trio at N=1000 on io-bound: full collections took 0.58 s of a 7 s point
# with dataclass records, 0.44 s with tuples; throughput rose about 6%).
Record = tuple[int, float, float, float, int]


class Finished(NamedTuple):
    """A record with names, for reading records once the point is over."""

    job_index: int
    submitted_s: float
    started_s: float
    ended_s: float
    checksum: int


def finished(records: list[Record]) -> list[Finished]:
    """The records with names."""
    return [Finished._make(r) for r in records]


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

    def user_start_s(self, user: int) -> float:
        """When user `user` (0 to N-1) submits its first job.

        Users join one by one across the warm-up, as a load test ramps up: N jobs started at
        the same instant would otherwise end in bunches, and a short window would catch a
        bunch or a gap instead of the steady state.
        """
        return self.started_s + self.warmup_s * user / self.concurrency

    def job(self, index: int) -> Job | None:
        """Job `index`, or None once the window has closed."""
        if self.max_jobs is not None and index >= self.max_jobs:
            return None
        if time.perf_counter() >= self.stop_s:
            return None
        return draw_job(self.scenario, self.calibration, self.seed, index)
