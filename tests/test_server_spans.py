"""Server spans (compass_auth/tornado/server_spans.py) in the example service and in a plain
Tornado application, and telemetry that is off.

Spans are read from an in-memory exporter; requests go over real HTTP, from a client nothing
traces (``raw_get``), so only the headers a test gives are sent.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import tornado.web
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.semconv.attributes import (
    client_attributes,
    error_attributes,
    http_attributes,
    network_attributes,
    server_attributes,
    url_attributes,
    user_agent_attributes,
)
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.util.types import Attributes
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from compass_auth import AuthenticatedHandler, Authenticator, AuthSettings, connect
from compass_auth import telemetry as names
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster
from compass_auth.tornado import server_spans
from compass_auth.tornado.server_spans import add_server_spans
from service import otel
from service.otel import TelemetrySetup

from .conftest import AUDIENCE, COLLECTOR, RunningService, StartService, raw_get

ROOT = Path(__file__).resolve().parent.parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-01"
UNSAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-00"
#: HTTP attribute names of the old, unstable conventions: no span may carry them.
OLD_HTTP_NAMES = {"http.method", "http.url", "http.target", "http.host", "http.scheme",
                  "http.status_code", "http.flavor", "http.user_agent", "http.client_ip",
                  "net.peer.ip", "net.host.port", "net.peer.name", "tornado.handler"}


class Boom(tornado.web.RequestHandler):
    def get(self) -> None:
        raise RuntimeError("a bug")


class RecordingSampler(Sampler):
    """Parent-based always-on, remembering the attributes each decision was given."""

    def __init__(self) -> None:
        self.inner = ParentBased(ALWAYS_ON)
        self.seen: list[tuple[SpanKind | None, Attributes]] = []

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: Any = None) -> SamplingResult:
        self.seen.append((kind, attributes))
        return self.inner.should_sample(parent_context, trace_id, name, kind, attributes,
                                        links, trace_state)

    def get_description(self) -> str:
        return "Recording" + str(self.inner.get_description())  # type: ignore[no-untyped-call]


def configure(environ: dict[str, str]) -> tuple[TelemetrySetup, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return otel.configure(environ, extra_span_exporters=(exporter,)), exporter


def with_sampler(sampler: Sampler) -> tuple[TelemetrySetup, InMemorySpanExporter]:
    """As ``otel.configure`` builds it, with a sampler object no variable can name."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = server_spans.ServerSpans(provider, server_spans.excluded_urls({}))
    return TelemetrySetup(provider, NoOpMeterProvider(), None, spans), exporter


@pytest.fixture
def traced_setup() -> Iterator[tuple[TelemetrySetup, InMemorySpanExporter]]:
    setup, exporter = configure({})
    yield setup, exporter
    setup.shutdown()


def servers(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]


async def test_a_server_span_continues_traceparent_with_stable_http_attributes(
    start_service: StartService, traced_setup: tuple[TelemetrySetup, InMemorySpanExporter],
) -> None:
    setup, exporter = traced_setup
    running = await start_service(telemetry=setup)
    status = await raw_get(running.service.port, {
        "Authorization": f"Bearer {running.token()}", "traceparent": SAMPLED,
        "User-Agent": "probe/1.0"}, path="/whoami?x=1")
    assert status == 200
    (server,) = servers(exporter)
    assert server.name == "GET /whoami"
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert dict(server.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/whoami",
        "url.query": "REDACTED",  # a query string may hold a token: never copied
        "http.route": "/whoami",
        "server.address": "test",  # the Host header raw_get sends
        "server.port": 80,  # none in the Host header: the scheme's default
        "network.protocol.version": "1.1",
        "client.address": "127.0.0.1",
        "user_agent.original": "probe/1.0",
        "http.response.status_code": 200,
    }
    assert server.status.status_code == StatusCode.UNSET
    (verify,) = [s for s in exporter.get_finished_spans() if s.name == "auth.verify"]
    assert verify.parent is not None
    assert verify.parent.span_id == server.context.span_id


