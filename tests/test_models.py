"""Every model runs the same jobs, completely and correctly, over both transports: failures,
retries, timeouts, locks and background work included."""

from __future__ import annotations

import collections
import itertools
import math

import pytest

from models import ENGINE_MODELS, MODELS
from models.cluster import Engine
from models.load import STOCK_START, Finished, Log, Tally, Window
from models.scenarios import SCENARIOS
from models.workload import (
    OK,
    TIMED_OUT,
    CpuStep,
    Dist,
    IoStep,
    Lock,
    Scenario,
    Stage,
    Verifier,
    draw_job,
    foreground,
)
from tests.conftest import TINY_CALIBRATION, retries_needed, step_outcome

# The Python models (those in other languages have their own checks: tests/test_languages.py).
AVAILABLE = [name for name, m in MODELS.items() if m.available() and m.language is None]
SEED = 7

FLAKY = Scenario(
    "flaky",
    "A call that fails 40% of the time, retried once, beside plain CPU work.",
    (
        Stage(
            "call",
            (
                IoStep(
                    "call", Dist("constant", 1.0), 10, 20, fail_rate=0.4, retries=1, backoff_ms=1.0
                ),
                CpuStep("work", Dist("constant", 0.2), "python"),
            ),
        ),
    ),
)
SLOW = Scenario(
    "slow",
    "A call that answers after 2 s, cut at 5 ms and retried once: every job times out.",
    (Stage("call", (IoStep("call", Dist("constant", 2000.0), retries=1, timeout_ms=5.0),)),),
)
LOCKED = Scenario(
    "locked",
    "Every job updates the stock of one of two products, with a wait inside the lock.",
    (Stage("reserve", (IoStep("reserve", Dist("exponential", 0.5), lock=Lock(2, 1.0)),)),),
)
HANDED_OFF = Scenario(
    "handed off",
    "A quick answer while an e-mail goes out in the background.",
    (
        Stage(
            "answer",
            (
                CpuStep("answer", Dist("constant", 0.2), "native"),
                IoStep("e-mail", Dist("constant", 3.0), 100, 10, background=True),
            ),
        ),
    ),
)


@pytest.fixture(params=["sleep", "tcp"])
def transport(
    request: pytest.FixtureRequest, latency_service: tuple[str, int]
) -> tuple[str, int] | None:
    return latency_service if request.param == "tcp" else None


def run_jobs(
    model: str,
    scenario: Scenario,
    concurrency: int,
    jobs: int,
    service: tuple[str, int] | None = None,
    engine: Engine | None = None,
) -> Tally:
    """Run `jobs` jobs of `model` ("asyncio", or with an HTTP client: "asyncio+aiohttp")."""
    model, _, client = model.partition("+")
    window = Window(
        scenario,
        TINY_CALIBRATION,
        SEED,
        concurrency,
        0.0,
        600.0,
        max_jobs=jobs,
        service=service,
        client=client or None,
        engine=engine or Engine(),
        keep=True,
    )
    tally = MODELS[model].runner()(window)
    tally.fold(window, 0.0, edges=(0.0, math.inf))  # the jobs ended since the last fold
    return tally


def log(tally: Tally) -> Log:
    """Every job and list the model's tally folded."""
    assert tally.kept is not None
    return tally.kept


@pytest.fixture
def engine(model: str, request: pytest.FixtureRequest) -> Engine:
    """The shared cluster and broker for the dask and celery models (started only for them;
    celery-rabbitmq's is a RabbitMQ)."""
    if model in ENGINE_MODELS:
        shared: Engine = request.getfixturevalue(
            "rabbitmq_engine" if MODELS[model].broker == "rabbitmq" else "engines"
        )
        return shared
    return Engine()


def records(tally: Tally) -> list[Finished]:
    return sorted(log(tally).records, key=lambda r: r.job_index)


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("model", AVAILABLE)
def test_model_runs_every_job_once_with_the_right_checksum(
    model: str, engine: Engine, concurrency: int, tiny: Scenario, transport: tuple[str, int] | None
) -> None:
    tally = run_jobs(model, tiny, concurrency, 25, transport, engine=engine)
    assert [r.job_index for r in records(tally)] == list(range(25))
    verifier = Verifier()
    for r in records(tally):
        assert r.outcome == OK, tally.errors
        assert r.checksum == verifier.expected(draw_job(tiny, TINY_CALIBRATION, SEED, r.job_index))
        assert r.submitted_s <= r.started_s <= r.ended_s


