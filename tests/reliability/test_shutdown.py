"""Graceful shutdown under load: SIGTERM while requests are in flight. They complete, new
connections are refused, telemetry is flushed (every answered request is in the exported spans
and metrics), and the process exits 0.

The service runs as a process (``python -m service serve``) exporting over OTLP/HTTP to a real
receiver, with batch and metric intervals far longer than the test: whatever arrives was
flushed by the shutdown.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp

from compass_auth.testing import DevCluster, Fault

from ..conftest import RunningService, wait_until
from ..helpers import service_process, wait_for_port
from ..otlp_receiver import Received, attributes, verification_counts
from .conftest import NewKey

IN_FLIGHT = 5


def verify_outcomes(received: Received) -> Counter[str]:
    """Verifications by outcome, from every span that records one: ``auth.verify`` spans, and
    server spans where a cached answer puts its attributes instead of a span of its own."""
    outcomes: Counter[str] = Counter()
    for request in received.traces:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    outcome = attributes(span.attributes).get("auth.outcome")
                    if outcome is not None:
                        outcomes[outcome] += 1
    return outcomes


def verification_count(received: Received, outcome: str) -> int:
    return sum(n for (_, seen, _), n in verification_counts(received).items() if seen == outcome)


async def get(session: aiohttp.ClientSession, url: str, token: str) -> int | str:
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            await response.read()
            return response.status
    except aiohttp.ClientConnectorError:
        return "refused"
    except aiohttp.ClientError as error:
        return type(error).__name__


async def test_sigterm_under_load(
    devcluster: DevCluster, new_key: NewKey, receiver: tuple[str, Received],
    tmp_path: Path,
) -> None:
    endpoint, received = receiver
    process = service_process({
        "KUBECONFIG": str(devcluster.write_kubeconfig(tmp_path / "kubeconfig")),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    }, "--drain-seconds", "10")
    lines: list[str] = []
    try:
        port = await asyncio.to_thread(wait_for_port, process, lines)
        url = f"http://127.0.0.1:{port}/whoami"
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # keys loaded
                if await get(session, f"http://127.0.0.1:{port}/readyz", "") == 200:
                    break
                await asyncio.sleep(0.05)
            valid = devcluster.mint(audiences=("compass-internal",))
            assert await get(session, url, valid) == 200
            # In flight: tokens of a key the service has not seen; the JWKS refetch they wait
            # for is slow.
            kid = new_key("EC")
            devcluster.set_fault("jwks", Fault(delay=2.0, times=1))
            slow = [asyncio.create_task(get(session, url, devcluster.mint(
                audiences=("compass-internal",), key_id=kid, pod=f"slow-{i}")))
                for i in range(IN_FLIGHT)]
            # Load: a steady stream of valid callers on kept-alive connections.
            stop = asyncio.Event()
            load_answers: Counter[int | str] = Counter()

            async def load() -> None:
                async with aiohttp.ClientSession() as own:
                    while not stop.is_set():
                        load_answers[await get(own, url, valid)] += 1
                        await asyncio.sleep(0.01)

            loaders = [asyncio.create_task(load()) for _ in range(4)]
            await asyncio.sleep(0.5)
            assert not any(task.done() for task in slow)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # New connections are refused soon after the signal.
            refused_after = None
            while time.monotonic() - signalled < 2:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                except ConnectionRefusedError:
                    refused_after = time.monotonic() - signalled
                    break
                await asyncio.sleep(0.02)
            slow_answers = await asyncio.gather(*slow)
            stop.set()
            await asyncio.gather(*loaders)
        _, rest = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    output = "".join(lines) + rest
    assert process.returncode == 0, output[-3000:]
    assert refused_after is not None
    assert refused_after < 1.0
    assert slow_answers == [200] * IN_FLIGHT  # the requests in flight completed
    # Load callers were served, then told to go away: never a 5xx other than the draining
    # 503, never a 401.
    assert set(load_answers) <= {200, 503, "refused", "ServerDisconnectedError"}, load_answers
    served = load_answers[200]
    assert served > 0
    assert 'msg="shutting down"' in output
    assert "msg=stopped" in output
    assert "drain timed out" not in output
    # Telemetry flushed at shutdown: every request let in is in the spans and the metrics.
    allowed = 1 + served + IN_FLIGHT  # the first check, the load, the slow ones
    assert verify_outcomes(received)["allowed"] == allowed
    assert verification_count(received, "allowed") == allowed
    print(f"\nshutdown: {IN_FLIGHT} in flight completed, load answers {dict(load_answers)}, "
          f"refused {refused_after:.2f}s after SIGTERM, spans for {allowed} verifications")


async def test_draining_answer_closes_kept_alive_connections(
    running: RunningService, new_key: NewKey,
) -> None:
    """A request on a kept-alive connection during the drain gets 503 with Retry-After and
    ``Connection: close``, and the server closes the connection: the client reconnects (to
    another replica) instead of reusing a connection to a process that is going away."""
    port = running.service.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"  # HTTP/1.1: keep-alive by default
    writer.write(request)
    first = await reader.readuntil(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    await reader.readexactly(int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
    # One slow request keeps the drain going.
    running.cluster.set_fault("jwks", Fault(delay=1.0, times=1))
    slow = asyncio.ensure_future(running.get(token=running.token(key_id=new_key("EC"))))
    # Wait for the state itself, not a fixed time: on a loaded machine the slow request may
    # take longer to arrive, and a drain that starts before it would finish at once.
    await wait_until(lambda: running.service.in_flight >= 1)
    drain = asyncio.ensure_future(running.service.drain())
    await wait_until(lambda: running.service.draining)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 2.0)  # the whole answer, then EOF
    writer.close()
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 503")
    assert b"\r\nconnection: close" in head
    assert b"\r\nretry-after: 1" in head
    assert (await slow).code == 200
    await asyncio.wait_for(drain, 5)
