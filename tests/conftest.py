"""Shared fixtures: a tiny scenario and a fixed calibration, so tests never depend on speed."""

from __future__ import annotations

import pytest

from bench.stats import Histogram
from models.workload import Calibration, CpuStep, Dist, IoStep, Scenario, Stage

# Fixed, small: a "millisecond" of CPU is a few hundred kernel steps, whatever the machine.
TINY_CALIBRATION = Calibration(python_iterations_per_ms=500.0, native_blocks_per_ms=4.0)

TINY = Scenario(
    "tiny",
    "Sub-millisecond steps of every kind, with a stage of three parallel steps.",
    (
        Stage("check", (CpuStep("check", Dist("constant", 0.5), "python"),)),
        Stage(
            "fan out",
            (
                IoStep("call a", Dist("exponential", 0.2), 100, 10),
                IoStep("call b", Dist("constant", 0.0), 0, 20),
                CpuStep("hash", Dist("exponential", 0.5), "native"),
            ),
        ),
    ),
)


def histogram_of(values_ms: list[float]) -> Histogram:
    """A histogram holding `values_ms`."""
    histogram = Histogram()
    for value in values_ms:
        histogram.record(value)
    return histogram


@pytest.fixture
def tiny() -> Scenario:
    """The tiny scenario."""
    return TINY
