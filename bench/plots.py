"""`bench.plots`: the report's figures, for notebooks and scripts (from `bench.presenting`)."""

from __future__ import annotations

from bench.presenting.plots import (
    SPECTRUM_PERCENTILES,
    default_spectrum_level,
    efficiency,
    latency,
    long_points,
    memory,
    model_colour,
    open_load,
    resources,
    scalability,
    spectrum,
    throughput,
)

__all__ = [
    "SPECTRUM_PERCENTILES",
    "default_spectrum_level",
    "efficiency",
    "latency",
    "long_points",
    "memory",
    "model_colour",
    "open_load",
    "resources",
    "scalability",
    "spectrum",
    "throughput",
]
