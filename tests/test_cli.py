"""The command line as a user meets it: bad input, `list`, and a whole quick run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.cli import main
from bench.files.results import load_results
from bench.files.run_dir import POINT_COLUMNS, SCHEMA_VERSION
from bench.version import __version__
from models import MODELS, pairs

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--models", "troi"], r"unknown model 'troi'; choose from: sync, threads"),
        (["run", "--models", ","], r"--models ',' names nothing"),
        (["run", "--concurrency", "1,x"], r"'x' is not a whole number; give a comma-separated"),
        (["run", "--concurrency", "1,,4"], r"'' is not a whole number"),
        (["run", "--concurrency", "0"], r"concurrency 0 is not positive"),
        (["run", "--concurrency", "-5"], r"concurrency -5 is not positive"),
        (["run", "--scenario", "shop"], r"unknown scenario 'shop'; choose from: ecommerce"),
        (["run", "--duration", "0"], r"--duration 0.0 is not a valid duration"),
        (["run", "--warmup", "-1"], r"--warmup -1.0 is not a valid duration"),
        (["run", "--max-processes", "0"], r"--max-processes 0 is not positive"),
        (["run", "--duration", "abc"], r"argument --duration: invalid float value: 'abc'"),
        (["run", "--bogus"], r"unrecognized arguments: --bogus"),
        (["fly"], r"invalid choice: 'fly'"),
        (["micro", "--scale", "0"], r"--scale 0.0 is not valid; give a number above 0"),
        (["run", "--transport", "udp"], r"unknown transport 'udp'; choose from: tcp, sleep, http"),
        (["run", "--transport", "sleep,http"], r"--transport 'sleep,http' cannot run in one run"),
        (["run", "--transport", "tcp", "--models", "trio+httpx"], r"'trio\+httpx' names an HTTP"),
        (
            ["run", "--transport", "http", "--models", "trio+aiohttp"],
            r"trio has no HTTP client 'aiohttp'; choose from: trio\+httpx",
        ),
        (
            ["run", "--transport", "http", "--models", "celery"],
            r"celery makes no HTTP calls here; over http choose from: sync\+requests",
        ),
        (
            ["run", "--transport", "http", "--overhead"],
            r"--overhead holds models to bare loops over sleep or tcp",
        ),
        (["overhead", "--transport", "http"], r"bare loops wait on sleep and tcp"),
        (["run", "--load", "half"], r"unknown load 'half'; choose from: closed, open"),
        (["run", "--load", "open"], r"--load open needs --rate R1,R2,... \(jobs per second\)"),
        (["run", "--rate", "10"], r"--rate needs --load open"),
        (["run", "--load", "open", "--rate", "10,x"], r"'x' is not a number"),
        (["run", "--load", "open", "--rate", "0"], r"rate 0.0 is not positive"),
        (
            ["run", "--load", "open", "--rate", "5", "--arrivals", "burst"],
            r"unknown arrivals 'burst'; choose from: constant, poisson",
        ),
        (
            ["run", "--load", "open", "--rate", "auto", "--slo-ms", "0"],
            r"--slo-ms 0.0 is not valid",
        ),
        (["run", "--service", "nowhere"], r"--service 'nowhere' is not HOST:PORT"),
        (["run", "--service", "h:99999"], r"--service 'h:99999' is not HOST:PORT"),
        (
            ["run", "--transport", "sleep", "--service", "127.0.0.1:1"],
            r"--service needs --transport tcp",
        ),
        (
            ["run", "--service", "127.0.0.1:1"],
            r"cannot reach the latency service at 127.0.0.1:1 \(Connection refused\); start one "
            r"there with `python -m bench serve --host 0.0.0.0`, or leave out --service",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*argv, "--out", str(tmp_path)] if argv[0] == "run" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ")
    assert err.count("\n") == 1
    assert __import__("re").search(message, err), err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_unwritable_out_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "--quick", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench: error: cannot write results to '{blocker / 'sub'}'")
    assert "pass --out with a directory you can write" in err


def test_list_names_every_model_and_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in [*MODELS, "ecommerce", "io-bound", "cpu-bound", "mixed"]:
        assert f"  {name} " in out
    for label in pairs():
        assert label in out


def test_list_json_names_every_model_client_and_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in data["models"]] == list(MODELS)
    listed = [f"{m['name']}+{c['name']}" for m in data["models"] for c in m["clients"]]
    assert listed == pairs()
    assert {s["name"] for s in data["scenarios"]} >= {"ecommerce", "io-bound"}


def test_a_json_run_prints_its_results_and_nothing_else(tmp_path: Path) -> None:
    done = bench_run(tmp_path, "--quick", "--json", "--models", "asyncio", "--transport", "sleep")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    (run_dir,) = tmp_path.iterdir()
    assert data["run_dir"] == str(run_dir)
    assert [(r["model"], r["concurrency"], r["status"]) for r in data["levels"]] == [
        ("asyncio", 16, "ok")
    ]
    assert set(data["verdict"]) == {"slo_ms", "best", "tied", "limits"}


def bench_run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench run ... --out OUT` as a user types it, output piped."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [sys.executable, "-m", "bench", "run", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_quick_run_end_to_end(tmp_path: Path) -> None:
    done = bench_run(tmp_path, "--quick")
    assert done.returncode == 0, done.stderr
    (run_dir,) = tmp_path.iterdir()
    assert f"report: {run_dir / 'report.html'}" in done.stdout
    assert (run_dir / "report.html").stat().st_size > 0
    assert "\x1b" not in done.stdout + done.stderr  # piped: plain text, no ANSI codes
    assert "* best in its column" in done.stdout
    assert "\nverdict: " in done.stdout  # the summary ends with what to choose
    with (run_dir / "points.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == POINT_COLUMNS
    available = [m for m, info in MODELS.items() if info.default and info.available()]
    assert [(r["model"], r["concurrency"]) for r in rows] == [(m, "16") for m in available]
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows]
    assert all(int(r["jobs"]) > 0 and r["errors"] == "0" for r in rows)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["config"]["transport"] == "tcp"
    assert meta["config"]["service"] == "local"
    assert all(float(r["service_cpu_util"]) >= 0 for r in rows)  # read: not NaN
    assert meta["scenario"]["name"] == "ecommerce"
    assert meta["calibration"]["python_iterations_per_ms"] > 0
    assert meta["finished"] is not None
    assert meta["suite_version"] == __version__
    points = load_results(run_dir).points
    assert points["throughput"].dtype == float
    assert (points["efficiency"] > 0).all()
    histograms = (run_dir / "histograms.jsonl").read_text().splitlines()
    assert len(histograms) == len(rows)
    assert f"[{len(rows)}/{len(rows)}]" in done.stdout
    assert meta["config"]["budget_s"] == 30.0  # the windows were the budget's to plan
    assert meta["config"]["duration_s"] is None
    assert points["warmup_s"].notna().all() and set(points["steady"]) <= {0, 1}
    assert (points["throughput_error"] > 0).all()
    for row in rows:  # a percentile is a number only when its jobs support it
        assert (row["latency_p99_ms"] == "") == (int(row["jobs"]) < 368), row


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["--models", "sync,asyncio"], 0),
        # A skipped point (above the processes cap) was not planned to run: still 0.
        (["--models", "sync,processes", "--max-processes", "1"], 0),
        (["--models", "processes", "--max-processes", "1"], 1),  # nothing measured
    ],
)
def test_the_exit_status_says_whether_every_point_is_ok(
    args: list[str], status: int, tmp_path: Path
) -> None:
    tiny = ["--transport", "sleep", "--scenario", "io-bound", "--concurrency", "2"]
    timing = ["--warmup", "0", "--duration", "0.2", "--repeat", "1", "--quiet"]
    assert main(["run", *args, *tiny, *timing, "--out", str(tmp_path)]) == status


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "5m", "--duration", "2"], r"give --budget, or --warmup and --duration"),
        (["--budget", "soon"], r"--budget 'soon' is not a duration; give seconds"),
        (["--budget", "0"], r"--budget 0.0 is not a valid duration"),
        (["--budget", "1m", "--load", "open", "--rate", "10"], r"--budget plans closed points"),
    ],
)
def test_a_bad_budget_is_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["run", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1
    assert __import__("re").search(message, err), err


def test_quiet_prints_only_the_report_path(tmp_path: Path) -> None:
    done = bench_run(
        tmp_path,
        "--quiet",
        "--models",
        "sync",
        "--concurrency",
        "1",
        "--warmup",
        "0",
        "--duration",
        "0.3",
        "--scenario",
        "io-bound",
    )
    assert done.returncode == 0, done.stderr
    (run_dir,) = tmp_path.iterdir()
    assert done.stdout == f"{run_dir / 'report.html'}\n"


def test_report_command_rebuilds_and_rejects_non_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"bench: error: '{tmp_path}' is not a run directory (no meta.json); give a folder "
        "made by `python -m bench run`, e.g. results/<run-id>\n"
    )


def _wait_for_service(parent: psutil.Process) -> psutil.Process:
    """The run's latency service; the run starts it after calibration, whose short-lived
    children may have ended (or be zombies) by the time they are looked at."""
    for _ in range(600):
        for child in parent.children():
            try:
                if "serve" in child.cmdline():
                    return child
            except psutil.NoSuchProcess:  # ZombieProcess is one too
                continue
        time.sleep(0.05)
    raise AssertionError("the run never started its latency service")


def test_sigterm_stops_a_run_like_ctrl_c_and_stops_its_service(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench", "run", "--scenario", "io-bound"),
            *("--models", "asyncio", "--concurrency", "1", "--warmup", "0", "--duration", "60"),
            *("--repeat", "1", "--out", str(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        service = _wait_for_service(psutil.Process(run.pid))
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:  # a failed step must not leave the run behind to trouble later tests
        run.kill()
        run.communicate()
    assert run.returncode == 130
    assert "interrupted: 0 points kept" in err
    _, alive = psutil.wait_procs([service], timeout=10)
    assert alive == []
