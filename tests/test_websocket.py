"""WebSocket connections end with their token (``compass_auth/tornado/websocket.py``,
``/ws/whoami``).

Through real WebSocket handshakes (Tornado's ``websocket_connect``) against the example service,
which verifies against the emulator over TLS: refusals are plain HTTP answers, never an
upgraded socket; an accepted connection is closed with 1008 at its token's ``exp`` + grace,
on both verification paths; every close is counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from compass_auth.core.bearer import fingerprint
from compass_auth.testing import DevCluster, Fault
from compass_auth.tornado.websocket import AuthenticatedWebSocketHandler, caller_slots
from service import otel
from service.app import WhoAmISocket
from service.otel import TelemetrySetup

from .conftest import COLLECTOR, RunningService, StartService, log_text, wait_until
from .rawws import PONG, TEXT, RawWebSocket

#: How late a close may come, on a loaded machine (2 cores shared by several test runs).
LATE = 1.0
#: How early a "not before" close may come: asyncio fires a timer within its clock resolution.
EARLY = 0.01


def ws_url(running: RunningService, path: str = "/ws/whoami") -> str:
    return "ws" + running.base_url.removeprefix("http") + path


def request(running: RunningService, token: str | None, path: str = "/ws/whoami",
            **headers: str) -> HTTPRequest:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return HTTPRequest(ws_url(running, path), headers=headers, request_timeout=20)


async def connect(running: RunningService, token: str | None,
                  path: str = "/ws/whoami") -> WebSocketClientConnection:
    connection = await websocket_connect(request(running, token, path))
    # The handshake's answer: 101 with the accept header (the client checked its value).
    assert connection.headers["Upgrade"].lower() == "websocket"
    assert "Sec-WebSocket-Accept" in connection.headers
    return connection


async def refused(running: RunningService, token: str | None, path: str = "/ws/whoami",
                  **headers: str) -> HTTPResponse:
    """The plain HTTP answer to a handshake that must not be upgraded."""
    try:
        connection = await websocket_connect(request(running, token, path, **headers))
    except HTTPClientError as error:
        raised = error
    else:
        connection.close()
        raise AssertionError(f"{path} was upgraded")
    response = raised.response
    assert response is not None
    assert response.code == raised.code != 101
    assert "Upgrade" not in response.headers
    assert "Sec-WebSocket-Accept" not in response.headers
    return response


def body(response: HTTPResponse) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json")
    result: dict[str, Any] = json.loads(response.body)
    return result


async def hello(connection: WebSocketClientConnection) -> dict[str, Any]:
    message = await asyncio.wait_for(connection.read_message(), 10)
    assert isinstance(message, str), message
    result: dict[str, Any] = json.loads(message)
    return result


async def closed_at(connection: WebSocketClientConnection, timeout: float = 15) -> float:
    """Read until the server closes; the wall-clock time the close arrived."""
    async def until_closed() -> None:
        while await connection.read_message() is not None:
            pass

    await asyncio.wait_for(until_closed(), timeout)
    return time.time()


def closes(reader: Any) -> dict[str, int]:
    """``auth.websocket.closes`` by reason, from an in-memory metric reader."""
    data = reader.get_metrics_data()
    found: dict[str, int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "auth.websocket.closes":
                    for point in metric.data.data_points:
                        found[point.attributes["auth.reason"]] = point.value
    return found


# --- refused before the upgrade -------------------------------------------------------------


@pytest.mark.parametrize(("case", "make_token", "path", "status", "reason"), [
    ("no token", lambda running: None, "/ws/whoami", 401, "missing"),
    ("token in the query string", lambda running: None,
     "/ws/whoami?access_token={token}", 401, "missing"),
    ("wrong audience", lambda running: running.token(audiences=("vault",)), "/ws/whoami", 401,
     "audience_mismatch"),
    ("expired", lambda running: running.token(issued_at=int(time.time()) - 7200),
     "/ws/whoami", 401, "expired"),
    ("subject not allowed", lambda running: running.token(service_account="intruder"),
     "/ws/whoami", 403, "subject_not_allowed"),
])
async def test_a_refusal_is_a_plain_http_answer_never_an_upgrade(
    start_service: StartService, case: str, make_token: Any, path: str, status: int,
    reason: str,
) -> None:
    running: RunningService = await start_service(AUTH_ALLOWED_SUBJECTS=COLLECTOR)
    response = await refused(running, make_token(running),
                             path.format(token=running.token()))
    assert (response.code, body(response)["reason"]) == (status, reason)
    assert response.headers["Cache-Control"] == "no-store"
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="compass-auth"')


async def test_no_way_to_verify_is_503_with_retry_after(start_service: StartService) -> None:
    running: RunningService = await start_service(wait=False, AUTH_REDISCOVERY_INTERVAL="30")
    running.cluster.set_fault("all", Fault(status=503))  # discovery, JWKS and TokenReview
    response = await refused(running, running.token())
    assert response.code == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert body(response)["reason"] == "tokenreview_unavailable"


async def test_a_refused_handshake_ends_its_server_span_with_its_status(
    start_service: StartService, telemetry_setup: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """OpenTelemetry's Tornado instrumentation ends a WebSocketHandler's span in on_close only;
    a refusal must end it too, with the status, rather than at garbage collection."""
    setup, spans, _ = telemetry_setup
    running: RunningService = await start_service(telemetry=setup)
    await refused(running, None)
    await refused(running, running.token(audiences=("vault",)))
    connection = await connect(running, running.token())
    await hello(connection)
    connection.close()
    await closed_at(connection)
    await wait_until(lambda: len([s for s in spans.get_finished_spans()
                                  if s.name == "GET /ws/whoami"]) == 3)
    server = [s for s in spans.get_finished_spans() if s.name == "GET /ws/whoami"]
    statuses = [dict(s.attributes or {}).get("http.response.status_code") for s in server]
    assert statuses == [401, 401, 101]
    verify = [s for s in spans.get_finished_spans() if s.name == "auth.verify"]
    assert [s.parent.span_id for s in verify if s.parent] == [s.context.span_id for s in server]
    assert "Failed to detach context" not in caplog.text


async def test_the_example_caps_its_websockets(start_service: StartService) -> None:
    running: RunningService = await start_service(service_options={"max_websockets": 1})
    first = await connect(running, running.token())
    await hello(first)
    response = await refused(running, running.token())
    assert (response.code, response.headers["Retry-After"]) == (503, "1")
    first.close()
    await closed_at(first)
    second = await connect(running, running.token())  # a place is free again
    await hello(second)
    second.close()


class Unguarded(AuthenticatedWebSocketHandler):
    """Overrides prepare() without calling super(): must fail closed, not upgrade."""

    async def prepare(self) -> None:
        pass


async def test_a_prepare_that_skips_authentication_fails_closed(
    start_service: StartService,
) -> None:
    running: RunningService = await start_service(
        service_options={"extra_rules": [(r"/ws/unguarded", Unguarded)]})
    response = await refused(running, running.token(), path="/ws/unguarded")
    assert response.code == 500


# --- accepted, then closed at expiry --------------------------------------------------------


async def test_a_valid_token_upgrades_and_the_identity_comes_first(
    running: RunningService,
) -> None:
    token = running.token()
    connection = await connect(running, token)
    identity = await hello(connection)
    assert identity == {
        "subject": COLLECTOR, "namespace": "default", "service_account": "collector",
        "verified_by": "jwks", "expires_at": identity["expires_at"],
    }
    assert abs(identity["expires_at"] - (time.time() + 3600)) < 5
    connection.write_message("echo me")
    assert await asyncio.wait_for(connection.read_message(), 10) == "echo me"
    connection.close()


async def test_closed_with_1008_at_expiry_and_not_before(
    running: RunningService, caplog: pytest.LogCaptureFixture,
) -> None:
    token = running.token(lifetime=2)
    connection = await connect(running, token)
    exp = (await hello(connection))["expires_at"]
    when = await closed_at(connection)
    assert (connection.close_code, connection.close_reason) == (1008, "token expired")
    assert exp - EARLY <= when < exp + LATE
    logs = log_text(caplog)
    line = next(line for line in logs.splitlines() if "websocket closed: token expired" in line)
    assert f"subject={COLLECTOR}" in line
    assert f"token_fp={fingerprint(token)}" in line
    assert token.split(".")[2] not in logs  # the signature: never logged


async def test_the_grace_period_is_respected(start_service: StartService) -> None:
    class Graceless(AuthenticatedWebSocketHandler):
        expiry_grace_seconds = 0  # the class attribute wins over AUTH_WEBSOCKET_GRACE

    running: RunningService = await start_service(
        AUTH_WEBSOCKET_GRACE="1.5", service_options={"extra_rules": [(r"/ws/now", Graceless)]})
    token = running.token(lifetime=2)
    graceful = await connect(running, token)
    exp = (await hello(graceful))["expires_at"]
    graceless = await connect(running, token, "/ws/now")
    graceful_closed, graceless_closed = await asyncio.gather(
        closed_at(graceful), closed_at(graceless))
    assert (graceful.close_code, graceless.close_code) == (1008, 1008)
    assert exp - EARLY <= graceless_closed < exp + LATE
    assert exp + 1.5 - EARLY <= graceful_closed < exp + 1.5 + LATE


async def test_a_token_already_past_expiry_is_closed_at_once(running: RunningService) -> None:
    # exp 30 s ago: still accepted within the 60 s clock-skew leeway, but past exp + grace 0.
    token = running.token(issued_at=int(time.time()) - 630, lifetime=600)
    started = time.time()
    connection = await connect(running, token)
    assert (await hello(connection))["subject"] == COLLECTOR  # open() ran, then the close
    assert await closed_at(connection) - started < LATE
    assert (connection.close_code, connection.close_reason) == (1008, "token expired")


@pytest.mark.parametrize("how", ["fallback", "review mode, key not seen yet"])
async def test_a_connection_verified_by_tokenreview_closes_at_expiry_too(
    devcluster: DevCluster, start_service: StartService, how: str
) -> None:
    """A TokenReview answer carries no expiry: ``Identity.expires_at`` is the token's ``exp``,
    read by the local checks before the review (compass_auth/verification/review.py)."""
    if how == "fallback":
        devcluster.set_fault("discovery", Fault(status=403))  # not retried: TokenReview serves
        running: RunningService = await start_service()
    else:
        running = await start_service(AUTH_MODE="review")
        devcluster.rotate_key()  # the service has not fetched the new key: verify_local fails
    token = running.token(lifetime=2)
    connection = await connect(running, token)
    identity = await hello(connection)
    assert identity["verified_by"] == "tokenreview"
    assert identity["expires_at"] is not None
    when = await closed_at(connection)
    assert (connection.close_code, connection.close_reason) == (1008, "token expired")
    assert identity["expires_at"] - EARLY <= when < identity["expires_at"] + LATE


class NoExpiry(AuthenticatedWebSocketHandler):
    """A handler whose identity lost its expiry (no verification path does that)."""

    async def prepare(self) -> None:
        await super().prepare()
        self.current_user = dataclasses.replace(self.identity, expires_at=None)


async def test_an_identity_without_expiry_is_closed_at_once(
    start_service: StartService, telemetry_setup: Any
) -> None:
    setup, _, reader = telemetry_setup
    running: RunningService = await start_service(
        telemetry=setup, service_options={"extra_rules": [(r"/ws/no-expiry", NoExpiry)]})
    connection = await connect(running, running.token(), "/ws/no-expiry")
    await closed_at(connection, timeout=LATE)
    assert (connection.close_code, connection.close_reason) == (1008, "token expiry unknown")
    await wait_until(lambda: closes(reader) == {"expiry_unknown": 1})


# --- counted, and nothing left behind -------------------------------------------------------


class Hangup(AuthenticatedWebSocketHandler):
    """Closes the connection itself when told to: a ``server`` close."""

    def on_message(self, message: str | bytes) -> None:
        self.close(1000, "bye")


async def test_every_close_is_counted_by_who_ended_it(
    start_service: StartService, telemetry_setup: Any
) -> None:
    setup, _, reader = telemetry_setup
    running: RunningService = await start_service(
        telemetry=setup, service_options={"extra_rules": [(r"/ws/hangup", Hangup)]})
    expiring = await connect(running, running.token(lifetime=2))
    client = await connect(running, running.token())
    server = await connect(running, running.token(), "/ws/hangup")
    client.close()
    server.write_message("hang up")
    await asyncio.gather(closed_at(expiring), closed_at(client), closed_at(server))
    assert (server.close_code, server.close_reason) == (1000, "bye")
    await wait_until(lambda: sum(closes(reader).values()) == 3)
    assert closes(reader) == {"token_expired": 1, "client": 1, "server": 1}
    metrics = (await running.get("/metrics")).body.decode()
    totals = re.findall(r'^auth_websocket_closes_total\{[^}]*auth_reason="(\w+)"[^}]*\} (\S+)$',
                        metrics, flags=re.MULTILINE)
    assert dict(totals) == {"token_expired": "1.0", "client": "1.0", "server": "1.0"}
    # Refused handshakes were never connections: not counted.
    await refused(running, None)
    assert sum(closes(reader).values()) == 3


def live_sockets() -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, WhoAmISocket))


def pending_timers() -> int:
    """Timers scheduled on the loop and not cancelled (an expiry timer holds its handler)."""
    gc.collect()
    return sum(1 for thing in gc.get_objects()
               if isinstance(thing, asyncio.TimerHandle) and not thing.cancelled())


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def metrics_only() -> Iterator[tuple[TelemetrySetup, InMemoryMetricReader]]:
    """Metrics without spans: an in-memory span exporter would keep every handshake's span."""
    reader = InMemoryMetricReader()
    setup = otel.configure({}, extra_metric_readers=(reader,))
    yield setup, reader
    setup.shutdown()


