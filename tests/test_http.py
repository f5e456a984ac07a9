"""The HTTP transport: the latency service speaks HTTP/1.1, and every model with every client
library its ecosystem uses runs the same jobs over it, completely and correctly: failures as
5xx and retried, timeouts through each library, dropped connections counted as errors."""

from __future__ import annotations

import collections
import http.client
import socket
import threading
from collections.abc import Iterator

import pytest

from models import MODELS, pairs
from models.load import STOCK_START
from models.workload import (
    LOST,
    OK,
    TIMED_OUT,
    Dist,
    IoStep,
    Scenario,
    Stage,
    Verifier,
    draw_job,
)
from tests.conftest import TINY_CALIBRATION, retries_needed, step_outcome
from tests.test_models import FLAKY, LOCKED, SEED, SLOW, log, records, run_jobs

PAIRS = [label for label in pairs() if MODELS[label.split("+")[0]].available()]
ROUTED = Scenario(
    "routed",
    "A call over HTTP beside one over the wire protocol.",
    (
        Stage(
            "calls",
            (
                IoStep("charge", Dist("constant", 1.0), 64, 32),
                IoStep("reserve", Dist("constant", 1.0), 16, 8, via="service"),
            ),
        ),
    ),
)


def ask(address: tuple[str, int], target: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.request("POST" if body else "GET", target, body=body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_service_answers_http_with_the_size_and_status_asked_for(
    latency_service: tuple[str, int],
) -> None:
    assert ask(latency_service, "/wait?delay_us=1000&bytes=300&fail=0") == (200, bytes(300))
    status, body = ask(latency_service, "/wait?delay_us=0&bytes=5&fail=1", body=b"x" * 700)
    assert (status, len(body)) == (503, 5)


def test_service_keeps_an_http_connection_alive(latency_service: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*latency_service, timeout=5)
    sockets = set()
    for size in (1, 2, 3):
        connection.request("GET", f"/wait?delay_us=0&bytes={size}")
        answer = connection.getresponse()
        assert (answer.status, len(answer.read())) == (200, size)
        sockets.add(id(connection.sock))
    connection.close()
    assert len(sockets) == 1  # one connection served the three


def test_service_refuses_what_it_cannot_answer(latency_service: tuple[str, int]) -> None:
    status, body = ask(latency_service, "/elsewhere")
    assert status == 400
    assert b"not a request this service answers" in body


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("label", PAIRS)
def test_every_pair_runs_every_job_once_with_the_right_checksum(
    label: str, concurrency: int, tiny: Scenario, latency_service: tuple[str, int]
) -> None:
    tally = run_jobs(label, tiny, concurrency, 25, latency_service)
    assert [r.job_index for r in records(tally)] == list(range(25))
    verifier = Verifier()
    for r in records(tally):
        assert r.outcome == OK, tally.errors
        assert r.checksum == verifier.expected(draw_job(tiny, TINY_CALIBRATION, SEED, r.job_index))


@pytest.mark.parametrize("label", PAIRS)
def test_a_5xx_is_a_failure_and_is_retried(label: str, latency_service: tuple[str, int]) -> None:
    tally = run_jobs(label, FLAKY, 3, 40, latency_service)
    drawn = [draw_job(FLAKY, TINY_CALIBRATION, SEED, i).stages[0][0] for i in range(40)]
    assert [r.outcome for r in records(tally)] == [step_outcome(a) for a in drawn]
    assert collections.Counter(log(tally).retried) == collections.Counter(
        {i: retries_needed(a) for i, a in enumerate(drawn) if retries_needed(a)}
    )


@pytest.mark.parametrize("label", PAIRS)
def test_each_library_honours_the_timeout(label: str, latency_service: tuple[str, int]) -> None:
    tally = run_jobs(label, SLOW, 3, 6, latency_service)
    assert [r.outcome for r in records(tally)] == [TIMED_OUT] * 6
    assert sorted(log(tally).retried) == list(range(6))  # one retry each
    # Two tries cut at 5 ms, not two 2 s waits: the library really gave up.
    assert all(r.ended_s - r.started_s < 1.0 for r in records(tally))


@pytest.mark.parametrize("label", PAIRS)
def test_steps_route_to_http_or_the_wire_protocol(
    label: str, latency_service: tuple[str, int]
) -> None:
    tally = run_jobs(label, ROUTED, 2, 10, latency_service)
    assert [r.outcome for r in records(tally)] == [OK] * 10, tally.errors


@pytest.mark.parametrize("label", [p for p in PAIRS if not MODELS[p.split("+")[0]].one_at_a_time])
def test_the_stock_holds_over_http(label: str, latency_service: tuple[str, int]) -> None:
    tally = run_jobs(label, LOCKED, 4, 30, latency_service)
    assert sum(STOCK_START - level for level in tally.stock) == 30


@pytest.fixture
def dropping() -> Iterator[tuple[str, int]]:
    """A server that reads each request and closes the connection without an answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.recv(65536)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize("label", PAIRS)
def test_a_dropped_connection_fails_the_step_as_an_error(
    label: str, dropping: tuple[str, int]
) -> None:
    scenario = Scenario(
        "one", "One call.", (Stage("call", (IoStep("call", Dist("constant", 1.0)),)),)
    )
    tally = run_jobs(label, scenario, 2, 4, dropping)
    assert [r.outcome for r in records(tally)] == [LOST] * 4
    assert tally.errors
