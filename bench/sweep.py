"""The closed-loop sweep: plan the points, run each in a fresh process, hand each result on."""

from __future__ import annotations

import math
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.point import PointFailed, PointSpec, measure_point
from bench.results import Point
from bench.service import Service
from bench.stats import Histogram, bound_per_s
from bench.summary import point_warnings
from models import MODELS
from models.workload import Calibration, Scenario

# Grace on top of warm-up and measured window for starting the runtime and draining jobs.
_TIMEOUT_GRACE_S = 60.0
# A point where more jobs than this share end in an error (not a drawn failure) has failed.
_ERROR_SHARE = 0.01
# File descriptors a process needs besides its connections: the interpreter's own, pipes, logs.
_SPARE_FDS = 64


@dataclass(frozen=True)
class SweepConfig:
    """Everything that decides which points run and how."""

    scenario: Scenario
    models: tuple[str, ...]
    concurrency: tuple[int, ...]
    warmup_s: float
    duration_s: float
    seed: int
    max_processes: int
    max_threads: int
    repeat: int = 1
    transport: str = "sleep"
    local_service: bool = True  # with tcp: the run starts its own service (else --service)
    timeout_s: float | None = None  # per point; default: 2 x (warm-up + window) + grace

    def point_timeout_s(self) -> float:
        """The hard timeout of each point."""
        if self.timeout_s is not None:
            return self.timeout_s
        return 2 * (self.warmup_s + self.duration_s) + _TIMEOUT_GRACE_S


@dataclass(frozen=True)
class Planned:
    """A point to run, or to record as skipped with `skip_reason`."""

    spec: PointSpec
    skip_reason: str = ""


def fd_shortfall(config: SweepConfig, model: str, level: int, fd_limit: int) -> str:
    """Why `level` cannot run over tcp within `fd_limit` descriptors per process ("" if it can)."""
    if config.transport != "tcp":
        return ""
    scenario = config.scenario
    per_job = scenario.max_io_width() + scenario.background_steps()
    total = level * per_job + _SPARE_FDS  # the service holds the other end of every connection
    client = per_job + _SPARE_FDS if MODELS[model].cap == "processes" else total
    needed = max(client, total if config.local_service else 0)
    if needed <= fd_limit:
        return ""
    return (
        f"N={level} needs about {needed} open files (connections to the latency service) "
        f"but the limit is {fd_limit}; raise it (`ulimit -n {needed}` in this shell, "
        "or nofile in /etc/security/limits.conf) and run again"
    )


def plan_points(config: SweepConfig, calibration: Calibration) -> list[Planned]:
    """Every model at every level, round after round; points above a model's cap are skipped.

    Rounds are interleaved (round 1 of every model, then round 2, ...) so that drift on a shared
    machine spreads over all models. A skipped point is recorded once, in round 1.
    """
    caps = {"threads": config.max_threads, "processes": config.max_processes}
    flags = {"threads": "--max-threads", "processes": "--max-processes"}
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # points raise theirs to the hard
    planned = []
    for repeat in range(1, config.repeat + 1):
        for model in config.models:
            info = MODELS[model]
            for level in config.concurrency:
                reason = ""
                if not info.available():
                    reason = f"{info.requires} is not installed on this platform"
                elif info.cap is not None and level > caps[info.cap]:
                    reason = (
                        f"N={level} is above the {info.cap} cap of {caps[info.cap]}; "
                        f"raise it with {flags[info.cap]}"
                    )
                else:
                    reason = fd_shortfall(config, model, level, fd_limit)
                if reason and repeat > 1:
                    continue
                spec = PointSpec(
                    model,
                    config.scenario,
                    calibration,
                    level,
                    repeat,
                    config.seed,
                    config.warmup_s,
                    config.duration_s,
                )
                planned.append(Planned(spec, reason))
    return planned