async def test_clients_that_close_first_leave_no_timer_or_handler_behind(
    start_service: StartService, metrics_only: tuple[TelemetrySetup, InMemoryMetricReader]
) -> None:
    setup, reader = metrics_only
    running: RunningService = await start_service(telemetry=setup)
    token = running.token()  # valid for an hour: every timer must be cancelled, not fired

    async def open_and_close(count: int) -> None:
        for _ in range(count):
            connection = await connect(running, token)
            await hello(connection)
            connection.close()
            await closed_at(connection)

    await open_and_close(200)  # warm-up: caches, allocator pools
    await wait_until(lambda: closes(reader).get("client") == 200)
    rss_before, timers_before = rss_bytes(), pending_timers()
    await open_and_close(1800)
    await wait_until(lambda: closes(reader).get("client") == 2000)
    assert running.service.websockets == 0
    assert live_sockets() == 0
    assert pending_timers() <= timers_before + 5  # not one per connection
    # 1,800 handlers kept alive would hold far more than this (each holds its request).
    assert rss_bytes() - rss_before < 4 * 1024 * 1024


# --- the example service's drain ------------------------------------------------------------


async def test_drain_tells_websockets_to_go_away(running: RunningService) -> None:
    connection = await connect(running, running.token())
    await hello(connection)
    started = time.monotonic()
    await running.service.drain()
    assert time.monotonic() - started < LATE  # the close handshake, not the drain timeout
    await closed_at(connection)
    assert (connection.close_code, connection.close_reason) == (1001, "server shutting down")