@pytest.mark.parametrize("model", AVAILABLE)
def test_failures_and_retries_give_the_expected_counts(
    model: str, engine: Engine, transport: tuple[str, int] | None
) -> None:
    tally = run_jobs(model, FLAKY, 3, 40, transport, engine=engine)
    drawn = [draw_job(FLAKY, TINY_CALIBRATION, SEED, i).stages[0][0] for i in range(40)]
    assert [r.outcome for r in records(tally)] == [step_outcome(a) for a in drawn]
    assert collections.Counter(log(tally).retried) == collections.Counter(
        {i: retries_needed(a) for i, a in enumerate(drawn) if retries_needed(a)}
    )
    assert {step_outcome(a) for a in drawn} == {OK, 1}  # the draws hold both outcomes


@pytest.mark.parametrize("model", AVAILABLE)
def test_timeouts_are_honoured_and_counted(
    model: str, engine: Engine, transport: tuple[str, int] | None
) -> None:
    tally = run_jobs(model, SLOW, 3, 6, transport, engine=engine)
    assert [r.outcome for r in records(tally)] == [TIMED_OUT] * 6
    assert sorted(log(tally).retried) == list(range(6))  # one retry each
    # Two tries cut at 5 ms, not two 2 s waits: the runtime really gave up.
    assert all(r.ended_s - r.started_s < 1.0 for r in records(tally))


@pytest.mark.parametrize("model", AVAILABLE)
def test_stock_stays_exact_under_contention(
    model: str, engine: Engine, transport: tuple[str, int] | None
) -> None:
    tally = run_jobs(model, LOCKED, 8, 80, transport, engine=engine)
    assert all(r.outcome == OK for r in records(tally)), tally.errors
    assert len(log(tally).sold) == 80
    sold = collections.Counter(log(tally).sold)
    assert tally.stock == [STOCK_START - sold[p] for p in range(2)]
    assert sold[0] > sold[1] > 0  # Zipf: product 0 is the popular one


@pytest.mark.parametrize("model", AVAILABLE)
def test_every_background_step_completes(
    model: str, engine: Engine, transport: tuple[str, int] | None
) -> None:
    tally = run_jobs(model, HANDED_OFF, 3, 20, transport, engine=engine)
    assert sorted(log(tally).handed_off) == list(range(20))
    background = log(tally).background
    assert sorted(r.job_index for r in background) == list(range(20))
    assert all(r.outcome == OK and r.checksum == 10 for r in background)
    verifier = Verifier()
    for r in records(tally):  # the jobs' own results leave the background step out
        job = draw_job(HANDED_OFF, TINY_CALIBRATION, SEED, r.job_index)
        assert len(foreground(job.stages[0])) == 1
        assert r.checksum == verifier.expected(job)


@pytest.mark.parametrize("model", AVAILABLE)
def test_jobs_in_flight_never_exceed_what_the_model_serves_at_once(
    model: str, engine: Engine, tiny: Scenario
) -> None:
    done = records(run_jobs(model, tiny, 4, 12, engine=engine))
    peak = peak_in_flight(done)
    if MODELS[model].one_at_a_time:
        # Four users submit at once and one thread serves them: all but the first job waits.
        assert peak == 1
        assert sum(r.started_s > r.submitted_s for r in done) >= 11
    else:
        assert peak <= 4
    if MODELS[model].one_loop and not MODELS[model].one_at_a_time:
        # A task yields at its first await, before its job ends: the next user's job starts.
        assert peak >= 2


def peak_in_flight(done: list[Finished]) -> int:
    """The most jobs that were running at one instant (a job that ends as another starts
    does not overlap it)."""
    events = sorted([(r.started_s, 1) for r in done] + [(r.ended_s, -1) for r in done])
    return max(itertools.accumulate(step for _, step in events))


def test_peak_in_flight_counts_overlaps() -> None:
    def job(started_s: float, ended_s: float) -> Finished:
        return Finished(0, started_s, started_s, ended_s, 0, OK)

    assert peak_in_flight([job(0, 1), job(1, 2), job(2, 3)]) == 1
    assert peak_in_flight([job(0, 3), job(1, 2), job(1.5, 4)]) == 3


def test_all_models_return_identical_results(tiny: Scenario, engines: Engine) -> None:
    checksums = {
        model: [r.checksum for r in records(run_jobs(model, tiny, 2, 10, engine=engines))]
        for model in AVAILABLE
    }
    assert len({tuple(c) for c in checksums.values()}) == 1


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_builtin_scenarios_are_well_formed(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.name == name
    assert scenario.critical_path_ms() > 0
    assert all(foreground(stage) for stage in draw_job(scenario, TINY_CALIBRATION, 0, 0).stages)


def test_uvloop_is_the_asyncio_module_on_another_loop() -> None:
    assert MODELS["uvloop"].module == MODELS["asyncio"].module
