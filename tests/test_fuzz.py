"""Fuzzed input where it enters: scenario files and the CLI's value checks either accept a value
or raise the one-line `BenchError`; never another exception."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import api, cli
from bench.errors import BenchError
from bench.files.scenario_file import ScenarioFileError, load_scenario_file
from bench.files.scenarios import describe_scenario

SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
)
KEYS = ["name", "type", "kind", "dist", "mean_ms", "p50_ms", "p99_ms", "low_ms", "high_ms",
        "fail_rate", "retries", "timeout_ms", "backoff_ms", "request_bytes", "products", "skew",
        "background", "bogus"]  # fmt: skip
LEAVES = st.dictionaries(st.sampled_from(KEYS), st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))


def inline(value: Any) -> str:
    """A TOML value: scalars, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {inline(v)}" for k, v in value.items()) + "}"


def with_extra_keys(step: dict[str, Any]) -> dict[str, Any]:
    """A step with its `extra` table's keys (any of the format's, or unknown ones) in it."""
    extra = step.pop("extra", {})
    return {**step, **extra}


STEPS = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=8), "type": st.sampled_from(["io", "cpu", "x"])},
        optional={
            "wait": LEAVES,
            "cpu": LEAVES,
            "lock": LEAVES,
            "extra": LEAVES,
        },
    ).map(with_extra_keys),
    max_size=3,
)
SCENARIOS = st.fixed_dictionaries(
    {"name": st.text(max_size=10)},
    optional={"description": SCALARS, "stages": st.lists(STEPS, max_size=3)},
)


def toml(scenario: dict[str, Any]) -> str:
    lines = [f"{k} = {inline(v)}" for k, v in scenario.items() if k != "stages"]
    for i, steps in enumerate(scenario.get("stages", [])):
        lines += ["[[stages]]", f'name = "stage {i}"']
        for step in steps:
            lines.append("[[stages.steps]]")
            lines += [f"{json.dumps(k)} = {inline(v)}" for k, v in step.items()]
    return "\n".join(lines) + "\n"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=SCENARIOS)
def test_a_scenario_file_loads_or_is_one_line(scenario: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.toml"
    path.write_text(toml(scenario))
    try:
        loaded = load_scenario_file(path)
    except ScenarioFileError as error:
        assert "\n" not in str(error)
        return
    # What loads must be describable and have a bound: the suite will show and run it.
    assert describe_scenario(loaded)
    assert loaded.critical_path_ms() >= 0 and 0 <= loaded.success_rate() <= 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_every_list_flag_parses_or_is_one_line(text: str) -> None:
    for check in (
        lambda: api.check_concurrency(cli._parse_levels(text)),
        lambda: api.check_rates("open", cli._parse_rates(text), "constant"),
        lambda: api.check_labels(cli._parse_names("--models", text), ("tcp", "http")),
        lambda: cli._parse_min_effect(text),
        lambda: api.check_transport("tcp", text),
    ):
        try:
            check()
        except BenchError as error:
            assert "\n" not in str(error)


@pytest.mark.parametrize("flag", ["--duration", "--warmup"])
@settings(max_examples=100, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_every_duration_is_accepted_or_one_line(flag: str, value: float) -> None:
    try:
        api._check_seconds(flag, value, allow_zero=flag == "--warmup")
    except BenchError as error:
        assert "\n" not in str(error)
