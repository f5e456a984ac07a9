"""Models in other languages (go, node, java) run the very jobs the Python models run, and pass
the same checks: every job once, checksums equal to Python's for the same seed, the stock
invariant, failures, retries and timeouts counted as drawn, background work drained, open load;
and through the harness, a point as any other, or skipped with the command that installs its
toolchain."""

from __future__ import annotations

import collections
import math
import shutil
from pathlib import Path

import pytest

from bench import api
from models import MODELS, foreign
from models.load import STOCK_START, Tally, Window, arrivals
from models.scenarios import SCENARIOS
from models.workload import OK, Scenario, Verifier, draw_job
from tests.conftest import TINY, TINY_CALIBRATION, retries_needed, step_outcome
from tests.test_models import FLAKY, HANDED_OFF, LOCKED, SEED, SLOW

LANGUAGES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            bool(missing := foreign.LANGUAGES[name].missing()), reason=missing or "installed"
        ),
    )
    for name in foreign.LANGUAGES
]


def run_foreign(
    language: str,
    scenario: Scenario,
    concurrency: int,
    jobs: int,
    service: tuple[str, int] | None = None,
    rate: float | None = None,
) -> Tally:
    window = Window(
        scenario, TINY_CALIBRATION, SEED, concurrency, 0.0, 600.0, max_jobs=jobs,
        service=service,
        arrivals=None if rate is None else arrivals(rate, jobs / rate, "constant", SEED),
    )  # fmt: skip
    return foreign.run(window, language)


def check_jobs(tally: Tally, scenario: Scenario, jobs: int) -> list[int]:
    """Every job ran once, each accepted as Python's verifier accepts a Python model's; the
    outcomes, in index order."""
    records = sorted(tally.records, key=lambda r: r[0].index)
    assert [r[0].index for r in records] == list(range(jobs)), tally.errors
    verifier = Verifier()
    for job, submitted_s, started_s, ended_s, checksum, outcome in records:
        assert verifier.accepts(job, outcome, checksum), (job.index, outcome, checksum)
        assert submitted_s <= started_s <= ended_s
    assert sorted(tally.discarded)[:1] == [jobs] or jobs == 0
    return [r[5] for r in records]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("concurrency", [1, 8])
def test_every_job_once_with_pythons_checksums(
    language: str, concurrency: int, latency_service: tuple[str, int]
) -> None:
    for scenario, service in ((TINY, latency_service), (SCENARIOS["ecommerce"], latency_service),
                              (SCENARIOS["cpu-bound"], None), (HANDED_OFF, None)):  # fmt: skip
        tally = run_foreign(language, scenario, concurrency, 40, service)
        outcomes = check_jobs(tally, scenario, 40)
        if scenario is not SCENARIOS["ecommerce"]:  # its gateway fails and times out as drawn
            assert outcomes == [OK] * 40, scenario.name
        # Background work drained, each step with its checksum; the stock exact.
        assert len(tally.background) == len(tally.handed_off)
        verifier = Verifier()
        assert all(
            verifier.accepts_step(a, outcome, c) for a, _, _, _, c, outcome in tally.background
        )
        sold = collections.Counter(tally.sold)
        assert tally.stock == [STOCK_START - sold[p] for p in range(scenario.products())]


@pytest.mark.parametrize("language", LANGUAGES)
def test_failures_and_retries_are_counted_as_drawn(
    language: str, latency_service: tuple[str, int]
) -> None:
    tally = run_foreign(language, FLAKY, 3, 40, latency_service)
    drawn = [draw_job(FLAKY, TINY_CALIBRATION, SEED, i).stages[0][0] for i in range(40)]
    assert check_jobs(tally, FLAKY, 40) == [step_outcome(a) for a in drawn]
    assert collections.Counter(tally.retried) == collections.Counter(
        {a.job: retries_needed(a) for a in drawn if retries_needed(a)}
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("transport", ["sleep", "tcp"])
def test_timeouts_cut_each_try_and_are_retried(
    language: str, transport: str, latency_service: tuple[str, int]
) -> None:
    service = latency_service if transport == "tcp" else None
    tally = run_foreign(language, SLOW, 2, 6, service)
    assert check_jobs(tally, SLOW, 6) == [2] * 6  # every job timed out
    assert collections.Counter(tally.retried) == {i: 1 for i in range(6)}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_stock_is_exact_under_its_locks(
    language: str, latency_service: tuple[str, int]
) -> None:
    tally = run_foreign(language, LOCKED, 8, 80, latency_service)
    assert check_jobs(tally, LOCKED, 80) == [OK] * 80
    assert len(tally.sold) == 80
    sold = collections.Counter(tally.sold)
    assert tally.stock == [STOCK_START - sold[0], STOCK_START - sold[1]]


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_open_load_runs_each_job_when_due(
    language: str, latency_service: tuple[str, int]
) -> None:
    tally = run_foreign(language, TINY, 4, 50, latency_service, rate=500.0)
    check_jobs(tally, TINY, 50)
    started_s = min(r[1] for r in tally.records)
    for job, submitted_s, *_ in tally.records:  # submitted when due, on the program's clock
        assert math.isclose(submitted_s - started_s, job.index / 500.0, abs_tol=1e-6)
    assert set(tally.taken_s) == set(range(50))


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_language_point_runs_through_the_harness(language: str, tmp_path: Path) -> None:
    results = api.run(
        "ecommerce", [language, "asyncio"], [4], warmup_s=0.3, duration_s=0.7, repeat=1,
        out=tmp_path,
    )  # fmt: skip
    (point,) = results.points[results.points["model"] == language].to_dict("records")
    assert point["status"] == "ok", point["reason"]
    assert point["jobs"] > 0 and point["cpu_s"] > 0 and point["rss_peak_mb"] > 0


def test_a_missing_toolchain_skips_its_points_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    results = api.run(
        "io-bound", ["go", "node", "java", "asyncio"], [2], warmup_s=0.0, duration_s=0.2,
        repeat=1, out=tmp_path,
    )  # fmt: skip
    points = {p["model"]: p for p in results.points.to_dict("records")}
    assert points["asyncio"]["status"] == "ok"
    for language in ("go", "node", "java"):
        assert points[language]["status"] == "skipped"
        assert foreign.LANGUAGES[language].install in str(points[language]["reason"])
    assert not any(MODELS[name].default for name in ("go", "node", "java"))
