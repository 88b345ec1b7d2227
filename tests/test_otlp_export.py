"""End to end: the service as a process exports spans and metrics over OTLP/HTTP to a real
receiver that decodes the protobuf with opentelemetry-proto."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from compass_auth.testing import DevCluster, Fault

from .conftest import raw_get
from .helpers import claims_of, service_process, wait_for_port
from .otlp_receiver import Received, attributes, verification_counts

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


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
        "auth.credential_id": f"JTI={claims_of(allowed)['jti']}",
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
