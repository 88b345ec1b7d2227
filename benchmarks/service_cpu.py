"""CPU time per request of the example service under wrk, for telemetry variants side by side.

Throughput on a shared machine moves with the neighbours; the CPU time the service process spent
(``/proc/PID/stat`` utime + stime, all its threads) divided by the requests it answered moves
much less. Each variant is one service process pinned to CPU 0; wrk and this process run on
CPU 1; scenarios run interleaved, round after round.

    python -m benchmarks.service_cpu [--variants off,sampled] [--rounds 3] [--duration 5]
    python -m benchmarks.service_cpu --variants sampled --profile /tmp/prof   (py-spy, raw)

Variants (``VARIANTS``): ``off`` (no exporter configured), ``disabled`` (``OTEL_SDK_DISABLED``),
``sampled`` (the recommended production telemetry: 10 % parent-based sampling, OTLP to a local
sink, ``/metrics`` scraped every 15 s), ``all`` (every trace recorded and exported),
``unsampled`` (as ``sampled``, but no trace is ever recorded). Each runs
``/whoami`` with one known token, ``/healthz`` with the same request bytes, and ``/whoami`` with
a token the service has not seen (its own process with the verified-token cache off).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from compass_auth.testing import DevCluster

from .loadgen import run_load
from .run import AUDIENCE, ROOT, free_port, otlp_sink

SCRAPE_INTERVAL = 15.0
#: The service on CPU 0, the load (and this process) on CPU 1, when there are two.
PINNED = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
VARIANTS: dict[str, dict[str, str]] = {
    "off": {},
    "disabled": {"OTEL_SDK_DISABLED": "true"},
    "sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "all": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    # The span machinery of the sampled variant without a span ever recorded.
    "unsampled": {"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
}
#: Variants that export to the OTLP sink (and get /metrics scraped).
EXPORTING = {"sampled", "all", "unsampled"}


@dataclass
class Instance:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    scraped: bool = False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(name: str, environ: dict[str, str], loop: str, tree: Path = ROOT) -> Instance:
    port = free_port()
    command = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1",
               "--port", str(port)]
    if loop:
        command += ["--loop", loop]
    if PINNED:
        command = ["taskset", "-c", "0", *command]
    if (tree / ".deps").is_dir():  # packages only that checkout needs (pip install --target)
        environ = {**environ, "PYTHONPATH": str(tree / ".deps")}
    process = subprocess.Popen(command, cwd=tree, env={**os.environ, **environ},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return Instance(name, process, url)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{name} did not become ready")


def scrape_forever(urls: list[str], stop: threading.Event) -> None:
    while not stop.wait(SCRAPE_INTERVAL):
        for url in urls:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/metrics", timeout=5).read()


def measure(instance: Instance, scenario: str, path: str, tokens: list[str], duration: float,
            connections: int, profile: Path | None) -> None:
    spy = None
    if profile is not None:
        out = profile / f"{instance.name}-{scenario}.txt"
        command = ["py-spy", "record", "-r", os.environ.get("PYSPY_RATE", "200"),
                   "-d", str(int(duration)), "-p", str(instance.process.pid), "-o", str(out),
                   "--format", "raw", "--full-filenames"]
        # PYSPY_NATIVE=1 adds C frames; PYSPY_RATE sets the samples per second.
        if os.environ.get("PYSPY_NATIVE"):
            command.append("--native")
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = cpu_seconds(instance.process.pid)
    result = run_load(instance.url, path, tokens, duration=duration, connections=connections,
                      cpu=1 if PINNED else None, engine="auto")  # wrk, else asyncio
    spent = cpu_seconds(instance.process.pid) - before
    if spy is not None:
        spy.wait()
    if result.non2xx:
        raise RuntimeError(f"{instance.name} {scenario}: {result.non2xx} non-2xx answers")
    instance.cpu_us.setdefault(scenario, []).append(spent / result.requests * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="off,disabled,sampled")
    parser.add_argument("--loop", default="", help="--loop of the service (default: its own)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--fresh-tokens", type=int, default=2000)
    parser.add_argument("--no-fresh", action="store_true")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw output folder")
    parser.add_argument("--compare", type=Path, default=None,
                        help="another checkout: each variant also runs from there (base-...)")
    args = parser.parse_args()
    # SIGTERM runs the clean-up below (the service processes are stopped), like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if PINNED:
        os.sched_setaffinity(0, {1})
    names = args.variants.split(",")
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as workdir, \
            otlp_sink() as sink:
        kubeconfig = str(cluster.write_kubeconfig(Path(workdir) / "kubeconfig"))
        base = {"KUBECONFIG": kubeconfig, "AUTH_LOG_LEVEL": "ERROR", "AUTH_AUDIENCE": AUDIENCE}
        known = [cluster.mint(audiences=(AUDIENCE,))]
        fresh = ([] if args.no_fresh else
                 [cluster.mint(audiences=(AUDIENCE,)) for _ in range(args.fresh_tokens)])
        instances: list[tuple[Instance, Instance | None]] = []
        stop = threading.Event()
        try:
            trees = [("", ROOT)] + ([("base-", args.compare)] if args.compare else [])
            for name in names:
                environ = {**base, **VARIANTS[name]}
                if name in EXPORTING:
                    environ |= {"OTEL_EXPORTER_OTLP_ENDPOINT": sink,
                                "OTEL_METRIC_EXPORT_INTERVAL": "15000"}
                for prefix, tree in trees:
                    main_instance = start(prefix + name, environ, args.loop, tree)
                    fresh_instance = (None if args.no_fresh else start(
                        prefix + name + "-fresh", {**environ, "AUTH_CACHE_SIZE": "0"},
                        args.loop, tree))
                    for instance in (main_instance, fresh_instance):
                        if instance is not None:
                            instance.scraped = name in EXPORTING
                    instances.append((main_instance, fresh_instance))
            scraped = [i.url for pair in instances for i in pair if i is not None and i.scraped]
            threading.Thread(target=scrape_forever, args=(scraped, stop), daemon=True).start()
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
            for round_index in range(args.rounds):
                print(f"round {round_index + 1}/{args.rounds}", file=sys.stderr, flush=True)
                for main_instance, fresh_instance in instances:
                    profile = args.profile if round_index == 0 else None
                    measure(main_instance, "whoami", "/whoami", known, args.duration,
                            args.connections, profile)
                    measure(main_instance, "healthz", "/healthz", known, args.duration,
                            args.connections, profile)
                    if fresh_instance is not None:
                        measure(fresh_instance, "fresh", "/whoami", fresh, args.duration,
                                args.connections, profile)
        finally:
            stop.set()
            for pair in instances:
                for instance in pair:
                    if instance is not None:
                        instance.process.terminate()
                        instance.process.wait(10)
    print(f"{'variant':<10} {'scenario':<8} {'CPU µs/request median':>22} {'min':>7} {'max':>7}")
    for main_instance, fresh_instance in instances:
        for instance in (main_instance, fresh_instance):
            if instance is None:
                continue
            for scenario, values in instance.cpu_us.items():
                print(f"{main_instance.name:<10} {scenario:<8} {statistics.median(values):>22.1f}"
                      f" {min(values):>7.1f} {max(values):>7.1f}")
        whoami = main_instance.cpu_us["whoami"]
        healthz = main_instance.cpu_us["healthz"]
        ratio = statistics.median(h / w for w, h in zip(whoami, healthz, strict=True))
        print(f"{main_instance.name:<10} healthz/whoami CPU (= whoami/healthz req/s): {ratio:.3f}")


if __name__ == "__main__":
    main()
