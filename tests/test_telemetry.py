"""Spans, metrics and log correlation, read from in-memory exporters and from /metrics."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode

from compass_auth import telemetry as telemetry_module
from compass_auth.telemetry import Telemetry
from compass_auth.telemetry import verification as verification_telemetry
from compass_auth.testing import DevCluster, Fault
from service.otel import TelemetrySetup

from .conftest import COLLECTOR, RunningService, StartService, raw_get
from .helpers import claims_of

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@dataclass
class Observed:
    running: RunningService
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    setup: TelemetrySetup

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found


@pytest.fixture
async def observed(
    start_service: StartService, telemetry_setup: Any
) -> AsyncIterator[Observed]:
    setup, spans, reader = telemetry_setup
    running = await start_service(telemetry=setup)
    return Observed(running, spans, reader, setup)


async def test_verify_span_is_a_child_of_the_server_span_continuing_traceparent(
    observed: Observed,
) -> None:
    running = observed.running
    token = running.token()
    status = await raw_get(running.service.port, {"Authorization": f"Bearer {token}",
                                     "traceparent": TRACEPARENT})
    assert status == 200
    server = [s for s in observed.finished()
              if s.kind == SpanKind.SERVER and format(s.context.trace_id, "032x") == TRACE_ID]
    assert len(server) == 1
    assert server[0].parent is not None
    assert format(server[0].parent.span_id, "016x") == PARENT_ID  # continues the caller's trace
    (verify,) = observed.by_name("auth.verify")
    assert verify.parent is not None
    assert verify.parent.span_id == server[0].context.span_id
    assert verify.context.trace_id == server[0].context.trace_id
    assert dict(verify.attributes or {}) == {
        "auth.method": "jwks",
        "auth.outcome": "allowed",
        "auth.reason": "ok",
        "auth.cache_hit": False,
        "auth.subject": COLLECTOR,
        "auth.namespace": "default",
        "auth.service_account": "collector",
        "auth.pod": "collector-6c9d8b7f5-x2k9q",
        # Joins the decision with the API server's audit log of the token's issuance.
        "auth.credential_id": f"JTI={claims_of(token)['jti']}",
    }
    assert verify.status.status_code == StatusCode.UNSET


async def test_repeated_tokens_are_recorded_on_the_server_span(observed: Observed) -> None:
    running = observed.running
    token = running.token()
    for _ in range(3):
        assert (await running.get(token=token)).code == 200
    # The first sight is verified in a span of its own; the cache hits after it are recorded on
    # the request's server span (a child span would cost more than the answer).
    (verify,) = observed.by_name("auth.verify")
    assert dict(verify.attributes or {})["auth.cache_hit"] is False
    servers = [s for s in observed.finished()
               if s.kind == SpanKind.SERVER and s.name == "GET /whoami"]
    assert len(servers) == 3
    hits = [dict(s.attributes or {}) for s in servers[1:]]
    for attributes in hits:
        assert attributes["auth.cache_hit"] is True
        assert attributes["auth.outcome"] == "allowed"
        assert attributes["auth.subject"] == COLLECTOR
    counts = {p.attributes["auth.outcome"]: p.value for p in observed.points("auth.verifications")}
    assert counts == {"allowed": 3}
    durations = sum(p.count for p in observed.points("auth.verification.duration"))
    assert durations == 1  # cache hits are not timed


@pytest.mark.parametrize(("mode", "method"), [("auto", "jwks"), ("review", "tokenreview")])
async def test_a_cache_hit_carries_the_attributes_of_the_first_verification(
    start_service: StartService, telemetry_setup: Any, mode: str, method: str
) -> None:
    setup, spans, reader = telemetry_setup
    running = await start_service(telemetry=setup, AUTH_MODE=mode)
    observed = Observed(running, spans, reader, setup)
    token = running.token()  # pod-bound: the first verification's span has auth.pod
    for _ in range(2):
        assert (await running.get(token=token)).code == 200
    (verify,) = observed.by_name("auth.verify")
    first = dict(verify.attributes or {})
    assert first["auth.method"] == method
    assert first["auth.pod"] == "collector-6c9d8b7f5-x2k9q"
    (_, hit_span) = [s for s in observed.finished()
                     if s.kind == SpanKind.SERVER and s.name == "GET /whoami"]
    hit = {key: value for key, value in (hit_span.attributes or {}).items()
           if key.startswith("auth.")}
    assert hit.pop("auth.cache_hit") is True
    assert first.pop("auth.cache_hit") is False
    assert hit == first


async def test_stale_tokens_are_counted_on_every_request(
    start_service: StartService, telemetry_setup: Any
) -> None:
    setup, spans, reader = telemetry_setup
    running = await start_service(telemetry=setup, AUTH_STALE_TOKENS="warn")
    observed = Observed(running, spans, reader, setup)
    stale = running.token(lifetime=365 * 86400, warnafter=3607,
                          issued_at=int(time.time()) - 7200)
    fresh = running.token(lifetime=365 * 86400, warnafter=3607)
    for token in (stale, stale, fresh):  # the second stale request is a cache hit
        assert (await running.get(token=token)).code == 200
    (point,) = observed.points("auth.tokens.stale")
    assert point.value == 2
    assert point.attributes == {"auth.namespace": "default"}


async def test_denied_is_recorded_without_failing_the_trace(observed: Observed) -> None:
    running = observed.running
    token = running.token(audiences=("vault",))
    status = await raw_get(running.service.port, {"Authorization": f"Bearer {token}",
                                     "traceparent": TRACEPARENT})
    assert status == 401
    (verify,) = observed.by_name("auth.verify")
    attributes = dict(verify.attributes or {})
    assert attributes["auth.outcome"] == "denied"
    assert attributes["auth.reason"] == "audience_mismatch"
    assert "auth.subject" not in attributes
    assert verify.status.status_code == StatusCode.UNSET
    server = [s for s in observed.finished() if s.kind == SpanKind.SERVER
              and s.context.trace_id == verify.context.trace_id]
    assert server[0].status.status_code != StatusCode.ERROR  # a 401 is not an error
    for span in observed.finished():  # the token is never in any attribute
        assert token not in json.dumps(dict(span.attributes or {}), default=str)


async def test_unavailable_is_an_error_and_tokenreview_has_its_own_span(
    observed: Observed,
) -> None:
    running = observed.running
    cluster = running.cluster
    new_kid = cluster.add_key("EC")
    cluster.set_fault("all", Fault(status=503))
    response = await running.get(token=running.token(key_id=new_kid))
    assert response.code == 503
    (verify,) = observed.by_name("auth.verify")
    attributes = dict(verify.attributes or {})
    assert attributes["auth.outcome"] == "unavailable"
    assert attributes["auth.method"] == "tokenreview"
    assert attributes["auth.reason"] == "tokenreview_unavailable"
    assert verify.status.status_code == StatusCode.ERROR
    # The failed JWKS refetch and the failed review are spans under auth.verify.
    children = [s for s in observed.finished()
                if s.parent is not None and s.parent.span_id == verify.context.span_id]
    assert {s.name for s in children} == {"auth.keys.fetch", "auth.tokenreview"}
    (review,) = observed.by_name("auth.tokenreview")
    assert review.kind == SpanKind.CLIENT
    assert review.status.status_code == StatusCode.ERROR
    assert dict(review.attributes or {})["http.response.status_code"] == 503


async def test_startup_discovery_spans_show_each_attempt(
    devcluster: DevCluster, start_service: StartService, telemetry_setup: Any, no_sleep: Any,
) -> None:
    setup, spans, _ = telemetry_setup
    devcluster.set_fault("discovery", Fault(status=503, times=1))
    running = await start_service(telemetry=setup, wait=False)
    running.authenticator._lifecycle.discovery._sleep = no_sleep  # no real 1 s wait in the test
    await running.authenticator.wait_started()
    finished = list(spans.get_finished_spans())
    (discovery,) = [s for s in finished if s.name == "auth.discovery"]
    attempts = [s for s in finished if s.name == "auth.keys.fetch"
                and s.parent is not None and s.parent.span_id == discovery.context.span_id]
    assert [a.status.status_code for a in attempts] == [StatusCode.ERROR, StatusCode.UNSET]
    assert [event.name for event in discovery.events] == ["retry"]
    gets = [s for s in finished if s.name.startswith("GET /")
            and s.parent is not None and s.parent.span_id == attempts[1].context.span_id]
    assert {s.name for s in gets} == {"GET /.well-known/openid-configuration",
                                      "GET /openid/v1/jwks"}
    assert all(s.kind == SpanKind.CLIENT for s in gets)


async def test_log_lines_carry_the_trace_and_span_ids(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    from service.logs import LogfmtFormatter

    handler = logging.StreamHandler()
    formatter = LogfmtFormatter()
    lines: list[str] = []
    handler.emit = lambda record: lines.append(formatter.format(record))  # type: ignore[method-assign]
    logging.getLogger("compass_auth.verification.authenticator").addHandler(handler)
    try:
        running = observed.running
        token = running.token(audiences=("vault",))
        await raw_get(running.service.port,
                      {"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT})
    finally:
        logging.getLogger("compass_auth.verification.authenticator").removeHandler(handler)
    (verify,) = observed.by_name("auth.verify")
    (line,) = [line for line in lines if "token verification failed" in line]
    assert f"trace_id={TRACE_ID}" in line
    assert f"span_id={format(verify.context.span_id, '016x')}" in line


async def test_metrics_count_each_outcome(observed: Observed) -> None:
    running = observed.running
    await running.get(token=running.token())
    await running.get(token=running.token())  # a second token: verified, not a cache hit
    await running.get(token=running.token(audiences=("vault",)))
    await running.get()
    counts = {
        (p.attributes["auth.method"], p.attributes["auth.outcome"], p.attributes["auth.reason"]):
        p.value for p in observed.points("auth.verifications")
    }
    assert counts == {
        ("jwks", "allowed", "ok"): 2,
        ("jwks", "denied", "audience_mismatch"): 1,
        ("jwks", "denied", "missing"): 1,
    }
    durations = {(p.attributes["auth.method"], p.attributes["auth.outcome"]): p.count
                 for p in observed.points("auth.verification.duration")}
    assert durations == {("jwks", "allowed"): 2, ("jwks", "denied"): 2}
    fetches = {p.attributes["auth.result"]: p.value for p in observed.points("auth.jwks.fetches")}
    assert fetches == {"ok": 1}
    paths = {p.attributes["auth.path"]: p.value for p in observed.points("auth.active_path")}
    assert paths == {"jwks": 1, "tokenreview": 0, "none": 0}


@pytest.mark.parametrize(("mode", "discovery_down", "method"), [
    ("auto", False, "jwks"),
    ("auto", True, "tokenreview"),  # fallback: TokenReview would have verified
    ("review", False, "tokenreview"),
])
async def test_header_rejections_carry_the_path_that_would_have_verified(
    devcluster: DevCluster, start_service: StartService, telemetry_setup: Any,
    mode: str, discovery_down: bool, method: str,
) -> None:
    """Issue 11: a missing or malformed header was counted as ``jwks`` in every mode."""
    if discovery_down:
        devcluster.set_fault("discovery", Fault(status=403))  # not retried: fallback at once
    setup, spans, reader = telemetry_setup
    running = await start_service(telemetry=setup, AUTH_MODE=mode)
    observed = Observed(running, spans, reader, setup)
    await running.get()
    await running.get(Authorization="Basic dXNlcjpwYXNz")
    await running.get(Authorization="Bearer a b")
    counts = {
        (p.attributes["auth.method"], p.attributes["auth.reason"]): p.value
        for p in observed.points("auth.verifications")
    }
    assert counts == {(method, "missing"): 2, (method, "malformed_header"): 1}


def scrape(text: str, metric: str) -> dict[frozenset[tuple[str, str]], float]:
    """Prometheus text -> {frozenset(labels): value} for one metric name."""
    found = {}
    for match in re.finditer(rf"^{metric}\{{([^}}]*)\}} (\S+)$", text, flags=re.MULTILINE):
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        found[labels] = float(match.group(2))
    return found


async def test_metrics_endpoint_after_a_known_sequence(
    devcluster: DevCluster, observed: Observed
) -> None:
    running = observed.running
    valid = running.token()
    for _ in range(3):
        await running.get(token=valid)
    await running.get(token=running.token(issued_at=1_000_000_000, lifetime=3600))
    await running.get(token=running.token(audiences=("vault",)))
    await running.get(Authorization="Bearer not-a-jwt")
    response = await running.get("/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.body.decode()
    totals = scrape(text, "auth_verifications_total")

    def count(outcome: str, reason: str) -> float:
        labels = {("auth_method", "jwks"), ("auth_outcome", outcome), ("auth_reason", reason)}
        return next(v for k, v in totals.items() if labels <= k)

    assert count("allowed", "ok") == 3
    assert count("denied", "expired") == 1
    assert count("denied", "audience_mismatch") == 1
    assert count("denied", "malformed") == 1
    buckets = scrape(text, "auth_verification_duration_seconds_count")
    assert sum(buckets.values()) == 4  # the two cache hits are counted above, not timed
    assert "auth_cache_entries" in text
    assert re.search(r'^auth_active_path\{[^}]*auth_path="jwks"[^}]*\} 1\.0$', text, re.M)
    # /metrics itself is not traced (nor /healthz, /readyz).
    await running.get("/healthz")
    names = {span.name for span in observed.finished() if span.kind == SpanKind.SERVER}
    assert names
    assert "GET /whoami" in names
    assert not any(re.search("/metrics|/healthz|/readyz", n) for n in names)


async def test_no_sdk_means_no_op(running: RunningService) -> None:
    # Without providers the library still works (API no-ops) and /metrics is not mounted.
    assert isinstance(running.authenticator.telemetry, Telemetry)
    assert (await running.get(token=running.token())).code == 200
    assert (await running.get("/metrics")).code == 404


def duration_count(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    return sum(
        point.count
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for item in scope.metrics if item.name == "auth.verification.duration"
        for point in item.data.data_points
    )


def test_durations_wait_for_a_collection_and_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Durations are recorded when a reader collects (off the request path), every reader
    sees each sample once, and without any collection they do not pile up."""
    monkeypatch.setattr(verification_telemetry, "PENDING_DURATIONS_LIMIT", 3)
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    telemetry = Telemetry(TracerProvider(), MeterProvider(metric_readers=[first, second]))
    for _ in range(7):  # nobody collects meanwhile
        with telemetry.verification():
            pass
    # the other four were recorded in place
    assert len(telemetry.verifications.pending_durations) == 3
    assert duration_count(first) == 7
    assert duration_count(second) == 7  # the first collection recorded them for both
    with telemetry.verification():
        pass
    assert (duration_count(second), duration_count(first)) == (8, 8)


