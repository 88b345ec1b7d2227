"""Slow clients (slowloris-style) hold connections open; the service keeps answering others,
cuts the slow ones after its header/body timeout, and caps how many connections it holds.

The example service's timeout is 30 s (``limits.IDLE_TIMEOUT``); these tests inject 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from compass_auth.testing import Fault

from ..conftest import RunningService, StartService, read_until_closed
from .conftest import NewKey

IDLE = 1.0
#: How much later than IDLE a slow client may be cut on a loaded 2-core CI machine.
SLACK = 1.5


class SlowClient:
    """Sends ``preamble`` at once, then ``data`` one byte every ``interval`` s; notes when the
    server closed the connection."""

    def __init__(self, port: int, data: bytes, interval: float = 0.1,
                 preamble: bytes = b"") -> None:
        self.port = port
        self.preamble = preamble
        self.data = data
        self.interval = interval
        self.opened_at = 0.0
        self.closed_at: float | None = None
        self.answer = b""

    async def run(self, stop: asyncio.Event) -> None:
        # Before connecting: the server's timeout starts at its accept, which can come well
        # before this coroutine runs again (200 connections at once, a GC pause late in a run).
        self.opened_at = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        watcher = asyncio.create_task(self._watch(reader))
        try:
            writer.write(self.preamble)
            for index in range(len(self.data)):
                if stop.is_set() or self.closed_at is not None:
                    break
                writer.write(self.data[index:index + 1])
                await writer.drain()
                await asyncio.sleep(self.interval)
        except ConnectionError:
            pass
        finally:
            await asyncio.wait([watcher], timeout=5)
            writer.close()

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            self.answer = await reader.read()
        self.closed_at = time.monotonic()

    @property
    def lifetime(self) -> float:
        assert self.closed_at is not None, "the server never closed this connection"
        return self.closed_at - self.opened_at


SLOW_HEADERS = b"GET /whoami HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"s" * 10_000


async def served(running: RunningService, token: str) -> float:
    """One request that must succeed; returns when its answer arrived (monotonic)."""
    response = await running.get(token=token)
    assert response.code == 200
    return time.monotonic()


async def test_slow_header_senders_are_cut_and_others_are_served(
    start_service: StartService,
) -> None:
    running: RunningService = await start_service(service_options={"idle_timeout": IDLE})
    port = running.service.port
    assert port is not None
    stop = asyncio.Event()
    slow = [SlowClient(port, SLOW_HEADERS) for _ in range(200)]
    tasks = [asyncio.create_task(client.run(stop)) for client in slow]
    token = running.token()
    answered_at = []
    deadline = time.monotonic() + IDLE + SLACK
    while time.monotonic() < deadline:
        answered_at.append(await served(running, token))
        await asyncio.sleep(0.05)
    await asyncio.wait(tasks, timeout=5)
    stop.set()
    assert all(client.closed_at is not None for client in slow)
    lifetimes = sorted(client.lifetime for client in slow)
    # Cut by the header timeout: not at once, and not much later than it.
    assert lifetimes[0] >= IDLE * 0.9, lifetimes[:5]
    assert lifetimes[-1] <= IDLE + SLACK, lifetimes[-5:]
    assert all(client.answer == b"" for client in slow)  # closed without an answer
    # Others were answered while all 200 slow clients still held their connections (the
    # property itself, not a latency budget that a loaded machine could miss).
    first_cut = min(client.closed_at for client in slow if client.closed_at is not None)
    answered_meanwhile = sum(1 for moment in answered_at if moment < first_cut)
    assert answered_meanwhile >= 3, (answered_meanwhile, len(answered_at))


async def test_slow_body_senders_are_cut(start_service: StartService) -> None:
    running: RunningService = await start_service(service_options={"idle_timeout": IDLE})
    port = running.service.port
    assert port is not None
    head = (f"POST /whoami HTTP/1.1\r\nHost: slow\r\nAuthorization: Bearer {running.token()}"
            "\r\nContent-Length: 5000\r\n\r\n").encode()
    # Headers at once, then a body that would take four minutes.
    slow = SlowClient(port, b"b" * 5000, interval=0.05, preamble=head)
    await slow.run(asyncio.Event())
    assert IDLE * 0.9 <= slow.lifetime <= IDLE + SLACK
    assert not slow.answer.startswith(b"HTTP/1.1 200")
    # A request that never got its body is not "in flight": the drain does not wait for it.
    assert running.service.in_flight == 0
    started = time.monotonic()
    await running.service.drain()
    assert time.monotonic() - started < 0.5


async def test_a_client_that_hangs_up_mid_request_is_not_waited_for(
    start_service: StartService, new_key: NewKey,
) -> None:
    running: RunningService = await start_service()
    port = running.service.port
    assert port is not None
    running.cluster.set_fault("jwks", Fault(delay=0.5, times=1))
    token = running.token(key_id=new_key("EC"))  # its verification waits for a slow refetch
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
                 .encode())
    await writer.drain()
    await asyncio.sleep(0.1)
    assert running.service.in_flight == 1
    writer.close()  # the client gives up
    await asyncio.sleep(0.8)  # the verification finishes, with nobody to answer
    assert running.service.in_flight == 0


async def test_idle_keep_alive_connections_are_closed(start_service: StartService) -> None:
    running: RunningService = await start_service(service_options={"idle_timeout": IDLE})
    port = running.service.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # HTTP/1.1: kept alive
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), IDLE + SLACK) == b""  # closed by the server
    assert IDLE * 0.9 <= time.monotonic() - started <= IDLE + SLACK
    writer.close()


async def test_connection_cap_refuses_new_connections_and_recovers(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    cap = 50
    running: RunningService = await start_service(service_options={
        "idle_timeout": IDLE, "max_connections": cap, "max_connections_per_address": cap})
    server = running.service.server
    port = running.service.port
    assert port is not None
    stop = asyncio.Event()
    slow = [SlowClient(port, SLOW_HEADERS) for _ in range(cap)]
    tasks = [asyncio.create_task(client.run(stop)) for client in slow]
    for _ in range(100):
        if server.open_connections == cap:
            break
        await asyncio.sleep(0.01)
    assert server.open_connections == cap
    # One more: closed at once, without a byte of HTTP.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await read_until_closed(reader, 1.0) == b""
    writer.close()
    assert server.refused_connections >= 1
    assert "connection limit reached; refusing new connections" in caplog.text
    # When the header timeout has cut the slow ones, everyone is served again.
    await asyncio.wait(tasks, timeout=IDLE + SLACK + 1)
    stop.set()
    assert all(client.closed_at is not None for client in slow)
    await served(running, running.token())
    assert server.open_connections <= 1
