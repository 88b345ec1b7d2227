"""The example service: ``/whoami`` behind ``AuthenticatedHandler``, the WebSocket
``/ws/whoami`` behind ``AuthenticatedWebSocketHandler``, plus health endpoints.

``python -m service serve --host H --port P``. It listens at once; until the key set is loaded,
TokenReview verifies tokens, and protected requests get 503 with ``Retry-After`` only when that
fails too. ``/readyz`` is 200 while a verification path is available (the key set, or TokenReview:
``Authenticator.readiness()``). SIGTERM (or SIGINT) drains: ``/readyz`` turns 503, new
connections are refused, WebSockets are closed with 1001, requests in flight complete (up to
``--drain-seconds``), and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import tornado.web
from opentelemetry import metrics, trace
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from tornado.httpserver import HTTPServer
from tornado.httputil import (
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPServerRequest,
    RequestStartLine,
    ResponseStartLine,
)
from tornado.iostream import IOStream
from tornado.log import access_log
from tornado.netutil import bind_sockets
from tornado.routing import Rule
from tornado.websocket import WebSocketClosedError

from compass_auth import (
    AuthenticatedHandler,
    Authenticator,
    AuthSettings,
    RouteAccessError,
    check_routes,
    connect,
)
from compass_auth.apiserver.connection import SPARE_CONNECTIONS, KubeConfigError
from compass_auth.logs.budget import LogBudget
from compass_auth.logs.text import LogText
from compass_auth.settings import SettingsError
from compass_auth.telemetry import Telemetry
from compass_auth.tornado.handler import JsonErrorHandler, request_summary
from compass_auth.tornado.server_spans import ServerSpans
from compass_auth.tornado.websocket import AuthenticatedWebSocketHandler

from . import otel
from .accept import PausingListener
from .connection_slots import ConnectionSlots, Refusal, Slot
from .fd_budget import DescriptorBudget, DescriptorBudgetError, fit_descriptor_limit
from .head_limit import head_limited, refuse_oversized_head
from .limits import (
    HEAD_REFUSAL_LINGER_BYTES,
    HEAD_REFUSAL_LINGER_SECONDS,
    IDLE_TIMEOUT,
    MAX_BODY_BYTES,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    MAX_WEBSOCKET_MESSAGE_BYTES,
    MAX_WEBSOCKETS,
    WEBSOCKET_PING_INTERVAL,
)
from .logs import configure_logging
from .otel import TelemetrySetup
from .settings import ServiceSettings, library_environ

logger = logging.getLogger(__name__)

#: At most one "connection limit reached" line per this many seconds, whatever the flood.
REFUSAL_LOG_INTERVAL = 10.0
#: The access log's line for a server error (Tornado's logger, ``tornado.access``).
MSG_SERVER_ERROR = "request failed"


class JsonHandler(JsonErrorHandler):
    """Plain handlers of the example: JSON errors instead of Tornado's HTML page, and access
    log lines without query strings (the library's base of ``AuthenticatedHandler``)."""


class WhoAmIHandler(AuthenticatedHandler):
    """``GET /whoami``: who the verified caller is. Its protection is the service-wide one
    (``AUTH_ALLOWED_SUBJECTS``, ``AUTH_REQUIRED_ACCESS``), which the library applies to every
    authenticated handler, ``/ws/whoami`` included: nothing per route to forget."""

    def compute_etag(self) -> str | None:
        return None  # a per-caller answer: an ETag only costs a SHA-1 per request

    async def get(self) -> None:
        who = self.identity
        self.write({
            "subject": who.subject,
            "namespace": who.namespace,
            "service_account": who.service_account,
            "verified_by": who.verified_by,
        })


class WhoAmISocket(AuthenticatedWebSocketHandler):
    """``/ws/whoami`` (WebSocket): sends who the caller is, then echoes every message; closed
    with 1008 when the caller's token expires (plus ``AUTH_WEBSOCKET_GRACE``)."""

    def initialize(self, service: Service) -> None:
        self.service = service

    async def prepare(self) -> None:
        await super().prepare()
        if self.service.websockets >= self.service.max_websockets:
            # Upgraded connections leave the HTTP server's connection count: a cap of their own.
            self.set_status(503)
            self.set_header("Retry-After", "1")
            self.finish({"error": "temporarily_unavailable",
                         "error_description": "too many WebSocket connections"})
            raise tornado.web.Finish()

    def open(self) -> None:
        who = self.identity
        self.write_message({
            "subject": who.subject,
            "namespace": who.namespace,
            "service_account": who.service_account,
            "verified_by": who.verified_by,
            "expires_at": who.expires_at,
        })
        # After the first write, which raises if the client is already gone: from here on
        # on_close will run.
        self.service.websocket_opened(self)

    def on_message(self, message: str | bytes) -> None:
        # Not awaited: Tornado keeps reading while the echo waits for the client, and the
        # library bounds what may wait (AUTH_WEBSOCKET_MAX_PENDING_BYTES): a client that does
        # not read is closed with 1008 once its unread echoes pass the bound. Messages still
        # in flight then meet a closed connection; they need no answer.
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        self.service.websocket_closed(self)


class HealthHandler(JsonHandler):
    """``GET /healthz``: 200 while the process is up (liveness)."""

    def get(self) -> None:
        self.write({"status": "ok"})


class ReadyHandler(JsonHandler):
    """``GET /readyz``: 200 when a verification path is available, else 503 (readiness)."""

    def initialize(self, service: Service) -> None:
        self.service = service

    async def get(self) -> None:
        status = await self.service.readiness()
        self.set_status(200 if status["ready"] else 503)
        self.write(status)


class MetricsHandler(JsonHandler):
    """``GET /metrics``: every OpenTelemetry metric as Prometheus text."""

    def initialize(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        # Collecting runs every metric callback and records the queued verification durations
        # (telemetry.PENDING_DURATIONS_LIMIT): milliseconds of work, off the event loop.
        text = await asyncio.get_running_loop().run_in_executor(
            None, generate_latest, self.registry)
        self.write(text)


class NotFoundHandler(JsonHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


class DrainingHandler(JsonHandler):
    """Requests that arrive on kept-alive connections while draining: 503, ``Retry-After: 1``,
    and ``Connection: close`` (added by Tornado, see ``Service.drain``)."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(503)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Here, not in prepare: send_error() clears the headers set before it.
        self.set_header("Retry-After", "1")
        super().write_error(status_code, **kwargs)


class BoundedHTTPServer(HTTPServer):
    """An ``HTTPServer`` that keeps at most ``max_connections`` client connections open
    (WebSockets included, until their socket closes), at most ``max_connections_per_address``
    of them from one client address, and answers a request head over ``max_header_size`` with
    431 rather than closing in silence (``service/head_limit.py`` says why that takes a stream
    subclass). Its listening sockets pause on ``EMFILE`` instead of spinning
    (``service/accept.py``)."""

    def initialize(self, *args: Any, max_connections: int = MAX_CONNECTIONS,
                   max_connections_per_address: int | None = None, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        if self.ssl_options is not None:
            # A TLS stream keeps its own socket (head_limited leaves it alone), so its slot
            # would never be given back. The example serves plain HTTP behind the cluster's TLS.
            raise ValueError("BoundedHTTPServer serves plain HTTP only")
        self.slots = ConnectionSlots(
            max_connections, max_connections_per_address or per_address_default(max_connections))
        self.refused_connections = 0
        self._last_refusal_log = float("-inf")
        self.refused_by_address = 0
        self._last_address_refusal_log = float("-inf")
        self.refused_heads = 0
        self._last_head_refusal_log = float("-inf")
        self._head_refusals: set[asyncio.Task[None]] = set()
        self.listeners: list[PausingListener] = []

    @property
    def max_connections(self) -> int:
        return self.slots.max_total

    @property
    def max_connections_per_address(self) -> int:
        return self.slots.max_per_address

    @property
    def open_connections(self) -> int:
        """Client connections whose socket is open: HTTP, WebSocket, or a 431 lingering."""
        return self.slots.total

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        listeners = [PausingListener(sock, describe=self._describe_pause) for sock in sockets]
        self.listeners.extend(listeners)
        super().add_sockets(listeners)

    def _describe_pause(self) -> dict[str, Any]:
        return {"open_connections": self.open_connections,
                "max_connections": self.max_connections}

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        client = str(address[0]) if address else ""
        slot = self.slots.acquire(client)
        if not isinstance(slot, Slot):
            stream.close()
            self._log_refusal(slot, client)
            return
        super().handle_stream(head_limited(stream, functools.partial(self._refuse_head, slot),
                                           on_closed=slot.release), address)

    def _log_refusal(self, refusal: Refusal, client: str) -> None:
        now = time.monotonic()
        if refusal == "total":
            self.refused_connections += 1
            if now - self._last_refusal_log >= REFUSAL_LOG_INTERVAL:
                self._last_refusal_log = now
                logger.warning("connection limit reached; refusing new connections", extra={
                    "max_connections": self.max_connections,
                    "refused_total": self.refused_connections})
        else:
            self.refused_by_address += 1
            if now - self._last_address_refusal_log >= REFUSAL_LOG_INTERVAL:
                self._last_address_refusal_log = now
                logger.warning("connection limit per address reached; refusing its new "
                               "connections", extra={
                                   "address": client,
                                   "max_connections_per_address": self.max_connections_per_address,
                                   "refused_total": self.refused_by_address})

    def _refuse_head(self, slot: Slot, sock: socket.socket) -> None:
        """Called by the stream, which has let go of ``sock``: answer 431 on it."""
        # The refusal keeps the connection's slot until it has closed the socket, so file
        # descriptors stay capped.
        self.refused_heads += 1
        task = asyncio.get_running_loop().create_task(refuse_oversized_head(
            sock, self.conn_params.max_header_size,
            linger_seconds=HEAD_REFUSAL_LINGER_SECONDS, linger_bytes=HEAD_REFUSAL_LINGER_BYTES))
        self._head_refusals.add(task)
        task.add_done_callback(functools.partial(self._head_refused, slot))
        now = time.monotonic()
        if now - self._last_head_refusal_log >= REFUSAL_LOG_INTERVAL:
            self._last_head_refusal_log = now
            logger.info("request head too large; answered 431", extra={
                "max_header_bytes": self.conn_params.max_header_size,
                "refused_total": self.refused_heads})

    def _head_refused(self, slot: Slot, task: asyncio.Task[None]) -> None:
        self._head_refusals.discard(task)
        slot.release()
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("answering 431 failed", exc_info=error)

    async def close_all_connections(self) -> None:
        await super().close_all_connections()
        # Each 431 is sent at once; its lingering close ends within the linger time.
        if self._head_refusals:
            await asyncio.wait(set(self._head_refusals))


def per_address_default(max_connections: int) -> int:
    """Half the connections: one address (one pod, or an attacker reconnecting as fast as it
    is cut) can hold no more, and everyone else shares the other half."""
    return max(1, max_connections // 2)


class ServiceApplication(tornado.web.Application):
    """Counts requests in flight, so a drain can wait for them, and gives each request its
    server span when tracing is on (``compass_auth.tornado.server_spans``, installed here)."""

    def __init__(self, service: Service, *args: Any,
                 server_spans: ServerSpans | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._service = service
        if server_spans is not None:  # nothing traced: not even a wrapper
            server_spans.install(self)
        #: Server-error lines per status (docs/reliability.md#log-volume).
        self.log_budget = LogBudget()

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        if self._service.draining:
            return self.get_handler_delegate(request, DrainingHandler)
        self._service.request_started(request)
        return _Abandonable(super().find_handler(request, **kwargs),
                            lambda: self._service.request_finished(request))

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        self._service.request_finished(handler.request)
        # No access log line per request: spans and metrics say the same, and every rejection
        # already has its own log line. Server errors are still logged, except 503: a request
        # shed or refused for lack of a verification path has its own (budgeted) line, and a
        # draining or unready answer is expected. Each line under a budget per status, with
        # request_summary whatever the handler (Tornado's default summary holds the query).
        status = handler.get_status()
        if status < 500 or status == 503:
            return
        suppressed = self.log_budget.admit(str(status))
        if suppressed is None:
            return
        fields: dict[str, Any] = {"status": status,
                                  "request": request_summary(handler.request),
                                  "duration_ms": round(1000.0 * handler.request.request_time(), 2)}
        text = f"{MSG_SERVER_ERROR}: {status} {fields['request']} {fields['duration_ms']:.2f}ms"
        if suppressed:
            fields["suppressed"] = suppressed
            text += f" [{suppressed} more suppressed before this one]"
        access_log.error(LogText(text, MSG_SERVER_ERROR), extra=fields)


class _Abandonable(HTTPMessageDelegate):
    """Tornado's delegate for one request, plus ``on_abandoned`` when the connection closes
    before the request was read in full (body timeout, client gone). Tornado then calls
    ``on_connection_close`` and never creates a handler, so ``log_request`` never runs: without
    this, the request would stay "in flight" and every drain would wait its full time."""

    def __init__(self, inner: HTTPMessageDelegate, on_abandoned: Callable[[], None]) -> None:
        self._inner = inner
        self._on_abandoned = on_abandoned

    def headers_received(
        self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders
    ) -> Awaitable[None] | None:
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._inner.finish()

    def on_connection_close(self) -> None:
        self._inner.on_connection_close()
        self._on_abandoned()


class Service:
    """The example service around one ``Authenticator``."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        drain_seconds: float = 10.0,
        telemetry: TelemetrySetup | None = None,
        extra_rules: Sequence[tuple[Any, ...]] = (),
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_websockets: int = MAX_WEBSOCKETS,
        websocket_ping_interval: float = WEBSOCKET_PING_INTERVAL,
        owns_telemetry: bool = True,
        max_connections_per_address: int | None = None,
    ) -> None:
        """``owns_telemetry``: whether ``drain`` shuts ``telemetry`` down (flushing it); the demo
        shares one setup among several services and shuts it down itself.
        ``max_connections`` counts WebSockets too; ``max_websockets`` caps their share of it.
        ``max_connections_per_address``: ``None`` is half of ``max_connections``."""
        self.websocket_ping_interval = websocket_ping_interval
        self.authenticator = authenticator
        self._owns_telemetry = owns_telemetry
        self.max_websockets = max_websockets
        self._websockets: set[WhoAmISocket] = set()
        self._no_websockets = asyncio.Event()
        self._no_websockets.set()
        self.drain_seconds = drain_seconds
        self.telemetry = telemetry
        self._extra_rules = extra_rules
        self.draining = False
        self._in_flight: set[HTTPServerRequest] = set()
        self._idle = asyncio.Event()
        self.application = self._make_application()
        self.server = BoundedHTTPServer(
            self.application,
            max_header_size=MAX_HEADER_BYTES,
            max_body_size=MAX_BODY_BYTES,
            idle_connection_timeout=idle_timeout,
            body_timeout=idle_timeout,
            max_connections=max_connections,
            max_connections_per_address=max_connections_per_address,
        )
        self.port: int | None = None
        self.descriptor_limit: int | None = None

    def _make_application(self) -> ServiceApplication:
        # Each route's protection is its handler class's (docs/example-service.md#endpoints,
        # compared with the running application by tests/test_routes.py): the kwargs below
        # carry dependencies, never checks.
        rules: list[Rule | tuple[Any, ...]] = [
            (r"/whoami", WhoAmIHandler),
            (r"/ws/whoami", WhoAmISocket, {"service": self}),
            (r"/healthz", HealthHandler),
            (r"/readyz", ReadyHandler, {"service": self}),
        ]
        if self.telemetry is not None and self.telemetry.registry is not None:
            rules.append((r"/metrics", MetricsHandler, {"registry": self.telemetry.registry}))
        rules.extend(self._extra_rules)
        application = ServiceApplication(
            self,
            rules,
            server_spans=self.telemetry.server_spans if self.telemetry is not None else None,
            authenticator=self.authenticator,
            authorizer=self.authenticator.authorizer,
            default_handler_class=NotFoundHandler,
            websocket_max_message_size=MAX_WEBSOCKET_MESSAGE_BYTES,
            websocket_ping_interval=self.websocket_ping_interval,
        )
        # A check that a route cannot fill would answer 500 to every caller: refuse to start.
        check_routes(application, self.authenticator)
        return application

    @property
    def in_flight(self) -> int:
        """Requests read (or being read) and not answered yet."""
        return len(self._in_flight)

    def request_started(self, request: HTTPServerRequest) -> None:
        self._in_flight.add(request)

    def request_finished(self, request: HTTPServerRequest) -> None:
        """Idempotent: a request may be reported by log_request and by an abandoned read."""
        self._in_flight.discard(request)
        if not self._in_flight and self.draining:
            self._idle.set()

    @property
    def websockets(self) -> int:
        """WebSocket connections open."""
        return len(self._websockets)

    def websocket_opened(self, websocket: WhoAmISocket) -> None:
        self._websockets.add(websocket)
        self._no_websockets.clear()

    def websocket_closed(self, websocket: WhoAmISocket) -> None:
        self._websockets.discard(websocket)
        if not self._websockets:
            self._no_websockets.set()

    async def readiness(self) -> dict[str, Any]:
        """The ``/readyz`` body: ``Authenticator.readiness()``, and not ready while draining."""
        status = (await self.authenticator.readiness()).as_dict()
        if self.draining:
            status = {**status, "ready": False, "draining": True}
        return status

    def listen(self, host: str, port: int) -> int:
        """Bind and serve; returns the bound port (useful with port 0).

        Raises ``DescriptorBudgetError`` (nothing bound) when the connections allowed cannot fit
        under the file descriptor limit (``service/fd_budget.py``).
        """
        sockets = bind_sockets(port, host, family=socket.AF_UNSPEC)
        budget = DescriptorBudget(
            max_connections=self.server.max_connections,
            max_websockets=self.max_websockets,
            listeners=len(sockets),
            api_connections=(self.authenticator.settings.tokenreview_max_in_flight
                             + SPARE_CONNECTIONS),
        )
        try:
            self.descriptor_limit = fit_descriptor_limit(budget)
        except DescriptorBudgetError:
            for sock in sockets:
                sock.close()
            raise
        self.port = sockets[0].getsockname()[1]
        self.server.add_sockets(sockets)  # takes the sockets over (``PausingListener``)
        self.authenticator.start()
        logger.info("listening", extra={
            "host": host, "port": self.port, "max_connections": self.server.max_connections,
            "idle_timeout": self.server.conn_params.header_timeout, "loop": running_loop(),
            "max_connections_per_address": self.server.max_connections_per_address,
            "max_websockets": self.max_websockets, "descriptors_needed": budget.needed,
            "descriptor_limit": self.descriptor_limit})
        return self.port

    async def drain(self) -> None:
        """Stop accepting, let requests in flight finish, then close everything."""
        self.draining = True
        # Tornado decides keep-alive per request from these shared parameters: from now on
        # every answer says "Connection: close" and its connection is closed after it, so
        # clients reconnect (to another replica) instead of reusing this one.
        self.server.conn_params.no_keep_alive = True
        self.server.stop()
        # WebSockets are not requests in flight: each is told to go away (1001, RFC 6455
        # §7.4.1) and its client reconnects elsewhere; their close handshakes run meanwhile.
        for websocket in list(self._websockets):
            websocket.close(1001, "server shutting down")
        waits = [self._idle.wait()] if self.in_flight else []
        if self._websockets:
            waits.append(self._no_websockets.wait())
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), self.drain_seconds)
        if self.in_flight or self._websockets:
            logger.warning("drain timed out", extra={"in_flight": self.in_flight,
                                                     "websockets": self.websockets})
        await self.server.close_all_connections()
        await self.authenticator.close()
        if self.telemetry is not None and self._owns_telemetry:
            self.telemetry.shutdown()  # flush spans and metrics before exit
        logger.info("stopped")


