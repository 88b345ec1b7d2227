"""In-process figures (no HTTP): one verification, measured against PyJWT in the same run.

* fresh token: ``verify_local`` against one ``jwt.decode`` with the same prepared key (goal:
  within 1.1x), and against the naive ``get_unverified_header`` + ``jwt.decode``;
* repeated token: the cost of ``Authenticator.authenticate_request`` answering from its cache,
  with telemetry off and with a recording SDK (goal: at most 10 µs added);
* TokenReview fallback: a cached review answer against a cached local answer (goal: 1.1x).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
from opentelemetry import trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from compass_auth import Authenticator, AuthSettings
from compass_auth.core.verifier import verify_local
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster, Fault

AUDIENCE = "compass-internal"


class DiscardExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@dataclass(frozen=True)
class Figure:
    name: str
    median_us: float
    min_us: float
    max_us: float


def interleaved(variants: dict[str, Callable[[], None]], iterations: int,
                rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each variant, one value per round, rounds interleaved."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():  # warm-up
        for _ in range(max(1, iterations // 10)):
            call()
    for _ in range(rounds):
        for name, call in variants.items():
            started = time.perf_counter()
            for _ in range(iterations):
                call()
            results[name].append((time.perf_counter() - started) / iterations)
    return results


def summarize(results: dict[str, list[float]]) -> list[Figure]:
    return [Figure(name, statistics.median(v) * 1e6, min(v) * 1e6, max(v) * 1e6)
            for name, v in results.items()]


def ratio(results: dict[str, list[float]], numerator: str, denominator: str) -> float:
    return statistics.median(
        a / b for a, b in zip(results[numerator], results[denominator], strict=True))


def fresh_token_figures(cluster: DevCluster, authenticator: Authenticator, iterations: int,
                        rounds: int) -> tuple[list[Figure], dict[str, float]]:
    keys = authenticator.local.keys.snapshot()
    assert keys is not None
    key = keys.get(cluster.signing_key_id)
    assert key is not None
    tokens = [cluster.mint(audiences=(AUDIENCE,)) for _ in range(200)]
    policy = authenticator.local.policy
    state = {"i": 0}

    def next_token() -> str:
        state["i"] = (state["i"] + 1) % len(tokens)
        return tokens[state["i"]]

    def pyjwt_decode() -> None:
        jwt.decode(next_token(), key.jwk, algorithms=["RS256"], audience=AUDIENCE,
                   issuer=keys.issuer, leeway=60,
                   options={"require": ["exp", "iat", "iss", "aud", "sub"]})

    def naive() -> None:
        token = next_token()
        header = jwt.get_unverified_header(token)
        jwt.decode(token, keys.keys[header["kid"]].jwk, algorithms=["RS256"], audience=AUDIENCE,
                   issuer=keys.issuer, leeway=60)

    def ours() -> None:
        verify_local(next_token(), keys, policy, time.time())

    results = interleaved({"PyJWT jwt.decode": pyjwt_decode,
                           "naive: get_unverified_header + decode": naive,
                           "compass verify_local (fresh token)": ours}, iterations, rounds)
    ratios = {"fresh token / jwt.decode": ratio(results, "compass verify_local (fresh token)",
                                                "PyJWT jwt.decode")}
    return summarize(results), ratios


async def measure_async(call: Callable[[], object], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        await call()  # type: ignore[misc]
    return (time.perf_counter() - started) / iterations


async def cached_figures(cluster: DevCluster, kubeconfig: Path, iterations: int,
                         rounds: int) -> tuple[list[Figure], dict[str, float]]:
    environ = {"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE}
    settings = AuthSettings.from_env(environ)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()],
                                   exemplar_filter=AlwaysOffExemplarFilter())
    local = await Authenticator.connect(settings, environ, telemetry=Telemetry())
    local_sdk = await Authenticator.connect(
        settings, environ, telemetry=Telemetry(tracer_provider, meter_provider))
    cluster.set_fault("discovery", Fault(status=403))  # the fallback instance never gets keys
    fallback = await Authenticator.connect(
        AuthSettings.from_env({**environ, "AUTH_REDISCOVERY_INTERVAL": "3600"}), environ,
        telemetry=Telemetry())
    fallback.start()
    await fallback.wait_started()
    cluster.clear_faults()
    for authenticator in (local, local_sdk):
        authenticator.start()
        await authenticator.wait_started()
    header = [f"Bearer {cluster.mint(audiences=(AUDIENCE,))}"]
    # As in the service: the request's (recording) server span is current.
    server_span = tracer_provider.get_tracer("bench").start_span("GET /whoami")

    async def recorded() -> object:
        with trace.use_span(server_span, end_on_exit=False):
            return await local_sdk.authenticate_request(header)

    variants = {
        "cache hit, telemetry off": lambda: local.authenticate_request(header),
        "cache hit, recording SDK": recorded,
        "TokenReview cache hit, telemetry off": lambda: fallback.authenticate_request(header),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():
        await measure_async(call, max(1, iterations // 10))
    for _ in range(rounds):
        for name, call in variants.items():
            results[name].append(await measure_async(call, iterations))
    for authenticator in (local, local_sdk, fallback):
        await authenticator.close()
    tracer_provider.shutdown()
    ratios = {
        "TokenReview cached / local cached": ratio(
            results, "TokenReview cache hit, telemetry off", "cache hit, telemetry off"),
    }
    return summarize(results), ratios


async def run(cluster: DevCluster, kubeconfig: Path, iterations: int,
              rounds: int) -> tuple[list[Figure], dict[str, float]]:
    environ = {"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE}
    authenticator = await Authenticator.connect(AuthSettings.from_env(environ), environ)
    authenticator.start()
    await authenticator.wait_started()
    fresh, fresh_ratios = fresh_token_figures(cluster, authenticator, iterations, rounds)
    await authenticator.close()
    cached, cached_ratios = await cached_figures(cluster, kubeconfig, iterations * 5, rounds)
    return fresh + cached, {**fresh_ratios, **cached_ratios}


def main() -> None:
    import tempfile

    with DevCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        kubeconfig = cluster.write_kubeconfig(Path(workdir) / "kubeconfig")
        figures, ratios = asyncio.run(run(cluster, kubeconfig, 1000, 5))
    for figure in figures:
        print(f"{figure.name:<42} {figure.median_us:8.1f} µs "
              f"({figure.min_us:.1f}-{figure.max_us:.1f})")
    for name, value in ratios.items():
        print(f"{name:<42} {value:8.3f}")


if __name__ == "__main__":
    main()
