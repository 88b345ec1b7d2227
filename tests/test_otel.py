"""SDK set-up of the example service from OTEL_* variables."""

from __future__ import annotations

import io
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from compass_auth.settings import SettingsError
from service import otel


def configure(environ: dict[str, str], **kwargs: Any) -> otel.TelemetrySetup:
    return otel.configure(environ, **kwargs)


def test_no_exporter_means_no_recording_spans() -> None:
    setup = configure({})
    try:
        assert isinstance(setup.tracer_provider, trace.NoOpTracerProvider)
        assert setup.server_spans is None  # no server span machinery on any request
        span = setup.tracer_provider.get_tracer("t").start_span("x")
        assert not span.is_recording()
    finally:
        setup.shutdown()


def test_otlp_is_the_default_when_an_endpoint_is_set() -> None:
    setup = configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        assert isinstance(setup.tracer_provider, TracerProvider)
        assert setup.server_spans is not None
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
        assert otel._exporters(environ, "OTEL_METRICS_EXPORTER", ("otlp", "none")) == ["otlp"]
        assert otel._exporters({}, "OTEL_METRICS_EXPORTER", ("otlp", "none")) == []
    finally:
        setup.shutdown()


def test_console_exporter_writes_spans() -> None:
    out = io.StringIO()
    setup = configure({"OTEL_TRACES_EXPORTER": "console"}, console=out)
    setup.tracer_provider.get_tracer("t").start_span("hello").end()
    setup.shutdown()
    assert '"name": "hello"' in out.getvalue()


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_METRICS_EXPORTER": "statsd"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
         "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_METRICS_EXEMPLAR_FILTER": "sometimes"}, "OTEL_METRICS_EXEMPLAR_FILTER"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        configure(environ)


@pytest.mark.parametrize(("environ", "variable"), [
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "otlp",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
      "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
])
def test_grpc_without_its_package_says_what_to_install(
    environ: dict[str, str], variable: str
) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        with pytest.raises(SettingsError, match=rf"^{variable}=grpc .*compass-auth\[grpc\]"):
            configure(environ)
    else:  # installed: it must build
        configure(environ).shutdown()


@pytest.mark.parametrize(("environ", "traces", "metrics"), [
    ({}, "http/protobuf", "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc", "grpc"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http/protobuf", "grpc"),
    ({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "GRPC"}, "http/protobuf", "grpc"),
])
def test_each_signal_has_its_own_protocol_variable(
    environ: dict[str, str], traces: str, metrics: str
) -> None:
    assert otel.otlp_protocol(environ, "TRACES")[1] == traces
    assert otel.otlp_protocol(environ, "METRICS")[1] == metrics


def test_metrics_off_means_no_reader_and_no_sdk() -> None:
    setup = configure({"OTEL_METRICS_EXPORTER": "none"})
    assert setup.registry is None  # no /metrics
    assert isinstance(setup.meter_provider, NoOpMeterProvider)
    setup.shutdown()
    for value in ("otlp", "prometheus", "console"):  # /metrics with any other value
        environ = {"OTEL_METRICS_EXPORTER": value, "OTEL_METRIC_EXPORT_INTERVAL": "600000"}
        setup = configure(environ, console=io.StringIO())
        assert setup.registry is not None
        assert isinstance(setup.meter_provider, MeterProvider)
        setup.shutdown()


def test_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"K8S_POD_NAME": "p-1", "K8S_NAMESPACE_NAME": "compass", "K8S_NODE_NAME": "n",
               "K8S_POD_UID": "u"}
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attributes = otel.resource_attributes(environ)
    assert attributes["service.name"] == "compass-auth"
    assert attributes["k8s.pod.name"] == "p-1"
    assert attributes["k8s.namespace.name"] == "compass"
    assert attributes["k8s.node.name"] == "n"
    assert attributes["k8s.pod.uid"] == "u"
    # The SDK's own variables win over our defaults (the SDK reads the process environment).
    monkeypatch.setenv("OTEL_SERVICE_NAME", "reports")
    assert otel.resource_attributes(environ)["service.name"] == "reports"


def test_sdk_disabled() -> None:
    assert otel.sdk_disabled({"OTEL_SDK_DISABLED": "true"})
    assert not otel.sdk_disabled({"OTEL_SDK_DISABLED": "false"})
    assert not otel.sdk_disabled({})
