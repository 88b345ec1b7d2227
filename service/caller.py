"""``python -m service call``: call a protected URL periodically, as a client workload would.

Each call reads the bearer token through ``FileTokenSource`` (so a kubelet rotation is picked
up on the next call), sends ``GET URL`` and logs one line: the status, the outcome and either
who the service says we are or why it refused, with the token's fingerprint (``token_fp``, the
same one the service logs), never the token::

    level=INFO logger=service.caller msg=call status=200 outcome=allowed subject=system:... \
verified_by=jwks token_fp=3f1c9a0b7d2e duration_ms=4.1
    level=WARN logger=service.caller msg=call status=401 outcome=denied reason=audience_mismatch ...

With an OpenTelemetry exporter configured (the standard ``OTEL_*`` variables, as for the
service), each call is a CLIENT span and carries W3C ``traceparent``, so the service's trace of
the request starts at the client. ``OTEL_SDK_DISABLED=true`` turns that off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from compass_auth.core.bearer import fingerprint
from compass_auth.settings import SettingsError
from compass_auth.telemetry import ERROR_TYPE, HTTP_STATUS, http_attributes

from . import __version__, otel
from .client import FileTokenSource, TokenFileError
from .logs import configure_logging

logger = logging.getLogger(__name__)

Outcome = Literal["allowed", "denied", "unavailable", "error"]

#: The answers are small JSON documents; anything bigger is not worth reading.
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = f"compass-auth-caller/{__version__}"


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one call gave. ``status`` is 0 when no HTTP answer came back."""

    status: int
    outcome: Outcome
    subject: str | None = None
    verified_by: str | None = None
    reason: str | None = None
    error: str | None = None
    token_fp: str | None = None
    #: True when the token file was (re-)read for this call rather than served from memory.
    token_read: bool = False
    duration_ms: float = 0.0

    def log_fields(self) -> dict[str, Any]:
        """The fields worth a log line, in a stable order, without the empty ones."""
        return {
            key: value
            for key, value in asdict(self).items()
            if value is not None and value is not False
        }


def classify(status: int) -> Outcome:
    """2xx allowed, 401/403 denied, 503 unavailable (retry later), anything else an error."""
    if 200 <= status < 300:
        return "allowed"
    if status in (401, 403):
        return "denied"
    if status == 503:
        return "unavailable"
    return "error"


def _body_fields(response: HTTPResponse) -> dict[str, str]:
    """``subject``/``verified_by`` of a 200, ``reason`` of a refusal; nothing if not JSON."""
    try:
        body = json.loads(response.body or b"")
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    keys = ("subject", "verified_by") if response.code == 200 else ("reason",)
    return {key: body[key] for key in keys if isinstance(body.get(key), str)}


async def call_once(
    http: AsyncHTTPClient, url: str, tokens: FileTokenSource, *, request_timeout: float = 5.0,
    tracer_provider: trace.TracerProvider | None = None,
) -> CallResult:
    """One ``GET url`` with the current token; never raises for network or token trouble.

    The call is a CLIENT span ``GET`` (stable HTTP attributes, as the library's API-server
    calls) of ``tracer_provider`` (default: the global one), and carries its context to the
    service in ``traceparent`` (the global propagator)."""
    started = time.monotonic()

    def elapsed() -> float:
        return round((time.monotonic() - started) * 1000, 1)

    reads_before = tokens.reads
    try:
        token = tokens.token()
    except TokenFileError as error:
        return CallResult(status=0, outcome="error", duration_ms=elapsed(), error=str(error))
    token_fp = fingerprint(token)
    token_read = tokens.reads != reads_before
    tracer = trace.get_tracer(__name__, __version__, tracer_provider)
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT,
                                      attributes=http_attributes("GET", url)) as span:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        propagate.inject(headers)
        request = HTTPRequest(
            url,
            headers=headers,
            connect_timeout=request_timeout,
            request_timeout=request_timeout,
            # A redirect would carry the Authorization header to wherever it points.
            follow_redirects=False,
        )
        try:
            # raise_error=False covers HTTP statuses only; timeouts (Tornado's 599), refused or
            # reset connections and oversized bodies still raise.
            response = await http.fetch(request, raise_error=False)
        except (HTTPClientError, OSError, TimeoutError) as error:
            span.set_attribute(ERROR_TYPE, type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            return CallResult(status=0, outcome="error", duration_ms=elapsed(),
                              error=f"{type(error).__name__}: {error}", token_fp=token_fp,
                              token_read=token_read)
        span.set_attribute(HTTP_STATUS, response.code)
        if response.code >= 400:  # for a client, a 4xx is an error too
            span.set_attribute(ERROR_TYPE, str(response.code))
            span.set_status(Status(StatusCode.ERROR))
    return CallResult(
        status=response.code,
        outcome=classify(response.code),
        duration_ms=elapsed(),
        token_fp=token_fp,
        token_read=token_read,
        **_body_fields(response),
    )


def log_result(url: str, result: CallResult) -> None:
    level = logging.INFO if result.outcome == "allowed" else logging.WARNING
    logger.log(level, "call", extra={"url": url, **result.log_fields()})


async def run(
    url: str,
    tokens: FileTokenSource,
    *,
    interval: float = 5.0,
    count: int | None = None,
    request_timeout: float = 5.0,
    stop: asyncio.Event | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> list[CallResult]:
    """Call ``url`` every ``interval`` seconds, ``count`` times or until ``stop`` is set."""
    stop = stop or asyncio.Event()
    http = AsyncHTTPClient(force_instance=True, max_body_size=MAX_RESPONSE_BYTES)
    results: list[CallResult] = []
    try:
        while count is None or len(results) < count:
            started = time.monotonic()
            result = await call_once(http, url, tokens, request_timeout=request_timeout,
                                     tracer_provider=tracer_provider)
            log_result(url, result)
            results.append(result)
            if count is not None and len(results) >= count:
                break
            # A fixed rate, not a fixed pause: a slow answer does not stretch the period.
            pause = max(0.0, interval - (time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                continue
            break
    finally:
        http.close()
    return results


async def _main(url: str, token_file: str, interval: float, count: int | None,
                request_timeout: float, tracer_provider: trace.TracerProvider) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # As PID 1 of its container, the process gets no default SIGTERM action: without a handler
    # every pod deletion would wait for the grace period and end in SIGKILL.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    results = await run(url, FileTokenSource(token_file), interval=interval, count=count,
                        request_timeout=request_timeout, stop=stop,
                        tracer_provider=tracer_provider)
    if count is None:
        return 0
    return 0 if all(result.outcome == "allowed" for result in results) else 1


def main(url: str, token_file: str, interval: float = 5.0, count: int | None = None,
         timeout: float = 5.0) -> int:
    """Run the caller; with ``count``, exit 0 only if every call was allowed."""
    configure_logging()
    try:
        # Without a span exporter the provider is a no-op: no span, no traceparent.
        setup = None if otel.sdk_disabled(os.environ) else otel.configure(os.environ)
    except SettingsError as error:
        logger.error("invalid settings", extra={"error": str(error)})
        return 2
    logger.info("calling", extra={"url": url, "token_file": token_file, "interval": interval,
                                  "count": count if count is not None else "unlimited"})
    try:
        return asyncio.run(_main(url, token_file, interval, count, timeout,
                                 setup.tracer_provider if setup else trace.NoOpTracerProvider()))
    finally:
        if setup is not None:
            setup.shutdown()
