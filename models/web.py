"""HTTP for the I/O steps routed over it: the latency service's requests as URLs, and the client
libraries each ecosystem uses (requests, httpx, aiohttp), one shared client per process.

A try of a step is one request to the service (the same address as the wire protocol's; the
service tells the protocols apart by a connection's first byte):

    GET  /wait?delay_us=D&bytes=B&fail=F      (POST, with the step's request bytes as its body)

The service answers after D microseconds with B bytes: 200 OK, or 503 when F is 1, as a failing
gateway does. Each client has its own pool, sized for every try a process may have in flight
(the libraries' defaults are smaller: `POOLS`); httpx keeps its default number of idle
connections alive; a step's timeout is the library's own.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from models.wire import ZEROS, NotTheService, TcpTransport, delay_us
from models.workload import Attempt, StepFailed, Wait

if TYPE_CHECKING:
    import aiohttp
    import httpx
    import requests

    from models.load import Window

# httpx keeps this many idle connections unless told (`httpx.Limits`' default). The suite
# leaves it: httpcore scans every idle connection (and polls its socket) for each request, so
# keeping N alive made a request cost 6 ms of CPU at N=100 where the default costs 1.2.
_HTTPX_KEEP_ALIVE = 20
# Each client, by the name a point carries: its pool as the suite sets it, and its default.
_IN_FLIGHT = "every try a process's users may have in flight"
POOLS = {
    "requests": (
        f"pool_maxsize: {_IN_FLIGHT}",
        "10 connections per host (HTTPAdapter pool_maxsize)",
    ),
    "httpx": (
        f"max_connections: {_IN_FLIGHT}; max_keepalive_connections: its default",
        "100 connections, 20 kept alive (httpx.Limits)",
    ),
    "aiohttp": (f"limit and limit_per_host: {_IN_FLIGHT}", "100 connections (TCPConnector)"),
}
_FAILED = 503


def version(client: str) -> str:
    """The installed version of `client` ("" if it is not installed)."""
    try:
        return importlib.metadata.version(client)
    except importlib.metadata.PackageNotFoundError:
        return ""


def target(wait: Wait, attempt: Attempt) -> tuple[str, str, bytes | None]:
    """One try of `wait` as an HTTP request: its method, path and body."""
    path = (
        f"/wait?delay_us={delay_us(attempt.seconds)}&bytes={wait.response_bytes}"
        f"&fail={int(attempt.fails)}"
    )
    if wait.request_bytes:
        return "POST", path, ZEROS[: wait.request_bytes]
    return "GET", path, None


def check(wait: Wait, status: int, body: bytes) -> int:
    """The size of a step's answer; raise StepFailed for the service's 503, NotTheService for
    anything the service would not have sent."""
    if status not in (200, _FAILED) or len(body) != wait.response_bytes:
        raise NotTheService(
            f"the answer is not the latency service's (HTTP {status}, {len(body)} bytes where "
            f"{wait.response_bytes} were asked for); is --service pointing at `bench serve`?"
        )
    if status == _FAILED:
        raise StepFailed
    return len(body)


class HttpTransport:
    """Blocking HTTP through `client` (requests or httpx) for the steps routed over it, and the
    wire protocol over `tcp` for the others; shared by a process's threads, as each library's
    client is meant to be."""

    def __init__(
        self, client: str, address: tuple[str, int], connections: int, tcp: TcpTransport | None
    ) -> None:
        self.base = f"http://{address[0]}:{address[1]}"
        self.tcp = tcp
        self.session: requests.Session | None = None
        self.client: httpx.Client | None = None
        if client == "requests":
            import requests.adapters

            self.session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=connections)
            self.session.mount("http://", adapter)
            self.timeout_error: type[Exception] = requests.Timeout
        else:
            import httpx

            self.timeout_error = httpx.TimeoutException
            limits = httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections
            )
            self.client = httpx.Client(base_url=self.base, limits=limits)

    def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try; returns the response's size (the whole body is read)."""
        if wait.via != "http" and self.tcp is not None:
            return self.tcp.call(wait, attempt)
        method, path, body = target(wait, attempt)
        try:
            if self.session is not None:
                answer = self.session.request(
                    method, self.base + path, data=body, timeout=wait.timeout_s
                )
                return check(wait, answer.status_code, answer.content)
            assert self.client is not None
            reply = self.client.request(method, path, content=body, timeout=wait.timeout_s)
        except self.timeout_error as error:  # neither library's timeouts are TimeoutErrors
            raise TimeoutError("no answer before the timeout") from error
        return check(wait, reply.status_code, reply.content)

    def close(self) -> None:
        """Close the pools."""
        if self.session is not None:
            self.session.close()
        if self.client is not None:
            self.client.close()
        if self.tcp is not None:
            self.tcp.close()


class AsyncClient(Protocol):
    """What the async models call for a step routed over HTTP."""

    async def call(self, wait: Wait, attempt: Attempt) -> int: ...


class AiohttpClient:
    """aiohttp's ClientSession, on asyncio."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        import aiohttp

        self.session = session
        self.timeout = aiohttp.ClientTimeout

    async def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try; a timeout raises TimeoutError (aiohttp's own are subclasses of it)."""
        method, path, body = target(wait, attempt)
        timeout = self.timeout(total=wait.timeout_s)
        async with self.session.request(method, path, data=body, timeout=timeout) as answer:
            return check(wait, answer.status, await answer.read())


class HttpxClient:
    """httpx's AsyncClient, on asyncio or trio."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        import httpx

        self.client = client
        self.timeout_error = httpx.TimeoutException

    async def call(self, wait: Wait, attempt: Attempt) -> int:
        """One try; httpx's timeouts are not TimeoutErrors, so they are turned into one."""
        method, path, body = target(wait, attempt)
        try:
            answer = await self.client.request(method, path, content=body, timeout=wait.timeout_s)
        except self.timeout_error as error:
            raise TimeoutError("no answer before the timeout") from error
        return check(wait, answer.status_code, answer.content)


@asynccontextmanager
async def open_client(window: Window, users: int) -> AsyncIterator[AsyncClient | None]:
    """The window's async client library with a pool sized for `users` users, open for the
    block; None when the point's I/O is not over HTTP."""
    if window.client is None or window.service is None:
        yield None
        return
    base = f"http://{window.service[0]}:{window.service[1]}"
    connections = window.connections(users)
    if window.client == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
        async with aiohttp.ClientSession(base, connector=connector) as session:
            yield AiohttpClient(session)
        return
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=_HTTPX_KEEP_ALIVE)
    async with httpx.AsyncClient(base_url=base, limits=limits) as http:
        yield HttpxClient(http)
