"""Memory over each point's window: how the process tree's RSS moved while the work in flight
stayed what it was, from the samples the point's monitor kept (samples.csv)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.analysing.thresholds import FLAT_IN_FLIGHT, GROWTH_MB, GROWTH_SHARE, LONG_WINDOW_S

_KEY = ["model", "interpreter", "concurrency", "repeat"]


@dataclass(frozen=True)
class Drift:
    """A long point's memory, first quarter of its window against its last."""

    model: str
    concurrency: int
    window_s: float
    first_mb: float  # median RSS over the first quarter, MB
    last_mb: float
    in_flight: tuple[float, float]  # jobs in flight over each quarter (Little: NaN if unknown)

    @property
    def rose(self) -> bool:
        """RSS rose past both thresholds over the window."""
        more = self.last_mb - self.first_mb
        return more > GROWTH_MB and more > GROWTH_SHARE * self.first_mb

    @property
    def grew(self) -> bool:
        """RSS rose while the jobs in flight held (or are not known): not the work's memory."""
        first, last = self.in_flight
        return self.rose and (math.isnan(first) or abs(last - first) <= FLAT_IN_FLIGHT * first)


def window_samples(samples: pd.DataFrame, point: pd.Series) -> pd.DataFrame:
    """The samples of one point (a row of points.csv) that fall inside its measured window."""
    same = (samples[_KEY] == point[_KEY].to_numpy()).all(axis=1)
    opens_s = float(point["warmup_s"])
    at = samples["at_s"]
    inside = (at >= opens_s) & (at <= opens_s + float(point["elapsed_s"]))
    return samples[same & inside]


def drifts(samples: pd.DataFrame, points: pd.DataFrame) -> list[Drift]:
    """Every ok closed or open point with a window of at least LONG_WINDOW_S and samples across
    it."""
    found = []
    for _, point in points[points["status"] == "ok"].iterrows():
        if not float(point["elapsed_s"]) >= LONG_WINDOW_S:
            continue
        inside = window_samples(samples, point)
        quarter = len(inside) // 4
        if quarter < 2:
            continue
        first, last = inside.iloc[:quarter], inside.iloc[-quarter:]
        found.append(
            Drift(
                str(point["model"]),
                int(point["concurrency"]),
                float(point["elapsed_s"]),
                float(first["rss_mb"].median()),
                float(last["rss_mb"].median()),
                (_in_flight(first), _in_flight(last)),
            )
        )
    return found


def _in_flight(part: pd.DataFrame) -> float:
    """Jobs in flight over a run of samples: the slope of the summed latencies (Little)."""
    span_s = float(part["at_s"].iloc[-1] - part["at_s"].iloc[0])
    if span_s <= 0:
        return math.nan
    return float(part["latency_s"].iloc[-1] - part["latency_s"].iloc[0]) / span_s
