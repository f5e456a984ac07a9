"""Scenario lookup and the scenario's plain-data form (for meta.json and the point process)."""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.errors import UnknownNameError
from models.scenarios import SCENARIOS
from models.workload import CpuStep, Dist, IoStep, Scenario, Stage


def resolve_scenario(name: str) -> Scenario:
    """The built-in scenario called `name`."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}"
        ) from None


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """A JSON-ready form; each step says whether it is `io` or `cpu`."""
    data = dataclasses.asdict(scenario)
    for stage, stage_data in zip(scenario.stages, data["stages"], strict=True):
        for step, step_data in zip(stage.steps, stage_data["steps"], strict=True):
            step_data["type"] = "io" if isinstance(step, IoStep) else "cpu"
    return data


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """The inverse of `scenario_to_dict`."""
    return Scenario(
        data["name"],
        data["description"],
        tuple(
            Stage(stage["name"], tuple(_step_from_dict(step) for step in stage["steps"]))
            for stage in data["stages"]
        ),
    )


def _step_from_dict(data: dict[str, Any]) -> IoStep | CpuStep:
    if data["type"] == "io":
        return IoStep(
            data["name"], Dist(**data["wait"]), data["request_bytes"], data["response_bytes"]
        )
    return CpuStep(data["name"], Dist(**data["cpu"]), data["kind"])
