"""The stock in PostgreSQL: each step routed `via` "postgres" is one transaction, reached through
the driver and connection pool each ecosystem uses.

A try of a step calls `reserve(product, hold_s, fail)` in the database, one round trip and one
transaction: it takes the product's row lock (an UPDATE ... RETURNING), holds it for the step's
drawn duration inside the database (`pg_sleep`, so the lock is held where a real transaction
holds it), and commits; a try drawn to fail raises after the hold and rolls back, as a failing
write does. A step without a lock only waits (`product` NULL). The point checks the table at
its end: each product's stock is its start minus the updates the models counted, exactly.

Drivers, by the name a point carries (`model+driver`):
- `psycopg`: psycopg 3 with `psycopg_pool` — its blocking API for sync, threads and processes,
  its asyncio API for asyncio, uvloop and processes-asyncio; on trio its blocking API in trio's
  worker threads, since neither psycopg's async API nor asyncpg runs on trio (psycopg#29 and
  MagicStack/asyncpg#1119 are open).
- `asyncpg`: asyncpg's own pool, asyncio only.
Each process opens one pool of `pool` connections (`--db-pool`, by default one per user it
serves) before the window; the time a try waits for a pooled connection is part of its latency
and is also counted on its own (`Tally.pool_wait_s`).
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.workload import Attempt, StepFailed, Wait

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

    from models.load import Tally, Window
    from models.wire import Transport

DRIVERS = ("psycopg", "asyncpg")
# The packages each driver needs, as pip names them.
PACKAGES = {"psycopg": ("psycopg", "psycopg-pool"), "asyncpg": ("asyncpg",)}
_FAILED_STATE = "P0001"  # raise_exception: the try drawn to fail
_TIMED_OUT_STATE = "57014"  # query_canceled: the statement ran past its timeout
TABLE = "stock"


def version(driver: str) -> str:
    """The installed version of `driver` ("" if it or its pool is not installed)."""
    try:
        return "+".join(importlib.metadata.version(p) for p in PACKAGES[driver])
    except importlib.metadata.PackageNotFoundError:
        return ""


@dataclass(frozen=True)
class Database:
    """Where the stock lives: a server's connection string, and the schema of the suite's
    table and function in it."""

    dsn: str
    schema: str


def schema_sql(schema: str, products: int, start: int) -> str:
    """The suite's table and function in `schema`, every product at `start`."""
    return f"""
        CREATE SCHEMA IF NOT EXISTS {schema};
        DROP TABLE IF EXISTS {schema}.{TABLE};
        CREATE TABLE {schema}.{TABLE} (product int PRIMARY KEY, level bigint NOT NULL);
        INSERT INTO {schema}.{TABLE} SELECT p, {start} FROM generate_series(0, {products - 1}) p;
        CREATE OR REPLACE FUNCTION {schema}.reserve(p int, hold_s float8, fail bool)
        RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE left_over bigint;
        BEGIN
            IF p IS NOT NULL THEN
                UPDATE {schema}.{TABLE} SET level = level - 1 WHERE product = p
                RETURNING level INTO left_over;
            END IF;
            PERFORM pg_sleep(hold_s);
            IF fail THEN
                RAISE EXCEPTION 'the write was drawn to fail' USING ERRCODE = '{_FAILED_STATE}';
            END IF;
            RETURN left_over;
        END $$;
    """


def prepare(database: Database, products: int, start: int) -> None:
    """Create (or reset) the table and the function, every product at `start`."""
    import psycopg

    with psycopg.connect(database.dsn, autocommit=True) as connection:
        connection.execute(schema_sql(database.schema, products, start).encode())


def levels(database: Database, products: int) -> list[int]:
    """Each product's stock as the table holds it now."""
    import psycopg

    with psycopg.connect(database.dsn, autocommit=True) as connection:
        rows = connection.execute(
            f"SELECT level FROM {database.schema}.{TABLE} ORDER BY product"
        ).fetchall()
    found = [int(level) for (level,) in rows]
    if len(found) != products:
        raise RuntimeError(f"the stock table holds {len(found)} products, not {products}")
    return found


def _call_sql(schema: str, numbered: bool) -> str:
    """The try's statement, with the driver's parameters: asyncpg's $1, psycopg's %s."""
    marks = ("$1", "$2", "$3") if numbered else ("%s", "%s", "%s")
    return f"SELECT {schema}.reserve({', '.join(marks)})"


def _arguments(wait: Wait, attempt: Attempt) -> tuple[int | None, float, bool]:
    return wait.product, attempt.seconds, attempt.fails


def _timeout_ms(wait: Wait) -> int:
    """The step's timeout as PostgreSQL's statement_timeout (0: none)."""
    return 0 if wait.timeout_s is None else max(1, round(wait.timeout_s * 1000))


