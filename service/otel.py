"""OpenTelemetry SDK set-up for the example service, from the standard environment variables.

The library (``compass_auth``) only uses the API; this module decides where spans and metrics go:

* ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: comma-separated ``otlp``, ``console``,
  ``none``. Default: ``otlp`` when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set, else ``none`` (the
  specification's default is ``otlp``, which on a laptop without a collector only produces
  export errors).
* ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` (default); ``grpc`` needs the
  ``opentelemetry-exporter-otlp-proto-grpc`` package (the ``grpc`` extra).
* ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER(_ARG)``,
  ``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL`` and the exporters' own variables are read by the
  SDK itself.
* ``OTEL_SDK_DISABLED=true`` turns all of it off (the library's API calls become no-ops and
  ``/metrics`` is not served).
* Kubernetes resource attributes from the downward API: ``K8S_POD_NAME``, ``K8S_POD_UID``,
  ``K8S_NAMESPACE_NAME``, ``K8S_NODE_NAME`` become ``k8s.pod.name``, ...

Metrics are always readable as Prometheus text (``/metrics``), whatever the exporters.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry
from tornado.web import RequestHandler

from compass_auth.handler import MAX_LOGGED_PATH, loggable_target
from compass_auth.settings import SettingsError

from . import __version__

logger = logging.getLogger(__name__)

#: Downward-API environment variables (k8s/ sets them) and the resource attributes they fill.
KUBERNETES_RESOURCE_ENV = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_POD_UID": "k8s.pod.uid",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_NODE_NAME": "k8s.node.name",
}
#: Probe and scrape endpoints stay out of traces (read by the Tornado instrumentation at import).
EXCLUDED_URLS = "healthz,readyz,metrics"
_EXPORTERS = ("otlp", "console", "none")


@dataclass
class TelemetrySetup:
    """The SDK providers of the process and the registry behind ``/metrics``."""

    #: The SDK's, or the API's no-op provider when no span exporter is configured.
    tracer_provider: trace.TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry
    instrumented: bool = False
    stopped: bool = False

    def shutdown(self) -> None:
        """Flush and stop exporters (called after the drain, before exit); idempotent."""
        if self.stopped:
            return
        self.stopped = True
        if self.instrumented:
            from opentelemetry.instrumentation.tornado import TornadoInstrumentor

            TornadoInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
        if isinstance(self.tracer_provider, TracerProvider):
            self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def configure(
    environ: Mapping[str, str],
    *,
    instrument_tornado: bool = True,
    console: IO[str] | None = None,
    extra_span_exporters: tuple[SpanExporter, ...] = (),
    extra_metric_readers: tuple[MetricReader, ...] = (),
) -> TelemetrySetup:
    """Build providers from ``environ``; raise ``SettingsError`` naming a bad variable."""
    resource = Resource.create(resource_attributes(environ))
    span_exporters = _exporters(environ, "OTEL_TRACES_EXPORTER")
    tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
    if span_exporters or extra_span_exporters:
        # Only then: recording spans that no exporter takes cost ~20 µs each for nothing.
        sdk_tracer_provider = TracerProvider(resource=resource)
        for name in span_exporters:
            if name == "otlp":
                sdk_tracer_provider.add_span_processor(
                    BatchSpanProcessor(_otlp_span_exporter(environ)))
            elif name == "console":
                # Simple (synchronous) so the demo's spans print in order, next to its table.
                exporter = ConsoleSpanExporter(out=console or sys.stdout)
                sdk_tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        for span_exporter in extra_span_exporters:
            sdk_tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        tracer_provider = sdk_tracer_provider

    registry = CollectorRegistry()
    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    for name in _exporters(environ, "OTEL_METRICS_EXPORTER"):
        if name == "otlp":
            readers.append(PeriodicExportingMetricReader(_otlp_metric_exporter(environ)))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(
                out=console or sys.stdout)))
    readers.extend(extra_metric_readers)
    # Exemplars (sample trace ids attached to histogram buckets) cost ~1.5 µs per measurement
    # and few back ends show them: off unless OTEL_METRICS_EXEMPLAR_FILTER asks for them.
    exemplars = _exemplar_filter(environ)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, exemplar_filter=exemplars)

    setup = TelemetrySetup(tracer_provider, meter_provider, registry)
    if instrument_tornado:
        os.environ.setdefault("OTEL_PYTHON_TORNADO_EXCLUDED_URLS", EXCLUDED_URLS)
        from opentelemetry.instrumentation.tornado import TornadoInstrumentor

        # Server spans only. Its HTTP server metrics (duration, request and response size,
        # active requests: three histograms and a counter per request) took a quarter of the
        # service's per-request time in a profile under load; the auth metrics say what
        # operators of this service look at.
        TornadoInstrumentor().instrument(  # type: ignore[no-untyped-call]
            tracer_provider=tracer_provider, meter_provider=metrics.NoOpMeterProvider(),
            server_request_hook=redact_server_span,
        )
        setup.instrumented = True
    return setup


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    """``OTEL_SDK_DISABLED=true``: no SDK at all (API no-ops, no /metrics), per the spec."""
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


#: URL attributes the Tornado instrumentation copies from the raw request URI.
_URL_ATTRIBUTES = ("http.target", "http.url", "url.full", "url.path", "url.query")


def redact_server_span(span: Span, handler: RequestHandler) -> None:
    """Overwrite the server span's URL attributes with ``loggable_target`` values.

    The instrumentation redacts only a few cloud-signature parameters (``redact_url``), not
    ``access_token``: a token a misconfigured client puts in the query string (refused with 401)
    would otherwise be exported with the span.
    """
    request = handler.request
    if not request.query and len(request.path) <= MAX_LOGGED_PATH:
        return  # nothing to hide: the common case costs one comparison
    attributes = getattr(span, "attributes", None)
    if not span.is_recording() or not attributes:
        return
    target = loggable_target(request.path, request.query)
    values = {
        "http.target": target,
        "http.url": f"{request.protocol}://{request.host}{target}",
        "url.full": f"{request.protocol}://{request.host}{target}",
        "url.path": loggable_target(request.path, ""),
        "url.query": "REDACTED",
    }
    for key in _URL_ATTRIBUTES:
        if key in attributes:
            span.set_attribute(key, values[key])


def resource_attributes(environ: Mapping[str, str]) -> dict[str, Any]:
    """Our defaults and the downward-API values; ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK's detector) win over both."""
    attributes: dict[str, Any] = {"service.name": "compass-auth", "service.version": __version__}
    for variable, attribute in KUBERNETES_RESOURCE_ENV.items():
        if environ.get(variable):
            attributes[attribute] = environ[variable]
    attributes.update(OTELResourceDetector().detect().attributes)
    return attributes