async def serve(
    settings: AuthSettings,
    host: str,
    port: int,
    *,
    environ: Mapping[str, str],
    drain_seconds: float = 10.0,
    on_listening: Callable[[Service], None] | None = None,
    stop: asyncio.Event | None = None,
    extra_rules: Callable[[Authenticator], Sequence[tuple[Any, ...]]] | None = None,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
    max_websockets: int = MAX_WEBSOCKETS,
    max_connections_per_address: int | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); return the process exit code."""
    logger.info("settings", extra=settings.describe())
    try:
        setup = None if otel.sdk_disabled(environ) else otel.configure(environ)
    except SettingsError as error:
        logger.error("invalid settings", extra={"error": str(error)})
        return 2
    telemetry = (
        Telemetry(setup.tracer_provider, setup.meter_provider)
        if setup
        else Telemetry(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())
    )
    try:
        authenticator = await connect(settings, environ, telemetry=telemetry)
    except KubeConfigError as error:
        logger.error("cannot configure the API server connection", extra={"error": str(error)})
        if setup is not None:
            setup.shutdown()
        return 2
    except SettingsError as error:  # AUTH_AUTHENTICATION_CONFIG: the file, field path and rule
        logger.error("invalid settings", extra={"error": str(error)})
        if setup is not None:
            setup.shutdown()
        return 2
    try:
        service = Service(
            authenticator,
            drain_seconds=drain_seconds,
            telemetry=setup,
            extra_rules=extra_rules(authenticator) if extra_rules else (),
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            max_websockets=max_websockets,
            max_connections_per_address=max_connections_per_address,
        )
        service.listen(host, port)
    except (RouteAccessError, DescriptorBudgetError) as error:
        # A check a route cannot fill (compass_auth/tornado/routes.py), or connections that do
        # not fit the descriptor limit (service/fd_budget.py): either way the service cannot
        # work.
        if isinstance(error, RouteAccessError):
            logger.error("invalid settings", extra={"error": str(error)})
        else:
            logger.error("the connection budget does not fit the file descriptor limit",
                         extra={"error": str(error)})
        await authenticator.close()
        if setup is not None:
            setup.shutdown()
        return 2
    # What start-up built (modules, the generated Kubernetes client classes, the SDK) lives as
    # long as the process: out of the collector's sight, a full collection walks only what
    # requests allocate (~35 ms a pause before, several times a minute under load).
    gc.freeze()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if on_listening is not None:
        on_listening(service)
    await stop.wait()
    logger.info("shutting down", extra={"in_flight": service.in_flight})
    await service.drain()
    return 0


#: ``--loop`` values; ``auto`` is uvloop when it is installed, else asyncio.
LOOPS = ("auto", "uvloop", "asyncio")


def running_loop() -> str:
    """``uvloop`` or ``asyncio``: which event loop runs the service (for the listening line)."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``--loop`` (``None``: asyncio's default).

    Tornado runs on any asyncio loop, and uvloop's C event loop takes a share off every
    request's cost (docs/performance.md); the ``service`` extra installs it.
    """
    if loop not in LOOPS:
        raise SettingsError(f"--loop {loop!r} must be one of {', '.join(LOOPS)}")
    if loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if loop == "uvloop":
            raise SettingsError("--loop uvloop: uvloop is not installed (pip install "
                                "'compass-auth[service]', or --loop asyncio)") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(
    host: str,
    port: int,
    drain_seconds: float,
    loop: str = "auto",
    extra_rules: Callable[[Authenticator], Sequence[tuple[Any, ...]]] | None = None,
    *,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
    max_websockets: int = MAX_WEBSOCKETS,
    max_connections_per_address: int | None = None,
) -> int:
    """``python -m service serve``: settings from the environment, logs to stderr, on the event
    loop ``loop`` names (``loop_factory``)."""
    environ = dict(os.environ)
    configure_logging()  # defaults first, so a settings error is logged in the usual format
    try:
        own = ServiceSettings.from_env(environ)
        # The library's warnings (a likely typo, an insecure option) in the chosen format.
        configure_logging(own.log_format, own.log_level)
        settings = AuthSettings.from_env(library_environ(environ))
        factory = loop_factory(loop)
    except SettingsError as error:
        logger.error("invalid settings", extra={"error": str(error)})
        return 2
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve(settings, host, port, environ=environ,
                                drain_seconds=drain_seconds, extra_rules=extra_rules,
                                max_connections=max_connections, idle_timeout=idle_timeout,
                                max_websockets=max_websockets,
                                max_connections_per_address=max_connections_per_address))