class BlockingStock:
    """psycopg's blocking API and its `ConnectionPool`, shared by a process's threads. A step's
    timeout is the server's `statement_timeout`, set on a connection when it changes: a
    blocking call cannot be cancelled from the calling thread."""

    def __init__(self, database: Database, size: int, tally: Tally) -> None:
        import psycopg_pool

        self.sql = _call_sql(database.schema, numbered=False)
        self.tally = tally
        self.pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                database.dsn,
                min_size=size,
                max_size=size,
                kwargs={"autocommit": True},
                open=False,
            )
        )
        self.pool.open(wait=True)  # every connection made before the window
        self.timeouts: dict[int, int] = {}  # each connection's statement_timeout, by id

    def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try: one transaction on a pooled connection; returns the response's size."""
        import psycopg

        asked_s = time.perf_counter()
        with self.pool.connection() as connection:
            self.tally.pool_wait_s.append(time.perf_counter() - asked_s)
            timeout_ms = _timeout_ms(wait)
            if self.timeouts.get(id(connection), 0) != timeout_ms:
                connection.execute(f"SET statement_timeout = {timeout_ms}")
                self.timeouts[id(connection)] = timeout_ms
            try:
                connection.execute(self.sql.encode(), _arguments(wait, attempt))
            except psycopg.Error as error:
                raise _outcome(error.sqlstate) from error
        return _sold(wait, self.tally)

    def close(self) -> None:
        """Close the pool and its connections."""
        self.pool.close()


class AsyncStock:
    """One of the asyncio drivers and its pool: asyncpg's `Pool`, or psycopg's
    `AsyncConnectionPool`. A step's timeout is the model's own cancel scope: both drivers
    cancel the statement on the server when their task is cancelled."""

    def __init__(self, database: Database, driver: str, size: int, tally: Tally) -> None:
        self.database, self.driver, self.size, self.tally = database, driver, size, tally
        self.sql = _call_sql(database.schema, numbered=driver == "asyncpg")
        self.pool: Any = None

    async def open(self) -> None:
        """Make every connection of the pool, before the window."""
        if self.driver == "asyncpg":
            import asyncpg

            self.pool = await asyncpg.create_pool(
                self.database.dsn, min_size=self.size, max_size=self.size
            )
        else:
            import psycopg_pool

            self.pool = psycopg_pool.AsyncConnectionPool(
                self.database.dsn,
                min_size=self.size,
                max_size=self.size,
                kwargs={"autocommit": True},
                open=False,
            )
            await self.pool.open(wait=True)

    async def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try: one transaction on a pooled connection; returns the response's size."""
        asked_s = time.perf_counter()
        if self.driver == "asyncpg":
            import asyncpg

            async with self.pool.acquire() as connection:
                self.tally.pool_wait_s.append(time.perf_counter() - asked_s)
                try:
                    await connection.fetchval(self.sql, *_arguments(wait, attempt))
                except asyncpg.PostgresError as error:
                    raise _outcome(error.sqlstate) from error
        else:
            import psycopg

            async with self.pool.connection() as connection:
                self.tally.pool_wait_s.append(time.perf_counter() - asked_s)
                try:
                    await connection.execute(self.sql.encode(), _arguments(wait, attempt))
                except psycopg.Error as error:
                    raise _outcome(error.sqlstate) from error
        return _sold(wait, self.tally)

    async def close(self) -> None:
        """Close the pool and its connections."""
        await self.pool.close()


def _sold(wait: Wait, tally: Tally) -> int:
    """Count a committed stock update (the table is checked against these counts); returns
    the response's size."""
    if wait.product is not None:
        tally.sold.append(wait.product)
    return wait.response_bytes


def _outcome(sqlstate: str | None) -> Exception:
    """What a failed try is to the model: drawn to fail, timed out, or an error."""
    if sqlstate == _FAILED_STATE:
        return StepFailed()
    if sqlstate == _TIMED_OUT_STATE:
        return TimeoutError("the statement ran past its timeout")
    return ConnectionError(f"the database answered with SQLSTATE {sqlstate}")


def pool_size(window: Window, users: int) -> int:
    """The connections of one process's pool: `--db-pool` shared out by users, else one per
    user it serves."""
    if window.db_pool is None:
        return max(1, users)
    return max(1, round(window.db_pool * users / window.concurrency))


class DatabaseTransport:
    """Blocking I/O that sends the steps routed via "postgres" to the database, the others on."""

    def __init__(self, other: Transport, stock: BlockingStock) -> None:
        self.other, self.stock = other, stock

    def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try; returns the response's size."""
        if wait.via == "postgres":
            return self.stock.call(wait, attempt)
        return self.other.call(wait, attempt)

    def close(self) -> None:
        """Close the pool, then the other transport's connections."""
        self.stock.close()
        self.other.close()


def with_database(transport: Transport, window: Window, tally: Tally, users: int) -> Transport:
    """`transport`, with the steps routed via "postgres" sent to the point's database (if its
    stock is in one) through a blocking pool for `users` users."""
    if window.database is None:
        return transport
    return DatabaseTransport(
        transport, BlockingStock(window.database, pool_size(window, users), tally)
    )


@contextmanager
def open_blocking(window: Window, tally: Tally, users: int) -> Iterator[BlockingStock | None]:
    """The blocking pool of a point whose stock is in the database (None otherwise)."""
    if window.database is None:
        yield None
        return
    stock = BlockingStock(window.database, pool_size(window, users), tally)
    try:
        yield stock
    finally:
        stock.close()


@asynccontextmanager
async def open_async(window: Window, tally: Tally, users: int) -> AsyncIterator[AsyncStock | None]:
    """The asyncio pool of a point whose stock is in the database (None otherwise)."""
    if window.database is None or window.driver is None:
        yield None
        return
    stock = AsyncStock(window.database, window.driver, pool_size(window, users), tally)
    await stock.open()
    try:
        yield stock
    finally:
        await stock.close()
