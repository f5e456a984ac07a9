"""The latency service: a TCP server that answers each request after the delay it asks for.

It stands for the payment gateway, the stock database and the mail relay of the workload.
Models reach it over a socket, never by import. It speaks two protocols on one port, told apart
by a connection's first byte (an HTTP request starts with a letter of its method; the wire
protocol's first byte is the top of a delay that `models.wire` keeps below 0x41 seconds' worth).

The wire protocol (integers big-endian; defined in `models/wire.py`, which the models use), any
number of requests per connection, one at a time:

    request  = delay_us:u32  response_bytes:u32  request_bytes:u32  fail:u8  payload[request_bytes]
    response = failed:u8  response_bytes:u32  payload[response_bytes]

HTTP/1.1 (defined in `models/web.py`), kept alive, one request at a time:

    GET /wait?delay_us=D&bytes=B&fail=F   (or POST, with a body)   ->   200 or 503, B bytes

The server reads the whole request (so request sizes cost what they cost on the wire), waits
the delay on its event loop without blocking other connections, then answers with the bytes
asked for; a request drawn to fail gets its error (the `failed` byte, or a 503) from across the
socket, as from a real gateway. A connection closed by the client ends quietly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import resource
import signal
import socket
import subprocess
from collections.abc import Callable
from typing import cast

from bench.errors import BenchError
from bench.measuring.environment import start_watched
from models.wire import REQUEST, RESPONSE, ZEROS

# Large enough for 10,000 clients connecting at once.
_BACKLOG = 16_384
# How long `--service HOST:PORT` may take to answer a first round trip.
_REACH_TIMEOUT_S = 5.0


class ServiceError(BenchError, OSError):
    """Raised when the service cannot listen where it was asked to."""


# The first byte of an HTTP request is a letter of its method; the wire protocol's never is.
_HTTP_FIRST = ord("A")
# How long an HTTP request's head may grow before the connection is refused as not HTTP.
_MOST_HEAD_BYTES = 8192
_HTTP_STATUS = {0: b"200 OK", 1: b"503 Service Unavailable"}


class _Answer(asyncio.Protocol):
    """One connection: parse requests as bytes arrive, answer each after its delay.

    A protocol, not streams: a round trip then costs the loop two callbacks and a timer, which
    took the service's CPU per round trip from 58 to 38 us here (asyncio streams add a
    reader, a future and a drain per request)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        # Clients send one request at a time: at most one answer is pending.
        self.timer: asyncio.TimerHandle | None = None
        self.http: bool | None = None  # which protocol: known from the first byte

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but acts as one);
        # both loops turn Nagle's algorithm off on TCP transports.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.http is None:
            self.http = buffer[0] >= _HTTP_FIRST
        if self.http:
            self.http_received()
            return
        loop = asyncio.get_running_loop()
        while len(buffer) >= REQUEST.size:
            delay_us, response_bytes, request_bytes, fail = REQUEST.unpack_from(buffer)
            end = REQUEST.size + request_bytes
            if len(buffer) < end:  # the payload is still on its way
                return
            del buffer[:end]
            if delay_us:
                self.timer = loop.call_later(delay_us / 1e6, self.respond, fail, response_bytes)
            else:
                self.respond(fail, response_bytes)

    def respond(self, fail: int, response_bytes: int) -> None:
        """Send one answer (a timer's callback, or at once for no delay)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(RESPONSE.pack(fail, response_bytes))
        self.write_zeros(response_bytes)

    def write_zeros(self, size: int) -> None:
        """Send `size` bytes of payload."""
        assert self.transport is not None
        while size:
            chunk = min(size, len(ZEROS))
            self.transport.write(ZEROS[:chunk])
            size -= chunk

    def http_received(self) -> None:
        """Take each whole HTTP request off the buffer and answer it after its delay."""
        buffer = self.buffer
        while (head_end := buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(buffer[:head_end]).lower()
            try:
                request = _http_request(head)
            except ValueError as error:
                self.refuse(str(error))
                return
            delay_us, response_bytes, fail, body_bytes, keep_alive = request
            end = head_end + 4 + body_bytes
            if len(buffer) < end:  # the body is still on its way
                return
            del buffer[:end]
            respond = self.respond_http
            if delay_us:
                self.timer = asyncio.get_running_loop().call_later(
                    delay_us / 1e6, respond, fail, response_bytes, keep_alive
                )
            else:
                respond(fail, response_bytes, keep_alive)
        if len(buffer) > _MOST_HEAD_BYTES:
            self.refuse("request head too long")

    def respond_http(self, fail: int, response_bytes: int, keep_alive: bool) -> None:
        """Send one HTTP answer: 200, or 503 for a request drawn to fail."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n%s\r\n"
            % (_HTTP_STATUS[fail], response_bytes, b"" if keep_alive else b"Connection: close\r\n")
        )
        self.write_zeros(response_bytes)
        if not keep_alive:
            transport.close()

    def refuse(self, reason: str) -> None:
        """Answer a request the service cannot read with a 400, and close the connection."""
        if self.transport is not None:
            body = reason.encode()
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None


