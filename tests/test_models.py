"""Every model runs the same jobs, completely and correctly."""

from __future__ import annotations

import pytest

from models import MODELS
from models.load import Finished, Window, finished
from models.scenarios import SCENARIOS
from models.workload import Scenario, Verifier, draw_job
from tests.conftest import TINY_CALIBRATION

AVAILABLE = [name for name, model in MODELS.items() if model.available()]


def run_jobs(model: str, scenario: Scenario, concurrency: int, jobs: int) -> list[Finished]:
    window = Window(scenario, TINY_CALIBRATION, 7, concurrency, 0.0, 600.0, max_jobs=jobs)
    return finished(MODELS[model].runner()(window))


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("model", AVAILABLE)
def test_model_runs_every_job_once_with_the_right_checksum(
    model: str, concurrency: int, tiny: Scenario
) -> None:
    records = run_jobs(model, tiny, concurrency, 25)
    assert sorted(r.job_index for r in records) == list(range(25))
    verifier = Verifier()
    for r in records:
        assert r.checksum == verifier.expected(draw_job(tiny, TINY_CALIBRATION, 7, r.job_index))
        assert r.submitted_s <= r.started_s <= r.ended_s


@pytest.mark.parametrize("model", AVAILABLE)
def test_sync_style_queueing_is_only_in_sync(model: str, tiny: Scenario) -> None:
    records = sorted(run_jobs(model, tiny, 4, 12), key=lambda r: r.job_index)
    waited = [r for r in records if r.started_s - r.submitted_s > 0]
    if model == "sync":
        # Four users submit at once and one thread serves them: all but the first job waits.
        assert len(waited) >= 11
    else:
        assert waited == []


def test_all_models_return_identical_results(tiny: Scenario) -> None:
    checksums = {
        model: [r.checksum for r in sorted(run_jobs(model, tiny, 2, 10), key=lambda r: r.job_index)]
        for model in AVAILABLE
    }
    assert len({tuple(c) for c in checksums.values()}) == 1


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_builtin_scenarios_are_well_formed(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.name == name
    assert scenario.critical_path_ms() > 0
    assert all(stage.steps for stage in scenario.stages)


def test_uvloop_is_the_asyncio_module_on_another_loop() -> None:
    assert MODELS["uvloop"].module == MODELS["asyncio"].module
