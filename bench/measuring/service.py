"""The latency service: a TCP server that answers each request after the delay it asks for.

It stands for the payment gateway, the stock database and the mail relay of the workload.
Models reach it over a socket, never by import.

Wire protocol (integers big-endian; defined in `models/wire.py`, which the models use), any
number of requests per connection, one at a time:

    request  = delay_us:u32  response_bytes:u32  request_bytes:u32  fail:u8  payload[request_bytes]
    response = failed:u8  response_bytes:u32  payload[response_bytes]

The server reads the whole request (so request sizes cost what they cost on the wire), waits
`delay_us` microseconds on its event loop without blocking other connections, then sends a
response of `response_bytes` bytes whose `failed` byte echoes `fail`: a step drawn to fail gets
its error from across the socket, as from a real gateway. A connection closed by the client
ends quietly.
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
from bench.measuring.environment import child_environment, python_command
from models.wire import REQUEST, RESPONSE, ZEROS

# Large enough for 10,000 clients connecting at once.
_BACKLOG = 16_384
# How long `--service HOST:PORT` may take to answer a first round trip.
_REACH_TIMEOUT_S = 5.0


class ServiceError(BenchError, OSError):
    """Raised when the service cannot listen where it was asked to."""


class _Answer(asyncio.Protocol):
    """One connection: parse requests as bytes arrive, answer each after its delay.

    A protocol, not streams: a round trip then costs the loop two callbacks and a timer, which
    took the service's CPU per round trip from 58 to {measured} us here (asyncio streams add a
    reader, a future and a drain per request)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        # Clients send one request at a time: at most one answer is pending.
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but acts as one);
        # both loops turn Nagle's algorithm off on TCP transports.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
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
        remaining = response_bytes
        while remaining:
            chunk = min(remaining, len(ZEROS))
            transport.write(ZEROS[:chunk])
            remaining -= chunk

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None


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
        # The service watches its stdin, which only this process writes to: when the run dies,
        # however it dies, the pipe closes and the service stops.
        self.process = subprocess.Popen(
            python_command(None, "-m", "bench", "serve", "--port", "0", "--parent-fd", "0"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_environment(),
            start_new_session=True,  # Ctrl-C goes to the run, which stops the service itself
        )
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