def _http_request(head: bytes) -> tuple[int, int, int, int, bool]:
    """From a request's head (lower-cased): its delay in microseconds, the answer's size, whether
    it fails, the size of its body and whether the connection stays open after it."""
    line, _, headers = head.partition(b"\r\n")
    method, target, version = ([*line.split(b" "), b"", b""])[:3]
    path, _, query = target.partition(b"?")
    if method not in (b"get", b"post") or path != b"/wait" or not version.startswith(b"http/1."):
        raise ValueError(f"not a request this service answers: {line[:80]!r}")
    fields = dict(pair.partition(b"=")[::2] for pair in query.split(b"&"))
    body_bytes = 0
    keep_alive = version == b"http/1.1"
    for header in headers.split(b"\r\n"):
        name, _, value = header.partition(b":")
        if name == b"content-length":
            body_bytes = int(value)
        elif name == b"connection":
            keep_alive = value.strip() == b"keep-alive"
    try:
        return (
            int(fields[b"delay_us"]),
            int(fields[b"bytes"]),
            int(fields.get(b"fail", b"0")) & 1,
            body_bytes,
            keep_alive,
        )
    except (KeyError, ValueError):
        raise ValueError(f"a request needs delay_us and bytes: {target[:80]!r}") from None


async def serve(
    host: str, port: int, on_ready: Callable[[str, int], None], parent_fd: int | None = None
) -> None:
    """Listen on (host, port) until cancelled, SIGINT/SIGTERM, or (given `parent_fd`, a pipe
    its parent holds open) the parent's death; report the bound address."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before announcing, so none is missed
        loop.add_signal_handler(signum, stop.set)
    if parent_fd is not None:  # readable only once the parent's end closes: it has died
        loop.add_reader(parent_fd, stop.set)
    server = await loop.create_server(_Answer, host, port, backlog=_BACKLOG)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    on_ready(bound_host, bound_port)
    async with server:
        await stop.wait()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop where it is installed (the service must not be the bottleneck)."""
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_service(
    host: str, port: int, on_ready: Callable[[str, int], None], parent_fd: int | None = None
) -> None:
    """Run the service in this thread until SIGINT or SIGTERM (or the death of the parent
    that holds `parent_fd` open)."""
    # Every client connection is a file descriptor: allow as many as the system lets us.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(serve(host, port, on_ready, parent_fd))
    except OSError as exc:
        raise ServiceError(
            f"cannot listen on {host}:{port} "
            f"({os.strerror(exc.errno) if exc.errno else exc}); pick another --port or --host"
        ) from None


def check_reachable(address: tuple[str, int]) -> None:
    """Make one round trip to a running service, or raise ServiceError saying how to fix it."""
    host, port = address
    try:
        with socket.create_connection(address, timeout=_REACH_TIMEOUT_S) as sock:
            sock.sendall(REQUEST.pack(0, 1, 0, 0))
            answer = sock.recv(RESPONSE.size + 1)
    except OSError as exc:
        raise ServiceError(
            f"cannot reach the latency service at {host}:{port} ({exc.strerror or exc}); "
            "start one there with `python -m bench serve --host 0.0.0.0`, or leave out --service"
        ) from None
    if len(answer) < RESPONSE.size:
        raise ServiceError(
            f"{host}:{port} does not answer as the latency service does; "
            "is `python -m bench serve` listening there?"
        )


class Service:
    """A latency service somewhere else, already running: the run only checks it answers."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.pid: int | None = None  # not ours: its CPU cannot be read

    def ensure(self) -> None:
        """Make sure the service is up before a point."""
        check_reachable(self.address)

    def died(self) -> str:
        """Why the service stopped during the last point ("" if it did not, or cannot tell)."""
        return ""

    def stalled(self) -> str:
        """Why the service does not answer now ("" if it does): stopped, hung, or not it."""
        try:
            check_reachable(self.address)
        except ServiceError:
            return (
                f"the latency service at {self.address[0]}:{self.address[1]} stopped answering "
                "during the point"
            )
        return ""

    def close(self) -> None:
        """Nothing to stop: the service is not the run's."""


class LocalService(Service):
    """The run's own latency service: a process beside the points, outside the measured tree,
    started again if a point finds it dead."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0))
        self.process: subprocess.Popen[str] | None = None

    def ensure(self) -> None:
        """Start the service, or start it again if it has died or stopped answering."""
        if self.process is not None:
            if self.process.poll() is None and not self.stalled():
                return
            self.process.kill()  # hung (or stopped): a new one takes its place
            self.process.communicate()
        self.process = start_watched("-m", "bench", "serve", "--port", "0", "--parent-fd", "0")
        assert self.process.stdout is not None
        found = re.search(r"listening on (\S+):(\d+)", self.process.stdout.readline())
        if found is None:
            self.process.kill()
            _, err = self.process.communicate()
            raise ServiceError(f"the latency service did not start: {err.strip() or 'no output'}")
        self.address, self.pid = (found[1], int(found[2])), self.process.pid

    def died(self) -> str:
        """Why the service stopped during the last point ("" if it is still running)."""
        if self.process is None or self.process.poll() is None:
            return ""
        return (
            f"the latency service (pid {self.process.pid}) died during the point "
            f"(exit status {self.process.returncode}); it is restarted for the next point"
        )

    def close(self) -> None:
        """Stop the service (SIGTERM, then kill if it lingers)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
