"""Telemetry of verifications: the ``auth.verify`` span, ``auth.verifications`` and
``auth.verification.duration``, stale tokens and WebSocket ends.

Span status follows HTTP semantics, like the Tornado instrumentation: ERROR only for the
``unavailable`` outcome; a denied token is an expected outcome and leaves the trace unmarked.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..core.errors import AuthError, Outcome
from ..core.identity import Identity
from .attributes import verification_attributes
from .names import (
    AUTH_AUTHENTICATOR,
    AUTH_METHOD,
    AUTH_NAMESPACE,
    AUTH_OUTCOME,
    AUTH_REASON,
    DURATION_BUCKETS,
    METHOD_JWKS,
    METRIC_DURATION,
    METRIC_STALE,
    METRIC_VERIFICATIONS,
    METRIC_WEBSOCKET_CLOSES,
    SPAN_VERIFY,
)
from .tracing import unsampled_parent

#: Durations waiting for the histogram; past this many (nobody collects: no metrics exporter
#: and no scrape, or many first sights between two collections) each new one is recorded in
#: place. Bounds memory (~200 kB) and the work a collection does at once (~15 ms).
PENDING_DURATIONS_LIMIT = 2_000


@dataclass(slots=True)
class Verification:
    """What one verification learned; filled in as it goes, recorded when it ends."""

    span: Span
    method: str = METHOD_JWKS
    cache_hit: bool = False
    identity: Identity | None = None
    #: The ``jwt`` authenticator that answered (its ``issuer.url``), for another issuer's token.
    authenticator: str | None = None


class VerificationTelemetry:
    """Spans and instruments of token verification."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter, *, tracing: bool,
                 metering: bool, children_follow_parent: bool) -> None:
        self._tracer = tracer
        self._tracing, self._metering = tracing, metering
        self._children_follow_parent = children_follow_parent
        # Counted in a dict and reported by callback: a dict increment costs ~0.1 µs on the
        # request path, a synchronous SDK counter ~5 µs (attribute hashing, locks, per reader).
        #: By method, outcome, reason and authenticator (``None``: the cluster's own tokens).
        self.counts: dict[tuple[str, str, str, str | None], int] = {}
        meter.create_observable_counter(
            METRIC_VERIFICATIONS, callbacks=[self._observe], unit="{verification}",
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
        self.pending_durations: deque[tuple[float, str, Outcome]] = deque()
        self._stale = meter.create_counter(
            METRIC_STALE, unit="{token}",
            description="Accepted tokens past their kubernetes.io warnafter time.")
        self._websocket_closes = meter.create_counter(
            METRIC_WEBSOCKET_CLOSES, unit="{close}",
            description="Authenticated WebSocket connections closed, by who ended them.")

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
            parent = unsampled_parent(self._children_follow_parent)
            own_span = parent is None
            span = (self._tracer.start_span(SPAN_VERIFY, kind=SpanKind.INTERNAL)
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
            key = (method, "allowed", "ok", identity.authenticator)
            self.counts[key] = self.counts.get(key, 0) + 1
        if not self._tracing:
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(verification_attributes(method, "allowed", "ok", True, identity))
        elif not span.get_span_context().is_valid:
            # Attributes given at the start: one copy, where set_attributes() takes the span's
            # lock once per attribute.
            self._tracer.start_span(SPAN_VERIFY, kind=SpanKind.INTERNAL,
                                    attributes=verification_attributes(
                                        method, "allowed", "ok", True, identity)).end()

    def stale_token(self, identity: Identity) -> None:
        if self._metering:
            self._stale.add(1, {AUTH_NAMESPACE: identity.namespace})

    def websocket_closed(self, reason: str) -> None:
        """An authenticated WebSocket ended: ``token_expired``, ``client``, ``server``..."""
        self._websocket_closes.add(1, {AUTH_REASON: reason})

    def _finish(self, span: Span, record: Verification, outcome: Outcome, reason: str,
                started: float, identity: Identity | None) -> None:
        if self._metering:
            elapsed = time.perf_counter() - started
            key = (record.method, outcome, reason, record.authenticator)
            self.counts[key] = self.counts.get(key, 0) + 1
            if len(self.pending_durations) < PENDING_DURATIONS_LIMIT:
                self.pending_durations.append((elapsed, record.method, outcome))
            else:  # recorded in place, one at a time: no burst of records at the next collection
                self._duration.record(elapsed, {AUTH_METHOD: record.method,
                                                AUTH_OUTCOME: outcome})
        if self._tracing and span.is_recording():
            attributes = verification_attributes(record.method, outcome, reason,
                                                 record.cache_hit, identity)
            if record.authenticator is not None:
                attributes[AUTH_AUTHENTICATOR] = record.authenticator
            span.set_attributes(attributes)

    def _record_durations(self) -> None:
        """Move the waiting durations into the SDK histogram."""
        pending, record = self.pending_durations, self._duration.record
        while pending:
            try:
                elapsed, method, outcome = pending.popleft()
            except IndexError:  # another thread took the last one
                return
            record(elapsed, {AUTH_METHOD: method, AUTH_OUTCOME: outcome})

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        self._record_durations()  # a reader is collecting: see pending_durations
        return [
            Observation(count, {AUTH_METHOD: method, AUTH_OUTCOME: outcome, AUTH_REASON: reason}
                        if authenticator is None else
                        {AUTH_METHOD: method, AUTH_OUTCOME: outcome, AUTH_REASON: reason,
                         AUTH_AUTHENTICATOR: authenticator})
            for (method, outcome, reason, authenticator), count in list(self.counts.items())
        ]
