"""A real OTLP/HTTP receiver's parts: the handler that decodes the protobuf exports with
opentelemetry-proto, and readers of what it received. The ``receiver`` fixture (conftest.py)
serves it on loopback."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class Received:
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)


class OtlpHandler(tornado.web.RequestHandler):
    def initialize(self, received: Received) -> None:
        self.received = received

    def post(self, signal_name: str) -> None:
        body = self.request.body
        if self.request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if signal_name == "traces":
            self.received.traces.append(ExportTraceServiceRequest.FromString(body))
        else:
            self.received.metrics.append(ExportMetricsServiceRequest.FromString(body))
        self.set_header("Content-Type", "application/x-protobuf")
        self.write(b"")


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(items: Any) -> dict[str, Any]:
    return {item.key: value(item.value) for item in items}


def verification_counts(received: Received) -> dict[tuple[str, str, str], int]:
    """The latest ``auth.verifications`` value per (method, outcome, reason) in the exports
    received (the counter is cumulative: each export repeats the running total)."""
    counts: dict[tuple[str, str, str], int] = {}
    for request in received.metrics:
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == "auth.verifications":
                        for point in metric.sum.data_points:
                            labels = attributes(point.attributes)
                            key = (labels["auth.method"], labels["auth.outcome"],
                                   labels["auth.reason"])
                            counts[key] = max(counts.get(key, 0), point.as_int)
    return counts
