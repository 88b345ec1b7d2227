"""The fleet's cost at the API server, measured: ``python -m benchmarks.fleet [--quick]``.

Runs N ``python -m service serve`` processes (each on its own loopback port, ``AUTH_AUDIENCE``
set, ``/whoami`` behind a SubjectAccessReview check) against one in-process emulator, with M
caller pods' tokens spread over them (each caller sends to every replica in turn, as through a
Service), and counts from the emulator's request log what the API server receives, by kind, in
five phases (benchmarks/fleet_model.py, ``PHASES``): steady state, a token-rotation wave, a
discovery outage with the replicas holding their key sets, the same outage after a restart of
every replica, and recovery. Each figure stands beside the model's (docs/scale.md).

The intervals and TTLs are scaled down so that a run takes minutes (the model scales with them);
``--quick`` takes about a minute and a half. Bounded: loopback only, a fixed request rate per
caller and fixed phase lengths; the processes it starts are stopped by PID when it ends.

    python -m benchmarks.fleet [--replicas 4] [--callers 40] [--phase-seconds 40] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from compass_auth.testing import DevCluster, Fault

from .fleet_model import KINDS, PHASES, Fleet, expected
from .run import AUDIENCE, ROOT, free_port

#: The check k8s/ puts on /whoami (docs/authorization.md): one SubjectAccessReview per caller.
ACCESS = "verb=get,group=compass.example,resource=whoami,namespace={service_namespace}"
NAMESPACE = "fleet"
#: Deadline for a replica's /readyz, and for one call of a caller.
READY_SECONDS = 40.0
CALL_TIMEOUT = 5.0


@dataclass
class Phase:
    """One measured phase: the answers the callers got, what the API server received."""

    name: str
    seconds: float
    answers: Counter[str] = field(default_factory=Counter)
    api: dict[str, int] = field(default_factory=dict)
    model: dict[str, float] = field(default_factory=dict)
    readiness: list[str] = field(default_factory=list)


class Replicas:
    """N service processes; started together, stopped by PID."""

    def __init__(self, count: int, environ: dict[str, str], logs: Path) -> None:
        self._count = count
        self._environ = environ
        self._logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.generation = 0

    def start(self) -> None:
        """Start every replica and wait until each one's /readyz answers."""
        self.generation += 1
        ports = [free_port() for _ in range(self._count)]
        for index, port in enumerate(ports):
            log = open(self._logs / f"replica-{self.generation}-{index}.log", "wb")  # noqa: SIM115
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--drain-seconds", "0.5"],
                cwd=ROOT, env={**os.environ, **self._environ}, stdout=log, stderr=log))
            log.close()  # the child has its own descriptor
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]
        self.paths()

    def paths(self) -> list[str]:
        """Each replica's verification path now (``/readyz``: jwks or tokenreview)."""
        return [self._ready(url) for url in self.urls]

    def _ready(self, url: str) -> str:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                    path: str = json.load(answer)["path"]
                    return path
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"replica {url} not ready within {READY_SECONDS} s")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    def log_bytes(self) -> int:
        return sum(path.stat().st_size for path in self._logs.glob("replica-*.log"))


class Callers:
    """M caller pods: their current tokens, and the load they send."""

    def __init__(self, cluster: DevCluster, count: int, rate: float) -> None:
        self._cluster = cluster
        self.count = count
        self._rate = rate
        self.tokens = [self.mint(index) for index in range(count)]

    def mint(self, index: int) -> str:
        return self._cluster.mint(namespace=NAMESPACE, service_account=f"caller-{index}",
                                  pod=f"caller-{index}-0", node="fleet-node",
                                  audiences=(AUDIENCE,), lifetime=3600)

    async def run(self, urls: list[str], seconds: float, answers: Counter[str],
                  wave: float | None = None) -> None:
        """Each caller calls /whoami ``rate`` times a second, replica after replica; with
        ``wave``, caller i switches to a new token at i/M of ``wave`` seconds."""
        connector = aiohttp.TCPConnector(limit=64)
        timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            end = time.monotonic() + seconds
            tasks = [self._caller(session, index, urls, end, answers)
                     for index in range(self.count)]
            if wave is not None:
                tasks.append(self._wave(wave))
            await asyncio.gather(*tasks)

    async def _caller(self, session: aiohttp.ClientSession, index: int, urls: list[str],
                      end: float, answers: Counter[str]) -> None:
        interval = 1 / self._rate
        due = time.monotonic() + interval * index / self.count  # spread the callers out
        turn = index
        while due < end:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            url = urls[turn % len(urls)] + "/whoami"
            turn += 1
            try:
                headers = {"Authorization": f"Bearer {self.tokens[index]}"}
                async with session.get(url, headers=headers) as answer:
                    await answer.read()
                    answers[str(answer.status)] += 1
            except (aiohttp.ClientError, TimeoutError):
                answers["error"] += 1
            due += interval

    async def _wave(self, seconds: float) -> None:
        start = time.monotonic()
        for index in range(self.count):
            await asyncio.sleep(max(0.0, start + seconds * index / self.count - time.monotonic()))
            self.tokens[index] = self.mint(index)


