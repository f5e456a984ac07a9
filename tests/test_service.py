"""The latency service, driven over real sockets as the models and other machines reach it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.wire import REQUEST, RESPONSE

ROOT = Path(__file__).parent.parent


@pytest.fixture
def service() -> Iterator[tuple[subprocess.Popen[str], tuple[str, int]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.match(r"latency service listening on ([\d.]+):(\d+) \(Ctrl-C to stop\)", line)
    assert found, line
    yield process, (found[1], int(found[2]))
    process.kill()
    process.communicate()


def request(delay_us: int, response_bytes: int, payload: bytes, fail: bool = False) -> bytes:
    return REQUEST.pack(delay_us, response_bytes, len(payload), fail) + payload


def call(
    sock: socket.socket, delay_us: int, response_bytes: int, payload: bytes, fail: bool = False
) -> tuple[bool, bytes]:
    sock.sendall(request(delay_us, response_bytes, payload, fail))
    failed, size = RESPONSE.unpack(receive(sock, RESPONSE.size))
    return bool(failed), receive(sock, size)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_round_trips_wait_and_answer_with_the_asked_size(
    service: tuple[subprocess.Popen[str], tuple[str, int]],
) -> None:
    _, address = service
    with socket.create_connection(address, timeout=10) as sock:
        start = time.perf_counter()
        failed, answer = call(sock, 20_000, 3000, b"x" * 5000)
        assert (failed, len(answer)) == (False, 3000)
        assert time.perf_counter() - start >= 0.02  # it waited at least what was asked
        for size in (0, 1, 2_000_000):  # the same connection serves request after request
            assert len(call(sock, 0, size, b"")[1]) == size


def test_a_request_marked_to_fail_gets_an_error_answer(
    service: tuple[subprocess.Popen[str], tuple[str, int]],
) -> None:
    _, address = service
    with socket.create_connection(address, timeout=10) as sock:
        assert call(sock, 1000, 16, b"", fail=True) == (True, bytes(16))
        assert call(sock, 1000, 16, b"")[0] is False


def test_many_connections_are_served_concurrently(
    service: tuple[subprocess.Popen[str], tuple[str, int]],
) -> None:
    _, address = service
    sockets = [socket.create_connection(address, timeout=10) for _ in range(200)]
    try:
        start = time.perf_counter()
        for sock in sockets:
            sock.sendall(request(200_000, 10, b""))
        for sock in sockets:
            _, size = RESPONSE.unpack(receive(sock, RESPONSE.size))
            assert len(receive(sock, size)) == 10
        # 200 waits of 0.2 s served one by one would take 40 s.
        assert time.perf_counter() - start < 20
    finally:
        for sock in sockets:
            sock.close()


def test_sigterm_stops_it_cleanly(service: tuple[subprocess.Popen[str], tuple[str, int]]) -> None:
    process, _ = service
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_a_busy_port_is_one_line_and_status_2(
    service: tuple[subprocess.Popen[str], tuple[str, int]],
) -> None:
    _, (host, port) = service
    done = subprocess.run(
        [sys.executable, "-m", "bench", "serve", "--host", host, "--port", str(port)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"bench: error: cannot listen on {host}:{port} (Address already in use); "
        "pick another --port or --host\n"
    )


def test_request_header_layout() -> None:
    assert REQUEST.size == 13
    assert request(1, 2, b"ab", fail=True) == (
        b"\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02\x01ab"
    )
