"""The benchmark suite: ``make bench`` (or ``python -m benchmarks.run [--quick]``).

Starts the cluster emulator, the example service (``benchmarks.bench_app``) and the Go peer
(``benchmarks/gopeer``: Gin plus go-oidc, ``GOMAXPROCS=1``) as processes pinned to CPU 0, drives
them with wrk (or the asyncio load generator) pinned to CPU 1, and prints every figure with
median, min and max over interleaved rounds, the goal ratios of docs/performance.md, and a PNG
chart. Every ratio is measured in the same run, the Go peer's too: the machine is shared and
noisy, absolute numbers move between runs, ratios much less. Without a Go toolchain the report
says the peer was not measured and prints no ratio against it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import tornado.httpserver
import tornado.netutil
import tornado.web

from compass_auth import AuthSettings
from compass_auth.testing import DevCluster, Fault

from . import go_peer, micro
from .loadgen import LoadResult, have_wrk, run_load

ROOT = Path(__file__).resolve().parent.parent
AUDIENCE = "compass-internal"


@dataclass(frozen=True)
class Scenario:
    name: str
    instance: str  # which server process ("go": the Go peer)
    path: str
    tokens: str  # which token pool


@dataclass
class Row:
    scenario: str
    rps: list[float]
    p50_ms: list[float]
    p99_ms: list[float]
    non2xx: int


SCENARIOS = (
    Scenario("no auth", "main", "/noauth", "known"),
    Scenario("known token", "main", "/whoami", "known"),
    Scenario("fresh token per request", "fresh", "/whoami", "fresh"),
    Scenario("wrong audience", "main", "/whoami", "wrong_audience"),
    Scenario("TokenReview fallback, cached", "fallback", "/whoami", "known"),
    Scenario("10% garbage mixed in", "main", "/whoami", "garbage_mix"),
    Scenario("naive peer: PyJWT per request", "main", "/naive", "known"),
    Scenario("no auth, 10% of traces sampled", "sampled", "/noauth", "known"),
    Scenario("known token, 10% of traces sampled", "sampled", "/whoami", "known"),
    Scenario("no auth, telemetry off", "bare", "/noauth", "known"),
    Scenario("known token, telemetry off", "bare", "/whoami", "known"),
    # go-oidc verifies every request (it has no cache of verified tokens), so one token is the
    # same work per request as the Python "fresh" pool. Next to the scenarios it is compared
    # with, so that a neighbour's load burst hits both sides of a ratio alike.
    Scenario("Go peer: known token", "go", "/whoami", "known"),
    Scenario("fresh token per request, telemetry off", "fresh_bare", "/whoami", "fresh"),
    Scenario("Go peer: no auth", "go", "/noauth", "known"),
    # Issue 23: the example ASGI service (benchmarks/asgi_app.py: Starlette on uvicorn), one
    # process on the same CPU, exporters off unless said; "no auth" is the same app built
    # without the middleware.
    Scenario("ASGI: known token", "asgi", "/whoami", "known"),
    Scenario("ASGI: no auth", "asgi_noauth", "/whoami", "known"),
    Scenario("ASGI: fresh token per request", "asgi_fresh", "/whoami", "fresh"),
    Scenario("ASGI: known token, 10% of traces sampled", "asgi_sampled", "/whoami", "known"),
)
#: The instances that run the ASGI example, not the Tornado bench app.
ASGI_INSTANCES = {"asgi", "asgi_noauth", "asgi_fresh", "asgi_sampled"}


class _Sink(tornado.web.RequestHandler):
    """An OTLP/HTTP endpoint that accepts and drops: exports cost the service what they cost."""

    def post(self, _: str) -> None:
        self.set_header("Content-Type", "application/x-protobuf")


@contextmanager
def otlp_sink() -> Iterator[str]:
    ready = threading.Event()
    state: dict[str, object] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = tornado.web.Application([(r"/v1/(traces|metrics)", _Sink)])
        server = tornado.httpserver.HTTPServer(app)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        server.add_sockets(sockets)
        state["port"] = sockets[0].getsockname()[1]
        state["loop"] = loop
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        loop = state["loop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        loop.call_soon_threadsafe(loop.stop)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_service(environ: dict[str, str], loop: str, cpu: int | None) -> tuple[
        subprocess.Popen[bytes], str, float]:
    """The bench app on a free port; returns (process, url, seconds from spawn to ready)."""
    port = free_port()
    return start_process(
        [sys.executable, "-m", "benchmarks.bench_app", "--port", str(port), "--loop", loop],
        environ, cpu, port)


def start_asgi(environ: dict[str, str], cpu: int | None) -> tuple[
        subprocess.Popen[bytes], str, float]:
    """The example ASGI service under uvicorn on a free port (benchmarks/asgi_app.py)."""
    port = free_port()
    return start_process([sys.executable, "-m", "benchmarks.asgi_app", "--port", str(port)],
                         environ, cpu, port)


def start_process(command: list[str], environ: dict[str, str], cpu: int | None,
                  port: int) -> tuple[subprocess.Popen[bytes], str, float]:
    """``command`` serving plain HTTP on ``port``, pinned to ``cpu``; waits for ``/readyz``."""
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **environ},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = started + 30
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return process, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.01)
    process.kill()
    raise RuntimeError(f"service did not become ready: {command}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def token_pools(cluster: DevCluster, fresh_count: int) -> dict[str, list[str]]:
    known = cluster.mint(audiences=(AUDIENCE,))
    garbage = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImdhcmJh.Z2FyYmFnZQ.c2lnbmF0dXJl"
    return {
        "known": [known],
        "fresh": [cluster.mint(audiences=(AUDIENCE,)) for _ in range(fresh_count)],
        "wrong_audience": [cluster.mint(audiences=("vault",))],
        "garbage_mix": [known] * 9 + [garbage],
    }


def bench(args: argparse.Namespace) -> dict[str, object]:
    cpus = os.cpu_count() or 1
    server_cpu, load_cpu = (0, 1) if cpus >= 2 else (None, None)
    engine = "wrk" if have_wrk() and not args.python_load else "python"
    if args.go_peer:
        print("building the Go peer...", flush=True)
        go_build = go_peer.build()
    else:
        go_build = go_peer.Build(None, "not asked for (--no-go-peer; --quick leaves it out)")
    scenarios = [s for s in SCENARIOS if s.instance != "go" or go_build.binary is not None]
    results: dict[str, object] = {"engine": engine, "loop": args.loop, "cpus": cpus,
                                  "duration": args.duration, "rounds": args.rounds,
                                  "connections": args.connections,
                                  "go_peer": {"measured": go_build.binary is not None,
                                              "reason": go_build.reason,
                                              "versions": go_build.versions,
                                              "environment": go_peer.ENVIRONMENT}}
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as workdir, \
            otlp_sink() as sink:
        kubeconfig = str(cluster.write_kubeconfig(Path(workdir) / "kubeconfig"))
        base = {"KUBECONFIG": kubeconfig, "AUTH_AUDIENCE": AUDIENCE, "AUTH_LOG_LEVEL": "ERROR"}
        telemetry = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_SERVICE_NAME": "bench"}
        print(f"minting tokens ({args.fresh_tokens} fresh)...", flush=True)
        pools = token_pools(cluster, args.fresh_tokens)
        environments = {
            "main": {**base, **telemetry},
            "fresh": {**base, **telemetry, "AUTH_CACHE_SIZE": "0"},
            "fresh_bare": {**base, **EXPORTERS_OFF, "AUTH_CACHE_SIZE": "0"},
            "sampled": {**base, **telemetry, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                        "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            "bare": {**base, **EXPORTERS_OFF},
            "asgi": {**base, **EXPORTERS_OFF},
            "asgi_noauth": {**base, **EXPORTERS_OFF, "COMPASS_NO_AUTH": "1"},
            "asgi_fresh": {**base, **EXPORTERS_OFF, "AUTH_CACHE_SIZE": "0"},
            "asgi_sampled": {**base, **telemetry,
                             "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                             "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        }
        processes: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        startup: list[float] = []
        try:
            for name, environ in environments.items():
                if name in ASGI_INSTANCES:
                    process, url, _ = start_asgi(environ, server_cpu)
                    processes[name] = (process, url)
                    continue
                process, url, seconds = start_service(environ, args.loop, server_cpu)
                processes[name] = (process, url)
                startup.append(seconds)
            cluster.set_fault("discovery", Fault(status=403))  # this one stays in fallback
            process, url, _ = start_service(
                {**base, **telemetry, "AUTH_REDISCOVERY_INTERVAL": "3600"}, args.loop,
                server_cpu)
            processes["fallback"] = (process, url)
            cluster.clear_faults()
            if go_build.binary is not None:
                port = free_port()
                command = go_peer.command(
                    go_build.binary, port, issuer=cluster.issuer, audience=AUDIENCE,
                    jwks_url=cluster.url + "/openid/v1/jwks",
                    serviceaccount_dir=cluster.write_serviceaccount_dir(Path(workdir) / "sa"))
                process, url, _ = start_process(command, go_peer.ENVIRONMENT, server_cpu, port)
                processes["go"] = (process, url)
            # Production telemetry includes a Prometheus scrape every SCRAPE_SECONDS.
            scraping = threading.Event()
            scraper = threading.Thread(
                target=scrape_metrics, daemon=True,
                args=([processes[name][1] for name in ("main", "fresh", "sampled")], scraping))
            scraper.start()
            rows = {s.name: Row(s.name, [], [], [], 0) for s in scenarios}
            load_averages: list[float] = []
            results["load_average_at_round_start"] = load_averages
            reviews: list[int] = []
            round_starts: list[float] = []
            results["revocation"] = revocation_settings(environments["main"]) | {
                "scenario": REVIEWED_SCENARIO, "tokens": len(set(pools["known"])),
                "reviews_per_round": reviews, "round_starts": round_starts}
            for round_index in range(args.rounds):
                print(f"round {round_index + 1}/{args.rounds}", flush=True)
                round_starts.append(time.time())
                load_averages.append(os.getloadavg()[0])
                for scenario in scenarios:
                    since = time.time()
                    result = run_load(processes[scenario.instance][1], scenario.path,
                                      pools[scenario.tokens], duration=args.duration,
                                      connections=args.connections, cpu=load_cpu, engine=engine)
                    _add(rows[scenario.name], result)
                    if scenario.name == REVIEWED_SCENARIO:
                        reviews.append(tokenreviews(cluster, since, time.time()))
            scraping.set()
            scraper.join(5)
            results["scenarios"] = [asdict(row) for row in rows.values()]
            results["startup_seconds"] = startup
            results["memory"] = memory_growth(cluster, base, args, server_cpu, load_cpu, engine)
        finally:
            for process, _ in processes.values():
                process.terminate()
                process.wait(10)
        print("in-process figures...", flush=True)
        figures, ratios = asyncio.run(micro.run(cluster, Path(kubeconfig),
                                                args.micro_iterations, max(3, args.rounds)))
        results["micro"] = [asdict(figure) for figure in figures]
        results["micro_ratios"] = ratios
    return results


#: The scenario whose TokenReviews are counted (issue 21: revocation confirmations under load).
#: Scenarios run one after another, so the emulator's TokenReviews in its interval are its own.
REVIEWED_SCENARIO = "known token"


def revocation_settings(environ: dict[str, str]) -> dict[str, object]:
    """Whether the instance confirms tokens with TokenReview, and its window in seconds
    (``AUTH_REVOCATION_WINDOW``, empty: ``AUTH_TOKENREVIEW_CACHE_TTL``; see
    compass_auth/settings.py)."""
    settings = AuthSettings.from_env({**os.environ, **environ})  # as the process sees it
    window = settings.revocation_window
    return {"check": settings.revocation_check,
            "window_seconds": settings.tokenreview_cache_ttl if window is None else window}


def tokenreviews(cluster: DevCluster, since: float, until: float) -> int:
    """TokenReviews the emulator received between two instants (its log's clock is the host's,
    as in benchmarks/fleet.py)."""
    return sum(1 for record in cluster.request_log
               if record.endpoint == "tokenreview" and since <= record.time < until)


#: "Telemetry off" as the issue measured it: the service as shipped, every exporter off.
EXPORTERS_OFF = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                 "OTEL_LOGS_EXPORTER": "none"}
#: How often Prometheus scrapes /metrics in production (its common interval).
SCRAPE_SECONDS = 15.0


def scrape_metrics(urls: list[str], stop: threading.Event) -> None:
    """GET /metrics of every telemetry-on service every ``SCRAPE_SECONDS`` until ``stop``."""
    while not stop.wait(SCRAPE_SECONDS):
        for url in urls:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/metrics", timeout=5).read()


def memory_growth(cluster: DevCluster, base: dict[str, str], args: argparse.Namespace,
                  server_cpu: int | None, load_cpu: int | None, engine: str) -> dict[str, float]:
    """RSS before and after ``--memory-tokens`` distinct valid tokens (ES256, fast to mint)."""
    kid = cluster.add_key("EC")
    print(f"minting {args.memory_tokens} distinct tokens for the memory figure...", flush=True)
    tokens = [cluster.mint(audiences=(AUDIENCE,), key_id=kid, pod=f"p-{index}")
              for index in range(args.memory_tokens)]
    process, url, _ = start_service(base, args.loop, server_cpu)
    try:
        run_load(url, "/whoami", tokens[:200], duration=1, connections=8, cpu=load_cpu,
                 engine=engine)  # warm-up: imports, first allocations
        before = rss_mb(process.pid)
        sent = run_load(url, "/whoami", tokens, duration=args.memory_seconds,
                        connections=args.connections, cpu=load_cpu, engine=engine)
        after = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(10)
    return {"tokens": len(tokens), "requests": sent.requests, "rss_before_mb": before,
            "rss_after_mb": after, "growth_mb": after - before}


def _add(row: Row, result: LoadResult) -> None:
    row.rps.append(result.rps)
    row.p50_ms.append(result.p50_ms)
    row.p99_ms.append(result.p99_ms)
    row.non2xx += result.non2xx


def report(results: dict[str, object]) -> str:
    load_averages = results["load_average_at_round_start"]
    assert isinstance(load_averages, list)
    lines = [f"load: {results['engine']}, loop: {results['loop']}, {results['rounds']} rounds x "
             f"{results['duration']} s per scenario, {results['connections']} connections",
             "1-minute load average at each round's start (this run's server and wrk add ~2): "
             + ", ".join(f"{load:.1f}" for load in load_averages), ""]
    lines.append(f"{'scenario':<40} {'req/s median':>12} {'min':>7} {'max':>7} "
                 f"{'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>8}")
    rows = {row["scenario"]: row for row in results["scenarios"]}  # type: ignore[attr-defined]
    for row in rows.values():
        lines.append(f"{row['scenario']:<40} {statistics.median(row['rps']):>12.0f} "
                     f"{min(row['rps']):>7.0f} {max(row['rps']):>7.0f} "
                     f"{statistics.median(row['p50_ms']):>7.2f} "
                     f"{statistics.median(row['p99_ms']):>7.2f} {row['non2xx']:>8}")

    def per_round(a: str, b: str) -> tuple[float, float, float]:
        values = [x / y for x, y in zip(rows[a]["rps"], rows[b]["rps"], strict=True)]
        return statistics.median(values), min(values), max(values)

    lines += ["", "goals (ratios from the same run):"]
    known = per_round("known token", "no auth")
    lines.append(f"1. known token / no auth (telemetry on): {known[0]:.3f} "
                 f"({known[1]:.3f}-{known[2]:.3f}), goal >= 0.95")
    sampled = per_round("known token, 10% of traces sampled", "no auth, 10% of traces sampled")
    lines.append(f"   same with 10% of traces sampled: {sampled[0]:.3f} "
                 f"({sampled[1]:.3f}-{sampled[2]:.3f})")
    bare = per_round("known token, telemetry off", "no auth, telemetry off")
    lines.append(f"   same with telemetry off: {bare[0]:.3f} ({bare[1]:.3f}-{bare[2]:.3f})")
    micro_ratios = results["micro_ratios"]
    assert isinstance(micro_ratios, dict)
    micro_rows = {f["name"]: f for f in results["micro"]}  # type: ignore[attr-defined]
    hit_off = micro_rows["cache hit, telemetry off"]["median_us"]
    hit_on = micro_rows["cache hit, recording SDK"]["median_us"]
    lines.append(f"   a cache hit costs {hit_off:.1f} µs with telemetry off, {hit_on:.1f} µs "
                 "recording (goal: at most 10 µs added)")
    lines.append(f"2. fresh token verify_local / jwt.decode: "
                 f"{micro_ratios['fresh token / jwt.decode']:.3f}, goal <= 1.1")
    lines += _go_peer_lines(results, per_round)
    fallback = per_round("TokenReview fallback, cached", "known token")
    lines.append(f"4. TokenReview cached / local cached: in-process "
                 f"{micro_ratios['TokenReview cached / local cached']:.3f} (goal <= 1.1); "
                 f"req/s {fallback[0]:.3f}")
    memory = results["memory"]
    assert isinstance(memory, dict)
    startup = results["startup_seconds"]
    assert isinstance(startup, list)
    lines.append(f"5. {memory['tokens']} distinct tokens ({memory['requests']} requests): RSS "
                 f"{memory['rss_before_mb']:.1f} -> {memory['rss_after_mb']:.1f} MB, growth "
                 f"{memory['growth_mb']:.1f} MB (goal <= 64); start to ready "
                 f"{statistics.median(startup):.2f} s (goal < 1)")
    naive = per_round("known token", "naive peer: PyJWT per request")
    lines.append(f"   known token / naive peer: {naive[0]:.2f}x")
    lines += _issue_14_lines(results, per_round)
    lines += _issue_23_lines(results, per_round)
    lines += _revocation_lines(results)
    lines += ["", "in-process (µs per call, median over rounds):"]
    for figure in results["micro"]:  # type: ignore[attr-defined]
        lines.append(f"   {figure['name']:<42} {figure['median_us']:>8.1f} "
                     f"({figure['min_us']:.1f}-{figure['max_us']:.1f})")
    return "\n".join(lines)


def _issue_14_lines(results: dict[str, object],
                    per_round: Callable[[str, str], tuple[float, float, float]]) -> list[str]:
    """The goals of issue 14 (docs/performance.md), each with its range over the rounds."""
    peer = results["go_peer"]
    assert isinstance(peer, dict)
    goals = [("exporters off: known token / no auth", "known token, telemetry off",
              "no auth, telemetry off", 0.95)]
    if peer["measured"]:
        goals += [
            ("exporters off: known token / Go", "known token, telemetry off",
             "Go peer: known token", 0.85),
            ("exporters off: fresh token / Go", "fresh token per request, telemetry off",
             "Go peer: known token", 0.35),
            ("10% sampled, OTLP, /metrics scraped: known token / Go",
             "known token, 10% of traces sampled", "Go peer: known token", 0.70),
        ]
    lines = ["", "issue 14 goals (median of per-round ratios, range):"]
    for label, a, b, goal in goals:
        value, low, high = per_round(a, b)
        verdict = "met" if value >= goal else "not met"
        lines.append(f"   {label}: {value:.3f} ({low:.3f}-{high:.3f}), goal >= {goal:.2f}: "
                     f"{verdict}")
    if not peer["measured"]:
        lines.append(f"   ratios against Go: not measured, so none: {peer['reason']}")
    return lines


def _issue_23_lines(results: dict[str, object],
                    per_round: Callable[[str, str], tuple[float, float, float]]) -> list[str]:
    """The goals of issue 23: the ASGI example against the Go peer and against itself without
    authentication, and the Tornado service's own ratio and ceiling."""
    peer = results["go_peer"]
    assert isinstance(peer, dict)
    names = {row["scenario"] for row in results["scenarios"]}  # type: ignore[attr-defined]
    if "ASGI: known token" not in names:
        return ["", "issue 23 goals: the ASGI example was not measured in this run"]
    goals: list[tuple[str, str, str, float | None]] = [
        ("ASGI known token / ASGI no auth", "ASGI: known token", "ASGI: no auth", 0.95),
        ("Tornado known token / Tornado no auth (exporters off)", "known token, telemetry off",
         "no auth, telemetry off", 0.95),
    ]
    if peer["measured"]:
        goals = [
            ("ASGI known token / Go", "ASGI: known token", "Go peer: known token", 1.5),
            ("ASGI fresh token / Go", "ASGI: fresh token per request", "Go peer: known token",
             0.5),
            *goals,
            ("ASGI 10% sampled, OTLP: known token / Go",
             "ASGI: known token, 10% of traces sampled", "Go peer: known token", 1.2),
            ("Tornado ceiling: Tornado no auth / Go (exporters off)", "no auth, telemetry off",
             "Go peer: known token", None),
            ("ASGI no auth / Go", "ASGI: no auth", "Go peer: known token", None),
        ]
    lines = ["", "issue 23 goals (median of per-round ratios, range):"]
    for label, a, b, goal in goals:
        value, low, high = per_round(a, b)
        verdict = "" if goal is None else (
            f", goal >= {goal:.2f}: {'met' if value >= goal else 'not met'}")
        lines.append(f"   {label}: {value:.3f} ({low:.3f}-{high:.3f}){verdict}")
    if not peer["measured"]:
        lines.append(f"   ratios against Go: not measured, so none: {peer['reason']}")
    return lines


