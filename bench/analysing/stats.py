"""Statistics: the analytical bound (the latency histogram is models.recording's)."""

from __future__ import annotations

from models.workload import Scenario


def bound_per_s(scenario: Scenario, concurrency: int, cores: int) -> float:
    """What any model could reach, in successful jobs per second:
    min(N / L_crit, cores / D_cpu, the hottest lock's limit) x the share of jobs that succeed."""
    limits = [scenario.lock_limit_per_s()]
    if scenario.critical_path_ms() > 0:
        limits.append(concurrency / (scenario.critical_path_ms() / 1000.0))
    if scenario.cpu_ms() > 0:
        limits.append(cores / (scenario.cpu_ms() / 1000.0))
    return min(limits) * scenario.success_rate()