async def test_server_and_client_spans_use_the_same_stable_names(
    start_service: StartService, traced_setup: tuple[TelemetrySetup, InMemorySpanExporter],
) -> None:
    setup, exporter = traced_setup
    running = await start_service(telemetry=setup)  # start-up discovery: two client spans
    await raw_get(running.service.port, {"Authorization": f"Bearer {running.token()}"})
    spans = exporter.get_finished_spans()
    (server,) = servers(exporter)
    clients = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert {s.name for s in clients} == {"GET /.well-known/openid-configuration",
                                         "GET /openid/v1/jwks"}
    api_port = running.cluster.port
    for client in clients:
        attributes = dict(client.attributes or {})
        assert attributes["server.address"] == "127.0.0.1"  # a host, not a URL
        assert attributes["server.port"] == api_port
        assert attributes["http.response.status_code"] == 200
        assert str(attributes["url.full"]).startswith(f"https://127.0.0.1:{api_port}/")
    shared = {"http.request.method", "server.address", "server.port",
              "http.response.status_code"}
    assert shared <= set(server.attributes or {})
    for span in spans:
        assert not OLD_HTTP_NAMES & set(span.attributes or {}), span.name


async def test_errors_and_refusals(
    start_service: StartService, traced_setup: tuple[TelemetrySetup, InMemorySpanExporter],
) -> None:
    setup, exporter = traced_setup
    running = await start_service(telemetry=setup,
                                  service_options={"extra_rules": [(r"/boom", Boom)]})
    assert await raw_get(running.service.port, {}, path="/boom") == 500
    assert await raw_get(running.service.port, {}) == 401
    assert await raw_get(running.service.port, {}, path="/nowhere") == 404
    spans = {s.name: s for s in servers(exporter)}
    assert set(spans) == {"GET /boom", "GET /whoami", "GET"}  # no route for a 404
    boom = spans["GET /boom"]
    assert boom.status.status_code == StatusCode.ERROR  # only 5xx mark a server span failed
    assert dict(boom.attributes or {})["error.type"] == "500"
    for name in ("GET /whoami", "GET"):
        assert spans[name].status.status_code == StatusCode.UNSET
        assert "error.type" not in dict(spans[name].attributes or {})
    assert dict(spans["GET /whoami"].attributes or {})["http.response.status_code"] == 401
    assert "http.route" not in dict(spans["GET"].attributes or {})


@pytest.mark.parametrize(("environ", "traced", "untraced"), [
    ({}, "/whoami", ("/healthz", "/readyz", "/metrics")),
    ({"OTEL_PYTHON_TORNADO_EXCLUDED_URLS": "whoami"}, "/healthz", ("/whoami",)),
    ({"OTEL_PYTHON_EXCLUDED_URLS": "who.mi,ready"}, "/healthz", ("/whoami", "/readyz")),
])
async def test_excluded_paths(
    start_service: StartService, environ: dict[str, str], traced: str,
    untraced: tuple[str, ...],
) -> None:
    setup, exporter = configure(environ)
    try:
        running = await start_service(telemetry=setup)
        for path in (*untraced, traced):
            await raw_get(running.service.port, {}, path=path)
        assert [s.attributes["url.path"] for s in servers(exporter)  # type: ignore[index]
                ] == [traced]
    finally:
        setup.shutdown()