def _revocation_lines(results: dict[str, object]) -> list[str]:
    """Issue 21: the TokenReviews the revocation confirmations cost under load, per token per
    window. A round's scenario lasts ``duration`` seconds, which spans
    ``ceil(duration / window)`` windows (one, with the 120 s default and 5 s scenarios)."""
    revocation = results.get("revocation")
    if not isinstance(revocation, dict):
        return ["", "revocation confirmations: not measured in this run"]
    duration = results["duration"]
    assert isinstance(duration, (int, float))
    window = revocation["window_seconds"]
    per_round = revocation["reviews_per_round"]
    tokens = revocation["tokens"]
    windows = len(per_round) * max(1, math.ceil(duration / window))
    rate = sum(per_round) / tokens / windows if windows else float("nan")
    state = "on" if revocation["check"] else "off"
    lines = ["", f"revocation confirmations under load (issue 21; Tornado, "
                 f"{revocation['scenario']!r}, AUTH_REVOCATION_CHECK {state}, window "
                 f"{window:g} s, {len(per_round)} rounds x {duration:g} s, {tokens} distinct "
                 f"token(s)): {sum(per_round)} TokenReviews = {rate:.2f} reviews per token per "
                 f"window (per round: {', '.join(str(n) for n in per_round)})"]
    starts = revocation.get("round_starts") or []
    if len(starts) > 1:
        # A round that starts less than a window after the last confirmation finds the token
        # confirmed already: 0 there is the bound at work, not a missed review.
        period = statistics.median(b - a for a, b in itertools.pairwise(starts))
        lines.append(f"   at most 1 per token per window; rounds start every {period:.0f} s, so "
                     "a round within the window of an earlier confirmation counts 0")
    return lines


