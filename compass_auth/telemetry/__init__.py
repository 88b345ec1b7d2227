"""The one door to OpenTelemetry: ``Telemetry`` and the names it uses, split by concern.

The library only calls the OpenTelemetry *API*; without an SDK configured everything here is a
no-op. Configuring exporters belongs to the application (``service/otel.py``); tests pass their
own providers.

* names.py: span, attribute and instrument names (docs/telemetry.md lists them);
* attributes.py: the attributes of a span, built once (the caller's identity among them);
* tracing.py: when the library's own spans can be skipped (the sampler's answer), events, ids;
* verification.py: ``auth.verify``, ``auth.verifications``, ``auth.verification.duration``;
* authorization.py: ``auth.authorize``, ``auth.authorizations``;
* calls.py: CLIENT spans of API-server calls, key-fetch and TokenReview counters;
* gauges.py: cache entries and the active path;
* revocation.py: background confirmations of locally verified tokens.
"""

from __future__ import annotations

from opentelemetry import metrics, trace

# ``Span`` is re-exported for the type hints of the I/O modules (they never import opentelemetry).
from opentelemetry.trace import Span as Span

from ..version import __version__
from .attributes import http_attributes as http_attributes
from .attributes import identity_attributes as identity_attributes
from .authorization import Authorization as Authorization
from .authorization import AuthorizationTelemetry
from .calls import CallTelemetry
from .gauges import Gauges
from .names import *  # noqa: F403 - every name, as compass_auth.telemetry.NAME
from .names import SCOPE
from .revocation import RevocationTelemetry
from .tracing import children_follow_parent
from .tracing import current_trace_ids as current_trace_ids
from .tracing import trace_event as trace_event
from .verification import PENDING_DURATIONS_LIMIT as PENDING_DURATIONS_LIMIT
from .verification import Verification as Verification
from .verification import VerificationTelemetry


class Telemetry:
    """Tracer and instruments of the library; providers default to the global ones.

    The parts (``verifications``, ``authorizations``, ``calls``, ``gauges``) each own their
    instruments; their methods the library calls are bound here once, so that a call on the
    request path costs no extra frame: ``verification()``, ``cache_hit()``, ``stale_token()``,
    ``websocket_closed()``, ``authorization()``, ``cached_authorization()``, ``client_span()``,
    ``internal_span()``, ``key_fetch()``, ``review_call()``, ``observe_cache()``,
    ``observe_path()``."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        # Told explicitly that nothing is traced (or measured): no span, no current-span
        # lookup, no count on the request path. Telemetry that is off costs nothing.
        tracing = not isinstance(tracer_provider, trace.NoOpTracerProvider)
        metering = not isinstance(meter_provider, metrics.NoOpMeterProvider)
        follow = children_follow_parent(tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self.verifications = VerificationTelemetry(
            self.tracer, meter, tracing=tracing, metering=metering,
            children_follow_parent=follow)
        self.authorizations = AuthorizationTelemetry(self.tracer, meter, tracing=tracing,
                                                     children_follow_parent=follow)
        self.calls = CallTelemetry(self.tracer, meter, tracing=tracing)
        self.gauges = Gauges(meter)
        self.revocations = RevocationTelemetry(self.tracer, meter, tracing=tracing)
        self.verification = self.verifications.verification
        self.cache_hit = self.verifications.cache_hit
        self.stale_token = self.verifications.stale_token
        self.websocket_closed = self.verifications.websocket_closed
        self.authorization = self.authorizations.authorization
        self.cached_authorization = self.authorizations.cached_authorization
        self.client_span = self.calls.client_span
        self.internal_span = self.calls.internal_span
        self.key_fetch = self.calls.key_fetch
        self.review_call = self.calls.review_call
        self.observe_cache = self.gauges.observe_cache
        self.observe_path = self.gauges.observe_path
        self.observe_reloads = self.gauges.observe_reloads
