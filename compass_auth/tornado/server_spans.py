"""One SERVER span per request of a Tornado application, cheap when the request is not sampled.

``add_server_spans(application, tracer_provider)`` is the one call (docs/telemetry.md, "Server
spans"). With it, ``auth.verify`` is a child of the request's span instead of a root span, and a
cached answer, which has no span of its own, is recorded on it (``Telemetry.cache_hit``).

Why not ``opentelemetry-instrumentation-tornado``: under load, that package's wrappers took a
quarter of the event loop's samples on the example's ``/whoami`` with no span exporter at all
(its tracer a no-op), a third at 10 % sampling. Before the sampler is asked, it collects about
fifteen attributes (the URL parsed and redacted twice, the user agent, ...); it builds the
attributes of its HTTP server metrics and matches the request against the routing table three
times, even when its meter is a no-op; it reads ``os.environ`` for header capture and wraps
every handler's ``__init__``, ``prepare`` and ``on_finish`` (docs/telemetry.md).

Here, per request outside the excluded paths:

1. the caller's context comes from the request headers through the global propagator
   (``traceparent``, W3C Trace Context, unless ``OTEL_PROPAGATORS`` says otherwise);
2. the span starts without attributes, so the sampler decides before any are collected (the
   SDK's samplers read the parent and the trace id, not attributes). An unsampled request gets
   the SDK's non-recording span: ids only, what context propagation and log lines need;
3. the span is current while the handler runs, so ``auth.verify`` is its child and log lines
   carry its ids;
4. a recording span gets the stable HTTP server attributes, then the status code when the
   response is done (ERROR and ``error.type`` for 5xx only, as the specification says for
   server spans).

Hooked into the application's routing, not into handler classes: the task that runs a handler
copies the context current when Tornado creates it, so attaching the span around that moment is
enough, and no handler needs to call ``super()``. This module and ``telemetry/`` are the
library's only doors to OpenTelemetry (the API alone).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

import tornado.web
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from tornado.httputil import (
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPServerRequest,
    RequestStartLine,
    ResponseStartLine,
    split_host_and_port,
)
from tornado.routing import PathMatches, Rule, RuleRouter

from ..telemetry import (
    CLIENT_ADDRESS,
    ERROR_TYPE,
    HTTP_METHOD,
    HTTP_METHOD_ORIGINAL,
    HTTP_ROUTE,
    HTTP_STATUS,
    NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_PATH,
    URL_QUERY,
    URL_SCHEME,
    USER_AGENT,
)
from ..version import __version__
from .handler import loggable_target

SCOPE = "compass_auth.tornado.server_spans"
#: Probe and scrape endpoints stay out of traces unless told otherwise.
DEFAULT_EXCLUDED_URLS = "healthz,readyz,metrics"
#: The variables of ``opentelemetry-instrumentation-tornado``, read by ``excluded_urls`` so
#: existing settings keep working: comma-separated regular expressions searched in the path.
EXCLUDED_URLS_VARIABLES = ("OTEL_PYTHON_TORNADO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
#: Methods the semantic conventions name; any other is reported as ``_OTHER``.
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Where the request keeps its span between ``start`` and ``finish``.
_SPAN_ATTRIBUTE = "_compass_server_span"
#: Set on an application once it has server spans: a second call would nest two spans.
_INSTALLED_ATTRIBUTE = "_compass_server_spans"


def add_server_spans(
    application: tornado.web.Application,
    tracer_provider: trace.TracerProvider | None = None,
    *,
    excluded_urls: str = DEFAULT_EXCLUDED_URLS,
) -> None:
    """Give each request of ``application`` a SERVER span from ``tracer_provider`` (the global
    one when ``None``).

    ``excluded_urls``: comma-separated regular expressions searched in the request path; those
    requests get no span (``""``: trace every path). ``excluded_urls(os.environ)`` reads the
    variables of ``opentelemetry-instrumentation-tornado``.

    Given the API's ``NoOpTracerProvider``, this does nothing at all: the requests then run no
    OpenTelemetry code. Otherwise it wraps two methods of this one application object (not of
    its class): ``get_handler_delegate``, through which Tornado routes every request, and
    ``log_request``, which Tornado calls when a response is done. A subclass's own overrides of
    them still run. Call it once per application, before it serves.
    """
    if isinstance(tracer_provider, trace.NoOpTracerProvider):
        return  # nothing traced: not even a wrapper
    ServerSpans(tracer_provider or trace.get_tracer_provider(), excluded_urls).install(application)


def excluded_urls(environ: Mapping[str, str]) -> str:
    """``excluded_urls`` for ``add_server_spans`` from ``OTEL_PYTHON_TORNADO_EXCLUDED_URLS``,
    else ``OTEL_PYTHON_EXCLUDED_URLS``, else ``DEFAULT_EXCLUDED_URLS``."""
    for variable in EXCLUDED_URLS_VARIABLES:
        if variable in environ:
            return environ[variable]
    return DEFAULT_EXCLUDED_URLS


def _compile_excluded(text: str) -> re.Pattern[str] | None:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return re.compile("|".join(f"(?:{part})" for part in parts)) if parts else None


class ServerSpans:
    """Starts, attaches and ends the server span of each request (see the module docstring).

    What ``add_server_spans`` builds; one can be installed on several applications (the example
    service's demo runs several on one tracer provider)."""

    def __init__(self, tracer_provider: trace.TracerProvider,
                 excluded_urls: str = DEFAULT_EXCLUDED_URLS) -> None:
        self._tracer = tracer_provider.get_tracer(SCOPE, __version__)
        self._excluded = _compile_excluded(excluded_urls)

    def install(self, application: tornado.web.Application) -> None:
        """Wrap ``application``'s ``get_handler_delegate`` and ``log_request`` (this object's
        methods, not its class's); raises ``ValueError`` if it already has server spans."""
        if getattr(application, _INSTALLED_ATTRIBUTE, False):
            raise ValueError("add_server_spans: this application already has server spans")
        setattr(application, _INSTALLED_ATTRIBUTE, True)
        routes = _Routes(application)
        get_handler_delegate = application.get_handler_delegate
        log_request = application.log_request

        def traced_handler_delegate(request: HTTPServerRequest,
                                    target_class: type[tornado.web.RequestHandler],
                                    *args: Any, **kwargs: Any) -> HTTPMessageDelegate:
            delegate = get_handler_delegate(request, target_class, *args, **kwargs)
            return TracedDelegate(delegate, self, request, routes.of(target_class))

        def traced_log_request(handler: tornado.web.RequestHandler) -> None:
            self.finish(handler.request, handler.get_status())
            log_request(handler)

        # Instance attributes shadow the class's methods, and Tornado looks both up on the
        # instance (tornado/web.py: Application.find_handler and _ApplicationRouter's
        # get_target_delegate call self.get_handler_delegate; RequestHandler._log, on finish,
        # calls self.application.log_request). Tornado annotates the delegate as its private
        # _HandlerDelegate; its routers use it only as an HTTPMessageDelegate.
        application.get_handler_delegate = (  # type: ignore[method-assign]
            traced_handler_delegate)  # type: ignore[assignment]
        application.log_request = traced_log_request  # type: ignore[method-assign]

    def start(self, request: HTTPServerRequest, route: str | None) -> context.Context | None:
        """Start the request's span; returns the context to attach while its handler runs,
        ``None`` for an excluded path."""
        if self._excluded is not None and self._excluded.search(request.path):
            return None
        parent = propagate.extract(request.headers)
        method = request.method or ""
        name = method if method in KNOWN_METHODS else "HTTP"
        if route is not None:
            name = f"{name} {route}"
        span = self._tracer.start_span(name, parent, kind=SpanKind.SERVER)
        if span.is_recording():
            span.set_attributes(request_attributes(request, route))
        setattr(request, _SPAN_ATTRIBUTE, span)
        return trace.set_span_in_context(span, parent)

    @staticmethod
    def finish(request: HTTPServerRequest, status: int | None) -> None:
        """End the request's span (if it has one) with the response status; ``None`` when the
        client went away before an answer."""
        span: Span | None = getattr(request, _SPAN_ATTRIBUTE, None)
        if span is None:
            return
        delattr(request, _SPAN_ATTRIBUTE)
        if not span.is_recording():
            return  # nothing to record, nothing to export: ending it would do nothing
        if status is None:
            span.set_attribute(ERROR_TYPE, "connection_closed")
            span.set_status(Status(StatusCode.ERROR, "client closed the connection"))
        else:
            span.set_attribute(HTTP_STATUS, status)
            if status >= 500:  # a 4xx is the client's error, not the server's
                span.set_attribute(ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()


class TracedDelegate(HTTPMessageDelegate):
    """A request's delegate with its server span current while Tornado runs the handler.

    Tornado creates the task that runs the handler in ``finish`` (``headers_received`` for a
    handler that streams the body), and a task keeps a copy of the context current when it is
    created: attaching the span around these calls is all it takes. The span ends in
    ``ServerSpans.finish``, which the application's ``log_request`` calls, or here when the
    client goes away before the request was read in full."""

    def __init__(self, inner: HTTPMessageDelegate, spans: ServerSpans,
                 request: HTTPServerRequest, route: str | None) -> None:
        self._inner = inner
        self._spans = spans
        self._request = request
        self._route = route
        self._context: context.Context | None = None

    def headers_received(
        self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders
    ) -> Awaitable[None] | None:
        self._context = self._spans.start(self._request, self._route)
        if self._context is None:
            return self._inner.headers_received(start_line, headers)
        token = context.attach(self._context)
        try:
            return self._inner.headers_received(start_line, headers)
        finally:
            context.detach(token)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._context is None:
            return self._inner.data_received(chunk)
        token = context.attach(self._context)
        try:
            return self._inner.data_received(chunk)
        finally:
            context.detach(token)

    def finish(self) -> None:
        if self._context is None:
            self._inner.finish()
            return
        token = context.attach(self._context)
        try:
            self._inner.finish()
        finally:
            context.detach(token)

    def on_connection_close(self) -> None:
        self._inner.on_connection_close()
        self._spans.finish(self._request, None)


class _Routes:
    """``http.route`` of each handler class of one application, looked up per request instead
    of matched again. Read from the routing rules again when a class is missing, so handlers
    added after ``add_server_spans`` (``Application.add_handlers``) get their route too."""

    def __init__(self, application: tornado.web.Application) -> None:
        self._application = application
        self._routes: dict[type, str | None] = {}

    def of(self, target_class: type) -> str | None:
        try:
            return self._routes[target_class]
        except KeyError:
            self._routes.update(handler_routes(self._application.default_router.rules))
            # Handler classes are code, so this stays as small as the application.
            return self._routes.setdefault(target_class, None)


def handler_routes(rules: Iterable[Rule]) -> dict[type, str | None]:
    """``http.route`` of each handler class under ``rules`` (nested routers included): the
    path pattern of its rule, ``None`` when the class serves several patterns."""
    routes: dict[type, str | None] = {}

    def walk(rules: Iterable[Rule]) -> None:
        for rule in rules:
            if isinstance(rule.target, RuleRouter):
                walk(rule.target.rules)
            elif isinstance(rule.matcher, PathMatches) and isinstance(rule.target, type):
                route = rule.matcher.regex.pattern.removesuffix("$")
                routes[rule.target] = route if routes.get(rule.target, route) == route else None

    walk(rules)
    return routes


def request_attributes(request: HTTPServerRequest, route: str | None) -> dict[str, Any]:
    """The stable HTTP server attributes known when the request starts.

    The path is cut at ``MAX_LOGGED_PATH`` and the query string is never copied: a token a
    misconfigured client puts in the URL (refused with 401) must not be exported.
    """
    method = request.method or ""
    scheme = request.protocol
    host, port = server_host_port(request.host, scheme)
    attributes: dict[str, Any] = {
        HTTP_METHOD: method if method in KNOWN_METHODS else "_OTHER",
        URL_SCHEME: scheme,
        URL_PATH: loggable_target(request.path, ""),
        SERVER_ADDRESS: host,
    }
    if method not in KNOWN_METHODS:
        attributes[HTTP_METHOD_ORIGINAL] = method
    if port is not None:
        attributes[SERVER_PORT] = port
    if request.query:
        attributes[URL_QUERY] = "REDACTED"
    if route is not None:
        attributes[HTTP_ROUTE] = route
    if request.version.startswith("HTTP/"):
        attributes[NETWORK_PROTOCOL_VERSION] = request.version[5:]
    if request.remote_ip:
        attributes[CLIENT_ADDRESS] = request.remote_ip
    user_agent = request.headers.get("User-Agent")
    if user_agent:
        attributes[USER_AGENT] = user_agent
    return attributes


def server_host_port(authority: str, scheme: str) -> tuple[str, int | None]:
    """``server.address`` (a host, IPv6 without brackets) and ``server.port`` from a ``Host``
    header; the scheme's default port when the header has none."""
    host, port = split_host_and_port(authority.lower())
    host = host.strip("[]")
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return host, port