def run_sweep(
    config: SweepConfig,
    calibration: Calibration,
    cores: int,
    on_start: Callable[[int, int, PointSpec], None] = lambda i, n, spec: None,
    on_point: Callable[[Point], None] = lambda point: None,
    service: Service | None = None,
) -> list[Point]:
    """Run every planned point in turn; a failed point is recorded and the sweep goes on.

    With the tcp transport, every point does its I/O with `service`.
    """
    planned = plan_points(config, calibration)
    points = []
    for i, item in enumerate(planned):
        on_start(i, len(planned), item.spec)
        if item.skip_reason:
            point = _unmeasured(config, item.spec, cores, "skipped", item.skip_reason)
        else:
            point = _run_point(config, item.spec, cores, service)
        points.append(point)
        on_point(point)
    return points


def _run_point(config: SweepConfig, spec: PointSpec, cores: int, service: Service | None) -> Point:
    try:
        if service is not None:
            service.ensure()
            spec = spec.with_service(service.address, service.pid)
        summary = measure_point(spec, config.point_timeout_s())
    except (PointFailed, BenchError) as exc:
        died = service.died() if service is not None else ""
        return _unmeasured(config, spec, cores, "failed", died or str(exc))
    died = service.died() if service is not None else ""
    return _measured(config, spec, cores, summary, died)


def _base_row(config: SweepConfig, spec: PointSpec, cores: int) -> dict[str, Any]:
    return {
        "model": spec.model,
        "load": "closed",
        "concurrency": spec.concurrency,
        "rate": None,
        "repeat": spec.repeat,
        "scenario": config.scenario.name,
        "transport": config.transport,
        "bound": bound_per_s(config.scenario, spec.concurrency, cores),
    }


def _unmeasured(
    config: SweepConfig, spec: PointSpec, cores: int, status: str, reason: str
) -> Point:
    row = _base_row(config, spec, cores) | {"status": status, "reason": reason}
    return Point(row, Histogram())


def _measured(
    config: SweepConfig, spec: PointSpec, cores: int, summary: dict[str, Any], died: str
) -> Point:
    row = _base_row(config, spec, cores)
    latency = Histogram.from_dict(summary["histogram"])
    elapsed_s = summary["elapsed_s"]
    per_s = 1.0 / elapsed_s if elapsed_s > 0 else 0.0
    throughput = summary["ok"] * per_s
    status, reason = "ok", ""
    if died:
        status, reason = "failed", died
    elif summary["errors"] > _ERROR_SHARE * summary["jobs"]:
        status = "failed"
        reason = f"{summary['errors']} of {summary['jobs']} jobs ended in an error" + "".join(
            f"; {example}" for example in summary["error_examples"][:1]
        )
    elif latency.total == 0:
        status = "failed"
        reason = "no job finished inside the measured window; lengthen --duration"
    row |= {
        "status": status,
        "reason": reason,
        "submitted": summary["submitted"],
        "jobs": summary["jobs"],
        "errors": summary["errors"],
        "failed": summary["failed"],
        "timeouts": summary["timeouts"],
        "retries": summary["retries"],
        "elapsed_s": elapsed_s,
        "throughput": throughput,
        "latency_p50_ms": latency.percentile(50),
        "latency_p90_ms": latency.percentile(90),
        "latency_p99_ms": latency.percentile(99),
        "latency_p999_ms": latency.percentile(99.9),
        "latency_max_ms": latency.max_ms if latency.total else math.nan,
        "latency_mean_ms": latency.mean_ms,
        "cpu_s": summary["cpu_s"],
        "cpu_util": summary["cpu_s"] / elapsed_s if elapsed_s > 0 else math.nan,
        "rss_peak_mb": summary["rss_peak_mb"],
        "ctx_switches": summary["ctx_switches"],
        "drain_s": summary["drain_s"],
        "background_drain_s": summary["background_drain_s"],
        "service_cpu_util": summary["service_cpu_s"] * per_s,
        # Every job that ended was in flight, whatever its outcome.
        "littles_n": latency.total * per_s * latency.mean_ms / 1000.0,
        "efficiency": throughput / row["bound"],
    }
    row["warning"] = "; ".join(point_warnings(row))
    return Point(row, latency)