async def test_unsampled_requests_cost_no_verify_span_but_are_counted(
    observed: Observed,
) -> None:
    """Under an unsampled caller trace the (parent-based) sampler would drop ``auth.verify``:
    none is started, the metrics still count every verification."""
    running = observed.running
    unsampled = f"00-{TRACE_ID}-{PARENT_ID}-00"
    for token in (running.token(), running.token(audiences=("vault",))):
        await raw_get(running.service.port,
                      {"Authorization": f"Bearer {token}", "traceparent": unsampled})
    in_trace = [span.name for span in observed.finished()
                if format(span.context.trace_id, "032x") == TRACE_ID]
    assert in_trace == []  # neither the (unsampled) server span nor an auth.verify
    counts = {(p.attributes["auth.outcome"], p.attributes["auth.reason"]): p.value
              for p in observed.points("auth.verifications")}
    assert counts == {("allowed", "ok"): 1, ("denied", "audience_mismatch"): 1}
    assert sum(p.count for p in observed.points("auth.verification.duration")) == 2
    # A sampled request right after gets its span as before.
    await raw_get(running.service.port,
                  {"Authorization": f"Bearer {running.token()}", "traceparent": TRACEPARENT})
    assert len(observed.by_name("auth.verify")) == 1


def verify_spans_under_unsampled_parent(sampler: Sampler | None) -> list[ReadableSpan]:
    spans = InMemorySpanExporter()
    provider = TracerProvider() if sampler is None else TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(provider, MeterProvider())
    parent = NonRecordingSpan(SpanContext(trace_id=int(TRACE_ID, 16),
                                          span_id=int(PARENT_ID, 16), is_remote=False))
    with trace.use_span(parent, end_on_exit=False), telemetry.verification():
        pass
    return list(spans.get_finished_spans())


