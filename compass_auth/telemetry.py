"""The one door to OpenTelemetry: tracer, meter, instrument names and attribute keys.

The library only calls the OpenTelemetry *API*; without an SDK configured everything here is a
no-op. Configuring exporters belongs to the application (``service/otel.py``); tests pass their
own providers. Names are defined once here and used by span attributes, metric attributes (the
Prometheus labels ``auth_method``, ``auth_outcome``, ``auth_reason``) and the docs.

Span status follows HTTP semantics, like the Tornado instrumentation: ERROR only for the
``unavailable`` outcome; a denied token is an expected outcome and leaves the trace unmarked.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

# ``Span`` is re-exported for the type hints of the I/O modules (they never import opentelemetry).
from opentelemetry.trace import Span as Span
from opentelemetry.trace import SpanKind, Status, StatusCode

from .errors import AuthError, Outcome
from .identity import Identity
from .version import __version__

SCOPE = "compass_auth"

# Span names.
SPAN_VERIFY = "auth.verify"
SPAN_DISCOVERY = "auth.discovery"
SPAN_KEYS_FETCH = "auth.keys.fetch"
SPAN_TOKENREVIEW = "auth.tokenreview"
SPAN_AUTHORIZE = "auth.authorize"
SPAN_SUBJECTACCESSREVIEW = "auth.subjectaccessreview"

# Attribute keys (span and metric attributes).
AUTH_METHOD = "auth.method"
AUTH_OUTCOME = "auth.outcome"
AUTH_REASON = "auth.reason"
AUTH_CACHE_HIT = "auth.cache_hit"
AUTH_SUBJECT = "auth.subject"
AUTH_NAMESPACE = "auth.namespace"
AUTH_SERVICE_ACCOUNT = "auth.service_account"
AUTH_POD = "auth.pod"
AUTH_RESULT = "auth.result"
AUTH_PATH = "auth.path"
AUTH_CACHE = "auth.cache"
AUTH_ATTEMPT = "auth.attempt"
AUTH_FORCE = "auth.force"
AUTH_CREDENTIAL_ID = "auth.credential_id"
AUTH_CHECK = "auth.check"
# OpenTelemetry HTTP semantic conventions (stable), for client spans and the server spans of
# ``server_spans.py``. Written out rather than imported: ``opentelemetry-semantic-conventions``
# is not a dependency of the library (tests/test_server_spans.py checks these against it).
HTTP_METHOD = "http.request.method"
HTTP_METHOD_ORIGINAL = "http.request.method_original"
HTTP_STATUS = "http.response.status_code"
HTTP_ROUTE = "http.route"
URL_FULL = "url.full"
URL_SCHEME = "url.scheme"
URL_PATH = "url.path"
URL_QUERY = "url.query"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
CLIENT_ADDRESS = "client.address"
NETWORK_PROTOCOL_VERSION = "network.protocol.version"
USER_AGENT = "user_agent.original"
ERROR_TYPE = "error.type"

# Instrument names.
METRIC_VERIFICATIONS = "auth.verifications"
METRIC_DURATION = "auth.verification.duration"
METRIC_KEY_FETCHES = "auth.jwks.fetches"
METRIC_REVIEWS = "auth.tokenreview.calls"
METRIC_CACHE_ENTRIES = "auth.cache.entries"
METRIC_ACTIVE_PATH = "auth.active_path"
METRIC_STALE = "auth.tokens.stale"
METRIC_WEBSOCKET_CLOSES = "auth.websocket.closes"
METRIC_AUTHORIZATIONS = "auth.authorizations"

#: Verification latency buckets in seconds: a cached answer takes microseconds, a local
#: signature check ~0.1-0.3 ms, a TokenReview a few ms to the 5 s timeout.
DURATION_BUCKETS = (
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
)
PATHS = ("jwks", "tokenreview", "none")
#: Durations waiting for the histogram; past this many (nobody collects: no metrics exporter
#: and no scrape, or many first sights between two collections) each new one is recorded in
#: place. Bounds memory (~200 kB) and the work a collection does at once (~15 ms).
PENDING_DURATIONS_LIMIT = 2_000

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Verification methods.
METHOD_JWKS = "jwks"
METHOD_TOKENREVIEW = "tokenreview"


@dataclass(slots=True)
class Verification:
    """What one verification learned; filled in as it goes, recorded when it ends."""

    span: Span
    method: str = METHOD_JWKS
    cache_hit: bool = False
    identity: Identity | None = None


@dataclass(slots=True)
class Authorization:
    """What one authorization decision learned; recorded when it ends."""

    span: Span
    cache_hit: bool = False


class Telemetry:
    """Tracer and instruments of the library; providers default to the global ones."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        # Told explicitly that nothing is traced (or measured): no span, no current-span
        # lookup, no count on the request path. Telemetry that is off costs nothing.
        self._tracing = not isinstance(tracer_provider, trace.NoOpTracerProvider)
        self._metering = not isinstance(meter_provider, metrics.NoOpMeterProvider)
        self._children_follow_parent = _children_follow_parent(tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        # Counted in a dict and reported by callback: a dict increment costs ~0.1 µs on the
        # request path, a synchronous SDK counter ~5 µs (attribute hashing, locks, per reader).
        self._verification_counts: dict[tuple[str, str, str], int] = {}
        meter.create_observable_counter(
            METRIC_VERIFICATIONS, callbacks=[self._observe_verifications], unit="{verification}",
            description="Token verifications by method, outcome and reason.")
        self._duration = meter.create_histogram(
            METRIC_DURATION, unit="s", description="Time to verify one token.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))
        # The SDK histogram's record() costs ~7-11 µs (attributes cleaned and hashed, once per
        # reader), more than the rest of a first sight's telemetry; an append costs ~0.1 µs.
        # Durations wait here and go into the histogram when a reader collects: the SDK runs
        # every callback before it reads its storages, so no sample is late, and exemplars
        # (which would tie a sample to its trace) are off. A deque: the collecting thread
        # (Prometheus scrape, periodic exporter) pops while the event loop appends.
        self._pending_durations: deque[tuple[float, str, Outcome]] = deque()
        self._key_fetches = meter.create_counter(
            METRIC_KEY_FETCHES, unit="{fetch}",
            description="Discovery + JWKS fetches from the API server, by result.")
        self._reviews = meter.create_counter(
            METRIC_REVIEWS, unit="{call}", description="TokenReview calls, by result.")
        self._stale = meter.create_counter(
            METRIC_STALE, unit="{token}",
            description="Accepted tokens past their kubernetes.io warnafter time.")
        self._websocket_closes = meter.create_counter(
            METRIC_WEBSOCKET_CLOSES, unit="{close}",
            description="Authenticated WebSocket connections closed, by who ended them.")
        self._authorization_counts: dict[tuple[str, str], int] = {}
        meter.create_observable_counter(
            METRIC_AUTHORIZATIONS, callbacks=[self._observe_authorizations],
            unit="{decision}",
            description="Authorization decisions (one per check) by outcome and reason.")
        self._cache_sizes: dict[str, Callable[[], int]] = {}
        self._active_path: Callable[[], str] = lambda: "none"
        meter.create_observable_gauge(
            METRIC_CACHE_ENTRIES, callbacks=[self._observe_caches], unit="{entry}",
            description="Entries in the verification caches.")
        meter.create_observable_gauge(
            METRIC_ACTIVE_PATH, callbacks=[self._observe_path], unit="1",
            description="1 for the verification path in use (jwks, tokenreview, none).")

    # --- verification -------------------------------------------------------------------

    @contextmanager
    def verification(self) -> Iterator[Verification]:
        """A child span ``auth.verify`` of the current (server) span, plus the metrics.

        The body raises ``AuthError`` for a rejection (re-raised after recording) or returns
        normally after setting ``record.identity``. The span is current for the whole body, so
        the spans of the API calls made for the verification are its children and its log lines
        carry its ids; this is the one boundary where telemetry meets the verification (a first
        sight, never a cache hit: attaching a context costs a few µs).
        """
        if not self._tracing:
            span: Span = trace.INVALID_SPAN  # nothing traced: no span, no context to attach
            own_span = False
        else:
            parent = self._unsampled_parent()
            own_span = parent is None
            span = (self.tracer.start_span(SPAN_VERIFY, kind=SpanKind.INTERNAL)
                    if parent is None else parent)
        record = Verification(span)
        started = time.perf_counter() if self._metering else 0.0
        # Exceptions are outcomes here, recorded by _finish: use_span must not mark them.
        current = (trace.use_span(span, end_on_exit=False, record_exception=False,
                                  set_status_on_exception=False)
                   if own_span else nullcontext(span))
        try:
            with current:
                yield record
        except AuthError as error:
            self._finish(span, record, error.outcome, error.reason, started, None)
            if error.outcome == "unavailable" and own_span:
                span.set_status(Status(StatusCode.ERROR, error.reason))
            raise
        else:
            self._finish(span, record, "allowed", "ok", started, record.identity)
        finally:
            if own_span:
                span.end()

    def _unsampled_parent(self) -> Span | None:
        """The current span when it is not sampled and the sampler drops every child of such a
        span: then ``auth.verify`` would be a non-recording span that nobody sees, and starting
        it costs ~5-8 µs (ids, sampler, context objects). The parent stands in for it: the
        spans of outbound calls made for the verification are dropped under it just the same,
        and log lines carry its trace id."""
        if not self._children_follow_parent:
            return None
        parent = trace.get_current_span()
        context = parent.get_span_context()
        if context.is_valid and not context.trace_flags.sampled and not parent.is_recording():
            return parent
        return None

    def _finish(
        self,
        span: Span,
        record: Verification,
        outcome: Outcome,
        reason: str,
        started: float,
        identity: Identity | None,
    ) -> None:
        if self._metering:
            elapsed = time.perf_counter() - started
            key = (record.method, outcome, reason)
            self._verification_counts[key] = self._verification_counts.get(key, 0) + 1
            if len(self._pending_durations) < PENDING_DURATIONS_LIMIT:
                self._pending_durations.append((elapsed, record.method, outcome))
            else:  # recorded in place, one at a time: no burst of records at the next collection
                self._duration.record(elapsed, {AUTH_METHOD: record.method,
                                                AUTH_OUTCOME: outcome})
        if self._tracing and span.is_recording():
            attributes: dict[str, Any] = {
                AUTH_METHOD: record.method,
                AUTH_OUTCOME: outcome,
                AUTH_REASON: reason,
                AUTH_CACHE_HIT: record.cache_hit,
            }
            if identity is not None:
                attributes[AUTH_SUBJECT] = identity.subject
                attributes[AUTH_NAMESPACE] = identity.namespace
                attributes[AUTH_SERVICE_ACCOUNT] = identity.service_account
                if identity.pod_name:
                    attributes[AUTH_POD] = identity.pod_name
                if identity.credential_id:
                    attributes[AUTH_CREDENTIAL_ID] = identity.credential_id
            span.set_attributes(attributes)

    def cache_hit(self, identity: Identity, method: str = METHOD_JWKS) -> None:
        """An allowed answer from the verified-token cache: counted, and recorded on the
        current (server) span, with the ``auth.*`` attributes its first verification had. No
        ``auth.verify`` span and no duration sample: the answer took a few microseconds, and
        recording either would cost more than the answer.

        Without any current span (an application without ``add_server_spans`` or another
        server instrumentation), the answer gets a short ``auth.verify`` span of its own: else
        most decisions (a client reuses its token for up to an hour) would leave no trace. An
        unsampled server span gets nothing: the sampler dropped its trace."""
        if self._metering:
            key = (method, "allowed", "ok")
            self._verification_counts[key] = self._verification_counts.get(key, 0) + 1
        if not self._tracing:
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(_cache_hit_attributes(identity, method))
        elif not span.get_span_context().is_valid:
            # Attributes given at the start: one copy (see cached_authorization).
            self.tracer.start_span(SPAN_VERIFY, kind=SpanKind.INTERNAL,
                                   attributes=_cache_hit_attributes(identity, method)).end()

    def stale_token(self, identity: Identity) -> None:
        if self._metering:
            self._stale.add(1, {AUTH_NAMESPACE: identity.namespace})

    def websocket_closed(self, reason: str) -> None:
        """An authenticated WebSocket ended: ``token_expired``, ``client``, ``server``..."""
        self._websocket_closes.add(1, {AUTH_REASON: reason})
    # --- authorization ------------------------------------------------------------------

    @contextmanager
    def authorization(self, check: object, identity: Identity) -> Iterator[Authorization]:
        """A span ``auth.authorize`` for one decision that may need a SubjectAccessReview
        (current for the block, so the review's client span is its child), and the counter.
        The body raises ``AuthError`` for a denial or when nothing could decide."""
        span = self._unsampled_parent()
        own_span = span is None
        if span is None:
            span = self.tracer.start_span(SPAN_AUTHORIZE, kind=SpanKind.INTERNAL)
        record = Authorization(span)
        current = (trace.use_span(span, end_on_exit=False, record_exception=False,
                                  set_status_on_exception=False)
                   if own_span and self._tracing else nullcontext(span))
        try:
            with current:
                yield record
        except AuthError as error:
            self._authorized(span, check, identity, error.outcome, error.reason,
                             record.cache_hit)
            if error.outcome == "unavailable" and own_span:
                span.set_status(Status(StatusCode.ERROR, error.reason))
            raise
        else:
            self._authorized(span, check, identity, "allowed", "ok", record.cache_hit)
        finally:
            if own_span:
                span.end()

    def cached_authorization(self, check: object, identity: Identity, outcome: Outcome = "allowed",
                             reason: str = "ok") -> None:
        """A decision the cache answered: counted, and a short ``auth.authorize`` span when
        traced (none under an unsampled parent: the sampler would drop it)."""
        key = (outcome, reason)
        self._authorization_counts[key] = self._authorization_counts.get(key, 0) + 1
        if not self._tracing or self._unsampled_parent() is not None:
            return
        # Attributes given at the start: one copy, where set_attributes() takes the span's
        # lock once per attribute.
        self.tracer.start_span(
            SPAN_AUTHORIZE, kind=SpanKind.INTERNAL,
            attributes=_authorization_attributes(check, identity, outcome, reason, True)).end()

    def _authorized(self, span: Span, check: object, identity: Identity, outcome: Outcome,
                    reason: str, cache_hit: bool) -> None:
        key = (outcome, reason)
        self._authorization_counts[key] = self._authorization_counts.get(key, 0) + 1
        if span.is_recording():
            span.set_attributes(
                _authorization_attributes(check, identity, outcome, reason, cache_hit))

    def _observe_authorizations(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {AUTH_OUTCOME: outcome, AUTH_REASON: reason})
                for (outcome, reason), count in list(self._authorization_counts.items())]

    # --- outbound calls -----------------------------------------------------------------

    @contextmanager
    def client_span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
        """A CLIENT span for one call to the API server; ERROR when the block raises."""
        with self.tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=dict(attributes)
        ) as span:
            yield span

    @contextmanager
    def internal_span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
        with self.tracer.start_as_current_span(name, attributes=dict(attributes)) as span:
            yield span

    def key_fetch(self, result: str) -> None:
        self._key_fetches.add(1, {AUTH_RESULT: result})

    def review_call(self, result: str) -> None:
        self._reviews.add(1, {AUTH_RESULT: result})

    # --- gauges -------------------------------------------------------------------------

    def observe_cache(self, name: str, size: Callable[[], int]) -> None:
        self._cache_sizes[name] = size

    def observe_path(self, active_path: Callable[[], str]) -> None:
        self._active_path = active_path

    def _record_durations(self) -> None:
        """Move the waiting durations into the SDK histogram."""
        pending, record = self._pending_durations, self._duration.record
        while pending:
            try:
                elapsed, method, outcome = pending.popleft()
            except IndexError:  # another thread took the last one
                return
            record(elapsed, {AUTH_METHOD: method, AUTH_OUTCOME: outcome})

    def _observe_verifications(self, options: CallbackOptions) -> Iterable[Observation]:
        self._record_durations()  # a reader is collecting: see _pending_durations
        return [
            Observation(count, {AUTH_METHOD: method, AUTH_OUTCOME: outcome, AUTH_REASON: reason})
            for (method, outcome, reason), count in list(self._verification_counts.items())
        ]

    def _observe_caches(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(size(), {AUTH_CACHE: name}) for name, size in self._cache_sizes.items()]

    def _observe_path(self, options: CallbackOptions) -> Iterable[Observation]:
        active = self._active_path()
        return [Observation(1 if path == active else 0, {AUTH_PATH: path}) for path in PATHS]


