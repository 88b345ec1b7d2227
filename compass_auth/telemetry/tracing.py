"""The current span: when the library's own spans can be skipped, events, ids for log lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

#: The trace id the sampler is asked about (see ``children_follow_parent``): its low bits are
#: tiny, so a trace-id ratio sampler with any ratio above 0 would sample it.
_PROBE_TRACE_ID = 1


def children_follow_parent(tracer_provider: trace.TracerProvider | None) -> bool:
    """Whether the provider's sampler drops a child span of an unsampled local parent: the SDK's
    parent-based samplers (the default, and every ``parentbased_*`` OTEL_TRACES_SAMPLER) unless
    built with another sampler for that case.

    Asked of the sampler itself, once, through its documented interface
    (``Sampler.should_sample`` on ``TracerProvider.sampler``, both public in the SDK): for a
    child of an unsampled local parent, would it record? Anything without a sampler (the API's
    global proxy, another SDK) or whose sampler would record gets a span of its own for every
    verification. The library still imports only the OpenTelemetry API."""
    should_sample = getattr(getattr(tracer_provider, "sampler", None), "should_sample", None)
    if not callable(should_sample):
        return False
    parent = NonRecordingSpan(SpanContext(trace_id=_PROBE_TRACE_ID, span_id=1, is_remote=False,
                                          trace_flags=TraceFlags(TraceFlags.DEFAULT)))
    try:
        result = should_sample(trace.set_span_in_context(parent, context.Context()),
                               _PROBE_TRACE_ID, "auth.verify")
    except Exception:  # noqa: BLE001 - a sampler that cannot answer: give every span its own
        return False
    is_recording = getattr(getattr(result, "decision", None), "is_recording", None)
    return callable(is_recording) and is_recording() is False


def unsampled_parent(children_follow: bool) -> Span | None:
    """The current span when it is not sampled and the sampler drops every child of such a
    span (``children_follow``): then a span of ours would be a non-recording span that nobody
    sees, and starting it costs ~5-8 µs (ids, sampler, context objects). The parent stands in
    for it: the spans of outbound calls made meanwhile are dropped under it just the same, and
    log lines carry its trace id."""
    if not children_follow:
        return None
    parent = trace.get_current_span()
    span_context = parent.get_span_context()
    if (span_context.is_valid and not span_context.trace_flags.sampled
            and not parent.is_recording()):
        return parent
    return None


def trace_event(name: str, attributes: Mapping[str, Any]) -> None:
    """Add an event to the current span (no-op when it is not recording)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, dict(attributes))


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span as hex, for log lines; ``None`` outside."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
