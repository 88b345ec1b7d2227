"""A token anywhere but the Authorization header is not accepted, and never written anywhere.

RFC 6750 also defines a form-body parameter and a URI query parameter (``access_token``); a
service-to-service API has no use for either, and a token in a URL ends up in access logs,
proxies and traces. They get 401 ``missing``, and the query string is kept out of our access
log and server spans so a misconfigured client's token does not leak through them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service import otel
from service.otel import TelemetrySetup

from ..conftest import RunningService, StartService, log_text


@pytest.fixture
def spans() -> Iterator[tuple[TelemetrySetup, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    setup = otel.configure({}, extra_span_exporters=(exporter,))
    yield setup, exporter
    setup.shutdown()


@pytest.fixture
async def traced(
    start_service: StartService, spans: tuple[TelemetrySetup, InMemorySpanExporter]
) -> tuple[RunningService, InMemorySpanExporter]:
    setup, exporter = spans
    running: RunningService = await start_service(telemetry=setup)
    return running, exporter


def reason(response: Any) -> str:
    result: str = json.loads(response.body)["reason"]
    return result


@pytest.mark.parametrize(
    ("name", "path", "headers"),
    [
        ("query access_token", "/whoami?access_token={token}", {}),
        ("query token", "/whoami?token={token}&x=1", {}),
        ("query, header-like", "/whoami?Authorization=Bearer%20{token}", {}),
        ("path segment", "/whoami/{token}", {}),
        ("cookie", "/whoami", {"Cookie": "access_token={token}"}),
        ("other header", "/whoami", {"X-Auth-Token": "{token}"}),
        ("proxy header", "/whoami", {"Proxy-Authorization": "Bearer {token}"}),
    ],
)
async def test_token_outside_the_authorization_header_is_refused_and_not_logged(
    traced: tuple[RunningService, InMemorySpanExporter], caplog: pytest.LogCaptureFixture,
    name: str, path: str, headers: dict[str, str],
) -> None:
    running, exporter = traced
    token = running.token()
    response = await running.get(
        path.format(token=token), **{k: v.format(token=token) for k, v in headers.items()})
    if path.startswith("/whoami/"):
        assert response.code == 404
    else:
        assert (response.code, reason(response)) == (401, "missing")
    signature = token.split(".")[2]
    assert signature not in log_text(caplog)
    finished = exporter.get_finished_spans()
    assert any(span.kind == SpanKind.SERVER for span in finished)  # the request was traced
    for span in finished:
        assert signature not in json.dumps(dict(span.attributes or {})), span.name


async def test_form_body_token_is_refused(running: RunningService) -> None:
    token = running.token()
    response = await running.client.fetch(
        running.base_url + "/whoami", method="POST", body=f"access_token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded"}, raise_error=False)
    assert (response.code, reason(response)) == (401, "missing")
