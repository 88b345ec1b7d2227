"""End to end: the service as a process exports spans and metrics over OTLP/HTTP to a real
receiver that decodes the protobuf with opentelemetry-proto."""

from __future__ import annotations

import asyncio
import gzip
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from compass_auth.testing import DevCluster, Fault

from .conftest import raw_get
from .test_app import service_process, wait_for_port

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


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


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Received]]:
    received = Received()
    app = tornado.web.Application([(r"/v1/(traces|metrics)", OtlpHandler, {"received": received})])
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}", received
    server.stop()


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


async def test_spans_and_metrics_arrive_over_otlp_http(
    devcluster: DevCluster, receiver: tuple[str, Received], tmp_path: Path
) -> None:
    endpoint, received = receiver
    process = service_process({
        "KUBECONFIG": str(devcluster.write_kubeconfig(tmp_path / "kubeconfig")),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        # Each signal's own variable wins over the general one (grpc is not even installed).
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "compass-auth-under-test",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "K8S_POD_NAME": "compass-auth-7d9f-abcde",
        "K8S_NAMESPACE_NAME": "compass",
        "K8S_NODE_NAME": "kind-worker",
    })
    lines: list[str] = []
    try:
        port = await asyncio.to_thread(wait_for_port, process, lines)
        await asyncio.sleep(0.5)  # start-up discovery
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        allowed = devcluster.mint(audiences=("compass-internal",))
        denied = devcluster.mint(audiences=("vault",))
        assert await raw_get(port, {"Authorization": f"Bearer {allowed}",
                                    "traceparent": traceparent}) == 200
        assert await raw_get(port, {"Authorization": f"Bearer {denied}"}) == 401
        new_kid = devcluster.add_key("EC")
        devcluster.set_fault("all", Fault(status=503))
        unavailable = devcluster.mint(audiences=("compass-internal",), key_id=new_kid)
        assert await raw_get(port, {"Authorization": f"Bearer {unavailable}"}) == 503
        await asyncio.sleep(0.8)  # at least one periodic metric export
        process.send_signal(signal.SIGTERM)  # shutdown flushes what is left
        await asyncio.to_thread(process.communicate, timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0

    spans = [
        (attributes(resource_spans.resource.attributes), span)
        for request in received.traces
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    resource = spans[0][0]
    assert resource["service.name"] == "compass-auth-under-test"
    assert resource["k8s.pod.name"] == "compass-auth-7d9f-abcde"
    assert resource["k8s.namespace.name"] == "compass"
    assert resource["k8s.node.name"] == "kind-worker"

    verify = {attributes(s.attributes)["auth.outcome"]: s for _, s in spans
              if s.name == "auth.verify"}
    assert set(verify) == {"allowed", "denied", "unavailable"}
    allowed_span = verify["allowed"]
    assert allowed_span.trace_id.hex() == TRACE_ID
    (server,) = [s for _, s in spans if s.span_id == allowed_span.parent_span_id]
    assert server.kind == server.SPAN_KIND_SERVER
    assert server.parent_span_id.hex() == PARENT_ID  # continues the caller's trace
    assert server.name == "GET /whoami"
    server_attributes = attributes(server.attributes)
    assert server_attributes["http.route"] == "/whoami"
    assert server_attributes["http.response.status_code"] == 200
    assert attributes(allowed_span.attributes) == {
        "auth.method": "jwks", "auth.outcome": "allowed", "auth.reason": "ok",
        "auth.cache_hit": False, "auth.subject": "system:serviceaccount:default:collector",
        "auth.namespace": "default", "auth.service_account": "collector",
        "auth.pod": "collector-6c9d8b7f5-x2k9q",
    }
    assert attributes(verify["denied"].attributes)["auth.reason"] == "audience_mismatch"
    assert verify["denied"].status.code != verify["denied"].status.STATUS_CODE_ERROR
    unavailable_attrs = attributes(verify["unavailable"].attributes)
    assert unavailable_attrs["auth.method"] == "tokenreview"
    assert verify["unavailable"].status.code == verify["unavailable"].status.STATUS_CODE_ERROR
    children = {s.name for _, s in spans if s.parent_span_id == verify["unavailable"].span_id}
    assert children == {"auth.keys.fetch", "auth.tokenreview"}
    for _, span in spans:  # never the token, anywhere
        text = str(span)
        for token in (allowed, denied, unavailable):
            assert token not in text

    counts = verification_counts(received)
    assert counts == {
        ("jwks", "allowed", "ok"): 1,
        ("jwks", "denied", "audience_mismatch"): 1,
        ("tokenreview", "unavailable", "tokenreview_unavailable"): 1,
    }