# --- a memory budget per connection and a cap per caller (issue 18, findings 1 and 4) -------


def port_of(running: RunningService) -> int:
    return int(running.base_url.rsplit(":", 1)[1])


async def test_a_client_that_never_reads_is_closed_once_its_unread_output_passes_the_bound(
    start_service: StartService, telemetry_setup: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """The echo is not awaited: without a bound, its output piles up in the server for a client
    that sends and never reads (finding 1). The message that would pass the bound closes the
    connection; the client, reading at last, finds every echo before the close frame."""
    setup, _, reader = telemetry_setup
    running: RunningService = await start_service(
        telemetry=setup, AUTH_WEBSOCKET_MAX_PENDING_BYTES=str(128 * 1024))
    token = running.token()
    abuser = await RawWebSocket.connect(port_of(running), token)
    assert abuser.status == 101
    sent = 0
    # The kernel's buffers take the first few MiB (the server's send buffer grows to tcp_wmem's
    # maximum); then the server's own buffer fills. 64 MiB is far past both.
    while "websocket closed: too much unread output" not in caplog.text:
        assert sent < 64 * 1024 * 1024, "still open"
        await abuser.send(TEXT, b"e" * 65536)
        sent += 65536
        await asyncio.sleep(0)
    found = await abuser.read_until_close()
    abuser.close()
    assert (found.code, found.reason) == (1008, "too much unread output")
    assert found.frames >= 2  # the identity, then echoes up to the bound
    await wait_until(lambda: closes(reader) == {"unread_output": 1})
    logs = log_text(caplog)
    line = next(line for line in logs.splitlines()
                if "websocket closed: too much unread output" in line)
    assert f"token_fp={fingerprint(token)}" in line
    assert token.split(".")[2] not in logs
    await wait_until(lambda: running.service.websockets == 0)


async def test_a_reader_gets_every_echo_of_a_burst_larger_than_the_bound(
    start_service: StartService,
) -> None:
    """The bound counts only what waits for the client: with the default bound, a client that
    sends 4 MiB (16 times the bound) as fast as it can, and reads meanwhile, is not closed."""
    running: RunningService = await start_service()
    connection = await connect(running, running.token())
    await hello(connection)

    async def send() -> None:
        for index in range(64):
            await connection.write_message(f"{index:04d}" + "r" * 65000)

    async def receive() -> list[str]:
        echoes = []
        for _ in range(64):
            echo = await asyncio.wait_for(connection.read_message(), 10)
            assert isinstance(echo, str), echo  # None: the server closed the connection
            echoes.append(echo[:4])
        return echoes

    _, echoes = await asyncio.gather(send(), receive())
    assert echoes == [f"{index:04d}" for index in range(64)]
    connection.close()


async def test_unsolicited_pongs_do_not_keep_a_connection_open(
    start_service: StartService, telemetry_setup: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """Finding 4: Tornado's ping timeout counts any pong. A client that never reads and sends a
    pong every 0.1 s must be closed once a ping goes unanswered (interval 0.5 s, timeout 0.5 s);
    a client that reads (Tornado's client answers pings) stays."""
    setup, _, reader = telemetry_setup
    interval = 0.5
    running: RunningService = await start_service(
        telemetry=setup, service_options={"websocket_ping_interval": interval})
    honest = await connect(running, running.token())
    await hello(honest)
    abuser = await RawWebSocket.connect(port_of(running), running.token())
    assert abuser.status == 101
    started = time.monotonic()

    async def heartbeat() -> None:
        while "websocket closed: ping not answered" not in caplog.text:
            await abuser.send(PONG, b"")
            await asyncio.sleep(interval / 5)

    await asyncio.wait_for(heartbeat(), 20 * interval)
    seconds = time.monotonic() - started
    print(f"\nunsolicited pongs every {interval / 5:g} s: closed after {seconds:.2f} s")
    # The first ping goes at one interval, its timeout ends one interval later.
    assert 2 * interval - EARLY <= seconds < 2 * interval + 2 * LATE
    found = await abuser.read_until_close()
    assert (found.code, found.reason) == (1008, "ping not answered")
    abuser.close()
    await wait_until(lambda: closes(reader) == {"ping_timeout": 1})
    await asyncio.sleep(4 * interval)  # four more pings, answered by Tornado's client
    honest.write_message("still here")
    assert await asyncio.wait_for(honest.read_message(), 10) == "still here"
    honest.close()
    await closed_at(honest)
    await wait_until(lambda: closes(reader) == {"ping_timeout": 1, "client": 1})


async def test_one_caller_at_its_cap_is_refused_while_another_is_served(
    start_service: StartService,
) -> None:
    """Finding 4: one token took every WebSocket place. A caller (subject) holds at most
    AUTH_WEBSOCKET_MAX_PER_CALLER; one more handshake gets 429 before the upgrade, and a place
    is given back when a connection ends, whether it was upgraded or refused."""
    running: RunningService = await start_service(AUTH_WEBSOCKET_MAX_PER_CALLER="2")
    first = await connect(running, running.token())
    second = await connect(running, running.token(pod="collector-6c9d8b7f5-other"))  # same SA
    response = await refused(running, running.token())
    assert (response.code, response.headers["Retry-After"]) == (429, "5")
    assert body(response)["reason"] == "websocket_caller_limit"
    assert response.headers["Cache-Control"] == "no-store"
    other = await connect(running, running.token(service_account="reports"))
    assert (await hello(other))["service_account"] == "reports"
    first.close()
    await closed_at(first)
    await wait_until(lambda: running.service.websockets == 2)
    third = await connect(running, running.token())  # a place is free again
    await hello(third)
    for connection in (second, other, third):
        connection.close()
        await closed_at(connection)
    await wait_until(lambda: running.service.websockets == 0)
    # Every place given back, the refused handshake's too: no caller left in the table.
    assert len(caller_slots(running.service.application)) == 0
