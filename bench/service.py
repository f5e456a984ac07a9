"""The latency service: a TCP server that answers each request after the delay it asks for.

It stands for the payment gateway, the stock database and the mail relay of the workload.
Models reach it over a socket, never by import.

Wire protocol (all integers big-endian), any number of requests per connection, one at a time:

    request  = delay_us:u32  response_bytes:u32  request_bytes:u32  payload[request_bytes]
    response = response_bytes:u32  payload[response_bytes]

The server reads the whole request (so request sizes cost what they cost on the wire), waits
`delay_us` microseconds on its event loop without blocking other connections, then sends a
response of `response_bytes` bytes. A connection closed by the client ends quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import resource
import signal
import struct
from collections.abc import Callable

from bench.errors import BenchError

REQUEST = struct.Struct("!III")
RESPONSE = struct.Struct("!I")
# Large enough for 10,000 clients connecting at once.
_BACKLOG = 16_384
_ZEROS = bytes(1 << 20)


class ServiceError(BenchError, OSError):
    """Raised when the service cannot listen where it was asked to."""


def encode_request(delay_us: int, response_bytes: int, payload: bytes) -> bytes:
    """One request on the wire."""
    return REQUEST.pack(delay_us, response_bytes, len(payload)) + payload


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one connection until the client closes it."""
    try:
        while True:
            try:
                header = await reader.readexactly(REQUEST.size)
            except asyncio.IncompleteReadError:
                return
            delay_us, response_bytes, request_bytes = REQUEST.unpack(header)
            await reader.readexactly(request_bytes)
            if delay_us:
                await asyncio.sleep(delay_us / 1e6)
            writer.write(RESPONSE.pack(response_bytes))
            remaining = response_bytes
            while remaining:
                chunk = min(remaining, len(_ZEROS))
                writer.write(_ZEROS[:chunk])
                remaining -= chunk
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def serve(host: str, port: int, on_ready: Callable[[str, int], None]) -> None:
    """Listen on (host, port) until cancelled or SIGINT/SIGTERM; report the bound address."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before announcing, so none is missed
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(_answer, host, port, backlog=_BACKLOG)
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


def run_service(host: str, port: int, on_ready: Callable[[str, int], None]) -> None:
    """Run the service in this thread until SIGINT or SIGTERM."""
    # Every client connection is a file descriptor: allow as many as the system lets us.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(serve(host, port, on_ready))
    except OSError as exc:
        raise ServiceError(
            f"cannot listen on {host}:{port} "
            f"({os.strerror(exc.errno) if exc.errno else exc}); pick another --port or --host"
        ) from None