def api_counts(cluster: DevCluster, since: float, until: float) -> dict[str, int]:
    """What the emulator served between two instants (its clock is the host's), by kind."""
    counts = dict.fromkeys(KINDS, 0)
    for record in cluster.request_log:
        if since <= record.time < until:
            kind = record.endpoint if record.endpoint in KINDS else "other"
            counts[kind] += 1
    return counts


def rbac(callers: int) -> str:
    """A Role in the service's namespace granting the check, bound to every caller."""
    subjects = "\n".join(f"  - {{kind: ServiceAccount, name: caller-{index}, "
                         f"namespace: {NAMESPACE}}}" for index in range(callers))
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: "fleet:whoami", namespace: compass-system}}
rules:
  - {{apiGroups: [compass.example], resources: [whoami], verbs: [get]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: fleet-calls-whoami, namespace: compass-system}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: "fleet:whoami"}}
subjects:
{subjects}
"""


def run(args: argparse.Namespace) -> dict[str, Any]:
    fleet = Fleet(args.replicas, args.callers, args.refresh, args.rediscovery,
                  args.tokenreview_ttl, args.allowed_ttl)
    phases: list[Phase] = []
    with DevCluster() as cluster, tempfile.TemporaryDirectory(prefix="fleet-") as workdir:
        cluster.load_rbac(rbac(args.callers), persistent=True)
        environ = {
            "KUBECONFIG": str(cluster.write_kubeconfig(Path(workdir) / "kubeconfig")),
            "AUTH_AUDIENCE": AUDIENCE, "AUTH_LOG_LEVEL": "WARNING",
            "AUTH_REQUIRED_ACCESS": ACCESS, "AUTH_ALLOWED_SUBJECTS": "",
            "AUTH_JWKS_REFRESH_INTERVAL": str(args.refresh),
            "AUTH_REDISCOVERY_INTERVAL": str(args.rediscovery),
            "AUTH_TOKENREVIEW_CACHE_TTL": str(args.tokenreview_ttl),
            "AUTH_AUTHZ_ALLOWED_TTL": str(args.allowed_ttl),
            "OTEL_SDK_DISABLED": "true",
        }
        callers = Callers(cluster, args.callers, args.rate)
        replicas = Replicas(args.replicas, environ, Path(workdir))
        try:
            replicas.start()
            # Warm-up, not reported: every cache filled once, start-up fetches behind us.
            asyncio.run(callers.run(replicas.urls, args.warmup, Counter()))

            def measure(name: str, wave: float | None = None) -> Phase:
                phase = Phase(name, args.phase_seconds)
                since = time.time()
                asyncio.run(callers.run(replicas.urls, args.phase_seconds, phase.answers, wave))
                phase.api = api_counts(cluster, since, time.time())
                phase.readiness = replicas.paths()  # where each replica ended the phase
                phase.model = expected(fleet, name, args.phase_seconds)
                phases.append(phase)
                print(_line(phase), flush=True)
                return phase

            measure("steady")
            measure("rotation wave", wave=args.wave)
            cluster.set_fault("discovery", Fault(status=503))
            cluster.set_fault("jwks", Fault(status=503))
            measure("outage, keys held")
            replicas.stop()
            since = time.time()
            replicas.start()  # a rollout during the outage: no key set to start with
            restart = api_counts(cluster, since, time.time())
            restarted = measure("outage, restarted")
            # What the replicas' start-up asked belongs to this phase (the model counts it).
            restarted.api = {kind: restarted.api[kind] + restart[kind] for kind in KINDS}
            cluster.clear_faults()
            measure("recovery")
        finally:
            replicas.stop()
        log_bytes = replicas.log_bytes()
    return {"fleet": asdict(fleet), "rate_per_caller": args.rate, "wave_seconds": args.wave,
            "phase_seconds": args.phase_seconds, "log_bytes": log_bytes,
            "phases": [{"name": p.name, "seconds": p.seconds, "answers": dict(p.answers),
                        "api": p.api, "model": p.model, "readiness": p.readiness}
                       for p in phases]}


def _line(phase: Phase) -> str:
    return f"  {phase.name}: api {phase.api}, answers {dict(phase.answers)}"


def report(results: dict[str, Any]) -> str:
    """The table: per phase, per kind, measured count / model count and requests per second."""
    fleet = results["fleet"]
    lines = [
        f"fleet: {fleet['replicas']} replicas, {fleet['callers']} callers at "
        f"{results['rate_per_caller']}/s each; refresh {fleet['refresh_interval']} s, "
        f"rediscovery {fleet['rediscovery_interval']} s, TokenReview TTL "
        f"{fleet['tokenreview_ttl']} s, SubjectAccessReview TTL {fleet['allowed_ttl']} s; "
        f"phases of {results['phase_seconds']} s; rotation wave over {results['wave_seconds']} s",
        "",
        f"{'phase':<20}{'kind':<21}{'measured':>9}{'model':>9}{'req/s':>8}{'model/s':>9}",
    ]
    for phase in results["phases"]:
        for kind in KINDS:
            measured, model, seconds = phase["api"][kind], phase["model"][kind], phase["seconds"]
            lines.append(f"{phase['name']:<20}{kind:<21}{measured:>9}{model:>9.1f}"
                         f"{measured / seconds:>8.2f}{model / seconds:>9.2f}")
        answers = ", ".join(f"{status}: {count}" for status, count in
                            sorted(phase["answers"].items()))
        lines.append(f"{phase['name']:<20}{'callers got':<21}{answers}; replicas on "
                     f"{'/'.join(sorted(set(phase['readiness'])))}")
    lines.append(f"replica log bytes, whole run: {results['log_bytes']}")
    lines += ["", *(f"{name}: {meaning}" for name, meaning in PHASES.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="short phases and intervals (about a minute and a half)")
    parser.add_argument("--replicas", type=int, help="N service processes (default 4; quick 3)")
    parser.add_argument("--callers", type=int, help="M caller pods (default 40; quick 12)")
    parser.add_argument("--rate", type=float, default=2.0, help="requests/s of each caller")
    parser.add_argument("--phase-seconds", type=float, help="each phase (default 40; quick 12)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    args.replicas = args.replicas or (3 if quick else 4)
    args.callers = args.callers or (12 if quick else 40)
    args.phase_seconds = args.phase_seconds or (12.0 if quick else 40.0)
    # The settings, scaled down from the defaults (300, 60, 120 and 300 s) so that each phase
    # holds several intervals; AUTH_JWKS_REFRESH_INTERVAL may not go below 10 s.
    args.refresh = 10.0 if quick else 20.0
    args.rediscovery = 3.0 if quick else 5.0
    args.tokenreview_ttl = 10.0 if quick else 20.0
    args.allowed_ttl = 10.0 if quick else 20.0
    # "Every caller gets a new token within a minute", scaled like the rest.
    args.wave = min(args.phase_seconds * 0.75, 60.0)
    if min(args.replicas, args.callers) < 1 or args.rate <= 0 or args.phase_seconds <= 0:
        parser.error("--replicas, --callers, --rate and --phase-seconds must be positive")
    if args.callers > 1000:  # one RoleBinding names them all; the emulator takes 1,000 subjects
        parser.error("at most 1000 callers")
    if args.callers * args.rate > 2000:
        parser.error("at most 2000 requests/s in all (callers x rate)")
    results = run(args)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