async def test_the_sampler_decides_before_any_attribute_is_collected(
    start_service: StartService, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sampler = RecordingSampler()
    setup, exporter = with_sampler(sampler)
    collected = Counter[str]()
    original = server_spans.request_attributes

    def counting(request: Any, route: str | None) -> dict[str, Any]:
        collected[request.headers.get("traceparent", "")] += 1
        return original(request, route)

    monkeypatch.setattr(server_spans, "request_attributes", counting)
    try:
        running = await start_service(telemetry=setup)
        token = running.token()
        for traceparent in (UNSAMPLED, SAMPLED):
            assert await raw_get(running.service.port, {
                "Authorization": f"Bearer {token}", "traceparent": traceparent}) == 200
    finally:
        setup.shutdown()
    # The unsampled request collected nothing and exported nothing; the sampled one both.
    assert collected == {SAMPLED: 1}
    (server,) = servers(exporter)
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    decided = [attributes for kind, attributes in sampler.seen if kind == SpanKind.SERVER]
    assert decided == [None, None]  # both server spans, decided without attributes


async def test_a_request_abandoned_before_its_body_ends_its_span(
    start_service: StartService, traced_setup: tuple[TelemetrySetup, InMemorySpanExporter],
) -> None:
    setup, exporter = traced_setup
    running = await start_service(telemetry=setup)
    _reader, writer = await asyncio.open_connection("127.0.0.1", running.service.port)
    writer.write(b"POST /whoami HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\npartial")
    await writer.drain()
    writer.close()
    for _ in range(100):
        if servers(exporter):
            break
        await asyncio.sleep(0.02)
    (server,) = servers(exporter)
    assert server.status.status_code == StatusCode.ERROR
    assert dict(server.attributes or {})["error.type"] == "connection_closed"
    assert running.service.in_flight == 0


# --- telemetry that is off costs nothing ------------------------------------------------------


class OpenTelemetryCalls:
    """Counts calls into any ``opentelemetry`` module on this thread (the event loop's)."""

    def __init__(self) -> None:
        self.calls = Counter[str]()

    def __enter__(self) -> OpenTelemetryCalls:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and "/opentelemetry/" in frame.f_code.co_filename:
            self.calls[f"{frame.f_code.co_filename.rpartition('/opentelemetry/')[2]}:"
                       f"{frame.f_code.co_name}"] += 1


async def requests_of_every_kind(running: RunningService) -> None:
    port = running.service.port
    token = running.token()
    assert await raw_get(port, {"Authorization": f"Bearer {token}"}) == 200  # first sight
    assert await raw_get(port, {"Authorization": f"Bearer {token}",
                                "traceparent": SAMPLED}) == 200  # cache hit
    assert await raw_get(port, {"Authorization": f"Bearer {running.token(audiences=('x',))}"}
                         ) == 401
    assert await raw_get(port, {}, path="/healthz") == 200


@pytest.mark.parametrize("environ", [
    {},  # no exporter configured: nothing traced, /metrics only
    {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
])
async def test_telemetry_that_is_off_runs_no_opentelemetry_code_on_a_request(
    start_service: StartService, environ: dict[str, str],
) -> None:
    setup = otel.configure(environ)
    try:
        assert setup.server_spans is None
        running = await start_service(telemetry=setup)
        with OpenTelemetryCalls() as spy:
            await requests_of_every_kind(running)
        assert spy.calls == {}
        counts = running.authenticator.telemetry.verifications.counts
        metrics = await running.get("/metrics")
    finally:
        setup.shutdown()
    if environ:  # no metric reader: no counting, no /metrics
        assert counts == {}
        assert metrics.code == 404
    else:
        assert sum(counts.values()) == 3
        assert metrics.code == 200
        assert 'auth_verifications_total{auth_method="jwks"' in metrics.body.decode()


async def test_the_spy_sees_opentelemetry_when_tracing_is_on(
    start_service: StartService, traced_setup: tuple[TelemetrySetup, InMemorySpanExporter],
) -> None:
    """The test above can fail: with a span exporter the same requests run SDK code."""
    setup, _ = traced_setup
    running = await start_service(telemetry=setup)
    with OpenTelemetryCalls() as spy:
        await requests_of_every_kind(running)
    assert any(name.endswith(":start_span") for name in spy.calls)
    assert any("propagat" in name for name in spy.calls)


# --- a plain Tornado application (the library alone) -----------------------------------------


class Hello(AuthenticatedHandler):
    async def get(self) -> None:
        self.write({"hello": self.identity.subject})


class Later(Hello):
    """Mounted after ``add_server_spans``."""


class CountingApplication(tornado.web.Application):
    """An application with its own ``log_request``, which must still run under server spans."""

    logged = 0

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        self.logged += 1


def mint(cluster: DevCluster) -> str:
    return cluster.mint(namespace="default", service_account="collector", audiences=(AUDIENCE,),
                        pod="collector-6c9d8b7f5-x2k9q")


@contextlib.asynccontextmanager
async def serving(app: tornado.web.Application) -> AsyncIterator[int]:
    """``app`` on a loopback port until the block ends."""
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        yield sockets[0].getsockname()[1]
    finally:
        server.stop()
        await server.close_all_connections()


@contextlib.asynccontextmanager
async def library_app(
    cluster: DevCluster, tmp_path: Path, telemetry: Telemetry,
    spans_provider: trace.TracerProvider | None = None,
) -> AsyncIterator[tuple[CountingApplication, int]]:
    """The README's quick start with its keys loaded, plus ``add_server_spans`` when given a
    provider: (application, port)."""
    environ = {"KUBECONFIG": str(cluster.write_kubeconfig(tmp_path / "kubeconfig")),
               "AUTH_AUDIENCE": AUDIENCE}
    authenticator = await Authenticator.connect(AuthSettings.from_env(environ), environ,
                                                telemetry=telemetry)
    authenticator.start()
    await authenticator.wait_started()  # keys loaded: first sights are verified locally
    app = CountingApplication([(r"/hello", Hello)], authenticator=authenticator)
    if spans_provider is not None:
        add_server_spans(app, spans_provider)
    try:
        async with serving(app) as port:
            yield app, port
    finally:
        await authenticator.close()


def in_memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_the_attribute_names_are_those_of_the_semantic_conventions_package() -> None:
    """The library writes the names out (it does not depend on the package): they must not
    drift from it."""
    pairs = [
        (names.HTTP_METHOD, http_attributes.HTTP_REQUEST_METHOD),
        (names.HTTP_METHOD_ORIGINAL, http_attributes.HTTP_REQUEST_METHOD_ORIGINAL),
        (names.HTTP_STATUS, http_attributes.HTTP_RESPONSE_STATUS_CODE),
        (names.HTTP_ROUTE, http_attributes.HTTP_ROUTE),
        (names.URL_FULL, url_attributes.URL_FULL),
        (names.URL_SCHEME, url_attributes.URL_SCHEME),
        (names.URL_PATH, url_attributes.URL_PATH),
        (names.URL_QUERY, url_attributes.URL_QUERY),
        (names.SERVER_ADDRESS, server_attributes.SERVER_ADDRESS),
        (names.SERVER_PORT, server_attributes.SERVER_PORT),
        (names.CLIENT_ADDRESS, client_attributes.CLIENT_ADDRESS),
        (names.NETWORK_PROTOCOL_VERSION, network_attributes.NETWORK_PROTOCOL_VERSION),
        (names.USER_AGENT, user_agent_attributes.USER_AGENT_ORIGINAL),
        (names.ERROR_TYPE, error_attributes.ERROR_TYPE),
    ]
    assert [(ours, theirs) for ours, theirs in pairs if ours != theirs] == []


def telemetry_snippet() -> str:
    """The first Python block of docs/telemetry.md's set-up section."""
    text = (ROOT / "docs" / "telemetry.md").read_text()
    section = text.split("\n## Set up tracing in your application\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_documented_set_up_makes_the_server_span_the_parent_of_auth_verify(
    devcluster: DevCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/telemetry.md's snippet, run as written, with an in-memory exporter for OTLP."""
    snippet = telemetry_snippet()
    assert snippet.count("OTLPSpanExporter()") == 1
    exporter = InMemorySpanExporter()
    kubeconfig = str(devcluster.write_kubeconfig(tmp_path / "kubeconfig"))
    monkeypatch.setenv("KUBECONFIG", kubeconfig)  # the snippet connects with os.environ
    namespace: dict[str, Any] = {
        "os": os, "tornado": tornado, "Authenticator": Authenticator, "connect": connect,
        "exporter": exporter,
        "settings": AuthSettings.from_env({"AUTH_AUDIENCE": AUDIENCE, "KUBECONFIG": kubeconfig}),
        "routes": [(r"/hello", Hello)],
    }
    code = compile(snippet.replace("OTLPSpanExporter()", "exporter"), "docs/telemetry.md",
                   "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    # The repository's own page, run as written; a coroutine, as it awaits at top level.
    pending = eval(code, namespace)  # noqa: S307
    if pending is not None:
        await pending
    provider, authenticator = namespace["provider"], namespace["authenticator"]
    authenticator.start()
    await authenticator.wait_started()
    token = mint(devcluster)
    try:
        async with serving(namespace["app"]) as port:
            for traceparent in (SAMPLED, SAMPLED, UNSAMPLED):  # first sight, then cache hits
                assert await raw_get(port, {"Authorization": f"Bearer {token}",
                                            "traceparent": traceparent}, path="/hello") == 200
    finally:
        await authenticator.close()
        provider.shutdown()  # flushes the batch processor
    spans = exporter.get_finished_spans()
    first, hit = [s for s in spans if s.kind == SpanKind.SERVER]  # none for the unsampled one
    assert first.name == hit.name == "GET /hello"
    assert format(first.context.trace_id, "032x") == TRACE_ID  # traceparent continued
    assert first.parent is not None
    assert format(first.parent.span_id, "016x") == PARENT_ID
    (verify,) = [s for s in spans if s.name == "auth.verify"]
    assert verify.parent is not None
    assert verify.parent.span_id == first.context.span_id
    assert dict(verify.attributes or {})["auth.cache_hit"] is False
    attributes = dict(hit.attributes or {})
    assert (attributes["auth.cache_hit"], attributes["auth.subject"]) == (True, COLLECTOR)
    assert attributes["http.route"] == "/hello"


async def test_a_cached_answer_without_a_server_span_gets_a_span_of_its_own(
    devcluster: DevCluster, tmp_path: Path,
) -> None:
    """Issue 19: in an application without server spans a cached answer left no trace at all;
    it now gets a short ``auth.verify`` span with its first verification's attributes."""
    provider, exporter = in_memory_provider()
    async with library_app(devcluster, tmp_path, Telemetry(provider, NoOpMeterProvider())
                           ) as (_, port):
        token = mint(devcluster)
        for _ in range(2):
            assert await raw_get(port, {"Authorization": f"Bearer {token}"}, path="/hello") == 200
    spans = exporter.get_finished_spans()
    assert not [s for s in spans if s.kind == SpanKind.SERVER]
    first, hit = [s for s in spans if s.name == "auth.verify"]
    assert hit.parent is None
    seen, cached = dict(first.attributes or {}), dict(hit.attributes or {})
    assert (seen.pop("auth.cache_hit"), cached.pop("auth.cache_hit")) == (False, True)
    assert cached == seen
    assert cached["auth.subject"] == COLLECTOR


async def test_server_spans_name_routes_added_later_and_keep_the_application_s_hooks(
    devcluster: DevCluster, tmp_path: Path,
) -> None:
    provider, exporter = in_memory_provider()
    async with library_app(devcluster, tmp_path, Telemetry(provider, NoOpMeterProvider()),
                           provider) as (app, port):
        app.add_handlers(r".*", [(r"/later", Later)])
        token = mint(devcluster)
        for path in ("/hello", "/later", "/nowhere"):
            await raw_get(port, {"Authorization": f"Bearer {token}"}, path=path)
        with pytest.raises(ValueError, match="already has server spans"):
            add_server_spans(app, provider)  # two nested spans per request otherwise
        assert app.logged == 3  # the subclass's own log_request still ran
    assert [s.name for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER] == [
        "GET /hello", "GET /later", "GET"]


@pytest.mark.parametrize("traced", [False, True])
async def test_a_plain_application_runs_no_opentelemetry_code_when_telemetry_is_off(
    devcluster: DevCluster, tmp_path: Path, traced: bool,
) -> None:
    """With the API's no-op providers, ``add_server_spans`` installs nothing and a request
    calls into no ``opentelemetry`` module; with an SDK provider the same requests do (so the
    spy can see them)."""
    provider = TracerProvider() if traced else trace.NoOpTracerProvider()
    telemetry = Telemetry(provider, NoOpMeterProvider())
    async with library_app(devcluster, tmp_path, telemetry, provider) as (app, port):
        assert ("get_handler_delegate" in vars(app)) is traced
        token = mint(devcluster)
        with OpenTelemetryCalls() as spy:
            for headers, path, status in [
                ({"Authorization": f"Bearer {token}"}, "/hello", 200),  # first sight
                ({"Authorization": f"Bearer {token}", "traceparent": SAMPLED}, "/hello", 200),
                ({"Authorization": f"Bearer {mint(devcluster)}x"}, "/hello", 401),
                ({}, "/nowhere", 404),
            ]:
                assert await raw_get(port, headers, path=path) == status
    if traced:
        assert any(name.endswith(":start_span") for name in spy.calls)
    else:
        assert spy.calls == {}
