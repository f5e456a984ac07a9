"""The micro-benchmarks measure every cost on every runtime and report sane figures."""

from __future__ import annotations

import math

import pytest

from bench.errors import UsageError
from bench.files.meta import MicroCost
from bench.measuring.micro import event_loops, measure_micro

EXPECTED_RUNTIMES = {
    "spawn": {*event_loops(), "trio", "threads", "processes"},
    "switch": {*event_loops(), "trio", "threads"},
    "queue_round_trip": {"threads"},
    "executor_round_trip": {"threads"},
    "pipe_round_trip": {"processes"},
    "idle_memory": {*event_loops(), "trio", "threads"},
}
UNITS = {
    "spawn": "µs",
    "switch": "µs",
    "queue_round_trip": "µs",
    "executor_round_trip": "µs",
    "pipe_round_trip": "µs",
    "idle_memory": "KiB",
}


@pytest.fixture(scope="module")
def results() -> list[MicroCost]:
    """One tiny run, shared: the figures are noise at this scale, the shape is not."""
    return measure_micro(scale=0.01)


def test_every_cost_is_measured_on_every_runtime_once(results: list[MicroCost]) -> None:
    measured = [(result.name, result.runtime) for result in results]
    assert sorted(measured) == sorted(
        (name, runtime) for name, runtimes in EXPECTED_RUNTIMES.items() for runtime in runtimes
    )


def test_uvloop_is_measured_where_it_is_installed(results: list[MicroCost]) -> None:
    pytest.importorskip("uvloop")
    assert {r.name for r in results if r.runtime == "uvloop"} == {
        "spawn",
        "switch",
        "idle_memory",
    }


def test_figures_are_positive_and_finite_in_known_units(results: list[MicroCost]) -> None:
    for result in results:
        assert math.isfinite(result.value) and result.value > 0, result
        assert result.unit == UNITS[result.name], result
        assert result.note, result


def test_a_bad_scale_is_refused() -> None:
    for scale in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(UsageError, match="scale must be a positive number"):
            measure_micro(scale)
