"""The stock in PostgreSQL: every model with every driver its ecosystem uses updates a real
table under the row lock, exactly once per sale; failures roll back; a database that goes away
fails its point, saying why; a run's own schema is dropped; bad flags are one line."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench import api
from bench.cli import main
from bench.measuring import database as database_module
from bench.measuring.database import LocalDatabase, server_programs
from models import MODELS, db, pairs
from models.db import Database
from models.load import STOCK_START, Tally, Window
from models.workload import OK, Dist, IoStep, Lock, Scenario, Stage, draw_job
from tests.conftest import TINY_CALIBRATION, step_outcome
from tests.test_models import SEED, log, records

pytestmark = pytest.mark.skipif(
    server_programs() is None, reason=f"PostgreSQL is not installed (`{database_module.INSTALL}`)"
)
STACKS = [label for label in pairs("postgres") if MODELS[label.split("+")[0]].available()]


def stock_scenario(products: int = 2, fail_rate: float = 0.0, hold_ms: float = 0.5) -> Scenario:
    return Scenario(
        "stocked",
        "Every job updates one product's stock in the database, holding its row lock a while.",
        (
            Stage(
                "reserve",
                (
                    IoStep(
                        "reserve",
                        Dist("exponential", hold_ms),
                        lock=Lock(products, 1.0),
                        fail_rate=fail_rate,
                        retries=1 if fail_rate else 0,
                        backoff_ms=1.0,
                        via="postgres",
                    ),
                ),
            ),
        ),
    )


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    server = LocalDatabase(connections=200)
    try:
        yield server.database
    finally:
        server.close()


def run_stocked(
    label: str,
    scenario: Scenario,
    concurrency: int,
    jobs: int,
    database: Database,
    service: tuple[str, int] | None = None,
) -> Tally:
    """Run `jobs` jobs of `label` ("asyncio+asyncpg") with the stock in `database`, and read
    the table back as the point process does."""
    model, _, driver = label.partition("+")
    window = Window(
        scenario, TINY_CALIBRATION, SEED, concurrency, 0.0, 600.0, max_jobs=jobs,
        service=service, database=database, driver=driver, keep=True,
    )  # fmt: skip
    db.prepare(database, scenario.products(), STOCK_START)
    tally = MODELS[model].runner()(window)
    tally.fold(window, 0.0, edges=(0.0, float("inf")))
    tally.stock = db.levels(database, scenario.products())
    return tally


def sold_by_product(tally: Tally, products: int) -> list[int]:
    counts = collections.Counter(log(tally).sold)
    return [counts[p] for p in range(products)]


@pytest.mark.parametrize("label", STACKS)
def test_every_stack_sells_each_job_once_in_the_table(label: str, database: Database) -> None:
    scenario = stock_scenario()
    tally = run_stocked(label, scenario, 3, 30, database)
    assert [r.job_index for r in records(tally)] == list(range(30))
    assert all(r.outcome == OK for r in records(tally)), tally.errors
    sold = sold_by_product(tally, 2)
    assert sum(sold) == 30
    assert tally.stock == [STOCK_START - n for n in sold]  # the table, exactly
    assert len(tally.pool_wait_s) + tally.recording.pool_waits == 30  # one pool wait a try


@pytest.mark.parametrize("label", ["threads+psycopg", "asyncio+asyncpg", "trio+psycopg"])
def test_one_hot_product_serialises_without_a_lost_update(label: str, database: Database) -> None:
    scenario = stock_scenario(products=1, hold_ms=2.0)
    tally = run_stocked(label, scenario, 8, 60, database)
    assert all(r.outcome == OK for r in records(tally)), tally.errors
    assert tally.stock == [STOCK_START - 60]


@pytest.mark.parametrize("label", ["sync+psycopg", "asyncio+psycopg", "uvloop+asyncpg"])
def test_a_write_drawn_to_fail_rolls_back_and_is_retried(label: str, database: Database) -> None:
    scenario = stock_scenario(fail_rate=0.4)
    tally = run_stocked(label, scenario, 3, 40, database)
    drawn = [draw_job(scenario, TINY_CALIBRATION, SEED, i).stages[0][0] for i in range(40)]
    assert [r.outcome for r in records(tally)] == [step_outcome(a) for a in drawn]
    succeeded = sum(r.outcome == OK for r in records(tally))
    assert sum(sold_by_product(tally, 2)) == succeeded  # a failed try sold nothing
    assert tally.stock == [STOCK_START - n for n in sold_by_product(tally, 2)]


@pytest.mark.parametrize("label", ["threads+psycopg", "asyncio+asyncpg", "trio+psycopg"])
def test_a_write_past_its_timeout_is_cancelled_and_sells_nothing(
    label: str, database: Database
) -> None:
    slow = Scenario(
        "slow write",
        "A write that holds its lock for 2 s, cut at 50 ms and retried once.",
        (
            Stage(
                "reserve",
                (
                    IoStep(
                        "reserve", Dist("constant", 2000.0), lock=Lock(1, 0.0), retries=1,
                        timeout_ms=50.0, via="postgres",
                    ),
                ),
            ),
        ),
    )  # fmt: skip
    tally = run_stocked(label, slow, 2, 4, database)
    assert [r.outcome for r in records(tally)] == [step_outcome(a) for a in [
        draw_job(slow, TINY_CALIBRATION, SEED, i).stages[0][0] for i in range(4)
    ]]  # fmt: skip
    assert tally.stock == [STOCK_START]


def test_a_run_with_the_users_database_drops_its_schema(database: Database, tmp_path: Path) -> None:
    results = api.run(
        "ecommerce",
        ["threads+psycopg", "asyncio+asyncpg"],
        [2],
        warmup_s=0.0,
        duration_s=0.3,
        repeat=1,
        out=tmp_path,
        transport="postgres",
        database=database.dsn,
    )
    points = results.points
    assert list(points["status"]) == ["ok", "ok"], list(points["reason"])
    assert list(points["transport"]) == ["postgres", "postgres"]
    assert list(points["client"]) == ["psycopg", "asyncpg"]
    assert (points["db_pool_wait_ms"] >= 0).all()
    with psycopg.connect(database.dsn, autocommit=True) as connection:
        left = connection.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'bench_%'"
        ).fetchall()
    assert left == []
    assert results.meta.engines["postgres"]["server"] == database.dsn


def test_a_database_that_goes_away_fails_its_point_and_nothing_hangs(tmp_path: Path) -> None:
    server = LocalDatabase(connections=50)
    scenario = tmp_path / "held.toml"
    scenario.write_text(
        'name = "held"\n[[stages]]\nname = "reserve"\n[[stages.steps]]\nname = "reserve"\n'
        'type = "io"\nwait = { dist = "constant", mean_ms = 20 }\nvia = "postgres"\n'
        "lock = { products = 4, skew = 0 }\n"
    )
    threading.Timer(2.0, server.close).start()  # the server stops mid-point
    results = api.run(
        str(scenario),
        ["threads+psycopg"],
        [4],
        warmup_s=0.5,
        duration_s=20.0,
        repeat=1,
        out=tmp_path / "out",
        transport="postgres",
        database=server.database.dsn,
        timeout_s=90.0,
    )
    (point,) = results.points.to_dict("records")
    assert point["status"] == "failed"
    assert "database" in point["reason"] or "connection" in point["reason"], point["reason"]


def test_without_postgresql_its_points_are_skipped_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "server_programs", lambda: None)
    results = api.run(
        "ecommerce", ["threads"], [2], warmup_s=0.0, duration_s=0.2, repeat=1, out=tmp_path,
        transport="tcp,postgres",
    )  # fmt: skip
    statuses = dict(zip(results.points["model"], results.points["status"], strict=True))
    assert statuses == {"threads": "ok", "threads+psycopg": "skipped"}
    reason = str(results.points.set_index("model").loc["threads+psycopg", "reason"])
    assert database_module.INSTALL in reason


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--transport", "postgres", "--database", "mysql://x"], "is not a PostgreSQL URL"),
        (["--transport", "postgres", "--db-pool", "0"], "--db-pool"),
        (["--database", "postgresql://x@h/d"], "give --transport postgres"),
        (["--transport", "postgres", "--scenario", "io-bound"], "sends no step to the database"),
        (["--transport", "postgres", "--models", "asyncio+mysql"], "no database driver 'mysql'"),
        (["--transport", "postgres", "--models", "dask"], "dask has no database driver"),
        (
            ["--transport", "postgres", "--database", "postgresql://nobody@127.0.0.1:1/x"],
            "cannot reach --database",
        ),
    ],
)
def test_bad_database_flags_are_one_line(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["run", "--quick", "--out", str(tmp_path), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("bench: error: ") and message in err[0], err
