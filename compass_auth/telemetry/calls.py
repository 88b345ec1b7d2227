"""Telemetry of the library's calls to the API server: client spans and their counters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind

from .names import AUTH_RESULT, METRIC_KEY_FETCHES, METRIC_REVIEWS


class CallTelemetry:
    """CLIENT spans for API-server calls, and the key-fetch and TokenReview counters."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter) -> None:
        self._tracer = tracer
        self._key_fetches = meter.create_counter(
            METRIC_KEY_FETCHES, unit="{fetch}",
            description="Discovery + JWKS fetches from the API server, by result.")
        self._reviews = meter.create_counter(
            METRIC_REVIEWS, unit="{call}", description="TokenReview calls, by result.")

    @contextmanager
    def client_span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
        """A CLIENT span for one call to the API server; ERROR when the block raises."""
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=dict(attributes)
        ) as span:
            yield span

    @contextmanager
    def internal_span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
        with self._tracer.start_as_current_span(name, attributes=dict(attributes)) as span:
            yield span

    def key_fetch(self, result: str) -> None:
        self._key_fetches.add(1, {AUTH_RESULT: result})

    def review_call(self, result: str) -> None:
        self._reviews.add(1, {AUTH_RESULT: result})
