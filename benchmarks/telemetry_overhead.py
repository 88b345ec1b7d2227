"""What telemetry adds to one verification: no SDK (API no-ops) against the SDK, with every trace
recorded (the SDK's default sampler), with 10 % of traces sampled, and with none (metrics only).

    python -m benchmarks.telemetry_overhead [--iterations N] [--rounds R]

Every variant verifies the same valid token through ``Authenticator.authenticate_request`` (the
whole library path: header parsing, PyJWT, claims, span, metrics) against the emulator's keys,
with the verified-token cache off, so each call is a first sight (cache hits are measured by
``benchmarks.micro``). As in the service, each verification runs inside a server span (a
stand-in attached as the current span, in every variant alike) whose sampling decision the
parent-based sampler follows.
Rounds interleave the variants so machine noise hits both alike; the ratio is per round.

Duration samples go into the SDK histogram when a metric reader collects (``Telemetry``): after
each round the benchmark collects, like a scrape or the periodic exporter would, and reports
that time per verification in its own column, so the cost moved off the request path is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

from compass_auth import Authenticator, AuthSettings
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster


class DiscardExporter(SpanExporter):
    """Spans are built, batched and handed over like in production, then dropped."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def server_spans(count: int, sampled_every: int) -> list[Span]:
    """Stand-ins for the server spans the Tornado instrumentation starts: in the service every
    verification runs inside one, and the (parent-based) sampler follows its decision. Every
    ``sampled_every``-th is sampled; 0 means none."""
    return [
        NonRecordingSpan(SpanContext(
            trace_id=random.getrandbits(128) | 1, span_id=index + 1, is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled_every
                                   and index % sampled_every == 0 else TraceFlags.DEFAULT)))
        for index in range(count)
    ]


async def measure(authenticator: Authenticator, header: list[str], iterations: int,
                  parents: Sequence[Span]) -> float:
    """Seconds per verification, each inside the next of ``parents``."""
    started = time.perf_counter()
    for index in range(iterations):
        attached = context.attach(trace.set_span_in_context(parents[index % len(parents)]))
        try:
            await authenticator.authenticate_request(header)
        finally:
            context.detach(attached)
    return (time.perf_counter() - started) / iterations


async def run(iterations: int, rounds: int) -> None:
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        environ = {"KUBECONFIG": str(cluster.write_kubeconfig(Path(workdir) / "kubeconfig")),
                   "AUTH_AUDIENCE": "compass-internal", "AUTH_CACHE_SIZE": "0"}
        settings = AuthSettings.from_env(environ)
        providers = []
        readers: dict[str, InMemoryMetricReader] = {}
        variants = {
            "no SDK": await Authenticator.connect(settings, environ, telemetry=Telemetry()),
        }
        parents = {"no SDK": server_spans(100, 0), "SDK, all sampled": server_spans(100, 1),
                   "SDK, 10% sampled": server_spans(100, 10),
                   "SDK, none sampled": server_spans(100, 0)}
        for name, sampler in (("SDK, all sampled", ParentBased(ALWAYS_ON)),
                              ("SDK, 10% sampled", ParentBased(TraceIdRatioBased(0.1))),
                              ("SDK, none sampled", ParentBased(ALWAYS_ON))):
            tracer_provider = TracerProvider(sampler=sampler)
            tracer_provider.add_span_processor(BatchSpanProcessor(DiscardExporter()))
            readers[name] = InMemoryMetricReader()
            meter_provider = MeterProvider(metric_readers=[readers[name]],
                                           exemplar_filter=AlwaysOffExemplarFilter())
            providers.append(tracer_provider)
            variants[name] = await Authenticator.connect(
                settings, environ, telemetry=Telemetry(tracer_provider, meter_provider))
        for authenticator in variants.values():
            authenticator.start()
            await authenticator.wait_started()
        header = [f"Bearer {cluster.mint(audiences=('compass-internal',))}"]
        for name, authenticator in variants.items():  # warm-up
            await measure(authenticator, header, iterations // 10 or 1, parents[name])
        results: dict[str, list[float]] = {name: [] for name in variants}
        collection: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, authenticator in variants.items():
                results[name].append(
                    await measure(authenticator, header, iterations, parents[name]))
                started = time.perf_counter()
                if name in readers:
                    readers[name].get_metrics_data()
                collection[name].append((time.perf_counter() - started) / iterations)
        for authenticator in variants.values():
            await authenticator.close()
        for tracer_provider in providers:
            tracer_provider.shutdown()
    print(f"{'variant':<18} {'median µs':>10} {'min µs':>8} {'max µs':>8} {'ratio to no SDK':>16}"
          f" {'collection µs':>14} {'ratio incl.':>11}")
    for name, values in results.items():
        ratios = [t / b for t, b in zip(values, results["no SDK"], strict=True)]
        total = [t + c for t, c in zip(values, collection[name], strict=True)]
        total_ratios = [t / b for t, b in zip(total, results["no SDK"], strict=True)]
        print(f"{name:<18} {statistics.median(values) * 1e6:>10.1f} "
              f"{min(values) * 1e6:>8.1f} {max(values) * 1e6:>8.1f} "
              f"{statistics.median(ratios):>8.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
              f" {statistics.median(collection[name]) * 1e6:>14.1f}"
              f" {statistics.median(total_ratios):>11.3f}")
    print(f"{rounds} interleaved rounds of {iterations} verifications of one valid token")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.iterations, args.rounds))


if __name__ == "__main__":
    main()
