"""Scenario files: a valid one runs; each kind of mistake is one line naming file and field."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from bench.cli import main
from bench.files.scenario_file import ScenarioFileError, load_scenario_file
from bench.files.scenarios import resolve_scenario
from models.workload import CpuStep, Dist, IoStep, Lock, scenario_from_dict, scenario_to_dict

VALID = """
name = "checkout"
description = "A small shop's checkout."

[[stages]]
name = "validate"
  [[stages.steps]]
  name = "validate cart"
  type = "cpu"
  kind = "native"
  cpu = { dist = "constant", mean_ms = 1.5 }

[[stages]]
name = "payment and stock"
  [[stages.steps]]
  name = "charge card"
  type = "io"
  wait = { dist = "lognormal", p50_ms = 30, p99_ms = 200 }
  request_bytes = 512
  response_bytes = 256
  fail_rate = 0.02
  timeout_ms = 500
  retries = 1
  backoff_ms = 50
  [[stages.steps]]
  name = "reserve stock"
  type = "io"
  wait = { dist = "uniform", low_ms = 5, high_ms = 15 }
  lock = { products = 50, skew = 1.2 }
  via = "service"

[[stages]]
name = "confirm"
  [[stages.steps]]
  name = "render receipt"
  type = "cpu"
  cpu = { dist = "constant", mean_ms = 2 }
  [[stages.steps]]
  name = "send e-mail"
  type = "io"
  wait = { dist = "exponential", mean_ms = 20 }
  background = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shop.toml"
    path.write_text(text)
    return path


def test_valid_file_loads_every_field(tmp_path: Path) -> None:
    scenario = load_scenario_file(write(tmp_path, VALID))
    assert scenario.name == "checkout"
    assert [stage.name for stage in scenario.stages] == ["validate", "payment and stock", "confirm"]
    assert scenario.stages[0].steps[0] == CpuStep("validate cart", Dist("constant", 1.5), "native")
    charge, stock = scenario.stages[1].steps
    assert charge == IoStep(
        "charge card",
        Dist("lognormal", p50_ms=30, p99_ms=200),
        512,
        256,
        fail_rate=0.02,
        retries=1,
        backoff_ms=50.0,
        timeout_ms=500.0,
    )
    assert stock == IoStep(
        "reserve stock", Dist("uniform", low_ms=5, high_ms=15), lock=Lock(50, 1.2), via="service"
    )
    render, mail = scenario.stages[2].steps
    assert render == CpuStep("render receipt", Dist("constant", 2.0))
    assert mail == IoStep("send e-mail", Dist("exponential", 20.0), background=True)
    assert scenario_from_dict(scenario_to_dict(scenario)) == scenario
    assert resolve_scenario(str(write(tmp_path, VALID))) == scenario


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "checkout"\n', "", r"shop.toml: name: missing \(required\)"),
        (
            "mean_ms = 1.5",
            "mean_ms = -1.5",
            r"stages\[0\].steps\[0\].cpu.mean_ms: -1.5 is negative",
        ),
        (
            'dist = "uniform"',
            'dist = "gaussian"',
            r"stages\[1\].steps\[1\].wait.dist: unknown distribution 'gaussian'; choose from: "
            r"constant, exponential, uniform, lognormal",
        ),
        (
            "p99_ms = 200",
            "p99_ms = 20",
            r"stages\[1\].steps\[0\].wait.p99_ms: 20 is not above p50_ms 30",
        ),
        (
            "response_bytes = 256",
            "response_bytes = 256\n  retry = 3",
            r"stages\[1\].steps\[0\].retry: unknown key; allowed here: name, type, wait, "
            r"request_bytes, response_bytes, fail_rate, retries, backoff_ms, timeout_ms, via, "
            r"lock, background",
        ),
        ("fail_rate = 0.02", "fail_rate = 1.5", r"steps\[0\].fail_rate: 1.5 is not a probability"),
        (
            "backoff_ms = 50",
            'backoff_ms = 50\n  via = "smtp"',
            r"steps\[0\].via: 'smtp' is not one of: http, service",
        ),
        ("timeout_ms = 500", "timeout_ms = 0", r"steps\[0\].timeout_ms: must be more than 0"),
        ("retries = 1", "retries = -1", r"steps\[0\].retries: -1 is not a whole number"),
        ("products = 50", "products = 0", r"steps\[1\].lock.products: must be 1 or more"),
        ("skew = 1.2", "skew = 1.2, hot = 3", r"steps\[1\].lock.hot: unknown key"),
        ("background = true", 'background = "yes"', r"background: must be true or false"),
        (
            '  name = "render receipt"\n  type = "cpu"\n',
            '  name = "render receipt"\n  background = true\n  type = "cpu"\n',
            r"stages\[2\].steps: every step is in the background",
        ),
        (
            'type = "io"\n  wait = { dist = "uniform"',
            'type = "disk"\n  wait = { dist = "uniform"',
            r"stages\[1\].steps\[1\].type: 'disk' is not a step type; use 'io' or 'cpu'",
        ),
        ("high_ms = 15", "high_ms = 1", r"wait.high_ms: 1 is below low_ms 5"),
        ('kind = "native"', 'kind = "rust"', r"steps\[0\].kind: 'rust' is not one of"),
        ("request_bytes = 512", "request_bytes = 1.5", r"request_bytes: 1.5 is not a whole number"),
        ('[[stages]]\nname = "validate"', '[[stages]\nname = "validate"', r"not valid TOML"),
    ],
)
def test_mistakes_name_the_file_field_and_problem(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ScenarioFileError, match=message) as caught:
        load_scenario_file(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_stage_needs_steps(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\n[[stages]]\nname = "empty"\nsteps = []\n')
    with pytest.raises(ScenarioFileError, match=r"stages\[0\].steps: must be a non-empty array"):
        load_scenario_file(path)


def test_cli_prints_one_line_for_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID.replace("p99_ms = 200", "p99_ms = 10"))
    assert main(["run", "--scenario", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"bench: error: {path}: stages[1].steps[0].wait.p99_ms: 10 is not")
    assert not (tmp_path / "out").exists()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFileError, match="cannot read it"):
        resolve_scenario(str(tmp_path / "nope.toml"))


def test_describe_prints_the_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(write(tmp_path, VALID))]) == 0
    out = capsys.readouterr().out
    assert "  2. payment and stock (steps at the same time)\n" in out
    assert "     - charge card: I/O wait, lognormal, p50 30 ms, p99 200 ms" in out


def test_distributions_draw_what_they_promise() -> None:
    rng = random.Random(1)
    lognormal = Dist("lognormal", p50_ms=30.0, p99_ms=200.0)
    draws = sorted(lognormal.draw_ms(rng) for _ in range(40_000))
    assert statistics.median(draws) == pytest.approx(30.0, rel=0.03)
    assert draws[int(0.99 * len(draws))] == pytest.approx(200.0, rel=0.06)
    assert statistics.fmean(draws) == pytest.approx(lognormal.expected_ms(), rel=0.03)
    uniform = Dist("uniform", low_ms=5.0, high_ms=15.0)
    draws = [uniform.draw_ms(rng) for _ in range(10_000)]
    assert min(draws) >= 5.0 and max(draws) <= 15.0
    assert statistics.fmean(draws) == pytest.approx(uniform.expected_ms(), rel=0.02)
