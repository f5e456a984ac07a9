"""The engines beyond one machine as a user meets them: engines a point starts for itself, the
user's own scheduler or broker, and what happens when one is missing or down."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.cli import main
from bench.files.meta import Interpreter
from bench.measuring.engines import engine_shortfall
from bench.measuring.sweep import SweepConfig, plan_points
from models import MODELS
from models.cluster import (
    RABBITMQ_MISSING,
    REDIS_MISSING,
    Engine,
    private_broker,
    private_rabbitmq,
)
from models.load import Window
from tests.conftest import NEEDS_RABBITMQ, TINY, TINY_CALIBRATION, celery_workers, dask_scheduler
from tests.test_cli import bench_run

TINY_TOML = """\
name = "tiny"
description = "A quick call beside a little CPU, and an e-mail in the background."
[[stages]]
name = "work"
[[stages.steps]]
name = "call"
type = "io"
wait = { dist = "constant", mean_ms = 1 }
lock = { products = 3, skew = 1.0 }
[[stages.steps]]
name = "compute"
type = "cpu"
cpu = { dist = "constant", mean_ms = 0.2 }
[[stages.steps]]
name = "e-mail"
type = "io"
wait = { dist = "constant", mean_ms = 1 }
background = true
"""


@pytest.mark.parametrize(
    ("engines", "backend"),
    [
        (("dask", "celery"), "the broker"),
        pytest.param(("celery-rabbitmq",), "private redis-server per point", marks=NEEDS_RABBITMQ),
    ],
)
def test_each_point_starts_and_stops_its_own_engine(
    engines: tuple[str, ...], backend: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY_TOML)
    done = bench_run(
        tmp_path / "out", "--scenario", str(scenario), "--models", ",".join(["threads", *engines]),
        "--concurrency", "1,4", "--warmup", "0.5", "--duration", "1", "--repeat", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    with (run_dir / "points.csv").open() as f:
        rows = list(csv.DictReader(f))
    # An ok point lost no job and no stock update, and every checksum matched.
    assert [(r["model"], r["concurrency"], r["status"]) for r in rows] == [
        (m, n, "ok") for m in ("threads", *engines) for n in ("1", "4")
    ], [r["reason"] for r in rows]
    assert all(int(r["jobs"]) > 0 and r["errors"] == "0" for r in rows)
    described = json.loads((run_dir / "meta.json").read_text())["engines"]
    assert list(described) == list(engines)
    for model in engines:
        if model == "dask":
            assert described[model]["cluster"] == "LocalCluster per point"
            assert described[model]["threads_per_worker"] >= 1
        else:
            broker = MODELS[model].broker
            assert described[model]["broker"] == f"private {broker}-server per point"
            assert described[model]["result_backend"] == backend
            assert described[model]["prefetch_multiplier"] == 1
            assert described[model]["acks_late"] is True
        assert described[model]["workers"] >= 1
    page = (run_dir / "report.html").read_text()
    floors = page.split("<section id='engines'>")[1].split("</section>")[0]
    assert all(f"<td class=text>{model}</td>" in floors for model in engines)
    assert floors.count("<td>threads</td>") == len(engines)  # each beside threads
    assert f"With one job in flight, {engines[0]} adds" in page


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dask-address", "127.0.0.1:8786"], r"--dask-address '127.0.0.1:8786' is not a sch"),
        (["--broker", "localhost"], r"--broker 'localhost' is not a broker URL"),
        (["--broker", "rabbitmq"], r"not a broker URL; .* or run the celery-rabbitmq model"),
        (["--broker", "sqs://"], r"--broker 'sqs://': SQS is not supported"),
        (
            [
                "--models",
                "celery-rabbitmq",
                "--broker",
                "amqp://h",
                "--result-backend",
                "redis://h",
            ],
            r"--broker is for the celery model; celery-rabbitmq starts a private broker per point",
        ),
        (["--result-backend", "redis://h/0"], r"--result-backend needs --broker"),
        (["--broker", "amqp://h"], r"--broker 'amqp://h' needs --result-backend redis://"),
        (["--broker", "redis://h/0"], r"--broker is for the celery model; add celery to --models"),
        (
            ["--dask-address", "tcp://h:8786"],
            r"--dask-address is for the dask model; add dask to --models",
        ),
        (
            ["--models", "celery", "--broker", "redis://127.0.0.1:1/0"],
            r"cannot reach the Celery broker at redis://127.0.0.1:1/0",
        ),
        (
            ["--models", "dask", "--dask-address", "tcp://127.0.0.1:1"],
            r"cannot reach the dask scheduler at tcp://127.0.0.1:1",
        ),
    ],
)
def test_a_bad_or_absent_engine_is_one_line_and_status_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    started = time.monotonic()
    assert main(["run", *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - started < 60  # a check, not a hang


@pytest.mark.parametrize("broker", ["redis", pytest.param("rabbitmq", marks=NEEDS_RABBITMQ)])
def test_a_broker_with_no_workers_names_them_in_its_error(
    broker: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with private_broker(broker) as (url, store):
        flags = ["--broker", url, "--result-backend", store]
        assert main(["run", "--models", "celery", *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no Celery worker answers on {url}; start workers with `celery -A" in err


@NEEDS_RABBITMQ
def test_celery_runs_over_a_rabbitmq_of_ones_own(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY_TOML)
    with private_broker("rabbitmq") as (url, store), celery_workers(url, store):
        done = bench_run(
            tmp_path / "out", "--scenario", str(scenario), "--models", "celery", "--broker", url,
            "--result-backend", store, "--concurrency", "2", "--warmup", "0",
            "--duration", "0.5", "--repeat", "1",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    with (run_dir / "points.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert (row["status"], row["errors"]) == ("ok", "0"), row["reason"]
    described = json.loads((run_dir / "meta.json").read_text())["engines"]["celery"]
    assert (described["broker"], described["result_backend"]) == (url, store)


@pytest.mark.parametrize(
    ("model", "missing"), [("celery", REDIS_MISSING), ("celery-rabbitmq", RABBITMQ_MISSING)]
)
def test_without_its_server_a_celery_model_is_skipped_with_how_to_install_it(
    model: str, missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    assert engine_shortfall(model, Engine()) == missing
    assert engine_shortfall(model, Engine(broker="redis://h:6379/0")) == ""
    assert engine_shortfall("dask", Engine()) == ""
    config = SweepConfig(TINY, (model,), (1,), 0.0, 1.0, 0, 8, 8)
    (planned,) = plan_points(config, TINY_CALIBRATION)
    assert planned.skip_reason == missing
    assert f"apt-get install {MODELS[model].broker}-server" in missing


@NEEDS_RABBITMQ
def test_a_private_rabbitmq_leaves_nothing_behind() -> None:
    before = set(psutil.Process().children(recursive=True))
    with private_rabbitmq() as url:
        folders = set(Path(tempfile.gettempdir()).glob("bench-rabbitmq-*"))
        started = set(psutil.Process().children(recursive=True)) - before
        assert url.startswith("amqp://guest:guest@127.0.0.1:") and folders and started
    # The node, its helpers and its epmd end with it (init reaps a helper a moment later).
    assert psutil.wait_procs(started, timeout=10)[1] == []
    assert not folders & set(Path(tempfile.gettempdir()).glob("bench-rabbitmq-*"))


@contextlib.contextmanager
def engine_without_workers(model: str) -> Iterator[Engine]:
    """A broker (celery, celery over RabbitMQ) or a scheduler (dask) with no worker behind it."""
    if model == "dask":
        with dask_scheduler() as address:
            yield Engine(dask_address=address)
        return
    with private_broker(MODELS[model].broker or "redis") as (url, store):
        yield Engine(broker=url, result_backend=store)


@pytest.mark.parametrize(
    "model", ["dask", "celery", pytest.param("celery-rabbitmq", marks=NEEDS_RABBITMQ)]
)
def test_jobs_no_worker_takes_end_lost_with_their_reason_instead_of_hanging(model: str) -> None:
    with engine_without_workers(model) as engine:
        window = Window(TINY, TINY_CALIBRATION, 1, 2, 0.0, 0.2, max_jobs=2, engine=engine)
        started = time.monotonic()
        tally = MODELS[model].runner()(window)
    tally.fold(window, 0.0, edges=(0.0, math.inf))  # the jobs ended since the last fold
    assert (tally.recording.submitted, tally.recording.completed) == (2, 0)
    assert tally.errors, "the reason is kept"
    assert time.monotonic() - started < 30


def test_under_an_interpreter_without_the_engine_its_points_say_how_to_install_it() -> None:
    bare = Interpreter(
        "/opt/py/bin/python", "3.12.1", "3.12.1", "cpython", False, True, "", ("trio", "anyio")
    )
    config = SweepConfig(TINY, ("dask", "celery"), (1,), 0.0, 1.0, 0, 8, 8, interpreters=(bare,))
    reasons = [planned.skip_reason for planned in plan_points(config, TINY_CALIBRATION)]
    hint = (
        "(install the engines there: "
        "`/opt/py/bin/python -m pip install distributed 'celery[redis]'`)"
    )
    assert reasons == [
        f"distributed is not installed for Python 3.12.1 {hint}",
        f"celery is not installed for Python 3.12.1 {hint}",
    ]


def test_the_engines_are_listed_but_not_in_the_default_run() -> None:
    assert not MODELS["dask"].default and not MODELS["celery"].default
