"""Telemetry of authorization decisions: the ``auth.authorize`` span and ``auth.authorizations``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..core.errors import AuthError, Outcome
from ..core.identity import Identity
from .attributes import authorization_attributes
from .names import AUTH_OUTCOME, AUTH_REASON, METRIC_AUTHORIZATIONS, SPAN_AUTHORIZE
from .tracing import unsampled_parent


@dataclass(slots=True)
class Authorization:
    """What one authorization decision learned; recorded when it ends."""

    span: Span
    cache_hit: bool = False


class AuthorizationTelemetry:
    """Spans and the counter of authorization decisions."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter, *, tracing: bool,
                 children_follow_parent: bool) -> None:
        self._tracer = tracer
        self._tracing = tracing
        self._children_follow_parent = children_follow_parent
        self.counts: dict[tuple[str, str], int] = {}
        meter.create_observable_counter(
            METRIC_AUTHORIZATIONS, callbacks=[self._observe], unit="{decision}",
            description="Authorization decisions (one per check) by outcome and reason.")

    @contextmanager
    def authorization(self, check: object, identity: Identity) -> Iterator[Authorization]:
        """A span ``auth.authorize`` for one decision that may need a SubjectAccessReview
        (current for the block, so the review's client span is its child), and the counter.
        The body raises ``AuthError`` for a denial or when nothing could decide."""
        span = unsampled_parent(self._children_follow_parent)
        own_span = span is None
        if span is None:
            span = self._tracer.start_span(SPAN_AUTHORIZE, kind=SpanKind.INTERNAL)
        record = Authorization(span)
        current = (trace.use_span(span, end_on_exit=False, record_exception=False,
                                  set_status_on_exception=False)
                   if own_span and self._tracing else nullcontext(span))
        try:
            with current:
                yield record
        except AuthError as error:
            self._record(span, check, identity, error.outcome, error.reason, record.cache_hit)
            if error.outcome == "unavailable" and own_span:
                span.set_status(Status(StatusCode.ERROR, error.reason))
            raise
        else:
            self._record(span, check, identity, "allowed", "ok", record.cache_hit)
        finally:
            if own_span:
                span.end()

    def cached_authorization(self, check: object, identity: Identity,
                             outcome: Outcome = "allowed", reason: str = "ok") -> None:
        """A decision the cache answered: counted, and a short ``auth.authorize`` span when
        traced (none under an unsampled parent: the sampler would drop it)."""
        key = (outcome, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        if not self._tracing or unsampled_parent(self._children_follow_parent) is not None:
            return
        # Attributes given at the start: one copy, where set_attributes() takes the span's
        # lock once per attribute.
        self._tracer.start_span(
            SPAN_AUTHORIZE, kind=SpanKind.INTERNAL,
            attributes=authorization_attributes(check, identity, outcome, reason, True)).end()

    def _record(self, span: Span, check: object, identity: Identity, outcome: Outcome,
                reason: str, cache_hit: bool) -> None:
        key = (outcome, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        if span.is_recording():
            span.set_attributes(
                authorization_attributes(check, identity, outcome, reason, cache_hit))

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {AUTH_OUTCOME: outcome, AUTH_REASON: reason})
                for (outcome, reason), count in list(self.counts.items())]
