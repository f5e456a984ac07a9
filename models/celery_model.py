"""celery: each job a Celery task sent through a broker (Redis, RabbitMQ) to workers' threads."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from celery import Celery
from kombu.utils.json import register_type

from models.cluster import (
    CELERY_ACKS_LATE,
    CELERY_PREFETCH_MULTIPLIER,
    celery_worker_command,
    private_broker,
    redis_store,
    to_perf_s,
    wait_for_celery_workers,
    worker_io,
    worker_processes,
)
from models.load import STOCK_START, Record, Tally, Window, handed_step
from models.wire import Transport
from models.workload import (
    OK,
    Action,
    Attempt,
    Compute,
    Job,
    StepFailed,
    Wait,
    background,
    combine,
    compute,
    foreground,
)

# Jobs travel as JSON, as a production task's arguments do (and Celery refuses to run a
# pickle-accepting worker as root). Nested values are decoded first, so each decoder sees its
# own fields already typed.
register_type(
    Attempt, "attempt", lambda a: [a.seconds, a.fails, a.backoff_s], lambda v: Attempt(*v)
)
register_type(
    Wait,
    "wait",
    lambda w: [
        w.job,
        w.attempts,
        w.timeout_s,
        w.request_bytes,
        w.response_bytes,
        w.product,
        w.background,
        w.via,
    ],
    lambda v: Wait(v[0], tuple(v[1]), *v[2:]),
)
register_type(
    Compute,
    "compute",
    lambda c: [c.job, c.kind, c.units, c.seed, c.product, c.background],
    lambda v: Compute(*v),
)
register_type(
    Job, "job", lambda j: [j.index, j.stages], lambda v: Job(v[0], tuple(map(tuple, v[1])))
)
# A worker's tally of one job holds only what its steps append to.
_STEP_LISTS = ("handed_off", "retried", "sold", "errors")
register_type(
    Tally, "tally", lambda t: {k: getattr(t, k) for k in _STEP_LISTS}, lambda v: Tally(**v)
)
# The workers' app: `celery -A models.celery_model -b BROKER --result-backend BACKEND worker`.
app = Celery("bench", set_as_current=False)
app.conf.update(
    task_acks_late=CELERY_ACKS_LATE,
    worker_prefetch_multiplier=CELERY_PREFETCH_MULTIPLIER,
    worker_hijack_root_logger=False,
)


@dataclass
class Shared:
    """What one job's task uses on its worker: the run's name (its stock keys, locks and
    background tasks are named after it), the job's own tally, the worker's I/O and pool."""

    run_id: str
    service: tuple[str, int] | None
    store_url: str
    store: redis.Redis  # the stock and its locks
    tally: Tally  # this job's, handed back with its result
    transport: Transport  # this worker's blocking I/O, pooled connections
    steps: ThreadPoolExecutor  # this worker's: runs a stage's other steps


def run(window: Window, broker: str = "redis") -> Tally:
    """Start a private `broker` (redis or rabbitmq, with a Redis for the results) and Celery
    workers unless the engine names a broker, run the window's jobs, stop them; they start and
    stop outside the window."""
    engine = window.engine
    with contextlib.ExitStack() as stack:
        if engine.broker is None:
            url, store = stack.enter_context(private_broker(broker))
        else:
            url, store = engine.broker, engine.result_backend or engine.broker
        client = Celery("bench-client", broker=url, backend=store, set_as_current=False)
        stack.callback(client.close)  # before a private broker stops
        if engine.broker is None:
            workers = range(engine.workers)
            stack.enter_context(
                worker_processes(
                    [celery_worker_command(url, store, engine.threads, n) for n in workers]
                )
            )
            wait_for_celery_workers(client, engine.workers)
        return start_users(window, client, store)


def start_users(window: Window, client: Celery, store_url: str) -> Tally:
    """Stock the shelves, start one thread per user, wait for them; then collect the background
    steps' results and read the stock back."""
    run_id = f"bench-{uuid.uuid4().hex}"
    store = redis.Redis.from_url(store_url)
    products = range(window.scenario.products())
    if products:
        store.mset({f"{run_id}:stock:{p}": STOCK_START for p in products})
    tally = Tally()
    handed: list[int] = []  # the job of every background step, whose result comes at the end
    indices = itertools.count()
    lock = threading.Lock()

    def take() -> int:
        with lock:
            return next(indices)

    started = window.start(tally)
    users = [
        threading.Thread(
            target=serve, args=(started, user, take, client, run_id, store_url, tally, handed)
        )
        for user in range(window.concurrency)
    ]
    for user in users:
        user.start()
    for user in users:
        user.join()
    # The background steps ran as tasks of their own; their results say how each ended.
    for handed_job, count in sorted(collections.Counter(handed).items()):
        for n in range(count):
            left_s = max(1.0, started.drain_limit_s() - time.perf_counter())
            result = client.AsyncResult(f"{run_id}:bg:{handed_job}:{n}")
            try:
                (job, handed_s, ended_s, checksum, outcome), step_tally = result.get(timeout=left_s)
            except Exception:  # one that never ended is reported as such
                with contextlib.suppress(Exception):
                    result.forget()
            else:
                handed_s, ended_s = to_perf_s(handed_s), to_perf_s(ended_s)
                step = handed_step(started, job, outcome, checksum)
                tally.background.append((step, handed_s, handed_s, ended_s, checksum, outcome))
                tally.merge(step_tally)
    if products:
        keys = [f"{run_id}:stock:{p}" for p in products]
        tally.stock = [int(level or 0) for level in store.mget(keys)]
        store.delete(*keys)  # the broker may be the user's own
    store.close()
    return tally


