"""The latency service's wire protocol, and the blocking I/O that sync, threads and processes share.

Wire protocol (integers big-endian), any number of requests per connection, one at a time:

    request  = delay_us:u32  response_bytes:u32  request_bytes:u32  fail:u8  payload[request_bytes]
    response = failed:u8  response_bytes:u32  payload[response_bytes]

The service reads the whole request, waits `delay_us` microseconds without blocking other
connections, then answers with `response_bytes` bytes; `failed` echoes `fail`, so a step drawn
to fail gets its error from the other side of the socket, as from a real gateway.
"""

from __future__ import annotations

import collections
import socket
import struct
import time
from typing import Protocol

from models.workload import Attempt, StepFailed, Wait

REQUEST = struct.Struct("!IIIB")
RESPONSE = struct.Struct("!BI")
ZEROS = bytes(1 << 20)


# The longest delay a request can ask for, 18 minutes: a request's first byte stays below an
# ASCII letter, so the service tells the wire protocol from HTTP by a connection's first byte.
_MOST_DELAY_US = 0x40FF_FFFF


class NotTheService(ConnectionError):
    """Raised when what answers is not the latency service (its header makes no sense)."""


def check_answer(wait: Wait, failed: int, size: int) -> None:
    """Raise NotTheService unless a response header is the service's answer to `wait`: the
    body is read only after, so a wrong size cannot make a model wait for bytes that never come."""
    if failed > 1 or size != wait.response_bytes:
        raise NotTheService(
            f"the answer is not the latency service's (failed={failed}, {size} bytes where "
            f"{wait.response_bytes} were asked for); is --service pointing at `bench serve`?"
        )


def encode_request(wait: Wait, attempt: Attempt) -> bytes:
    """One try of `wait` on the wire."""
    return request_bytes(attempt.seconds, wait.request_bytes, wait.response_bytes, attempt.fails)


def delay_us(seconds: float) -> int:
    """A drawn wait as the service's delay field; a draw past 18 minutes waits 18 minutes."""
    return min(round(seconds * 1e6), _MOST_DELAY_US)


def request_bytes(seconds: float, size: int, response_bytes: int, fails: bool = False) -> bytes:
    """A request of `size` payload bytes for an answer of `response_bytes` after `seconds`."""
    return REQUEST.pack(delay_us(seconds), response_bytes, size, fails) + ZEROS[:size]


def open_transport(
    service: tuple[str, int] | None,
    connections: int,
    client: str | None = None,
    wire_too: bool = False,
) -> Transport:
    """Blocking I/O to the service at `service` over `connections` pooled connections: HTTP
    through `client` (requests or httpx) for the steps routed over it, and the wire protocol
    for the others (`wire_too`: some steps are); sleeps when there is no service."""
    if service is None:
        return SleepTransport()
    if client is None:
        return TcpTransport(service, connections)
    from models.web import HttpTransport  # only an HTTP point loads the client library

    return HttpTransport(
        client, service, connections, TcpTransport(service, connections) if wire_too else None
    )


class Transport(Protocol):
    """Blocking I/O, shared by a process's threads."""

    def call(self, wait: Wait, attempt: Attempt) -> int: ...
    def close(self) -> None: ...


class SleepTransport:
    """I/O as a blocking sleep; a timeout cuts the sleep short (a sleep cannot be cancelled)."""

    def close(self) -> None:
        """Nothing to close."""

    def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try; returns the response's size."""
        if wait.timeout_s is not None and attempt.seconds > wait.timeout_s:
            time.sleep(wait.timeout_s)
            raise TimeoutError("no answer before the timeout")
        time.sleep(attempt.seconds)
        if attempt.fails:
            raise StepFailed
        return wait.response_bytes


class TcpTransport:
    """Blocking sockets to the service, from a pool of idle connections (shared by threads)."""

    def __init__(self, address: tuple[str, int], connections: int) -> None:
        self.address = address
        self.idle: collections.deque[socket.socket] = collections.deque()  # append/pop: atomic
        for _ in range(connections):
            self.idle.append(self.connect())

    def connect(self) -> socket.socket:
        """A new connection; small requests go out at once (no Nagle delay)."""
        sock = socket.create_connection(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try over an idle connection (a new one if none is idle); returns the response's
        size. A timeout or error closes the connection: its answer may still be on the way."""
        try:
            sock = self.idle.pop()
        except IndexError:
            sock = self.connect()
        deadline = None if wait.timeout_s is None else time.perf_counter() + wait.timeout_s
        try:
            sock.settimeout(wait.timeout_s)
            sock.sendall(encode_request(wait, attempt))
            failed, size = RESPONSE.unpack(_receive(sock, RESPONSE.size, deadline))
            check_answer(wait, failed, size)
            size = len(_receive(sock, size, deadline))
        except BaseException:
            sock.close()
            raise
        self.idle.append(sock)
        if failed:
            raise StepFailed
        return size

    def close(self) -> None:
        """Close the idle connections."""
        while self.idle:
            self.idle.pop().close()


def _receive(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    """Exactly `size` bytes, before `deadline` (socket.timeout is a TimeoutError)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        if deadline is not None:
            sock.settimeout(max(deadline - time.perf_counter(), 1e-6))
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionResetError("the service closed the connection")
        got += n
    return bytes(buffer)