def _go_peer_lines(results: dict[str, object],
                   per_round: Callable[[str, str], tuple[float, float, float]]) -> list[str]:
    """Goal 3: ratios against the Go peer of this run, or why there are none."""
    peer = results["go_peer"]
    assert isinstance(peer, dict)
    if not peer["measured"]:
        return [f"3. known token req/s / Go peer: not measured, so no ratio: {peer['reason']}"]
    versions = peer["versions"]
    gin = versions.get("golang-github-gin-gonic-gin-dev", "?")
    oidc = versions.get("golang-github-coreos-go-oidc-dev", "?")
    lines = [f"3. known token req/s / Go peer (Gin {gin} + go-oidc {oidc}, every request "
             "verified, GOMAXPROCS=1, same CPU), goal >= 0.75:"]
    for label, python in (("telemetry on", "known token"),
                          ("10% of traces sampled", "known token, 10% of traces sampled"),
                          ("telemetry off", "known token, telemetry off"),
                          ("fresh token per request, telemetry on", "fresh token per request"),
                          ("fresh token per request, telemetry off",
                           "fresh token per request, telemetry off")):
        ratio = per_round(python, "Go peer: known token")
        lines.append(f"   {label}: {ratio[0]:.3f} ({ratio[1]:.3f}-{ratio[2]:.3f})")
    ceiling = per_round("no auth, telemetry off", "Go peer: known token")
    lines.append(f"   no auth, telemetry off (a ceiling for any auth in Python): {ceiling[0]:.3f} "
                 f"({ceiling[1]:.3f}-{ceiling[2]:.3f})")
    own = per_round("Go peer: known token", "Go peer: no auth")
    lines.append(f"   Go peer known token / Go peer no auth: {own[0]:.3f} "
                 f"({own[1]:.3f}-{own[2]:.3f})")
    frameworks = per_round("no auth, telemetry off", "Go peer: no auth")
    lines.append(f"   no auth, telemetry off / Go peer no auth (Tornado / Gin): "
                 f"{frameworks[0]:.3f} ({frameworks[1]:.3f}-{frameworks[2]:.3f})")
    return lines


