"""Telemetry of revocation checks (verification/revocation.py): ``auth.revocation.confirmations``
by result, the ``auth.revocation.available`` gauge, and one ``auth.revocation.confirm`` span per
background confirmation.

The span is a root linked to the span of the request that started the confirmation, not its
child: that request has been answered by then (the OpenTelemetry specification's "Links between
spans" for work a request starts but does not wait for).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, Span, SpanContext, SpanKind

from .names import (
    AUTH_RESULT,
    METRIC_REVOCATION_AVAILABLE,
    METRIC_REVOCATION_CONFIRMATIONS,
    SPAN_REVOCATION_CONFIRM,
)
from .null_span import NULL_SPAN


class RevocationTelemetry:
    """The counter, the gauge and the spans of background confirmations."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter, *,
                 tracing: bool = True) -> None:
        self._tracer = tracer
        # Telemetry that is off costs nothing (docs/telemetry.md): no span or current-span
        # lookup with the no-op tracer provider, and counts in a dict read by callback.
        self._tracing = tracing
        #: Confirmations by result.
        self.confirmations: dict[str, int] = {}
        meter.create_observable_counter(
            METRIC_REVOCATION_CONFIRMATIONS, callbacks=[self._observe_confirmations],
            unit="{confirmation}",
            description="Background TokenReview confirmations of locally verified tokens, by "
                        "result (confirmed, revoked, unavailable, skipped).")
        self._available: Callable[[], bool | None] = lambda: None
        meter.create_observable_gauge(
            METRIC_REVOCATION_AVAILABLE, callbacks=[self._observe], unit="1",
            description="1 while revocation confirmations get answers, 0 while the API server "
                        "cannot confirm (tokens are still served locally).")

    def confirmation(self, result: str) -> None:
        self.confirmations[result] = self.confirmations.get(result, 0) + 1

    def _observe_confirmations(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {AUTH_RESULT: result})
                for result, count in list(self.confirmations.items())]

    def observe_available(self, available: Callable[[], bool | None]) -> None:
        """``available()``: ``None`` when revocation checks are off (no observation)."""
        self._available = available

    def request_context(self) -> SpanContext | None:
        """The current span's context, to link a confirmation to (``None`` when invalid, or
        when nothing is traced)."""
        if not self._tracing:
            return None
        context = trace.get_current_span().get_span_context()
        return context if context.is_valid else None

    @contextmanager
    def confirm_span(self, linked: SpanContext | None) -> Iterator[Span]:
        """A root span ``auth.revocation.confirm`` linked to ``linked``, current in the block
        (the TokenReview's client span is its child)."""
        if not self._tracing:
            yield NULL_SPAN
            return
        links = [Link(linked)] if linked is not None else None
        with self._tracer.start_as_current_span(
                SPAN_REVOCATION_CONFIRM, context=otel_context.Context(), kind=SpanKind.INTERNAL,
                links=links) as span:
            yield span

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        available = self._available()
        return [] if available is None else [Observation(1 if available else 0)]