def _exporters(environ: Mapping[str, str], variable: str) -> list[str]:
    has_endpoint = any(
        environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                     "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )
    default = "otlp" if has_endpoint else "none"
    names = [n.strip() for n in environ.get(variable, default).lower().split(",") if n.strip()]
    for name in names:
        if name not in _EXPORTERS:
            raise SettingsError(f"{variable}={name!r} must be one of {', '.join(_EXPORTERS)}")
    return [name for name in names if name != "none"]


def _exemplar_filter(environ: Mapping[str, str]) -> ExemplarFilter:
    name = environ.get("OTEL_METRICS_EXEMPLAR_FILTER", "always_off").strip().lower()
    filters: dict[str, type[ExemplarFilter]] = {
        "always_off": AlwaysOffExemplarFilter,
        "always_on": AlwaysOnExemplarFilter,
        "trace_based": TraceBasedExemplarFilter,
    }
    if name not in filters:
        raise SettingsError(
            f"OTEL_METRICS_EXEMPLAR_FILTER={name!r} must be one of {', '.join(filters)}")
    return filters[name]()


def _protocol(environ: Mapping[str, str]) -> str:
    protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower()
    if protocol not in ("http/protobuf", "grpc"):
        raise SettingsError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} must be http/protobuf or grpc")
    return protocol


def _otlp_span_exporter(environ: Mapping[str, str]) -> SpanExporter:
    if _protocol(environ) == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            raise SettingsError(_GRPC_MISSING) from None
        return cast(SpanExporter, GrpcSpanExporter())
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _otlp_metric_exporter(environ: Mapping[str, str]) -> MetricExporter:
    if _protocol(environ) == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )
        except ImportError:
            raise SettingsError(_GRPC_MISSING) from None
        return cast(MetricExporter, GrpcMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


_GRPC_MISSING = (
    "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: "
    "pip install 'compass-auth[grpc]' (or use http/protobuf)"
)
