"""Where a first sight's time goes, in-process: the library's whole path against ``verify_local``.

A token the service has not seen costs ``verify_local`` (the signature and claims) plus what the
library does around it: reading the header, the ``auth.verify`` span and the metrics, the cache
insert, the coroutines. This prints µs per call for each (interleaved rounds, median), with the
verified-token cache off as in the benchmark's "fresh token" scenario, under the telemetry of
``benchmarks.service_cpu``'s variants.

    python -m benchmarks.fresh_path [--iterations 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from opentelemetry import context, metrics, trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from compass_auth import Authenticator, AuthSettings
from compass_auth.core.bearer import read_bearer
from compass_auth.core.verifier import verify_local
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster

from .micro import AUDIENCE, DiscardExporter


def telemetries() -> dict[str, tuple[Telemetry, trace.Tracer | None]]:
    """The library's telemetry as the service configures it, and the tracer of its server
    spans (``None``: no server span)."""
    sampled = TracerProvider(sampler=ParentBasedTraceIdRatio(0.1))
    sampled.add_span_processor(BatchSpanProcessor(DiscardExporter()))

    def meter() -> MeterProvider:
        return MeterProvider(metric_readers=[InMemoryMetricReader()],
                             exemplar_filter=AlwaysOffExemplarFilter())

    return {
        "telemetry off": (Telemetry(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider()),
                          None),
        "metrics only": (Telemetry(trace.NoOpTracerProvider(), meter()), None),
        "10% sampled": (Telemetry(sampled, meter()), sampled.get_tracer("bench")),
    }


async def measure(call: Callable[[], Awaitable[object]], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        await call()
    return (time.perf_counter() - started) / iterations


async def run(cluster: DevCluster, kubeconfig: Path, iterations: int, rounds: int) -> None:
    environ = {"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE}
    fresh_settings = AuthSettings.from_env({**environ, "AUTH_CACHE_SIZE": "0"})
    settings = AuthSettings.from_env(environ)
    tokens = [cluster.mint(audiences=(AUDIENCE,)) for _ in range(500)]
    headers = [[f"Bearer {token}"] for token in tokens]
    state = {"i": 0}

    def next_header() -> list[str]:
        state["i"] = (state["i"] + 1) % len(headers)
        return headers[state["i"]]

    authenticators: list[Authenticator] = []

    async def connect(settings: AuthSettings, telemetry: Telemetry) -> Authenticator:
        authenticator = await Authenticator.connect(settings, environ, telemetry=telemetry)
        authenticator.start()
        await authenticator.wait_started()
        authenticators.append(authenticator)
        return authenticator

    variants: dict[str, Callable[[], Awaitable[object]]] = {}
    base = await connect(fresh_settings, telemetries()["telemetry off"][0])
    keys = base.local.keys.snapshot()
    assert keys is not None
    hasher = base._hasher  # the same HMAC as the service

    async def bare_verify() -> object:
        bearer = read_bearer(next_header(), hasher)
        return verify_local(bearer.token, keys, base.local.policy,  # type: ignore[union-attr]
                            time.time())

    variants["read_bearer + verify_local"] = bare_verify
    for name, (telemetry, tracer) in telemetries().items():
        fresh = await connect(fresh_settings, telemetry)
        cached = await connect(settings, telemetry)
        known = next_header()
        await cached.authenticate_request(known)

        def with_span(call: Callable[[], Awaitable[object]],
                      tracer: trace.Tracer | None = tracer) -> Callable[[], Awaitable[object]]:
            if tracer is None:
                return call

            async def traced() -> object:  # as the service's server span does
                span = tracer.start_span("GET /whoami", kind=trace.SpanKind.SERVER)
                token = context.attach(trace.set_span_in_context(span))
                try:
                    return await call()
                finally:
                    context.detach(token)
                    span.end()
            return traced

        variants[f"first sight, {name}"] = with_span(
            lambda a=fresh: a.authenticate_request(next_header()))
        variants[f"cache hit, {name}"] = with_span(
            lambda a=cached, h=known: a.authenticate_request(h))

    # The same two paths without the background revocation confirmation (issue 21), in the
    # same run: what AUTH_REVOCATION_CHECK costs a first sight (a task started) and a hit.
    off = {**environ, "AUTH_REVOCATION_CHECK": "off"}
    quiet = telemetries()["telemetry off"][0]
    fresh_off = await connect(AuthSettings.from_env({**off, "AUTH_CACHE_SIZE": "0"}), quiet)
    cached_off = await connect(AuthSettings.from_env(off), quiet)
    known_off = next_header()
    await cached_off.authenticate_request(known_off)
    variants["first sight, telemetry off, no revocation"] = (
        lambda: fresh_off.authenticate_request(next_header()))
    variants["cache hit, telemetry off, no revocation"] = (
        lambda: cached_off.authenticate_request(known_off))

    results: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():
        await measure(call, max(1, iterations // 10))
    for _ in range(rounds):
        for name, call in variants.items():
            results[name].append(await measure(call, iterations))
    for authenticator in authenticators:
        await authenticator.close()
    for name, values in results.items():
        print(f"{name:<44} {statistics.median(values) * 1e6:8.1f} µs "
              f"({min(values) * 1e6:.1f}-{max(values) * 1e6:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        kubeconfig = cluster.write_kubeconfig(Path(workdir) / "kubeconfig")
        asyncio.run(run(cluster, kubeconfig, args.iterations, args.rounds))


if __name__ == "__main__":
    main()
