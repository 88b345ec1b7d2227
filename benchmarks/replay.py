"""Replay: one token sent again and again, in every mode and outcome, with the service's RSS.

Floods of *distinct* tokens did not find issue 11: one rejected token, replayed, grew the
service by hundreds of MB in fallback and ``AUTH_MODE=review`` (each cache hit raised the cached
exception instance again, and every raise prepended the request's frames to its traceback). This
sends the same token ``--requests`` times per scenario to ``python -m service serve`` (its own
process, so the RSS is the service's alone) and reports the answers and the RSS growth.

    python -m benchmarks.replay                       # 100,000 requests per scenario
    python -m benchmarks.replay --requests 10000 --only review-denied

The CI version is tests/reliability/test_replay.py (fewer requests, same scenarios, a bound on
the growth); ``make soak`` runs this one. Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from compass_auth.testing import DevCluster, Fault

from .soak import AUDIENCE, ServiceProcess

#: Requests in flight at once, on kept-alive connections (an attacker's wrk -c32).
CONCURRENCY = 32
#: Requests before the first RSS reading: caches, pools and the allocator's arenas fill up.
WARMUP = 2_000

TokenKind = Literal["valid", "wrong_audience", "forged", "revoked"]


@dataclass(frozen=True)
class Scenario:
    """One mode and outcome: the service's settings, what is down, the token, the answer."""

    name: str
    token: TokenKind
    status: int
    mode: str = "auto"
    #: Emulator endpoints that fail (500), so the service takes the path the name says.
    down: tuple[str, ...] = ()


SCENARIOS = (
    Scenario("local-allowed", "valid", 200),
    Scenario("local-denied", "wrong_audience", 401),
    Scenario("local-denied-signature", "forged", 401),
    Scenario("fallback-allowed", "valid", 200, down=("discovery",)),
    Scenario("fallback-denied", "forged", 401, down=("discovery",)),
    Scenario("review-allowed", "valid", 200, mode="review"),
    Scenario("review-denied", "revoked", 401, mode="review"),
    Scenario("review-unavailable", "valid", 503, mode="review", down=("tokenreview",)),
    Scenario("both-down", "valid", 503, down=("discovery", "tokenreview")),
)


@dataclass
class Replay:
    """What one scenario saw."""

    scenario: Scenario
    requests: int
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0

    @property
    def growth_kib(self) -> int:
        return self.rss_after_kib - self.rss_before_kib

    @property
    def wrong(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != self.scenario.status)

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name, "requests": self.requests,
            "expected": self.scenario.status, "statuses": dict(sorted(self.statuses.items())),
            "wrong": self.wrong, "per_second": round(self.requests / self.seconds),
            "rss_before_mib": round(self.rss_before_kib / 1024, 1),
            "rss_after_mib": round(self.rss_after_kib / 1024, 1),
            "growth_mib": round(self.growth_kib / 1024, 1),
        }


def token_for(cluster: DevCluster, kind: TokenKind) -> str:
    if kind == "wrong_audience":
        return cluster.mint(audiences=("vault",))
    token = cluster.mint(audiences=(AUDIENCE,))
    if kind == "forged":  # the real kid and a real signature, of other claims
        head, _, signature = token.split(".")
        payload = cluster.mint(audiences=(AUDIENCE,), pod="forged-pod").split(".")[1]
        return f"{head}.{payload}.{signature}"
    if kind == "revoked":  # verifies locally; the API server refuses it
        cluster.revoke_token(token)
    return token


async def send(url: str, token: str, count: int, statuses: Counter[int]) -> None:
    """``count`` requests with ``token``, ``CONCURRENCY`` at a time."""
    remaining = count
    headers = {"Authorization": f"Bearer {token}"}

    async def caller(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.get(url, headers=headers) as answer:
                await answer.read()
            statuses[answer.status] += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(caller(session) for _ in range(CONCURRENCY)))


async def wait_answering(base_url: str, expect_ready: bool) -> None:
    """Until ``/readyz`` says ready or, when the scenario's path is down, that no path works."""
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            async with session.get(base_url + "/readyz") as answer:
                status = await answer.json()
                if (answer.status == 200) == expect_ready and (
                        expect_ready or status.get("path") == "none"):
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError("the service did not reach the state its scenario needs")


async def replay(cluster: DevCluster, scenario: Scenario, requests: int, workdir: Path) -> Replay:
    """Run one scenario against a fresh service process; faults are cleared afterwards."""
    cluster.clear_faults()
    for endpoint in scenario.down:
        cluster.set_fault(endpoint, Fault(status=500))
    environ = {"KUBECONFIG": str(cluster.write_kubeconfig(workdir / "kubeconfig")),
               "AUTH_AUDIENCE": AUDIENCE, "AUTH_MODE": scenario.mode,
               "AUTH_REDISCOVERY_INTERVAL": "3600"}
    result = Replay(scenario, requests)
    service = ServiceProcess(environ, workdir)
    try:
        base_url = f"http://127.0.0.1:{service.port}"
        await wait_answering(base_url, expect_ready=scenario.status != 503)
        token = token_for(cluster, scenario.token)
        await send(base_url + "/whoami", token, WARMUP, result.statuses)
        result.rss_before_kib = service.rss_kib()
        started = time.monotonic()
        await send(base_url + "/whoami", token, requests, result.statuses)
        result.seconds = time.monotonic() - started
        result.rss_after_kib = service.rss_kib()
    finally:
        service.stop()
        cluster.clear_faults()
    return result


async def run(args: argparse.Namespace) -> list[Replay]:
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    results = []
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        for scenario in chosen:
            result = await replay(cluster, scenario, args.requests, Path(tmp))
            print(json.dumps(result.summary()), flush=True)
            results.append(result)
    return results


def report(results: list[Replay]) -> str:
    lines = [f"{'scenario':<24} {'requests':>9} {'req/s':>6} {'RSS MiB':>15} {'growth':>7}  "
             "answers"]
    for result in results:
        s = result.summary()
        lines.append(
            f"{s['scenario']:<24} {s['requests']:>9} {s['per_second']:>6} "
            f"{s['rss_before_mib']:>7}->{s['rss_after_mib']:<7} {s['growth_mib']:>7}  "
            f"{s['statuses']} (want {s['expected']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000, help="per scenario")
    parser.add_argument("--only", nargs="*", choices=[s.name for s in SCENARIOS],
                        help="run only these scenarios")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps([r.summary() for r in results], indent=2))
    return 0 if all(r.wrong == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
