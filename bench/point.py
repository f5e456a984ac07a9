"""One point: a fresh process runs one model at one load level, under a hard timeout."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.environment import child_environment
from bench.scenarios import scenario_to_dict
from models.cluster import Engine
from models.workload import Calibration, Scenario


@dataclass(frozen=True)
class PointSpec:
    """What one point runs."""

    model: str
    scenario: Scenario
    calibration: Calibration
    concurrency: int
    repeat: int
    seed: int
    warmup_s: float
    duration_s: float
    max_jobs: int | None = None
    service: tuple[str, int] | None = None  # the latency service; None: the sleep transport
    service_pid: int | None = None  # its process, when the run started it
    rate: float | None = None  # open load: jobs per second offered; None: closed
    python: str | None = None  # the interpreter the point runs under; None: this one
    arrivals: str = "constant"  # open load: constant or poisson
    engine: Engine = field(default_factory=Engine)  # the dask and celery models' cluster or broker

    def with_service(self, address: tuple[str, int], pid: int | None) -> PointSpec:
        """This point, doing its I/O with the service at `address`."""
        return dataclasses.replace(self, service=address, service_pid=pid)

    def to_json(self) -> str:
        """The spec as the point process reads it."""
        data = {
            "model": self.model,
            "scenario": scenario_to_dict(self.scenario),
            "calibration": dataclasses.asdict(self.calibration),
            "concurrency": self.concurrency,
            "seed": self.seed,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "max_jobs": self.max_jobs,
            "service": self.service,
            "service_pid": self.service_pid,
            "rate": self.rate,
            "arrivals": self.arrivals,
            "engine": dataclasses.asdict(self.engine),
        }
        return json.dumps(data)


class PointFailed(Exception):
    """Raised by `measure_point` when the point process hangs, crashes or loses jobs."""


def measure_point(spec: PointSpec, timeout_s: float) -> dict[str, Any]:
    """Run `spec` in a fresh process and return its summary (see `bench.child.summarize`)."""
    env = child_environment()
    # A session of its own: Ctrl-C reaches the sweep, which then stops the whole tree itself.
    with subprocess.Popen(
        [spec.python or sys.executable, "-m", "bench.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as child:
        try:
            out, err = child.communicate(spec.to_json(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise PointFailed(
                f"timed out after {timeout_s:.0f} s (the point's hard timeout)"
            ) from None
        finally:
            _kill_tree(child.pid)
    if child.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else "no error output"
        raise PointFailed(f"point process exited with status {child.returncode}: {last}")
    summary: dict[str, Any] = json.loads(out)
    if summary["problems"]:
        raise PointFailed("; ".join(summary["problems"]))
    return summary


def _kill_tree(pid: int) -> None:
    """Kill a point process and every process it started, if any is left."""
    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(tree, timeout=5)