def chart(results: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["scenarios"]
    assert isinstance(rows, list)
    names = [row["scenario"] for row in rows]
    rps = [statistics.median(row["rps"]) for row in rows]
    p99 = [statistics.median(row["p99_ms"]) for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.bar_label(left.barh(names, rps, color="#4c78a8"), fmt="%.0f", padding=3, fontsize=8)
    if max(rps) > 10 * min(rps):  # the Go peer without auth would flatten every other bar
        left.set_xscale("log")
    left.margins(x=0.15)  # room for the labels
    left.set_xlabel("requests per second (median)")
    left.invert_yaxis()
    right.barh(names, p99, color="#e45756")
    right.set_xlabel("p99 latency, ms (median)")
    right.invert_yaxis()
    right.set_yticklabels([])
    figure.suptitle(f"compass-auth and its Go peer, one core per server ({results['engine']}, "
                    f"{results['connections']} connections)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    # Progress and figures go to stdout; the library's own log lines (an expected "fatal" from
    # the fallback instance, for one) would only interleave with them.
    logging.getLogger("service").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny setting (CI): seconds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"),
                        default="uvloop" if _have_uvloop() else "asyncio")
    parser.add_argument("--fresh-tokens", type=int, default=3000)
    parser.add_argument("--memory-tokens", type=int, default=100_000)
    parser.add_argument("--memory-seconds", type=float, default=60.0)
    parser.add_argument("--micro-iterations", type=int, default=2000)
    parser.add_argument("--python-load", action="store_true", help="asyncio load, not wrk")
    parser.add_argument("--go-peer", action=argparse.BooleanOptionalAction, default=None,
                        help="build and measure the Go peer (default: yes, except --quick)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--chart", default=str(ROOT / "docs" / "performance.png"),
                        help="PNG to write ('' for none)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures")
    parser.add_argument("--report-from", type=Path, default=None, metavar="JSON",
                        help="measure nothing: print the report and draw the chart of a run "
                             "saved with --json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.connections = 1, 1.0, 8
        args.fresh_tokens, args.memory_tokens, args.memory_seconds = 50, 300, 1.0
        args.micro_iterations = 50
    if args.go_peer is None:
        # The Go peer needs Debian's Go toolchain; CI's quick run (tests/test_benchmarks.py)
        # stays on the Python side only.
        args.go_peer = not args.quick
    results = json.loads(args.report_from.read_text()) if args.report_from else bench(args)
    print()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.chart:
        chart(results, Path(args.chart))
        print(f"\nchart: {args.chart}")


if __name__ == "__main__":
    main()