@pytest.mark.parametrize(("sampler", "recorded"), [
    (None, 0),  # the SDK default: parent-based, children of unsampled parents dropped
    (ParentBased(ALWAYS_ON), 0),
    (ALWAYS_ON, 1),  # not parent-based: the child is sampled on its own
    (ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON), 1),
])
def test_a_verify_span_is_skipped_only_where_the_sampler_would_drop_it(
    sampler: Sampler | None, recorded: int
) -> None:
    assert len(verify_spans_under_unsampled_parent(sampler)) == recorded


class CountingParentBased(ParentBased):
    def __init__(self) -> None:
        super().__init__(ALWAYS_ON)
        self.calls = 0

    def should_sample(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().should_sample(*args, **kwargs)


class SaysParentBased(StaticSampler):
    """Samples everything, and describes itself as a parent-based sampler that drops the
    children of unsampled local parents (the text the library used to parse)."""

    def __init__(self) -> None:
        super().__init__(Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return ("ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
                "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
                "localParentNotSampled:AlwaysOffSampler}")


def test_the_sampler_is_asked_not_its_description() -> None:
    """Issue 20: a sampler was recognised by its description text. One that records every
    child gets its auth.verify span, whatever it calls itself."""
    assert len(verify_spans_under_unsampled_parent(SaysParentBased())) == 1


def test_under_an_unsampled_parent_no_span_is_even_started() -> None:
    sampler = CountingParentBased()
    verify_spans_under_unsampled_parent(sampler)
    # The sampler was asked once, when the Telemetry was built (would it drop a child of an
    # unsampled local parent?), and never for the verification: no ids, no span objects.
    assert sampler.calls == 1


@pytest.mark.parametrize(("url", "address", "port", "shown"), [
    ("https://127.0.0.1:34165/openid/v1/jwks", "127.0.0.1", 34165, None),
    ("https://kubernetes.default.svc/apis", "kubernetes.default.svc", 443, None),
    ("http://[fd00::1]:8080/x", "fd00::1", 8080, None),
    ("https://user:secret@api.example:6443/x", "api.example", 6443,
     "https://REDACTED:REDACTED@api.example:6443/x"),
])
def test_client_span_attributes_name_the_host_and_port_apart(
    url: str, address: str, port: int, shown: str | None
) -> None:
    """Issue 14: ``server.address`` was the API server URL (``https://127.0.0.1:34165``)."""
    assert telemetry_module.http_attributes("GET", url) == {
        "http.request.method": "GET", "url.full": shown or url,
        "server.address": address, "server.port": port,
    }
