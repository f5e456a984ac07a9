"""Scenario lookup (a built-in name or a TOML file), its description, and its plain-data form."""

from __future__ import annotations

import math
from pathlib import Path

from bench.errors import UnknownNameError
from models.scenarios import SCENARIOS
from models.workload import CpuStep, Dist, IoStep, Scenario


def resolve_scenario(name: str) -> Scenario:
    """The built-in scenario called `name`, or the scenario in the TOML file `name`."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    if name.endswith(".toml") or Path(name).is_file():
        from bench.files.scenario_file import load_scenario_file  # only the parent reads files

        return load_scenario_file(Path(name))
    raise UnknownNameError(
        f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}, or give a .toml file"
    )


def describe_dist(dist: Dist) -> str:
    """A distribution in words: `exponential, mean 40 ms`."""
    if dist.kind == "constant":
        return f"constant {dist.mean_ms:g} ms"
    if dist.kind == "exponential":
        return f"exponential, mean {dist.mean_ms:g} ms"
    if dist.kind == "uniform":
        return f"uniform {dist.low_ms:g} to {dist.high_ms:g} ms"
    return f"lognormal, p50 {dist.p50_ms:g} ms, p99 {dist.p99_ms:g} ms"


def describe_step(step: IoStep | CpuStep) -> str:
    """One step in words, with what can go wrong in it."""
    if isinstance(step, IoStep):
        text = (
            f"{step.name}: I/O wait, {describe_dist(step.wait)}, "
            f"{step.request_bytes} B out, {step.response_bytes} B back"
        )
        if step.fail_rate:
            text += f"; fails {step.fail_rate:.0%}"
        if step.timeout_ms is not None:
            text += f"; timeout {step.timeout_ms:g} ms"
        if step.retries:
            retries = "1 retry" if step.retries == 1 else f"{step.retries} retries"
            text += f"; {retries}, backoff {step.backoff_ms:g} ms doubling"
        if step.via == "service":
            text += "; over the wire protocol, not HTTP"
    else:
        text = f"{step.name}: CPU ({step.kind}), {describe_dist(step.cpu)}"
    if step.lock is not None:
        text += (
            f"; under the lock of one of {step.lock.products} products "
            f"(Zipf {step.lock.skew:g}: the hottest in {step.lock.hottest_share():.0%} of jobs)"
        )
    if step.background:
        text += "; in the background (the user does not wait)"
    return text


def describe_scenario(scenario: Scenario) -> list[str]:
    """The scenario as a tree of stages and steps, one line each."""
    lines = [f"{scenario.name}: {scenario.description}"]
    for i, stage in enumerate(scenario.stages, start=1):
        together = " (steps at the same time)" if len(stage.steps) > 1 else ""
        lines.append(f"  {i}. {stage.name}{together}")
        lines.extend(f"     - {describe_step(step)}" for step in stage.steps)
    lines.append(
        f"  critical path {scenario.critical_path_ms():.1f} ms, "
        f"CPU {scenario.cpu_ms():.1f} ms per job (means, retries included); "
        f"{scenario.success_rate():.2%} of jobs can succeed"
    )
    if scenario.lock_limit_per_s() < math.inf:
        lines.append(
            f"  the hottest lock lets at most {scenario.lock_limit_per_s():.0f} jobs/s through"
        )
    return lines