def serve(
    window: Window,
    user: int,
    take: Callable[[], int],
    client: Celery,
    run_id: str,
    store_url: str,
    tally: Tally,
    handed: list[int],
) -> None:
    """Join at this user's turn, then send jobs one after another (open load: each when it is
    due) and wait for each one's result, until the window closes."""
    time.sleep(max(0.0, window.user_start_s(user) - time.perf_counter()))
    while (job := window.job(take())) is not None:
        if (early_s := window.wait_s(job.index)) > 0:  # open load: wait until it is due
            time.sleep(early_s)
        started_s = time.perf_counter()
        left_s = max(1.0, window.drain_limit_s() - started_s)
        result = client.send_task("bench.run_job", (job, run_id, window.service, store_url))
        try:
            checksum, outcome, done = result.get(timeout=left_s)
        except Exception as error:  # the broker or a worker lost the task
            checksum, outcome, done = 0, tally.outcome(error), Tally()
            # Forgotten (unsubscribed) now: left to the garbage collector, the result would
            # try to unsubscribe once a private broker is gone.
            with contextlib.suppress(Exception):
                result.forget()
        ended_s = time.perf_counter()
        tally.merge(done)
        handed.extend(done.handed_off)
        submitted_s = window.due_s(job.index, started_s)
        record: Record = (job, submitted_s, started_s, ended_s, checksum, outcome)
        tally.records.append(record)


@app.task(name="bench.run_job")
def run_job(
    job: Job, run_id: str, service: tuple[str, int] | None, store_url: str
) -> tuple[int, int, Tally]:
    """On a worker: run the stages in order; a stage that fails ends the job. Returns (checksum,
    outcome, what the job did to the shared state)."""
    shared = Shared(
        run_id, service, store_url, redis_store(store_url), Tally(), *worker_io(service)
    )
    results = []
    try:
        for stage in job.stages:
            results.append(run_stage(stage, shared))
    except Exception as error:
        return 0, shared.tally.outcome(error), shared.tally
    return combine(results), OK, shared.tally


def run_stage(stage: tuple[Action, ...], shared: Shared) -> int:
    """Send the background steps as tasks of their own, run the first step in this thread and
    the others on the worker's pool, at the same time."""
    for action in background(stage):
        # Named by job and count, so that the client can ask for each one's result.
        task_id = f"{shared.run_id}:bg:{action.job}:{len(shared.tally.handed_off)}"
        shared.tally.handed_off.append(action.job)
        hand_off.apply_async(
            (action, shared.run_id, shared.service, shared.store_url, time.time()),
            task_id=task_id,
        )
    steps = foreground(stage)
    others = [shared.steps.submit(run_step, action, shared) for action in steps[1:]]
    try:
        first = run_step(steps[0], shared)
    finally:
        concurrent.futures.wait(others)  # a thread cannot be cancelled: the stage waits for all
    return combine([first, *(future.result() for future in others)])


@app.task(name="bench.hand_off")
def hand_off(
    action: Action,
    run_id: str,
    service: tuple[str, int] | None,
    store_url: str,
    handed_wall_s: float,
) -> tuple[tuple[int, float, float, int, int], Tally]:
    """On a worker: run a background step to its end; its result says how it ended, in
    wall-clock times (the client may be on another machine, with another perf_counter)."""
    shared = Shared(
        run_id, service, store_url, redis_store(store_url), Tally(), *worker_io(service)
    )
    try:
        checksum, outcome = run_step(action, shared), OK
    except Exception as error:
        checksum, outcome = 0, shared.tally.outcome(error)
    return (action.job, handed_wall_s, time.time(), checksum, outcome), shared.tally


def run_step(action: Action, shared: Shared) -> int:
    """Run one step; a step that updates stock reads, works and writes under its product's
    Redis lock, shared by every worker."""
    if action.product is None:
        return run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
    key = f"{shared.run_id}:stock:{action.product}"
    # Polled every millisecond, not redis-py's default 100 ms: a hot product's lock is held
    # for a few milliseconds, and a waiter that sleeps 100 ms would idle the product.
    with shared.store.lock(f"{shared.run_id}:lock:{action.product}", sleep=0.001):
        level = int(shared.store.get(key) or 0)
        result = run_attempts(action, shared) if isinstance(action, Wait) else do_cpu(action)
        shared.store.set(key, level - 1)
        shared.tally.sold.append(action.product)
    return result


def run_attempts(wait: Wait, shared: Shared) -> int:
    """Try until a try succeeds, pausing before each retry; the last try's error is the step's."""
    for attempt, retry in itertools.pairwise(wait.attempts):
        with contextlib.suppress(StepFailed, TimeoutError):
            return do_io(wait, attempt, shared)
        shared.tally.retried.append(wait.job)
        time.sleep(retry.backoff_s)
    return do_io(wait, wait.attempts[-1], shared)


def do_io(wait: Wait, attempt: Attempt, shared: Shared) -> int:
    """One try on a blocking socket (or a sleep), blocking this worker thread; a socket timeout
    ends it, since a thread cannot be cancelled. Returns the response's size."""
    return shared.transport.call(wait, attempt)


def do_cpu(work: Compute) -> int:
    """Compute in the worker process, on its own GIL."""
    return compute(work)
