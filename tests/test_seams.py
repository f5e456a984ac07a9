"""The typed records between processes: a point's spec and result, a run's meta.json; each
survives its JSON form, and nothing a point process prints can corrupt its result."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from bench.analysing.steady import Goal
from bench.files.meta import Interpreter, MicroCost, RunConfig, RunMeta
from bench.measuring.monitor import Sample
from bench.measuring.point import PointResult, PointSpec, measure_point
from models.cluster import Engine
from models.db import Database
from tests.conftest import TINY, TINY_CALIBRATION, histogram_of

SPEC = PointSpec(
    "asyncio",
    TINY,
    TINY_CALIBRATION,
    concurrency=3,
    repeat=2,
    seed=7,
    warmup_s=0.0,
    duration_s=0.2,
    max_jobs=40,
    service=("127.0.0.1", 8765),
    service_pid=123,
    rate=50.0,
    arrivals="poisson",
    engine=Engine(broker="redis://127.0.0.1:6379/0", workers=2, threads=8),
)


def test_a_point_spec_survives_its_json() -> None:
    assert PointSpec.from_json(SPEC.to_json()) == SPEC
    budgeted = dataclasses.replace(SPEC, goal=Goal(368, 0.07, 1.0, 9.5), ramp_s=0.15)
    assert PointSpec.from_json(budgeted.to_json()) == budgeted
    closed = dataclasses.replace(SPEC, service=None, rate=None, max_jobs=None)
    assert PointSpec.from_json(closed.to_json()) == closed
    stocked = dataclasses.replace(
        SPEC, driver="asyncpg", database=Database("postgresql://u@h/d", "bench_1"), db_pool=4
    )
    assert PointSpec.from_json(stocked.to_json()) == stocked
    assert stocked.label == "asyncio+asyncpg"


def test_a_point_result_survives_its_json() -> None:
    result = PointResult(
        submitted=5, completed=4, jobs=4, ok=3, served=3, throughput_error=0.2, edge_n=0.5,
        failed=1,
        timeouts=0, errors=0, retries=2, elapsed_s=1.5, warmup_s=0.5, steady=False,
        drain_s=0.01, background_drain_s=math.nan, cpu_s=0.4,
        service_cpu_s=math.nan, ctx_switches=17, rss_peak_mb=30.5, pss_peak_mb=22.0, late_starts=1,
        unserved=0,
        histogram=histogram_of([1.0, 2.0, 3.0]), service_histogram=histogram_of([0.5]),
        queue_histogram=histogram_of([0.0]), error_examples=("OSError: x",), problems=("y",),
        samples=(Sample(0.2, 30.0, 21.0, 0.1, 12.0, 0.4), Sample(0.4, 30.5, 22.0, 0.2, 30.0, 1.0)),
        client_version="0.32.0", db_pool_wait_ms=0.25,
    )  # fmt: skip
    back = PointResult.from_json(result.to_json())
    assert math.isnan(back.background_drain_s) and math.isnan(back.service_cpu_s)
    assert dataclasses.replace(back, background_drain_s=0.0, service_cpu_s=0.0) == (
        dataclasses.replace(result, background_drain_s=0.0, service_cpu_s=0.0)
    )
    assert back.histogram.percentile(50) == pytest.approx(2.0, rel=0.002)


def test_run_meta_survives_its_json_and_reads_older_runs() -> None:
    meta = RunMeta(
        scenario=TINY,
        schema_version=3,
        created="2026-12-01T10:00:00+00:00",
        command=("python", "-m", "bench", "run"),
        suite_version="0.1.0",
        interpreters=(
            Interpreter("/usr/bin/python3", "3.11.7", "3.11.7", "cpython", False, True, "", ()),
        ),
        calibration=TINY_CALIBRATION,
        micro=(MicroCost("spawn", "asyncio", 4.2, "µs", "a task"),),
        config=RunConfig(load="open", rates=(10.0, 20.0), concurrency=(1, 8), cores=2),
        engines={"celery": {"workers": 2}},
    )
    assert RunMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    assert meta.costs() == {("spawn", "asyncio"): 4.2}
    # A schema-1 run wrote little more than its scenario; a newer one may add keys.
    old = RunMeta.from_dict({"schema_version": 1, "scenario": meta.to_dict()["scenario"]})
    assert (old.scenario, old.cores, old.micro, old.config.load) == (TINY, 1, None, "closed")
    newer = RunMeta.from_dict(meta.to_dict() | {"a_later_key": 1})
    assert newer == meta


def test_what_a_point_process_prints_cannot_corrupt_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Printed on stdout by every interpreter that starts, the point process included.
    (tmp_path / "sitecustomize.py").write_text("print('{not json', flush=True)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    spec = dataclasses.replace(SPEC, service=None, service_pid=None, rate=None, engine=Engine())
    measured = measure_point(spec, timeout_s=60)
    assert measured.submitted == 40  # max_jobs, every one of them
    assert measured.problems == ()
