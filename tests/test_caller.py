"""``python -m service call`` against the example service over real HTTP (emulator behind it)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from compass_auth.core.bearer import fingerprint
from service.caller import call_once, classify, run
from service.client import FileTokenSource

from .conftest import AUDIENCE, RunningService, log_text
from .helpers import ROOT
from .kubelet import rotate_token, write_token_volume

CALLER = "system:serviceaccount:compass:collector"


def mint(running: RunningService, **kwargs: Any) -> str:
    arguments: dict[str, Any] = {"namespace": "compass", "service_account": "collector",
                                 "audiences": (AUDIENCE,)}
    arguments.update(kwargs)
    return running.token(**arguments)


async def test_allowed_call_reports_the_subject(running: RunningService, tmp_path: Path) -> None:
    token = mint(running)
    tokens = FileTokenSource(write_token_volume(tmp_path / "vol", token))
    http = AsyncHTTPClient(force_instance=True)
    try:
        first = await call_once(http, running.base_url + "/whoami", tokens)
        second = await call_once(http, running.base_url + "/whoami", tokens)
    finally:
        http.close()
    assert (first.status, first.outcome, first.subject, first.verified_by) == (
        200, "allowed", CALLER, "jwks")
    assert first.token_fp == fingerprint(token)
    assert first.token_read
    assert not second.token_read
    assert second.outcome == "allowed"


async def test_the_call_after_a_rotation_sends_the_new_token(
    running: RunningService, tmp_path: Path
) -> None:
    volume = tmp_path / "vol"
    tokens = FileTokenSource(write_token_volume(volume, mint(running)))
    http = AsyncHTTPClient(force_instance=True)
    url = running.base_url + "/whoami"
    try:
        before = await call_once(http, url, tokens)
        # Another service account's token: the answer's subject proves which token was sent.
        rotated = mint(running, service_account="collector-2")
        rotate_token(volume, rotated)
        after = await call_once(http, url, tokens)
        rotate_token(volume, mint(running, audiences=("other-service",)))
        refused = await call_once(http, url, tokens)
    finally:
        http.close()
    assert before.subject == CALLER
    assert after.subject == "system:serviceaccount:compass:collector-2"
    assert after.token_fp == fingerprint(rotated)
    assert after.token_read
    assert (refused.status, refused.outcome, refused.reason) == (401, "denied",
                                                                  "audience_mismatch")


async def test_no_answer_and_no_token_are_results_not_exceptions(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    path = tmp_path / "token"
    http = AsyncHTTPClient(force_instance=True)
    try:
        missing = await call_once(http, f"http://127.0.0.1:{closed_port}/", FileTokenSource(path))
        path.write_text("abc.def.ghi")
        refused = await call_once(http, f"http://127.0.0.1:{closed_port}/", FileTokenSource(path))
    finally:
        http.close()
    assert (missing.status, missing.outcome, missing.token_fp) == (0, "error", None)
    assert missing.error is not None
    assert "cannot stat" in missing.error
    assert (refused.status, refused.outcome) == (0, "error")
    assert refused.error is not None
    assert "ConnectionRefused" in refused.error


class _Redirect(tornado.web.RequestHandler):
    def get(self) -> None:
        self.redirect("/capture")


class _Capture(tornado.web.RequestHandler):
    def initialize(self, seen: list[str | None]) -> None:
        self.seen = seen

    def get(self) -> None:
        self.seen.append(self.request.headers.get("Authorization"))


async def test_redirects_are_not_followed_with_the_token(tmp_path: Path) -> None:
    seen: list[str | None] = []
    app = tornado.web.Application([(r"/redirect", _Redirect),
                                   (r"/capture", _Capture, {"seen": seen})])
    server = HTTPServer(app)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    path = tmp_path / "token"
    path.write_text("abc.def.ghi")
    http = AsyncHTTPClient(force_instance=True)
    try:
        result = await call_once(http, f"http://127.0.0.1:{port}/redirect", FileTokenSource(path))
    finally:
        http.close()
        server.stop()
    assert (result.status, result.outcome) == (302, "error")
    assert seen == []


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "allowed"), (204, "allowed"), (401, "denied"), (403, "denied"),
    (503, "unavailable"), (400, "error"), (404, "error"), (500, "error"),
])
def test_classify(status: int, outcome: str) -> None:
    assert classify(status) == outcome


async def test_run_calls_count_times_and_logs_one_line_each(
    running: RunningService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(running)
    tokens = FileTokenSource(write_token_volume(tmp_path / "vol", token))
    results = await run(running.base_url + "/whoami", tokens, interval=0.05, count=3)
    assert [result.outcome for result in results] == ["allowed"] * 3
    lines = [line for line in log_text(caplog).splitlines() if "logger=service.caller" in line]
    assert len(lines) == 3
    assert all("status=200" in line and f"subject={CALLER}" in line for line in lines)
    assert token not in log_text(caplog)


async def test_run_stops_when_asked(running: RunningService, tmp_path: Path) -> None:
    tokens = FileTokenSource(write_token_volume(tmp_path / "vol", mint(running)))
    stop = asyncio.Event()
    task = asyncio.create_task(run(running.base_url + "/whoami", tokens, interval=30, stop=stop))
    await asyncio.sleep(0.5)
    stop.set()
    results = await asyncio.wait_for(task, 5)
    assert len(results) == 1


async def _call_command(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "call", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    ("audience", "exit_code", "expected"),
    [
        (AUDIENCE, 0, f"status=200 outcome=allowed subject={CALLER} verified_by=jwks"),
        ("other-service", 1, "status=401 outcome=denied reason=audience_mismatch"),
    ],
)
async def test_the_command_exits_by_outcome(
    running: RunningService, tmp_path: Path, audience: str, exit_code: int, expected: str
) -> None:
    token = mint(running, audiences=(audience,))
    path = write_token_volume(tmp_path / "vol", token)
    process = await _call_command("--url", running.base_url + "/whoami",
                                  "--token-file", str(path), "--count", "2", "--interval", "0.1")
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    output = stderr.decode()
    assert process.returncode == exit_code, output
    calls = [line for line in output.splitlines() if " msg=call " in line]
    assert len(calls) == 2
    assert all(expected in line for line in calls), calls
    assert token not in output
    assert token not in stdout.decode()


async def test_the_command_exits_0_on_sigterm(running: RunningService, tmp_path: Path) -> None:
    path = write_token_volume(tmp_path / "vol", mint(running))
    process = await _call_command("--url", running.base_url + "/whoami",
                                  "--token-file", str(path), "--interval", "30")
    assert process.stderr is not None
    while b" msg=call " not in await asyncio.wait_for(process.stderr.readline(), 30):
        pass
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_calls_carry_traceparent_when_tracing_is_configured(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from service import otel

    seen: list[str] = []

    class Echo(tornado.web.RequestHandler):
        def get(self) -> None:
            seen.append(self.request.headers.get("traceparent", ""))
            self.write({"subject": "system:serviceaccount:default:collector"})

    spans = InMemorySpanExporter()
    setup = otel.configure({}, extra_span_exporters=(spans,))
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(tornado.web.Application([(r"/whoami", Echo)]))
    server.add_sockets(sockets)
    try:
        token_file = write_token_volume(tmp_path / "tokens", "a.b.c")
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/whoami"
        results = await run(url, FileTokenSource(str(token_file)), count=1, interval=0.01,
                            tracer_provider=setup.tracer_provider)
    finally:
        server.stop()
        setup.shutdown()
    assert results[0].outcome == "allowed"
    (client,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    trace_id = format(client.context.trace_id, "032x")
    span_id = format(client.context.span_id, "016x")
    (header,) = seen
    assert header.startswith(f"00-{trace_id}-{span_id}-")
    assert int(header.rsplit("-", 1)[1], 16) & 1  # sampled
    # The stable HTTP client attributes, as on the library's API-server calls.
    assert dict(client.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": url,
        "server.address": "127.0.0.1",
        "server.port": int(url.split(":")[2].split("/")[0]),
        "http.response.status_code": 200,
    }