def _cache_hit_attributes(identity: Identity, method: str) -> dict[str, Any]:
    """The same ``auth.*`` attributes as ``Telemetry._finish`` gives a first sight's span."""
    attributes: dict[str, Any] = {
        AUTH_METHOD: method,
        AUTH_OUTCOME: "allowed",
        AUTH_REASON: "ok",
        AUTH_CACHE_HIT: True,
        AUTH_SUBJECT: identity.subject,
        AUTH_NAMESPACE: identity.namespace,
        AUTH_SERVICE_ACCOUNT: identity.service_account,
    }
    if identity.pod_name:
        attributes[AUTH_POD] = identity.pod_name
    if identity.credential_id:
        attributes[AUTH_CREDENTIAL_ID] = identity.credential_id
    return attributes


def _authorization_attributes(check: object, identity: Identity, outcome: Outcome, reason: str,
                              cache_hit: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        AUTH_CHECK: str(check),  # the text form: only written when a span records
        AUTH_OUTCOME: outcome,
        AUTH_REASON: reason,
        AUTH_CACHE_HIT: cache_hit,
        AUTH_SUBJECT: identity.subject,
    }
    if identity.credential_id:
        attributes[AUTH_CREDENTIAL_ID] = identity.credential_id
    return attributes


def _children_follow_parent(tracer_provider: trace.TracerProvider | None) -> bool:
    """Whether the provider's sampler drops every child of an unsampled local parent: the SDK's
    parent-based samplers (the default, and every ``parentbased_*`` OTEL_TRACES_SAMPLER) unless
    built with another sampler for that case. Anything else (the API's global proxy, another
    SDK, a custom sampler) gets a span of its own for every verification."""
    # Read from the sampler's description (a public SDK method), so the library still imports
    # only the OpenTelemetry API.
    describe = getattr(getattr(tracer_provider, "sampler", None), "get_description", None)
    description = describe() if callable(describe) else ""
    return (isinstance(description, str) and description.startswith("ParentBased{")
            and "localParentNotSampled:AlwaysOffSampler" in description)


def trace_event(name: str, attributes: Mapping[str, Any]) -> None:
    """Add an event to the current span (no-op when it is not recording)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, dict(attributes))


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span as hex, for log lines; ``None`` outside."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def http_attributes(method: str, url: str) -> dict[str, Any]:
    """Client-span attributes for a call to ``url``, by the stable HTTP semantic conventions:
    ``server.address`` is the host alone (an IPv6 address without brackets) and ``server.port``
    the port, the scheme's default when the URL has none. Credentials in the URL are replaced
    with ``REDACTED``, as the conventions ask for ``url.full``."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        url = urlunsplit(parts._replace(
            netloc="REDACTED:REDACTED@" + parts.netloc.rpartition("@")[2]))
    attributes: dict[str, Any] = {HTTP_METHOD: method, URL_FULL: url,
                                  SERVER_ADDRESS: parts.hostname or ""}
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if port is not None:
        attributes[SERVER_PORT] = port
    return attributes
