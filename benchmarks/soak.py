"""Load and soak: the example service under a mix of valid, expired, wrong-audience and garbage
tokens, at several concurrencies, for a bounded time. Not a timed test: it reports figures.

    python -m benchmarks.soak                          # 1, 8, 32, 128 callers, 30 s each
    python -m benchmarks.soak --soak-minutes 30        # then 30 min at the highest concurrency
    python -m benchmarks.soak --path tokenreview       # with discovery down (TokenReview)
    python -m benchmarks.soak --quick --json out.json  # a few seconds: proves the script works

The emulator runs in this process; the service runs as ``python -m service serve`` in its own
process, so its RSS (``/proc/PID/status``, Linux) is the service's alone. Callers keep their
connections alive (aiohttp), like in-cluster clients with a pool. Per phase it reports
throughput, p50/p99 latency, answers by status, wrong decisions (a valid token not let in with
200 or 503, an invalid one let in, any 500) and RSS; the exit code is 1 if any decision was
wrong. Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from compass_auth.testing import DevCluster, Fault

AUDIENCE = "compass-internal"
#: Share of each kind of token in the load.
MIX = {"valid": 0.7, "expired": 0.1, "wrong_audience": 0.1, "garbage": 0.1}
#: The answers each kind may get; 503 (shed, e.g. TokenReview's in-flight cap) is counted apart
#: and is not a wrong decision, 200 for an invalid token and 500 always are.
EXPECTED = {"valid": {200}, "expired": {401}, "wrong_audience": {401}, "garbage": {400, 401}}


@dataclass
class Phase:
    """What one phase of the load saw."""

    name: str
    concurrency: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    rss_start_kib: int = 0
    rss_end_kib: int = 0

    def record(self, kind: str, status: int, seconds: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(seconds)
        if status != 503 and status not in EXPECTED[kind]:  # 503: shed, said so, not wrong
            self.wrong[f"{kind}->{status}"] += 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies) or [0.0]
        requests = len(self.latencies)
        return {
            "phase": self.name, "concurrency": self.concurrency,
            "seconds": round(self.seconds, 1), "requests": requests,
            "per_second": round(requests / self.seconds) if self.seconds else 0,
            "p50_ms": round(1000 * statistics.median(ordered), 2),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "statuses": dict(sorted(self.statuses.items())),
            "wrong_decisions": sum(self.wrong.values()), "wrong": dict(self.wrong),
            "rss_start_mib": round(self.rss_start_kib / 1024, 1),
            "rss_end_mib": round(self.rss_end_kib / 1024, 1),
        }


class Tokens:
    """Pools of minted tokens; garbage is new for every request (nothing to cache)."""

    def __init__(self, cluster: DevCluster, valid: int, invalid: int, seed: int) -> None:
        now = int(time.time())
        self.valid = [cluster.mint(audiences=(AUDIENCE,), pod=f"soak-{i}") for i in range(valid)]
        self.expired = [cluster.mint(audiences=(AUDIENCE,), pod=f"old-{i}",
                                     issued_at=now - 7200, lifetime=3600) for i in range(invalid)]
        self.wrong_audience = [cluster.mint(audiences=("vault",), pod=f"other-{i}")
                               for i in range(invalid)]
        self.random = random.Random(seed)
        self.kinds = list(MIX)
        self.weights = list(MIX.values())

    def pick(self) -> tuple[str, str]:
        kind = self.random.choices(self.kinds, self.weights)[0]
        if kind == "garbage":
            return kind, ".".join(base64.urlsafe_b64encode(secrets.token_bytes(n)).decode()
                                  .rstrip("=") for n in (24, 96, 64))
        return kind, self.random.choice(getattr(self, kind))


class ServiceProcess:
    """``python -m service serve`` on a free port, its log in a file (a pipe could fill)."""

    def __init__(self, environ: dict[str, str], workdir: Path) -> None:
        self.log = workdir / "service.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", "0"],
            env={**os.environ, **environ}, stderr=self._log_file, stdout=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"msg=listening .*port=(\d+)", self.log.read_text())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the service did not start:\n" + self.log.read_text()[-2000:])

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) if match else 0

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._log_file.close()
        return code


async def run_phase(url: str, tokens: Tokens, phase: Phase, seconds: float,
                    service: ServiceProcess) -> Phase:
    """``phase.concurrency`` callers, each sending one request after another, for ``seconds``."""
    deadline = time.monotonic() + seconds
    phase.rss_start_kib = service.rss_kib()

    async def caller(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            kind, token = tokens.pick()
            started = time.perf_counter()
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as answer:
                await answer.read()
            phase.record(kind, answer.status, time.perf_counter() - started)

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=phase.concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(caller(session) for _ in range(phase.concurrency)))
    phase.seconds = time.monotonic() - started
    phase.rss_end_kib = service.rss_kib()
    return phase


async def sample_rss(service: ServiceProcess, every: float, samples: list[tuple[float, int]],
                     stop: asyncio.Event) -> None:
    started = time.monotonic()
    while not stop.is_set():
        samples.append((round(time.monotonic() - started, 1), service.rss_kib()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def wait_ready(base_url: str, path: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(base_url + "/readyz") as answer:
                if answer.status == 200 and (await answer.json())["path"] == path:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the service did not become ready on path {path}")


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.path == "tokenreview":
            cluster.set_fault("discovery", Fault(status=403))  # discovery down: TokenReview
        environ = {"KUBECONFIG": str(cluster.write_kubeconfig(workdir / "kubeconfig")),
                   "AUTH_AUDIENCE": AUDIENCE, "AUTH_REDISCOVERY_INTERVAL": "3600"}
        tokens = Tokens(cluster, args.valid_tokens, max(10, args.valid_tokens // 10), args.seed)
        service = ServiceProcess(environ, workdir)
        base_url = f"http://127.0.0.1:{service.port}"
        samples: list[tuple[float, int]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(service, args.sample_seconds, samples, stop))
        phases: list[Phase] = []
        try:
            await wait_ready(base_url, args.path)
            await run_phase(base_url + "/whoami", tokens, Phase("warm-up", 8), args.warmup,
                            service)
            for concurrency in args.concurrency:
                phase = Phase(f"c={concurrency}", concurrency)
                phases.append(await run_phase(base_url + "/whoami", tokens, phase,
                                              args.duration, service))
                print(json.dumps(phase.summary()), flush=True)
            if args.soak_minutes:
                phase = Phase("soak", max(args.concurrency))
                phases.append(await run_phase(base_url + "/whoami", tokens, phase,
                                              args.soak_minutes * 60, service))
                print(json.dumps(phase.summary()), flush=True)
        finally:
            stop.set()
            await sampler
            exit_code = service.stop()
    return {
        "path": args.path, "phases": [phase.summary() for phase in phases],
        "rss_samples": samples, "service_exit_code": exit_code,
        "wrong_decisions": sum(sum(phase.wrong.values()) for phase in phases),
        "server_errors": sum(n for phase in phases for s, n in phase.statuses.items()
                             if s >= 500 and s != 503),
    }


def report(result: dict[str, Any]) -> str:
    lines = [f"path: {result['path']}",
             f"{'phase':<8} {'callers':>7} {'requests':>9} {'req/s':>7} {'p50 ms':>7} "
             f"{'p99 ms':>7} {'RSS MiB':>13}  answers"]
    for phase in result["phases"]:
        lines.append(
            f"{phase['phase']:<8} {phase['concurrency']:>7} {phase['requests']:>9} "
            f"{phase['per_second']:>7} {phase['p50_ms']:>7} {phase['p99_ms']:>7} "
            f"{phase['rss_start_mib']:>6}->{phase['rss_end_mib']:<6} {phase['statuses']}")
    samples = [kib for _, kib in result["rss_samples"]]
    if samples:
        half = samples[len(samples) // 2:]
        lines.append(f"RSS: start {samples[0] / 1024:.1f} MiB, peak {max(samples) / 1024:.1f} "
                     f"MiB, end {samples[-1] / 1024:.1f} MiB; second half "
                     f"{min(half) / 1024:.1f}..{max(half) / 1024:.1f} MiB")
    lines.append(f"wrong decisions: {result['wrong_decisions']}, server errors: "
                 f"{result['server_errors']}, service exit code: {result['service_exit_code']}")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,8,32,128",
                        type=lambda text: [int(part) for part in text.split(",")])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per level")
    parser.add_argument("--soak-minutes", type=float, default=0.0,
                        help="then this long at the highest concurrency")
    parser.add_argument("--path", choices=("jwks", "tokenreview"), default="jwks")
    parser.add_argument("--valid-tokens", type=int, default=1000,
                        help="distinct valid callers")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds in all: for CI, proves the script works")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.duration, args.soak_minutes = [1, 16], 1.5, 0.0
        args.valid_tokens, args.warmup, args.sample_seconds = 40, 0.5, 0.5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = asyncio.run(soak(args))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = not result["wrong_decisions"] and not result["server_errors"]
    return 0 if ok and result["service_exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
