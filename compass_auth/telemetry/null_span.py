"""A span that records nothing and runs no OpenTelemetry code, for telemetry that is off.

The API's own ``NonRecordingSpan`` also records nothing, but each of its methods is a call into
``opentelemetry`` (and starting one attaches a context): with the no-op tracer provider the
library starts no span at all (docs/telemetry.md, tests/test_server_spans.py counts every call
into OpenTelemetry's modules), so code that takes a span gets this one instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import INVALID_SPAN_CONTEXT, Span, SpanContext


class NullSpan(Span):
    """Every method does nothing; ``is_recording()`` is false."""

    def end(self, end_time: int | None = None) -> None:
        pass

    def get_span_context(self) -> SpanContext:
        return INVALID_SPAN_CONTEXT

    def set_attributes(self, attributes: Any) -> None:
        pass

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def is_recording(self) -> bool:
        return False

    def set_status(self, status: Any, description: str | None = None) -> None:
        pass

    def record_exception(self, exception: BaseException, attributes: Any = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        pass

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        pass


#: The one instance: it holds no state.
NULL_SPAN = NullSpan()

__all__: Sequence[str] = ("NULL_SPAN", "NullSpan")
