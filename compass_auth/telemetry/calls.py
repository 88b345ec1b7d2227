"""Telemetry of the library's calls to the API server: client spans and their counters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind

from .names import AUTH_RESULT, METRIC_KEY_FETCHES, METRIC_REVIEWS
from .null_span import NULL_SPAN


class CallTelemetry:
    """CLIENT spans for API-server calls, and the key-fetch and TokenReview counters.

    Calls to the API server happen beside requests too (background revocation confirmations),
    so telemetry that is off costs nothing here either: no span with the no-op tracer provider,
    and counts kept in dicts that the meter reads by callback (as ``auth.verifications``)."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter, *,
                 tracing: bool = True) -> None:
        self._tracer = tracer
        self._tracing = tracing
        self.key_fetches: dict[str, int] = {}
        self.reviews: dict[str, int] = {}
        meter.create_observable_counter(
            METRIC_KEY_FETCHES, callbacks=[self._observe(self.key_fetches)], unit="{fetch}",
            description="Discovery + JWKS fetches from the API server, by result.")
        meter.create_observable_counter(
            METRIC_REVIEWS, callbacks=[self._observe(self.reviews)], unit="{call}",
            description="TokenReview calls, by result.")

    @contextmanager
    def client_span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
        """A CLIENT span for one call to the API server; ERROR when the block raises."""
        if not self._tracing:
            yield NULL_SPAN
            return
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=dict(attributes)
        ) as span:
            yield span

    @contextmanager
    def internal_span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
        if not self._tracing:
            yield NULL_SPAN
            return
        with self._tracer.start_as_current_span(name, attributes=dict(attributes)) as span:
            yield span

    def key_fetch(self, result: str) -> None:
        self.key_fetches[result] = self.key_fetches.get(result, 0) + 1

    def review_call(self, result: str) -> None:
        self.reviews[result] = self.reviews.get(result, 0) + 1

    @staticmethod
    def _observe(counts: dict[str, int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(count, {AUTH_RESULT: result})
                    for result, count in list(counts.items())]
        return observe
