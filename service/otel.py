"""OpenTelemetry SDK set-up for the example service, from the standard environment variables.

The library (``compass_auth``) only uses the API; this module decides where spans and metrics go:

* ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: comma-separated ``otlp``, ``console``,
  ``none`` (and ``prometheus`` for metrics). Default: ``otlp`` when an
  ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set, else ``none`` (the specification's default is
  ``otlp``, which on a laptop without a collector only produces export errors).
* ``/metrics`` (Prometheus text) is served unless ``OTEL_METRICS_EXPORTER`` is exactly ``none``.
* Telemetry that is off costs nothing: without a span exporter the tracer provider is the API's
  no-op and no server span is started (``server_spans`` is ``None``); with no metric reader at
  all the meter provider is the API's no-op too.
* ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``, falling back
  to ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` (default) or ``grpc``, which needs the
  ``opentelemetry-exporter-otlp-proto-grpc`` package (the ``grpc`` extra).
* ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER(_ARG)``,
  ``OTEL_PROPAGATORS``, ``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL`` and the exporters' own
  variables are read by the SDK itself.
* ``OTEL_SDK_DISABLED=true`` turns all of it off (the caller does not call ``configure``).
* Kubernetes resource attributes from the downward API: ``K8S_POD_NAME``, ``K8S_POD_UID``,
  ``K8S_NAMESPACE_NAME``, ``K8S_NODE_NAME`` become ``k8s.pod.name``, ...
"""

from __future__ import annotations

import logging
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
from prometheus_client import CollectorRegistry

from compass_auth.settings import SettingsError
from compass_auth.tornado.server_spans import ServerSpans, excluded_urls

from . import __version__

logger = logging.getLogger(__name__)

#: Downward-API environment variables (k8s/ sets them) and the resource attributes they fill.
KUBERNETES_RESOURCE_ENV = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_POD_UID": "k8s.pod.uid",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_NODE_NAME": "k8s.node.name",
}
_SPAN_EXPORTERS = ("otlp", "console", "none")
_METRIC_EXPORTERS = ("otlp", "console", "prometheus", "none")
_PROTOCOLS = ("http/protobuf", "grpc")


@dataclass
class TelemetrySetup:
    """The providers of the process, the registry behind ``/metrics`` and the server spans."""

    #: The SDK's, or the API's no-op provider when no span exporter is configured.
    tracer_provider: trace.TracerProvider
    #: The SDK's, or the API's no-op provider when no metric reader is configured.
    meter_provider: metrics.MeterProvider
    #: What ``/metrics`` serves; ``None`` when it is off (``OTEL_METRICS_EXPORTER=none``).
    registry: CollectorRegistry | None
    #: ``None`` when nothing is traced: no request then pays for a server span. Installed on the
    #: application by ``ServiceApplication`` (``compass_auth.tornado.server_spans``).
    server_spans: ServerSpans | None = None
    stopped: bool = False

    def shutdown(self) -> None:
        """Flush and stop exporters (called after the drain, before exit); idempotent."""
        if self.stopped:
            return
        self.stopped = True
        if isinstance(self.tracer_provider, TracerProvider):
            self.tracer_provider.shutdown()
        if isinstance(self.meter_provider, MeterProvider):
            self.meter_provider.shutdown()


def configure(
    environ: Mapping[str, str],
    *,
    console: IO[str] | None = None,
    extra_span_exporters: tuple[SpanExporter, ...] = (),
    extra_metric_readers: tuple[MetricReader, ...] = (),
) -> TelemetrySetup:
    """Build providers from ``environ``; raise ``SettingsError`` naming a bad variable."""
    resource = Resource.create(resource_attributes(environ))
    span_exporters = _exporters(environ, "OTEL_TRACES_EXPORTER", _SPAN_EXPORTERS)
    tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
    server_spans = None
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
        server_spans = ServerSpans(tracer_provider, excluded_urls(environ))

    metric_exporters = _exporters(environ, "OTEL_METRICS_EXPORTER", _METRIC_EXPORTERS)
    # /metrics is served whatever the push exporters, unless metrics are off altogether:
    # dashboards scrape it, and it costs nothing until scraped.
    serve_metrics = environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() != "none"
    registry = CollectorRegistry() if serve_metrics else None
    readers: list[MetricReader] = []
    if registry is not None:
        readers.append(PrometheusMetricReader(registry=registry))
    for name in metric_exporters:
        if name == "otlp":
            readers.append(PeriodicExportingMetricReader(_otlp_metric_exporter(environ)))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(
                out=console or sys.stdout)))
    readers.extend(extra_metric_readers)
    meter_provider: metrics.MeterProvider = metrics.NoOpMeterProvider()
    if readers:
        # Exemplars (sample trace ids attached to histogram buckets) cost ~1.5 µs per
        # measurement and few back ends show them: off unless OTEL_METRICS_EXEMPLAR_FILTER
        # asks for them.
        meter_provider = MeterProvider(resource=resource, metric_readers=readers,
                                       exemplar_filter=_exemplar_filter(environ))
    return TelemetrySetup(tracer_provider, meter_provider, registry, server_spans)


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    """``OTEL_SDK_DISABLED=true``: no SDK at all (API no-ops, no /metrics), per the spec."""
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def resource_attributes(environ: Mapping[str, str]) -> dict[str, Any]:
    """Our defaults and the downward-API values; ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK's detector) win over both."""
    attributes: dict[str, Any] = {"service.name": "compass-auth", "service.version": __version__}
    for variable, attribute in KUBERNETES_RESOURCE_ENV.items():
        if environ.get(variable):
            attributes[attribute] = environ[variable]
    attributes.update(OTELResourceDetector().detect().attributes)
    return attributes


def _exporters(environ: Mapping[str, str], variable: str, allowed: tuple[str, ...]) -> list[str]:
    has_endpoint = any(
        environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                     "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )
    default = "otlp" if has_endpoint else "none"
    names = [n.strip() for n in environ.get(variable, default).lower().split(",") if n.strip()]
    for name in names:
        if name not in allowed:
            raise SettingsError(f"{variable}={name!r} must be one of {', '.join(allowed)}")
    return [name for name in names if name not in ("none", "prometheus")]


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


def otlp_protocol(environ: Mapping[str, str], signal: str) -> tuple[str, str]:
    """``(variable, protocol)`` for ``signal`` (``TRACES`` or ``METRICS``): the signal's own
    ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
    ``http/protobuf``, as the specification orders them."""
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = environ.get(variable, "").strip().lower()
        if value:
            if value not in _PROTOCOLS:
                raise SettingsError(
                    f"{variable}={value!r} must be one of {', '.join(_PROTOCOLS)}")
            return variable, value
    return "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"


def _otlp_span_exporter(environ: Mapping[str, str]) -> SpanExporter:
    variable, protocol = otlp_protocol(environ, "TRACES")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            raise SettingsError(_grpc_missing(variable)) from None
        return cast(SpanExporter, GrpcSpanExporter())
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _otlp_metric_exporter(environ: Mapping[str, str]) -> MetricExporter:
    variable, protocol = otlp_protocol(environ, "METRICS")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )
        except ImportError:
            raise SettingsError(_grpc_missing(variable)) from None
        return cast(MetricExporter, GrpcMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def _grpc_missing(variable: str) -> str:
    return (f"{variable}=grpc needs the gRPC exporter: pip install 'compass-auth[grpc]' "
            "(or use http/protobuf)")
