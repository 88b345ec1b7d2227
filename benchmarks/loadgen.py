"""Load generators: wrk (Debian's package) when installed, else a small asyncio client.

Both send ``GET path`` with an ``Authorization`` header taken round-robin from a token list,
over keep-alive connections, for a fixed duration, and report requests per second, latency
percentiles and how many answers were not 2xx.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: wrk's Lua: round-robin tokens per thread; one JSON line with the figures at the end.
WRK_SCRIPT = r"""
local tokens = {}
local index = 0
local path = os.getenv("BENCH_PATH")
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
request = function()
  index = index % #tokens + 1
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. tokens[index]})
end
done = function(summary, latency, requests)
  local errors = summary.errors.status
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors, latency:percentile(50),
    latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    non2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_load(url: str, path: str, tokens: list[str], *, duration: float, connections: int,
             cpu: int | None = None, engine: str = "auto") -> LoadResult:
    if engine == "wrk" or (engine == "auto" and have_wrk()):
        return _run_wrk(url, path, tokens, duration, connections, cpu)
    return asyncio.run(_run_python(url, path, tokens, duration, connections))


def _run_wrk(url: str, path: str, tokens: list[str], duration: float, connections: int,
             cpu: int | None) -> LoadResult:
    with tempfile.TemporaryDirectory() as workdir:
        script = Path(workdir) / "bench.lua"
        script.write_text(WRK_SCRIPT)
        token_file = Path(workdir) / "tokens.txt"
        token_file.write_text("\n".join(tokens) + "\n")
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
                   "-s", str(script), url]
        if cpu is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(cpu), *command]
        env = {**os.environ, "BENCH_PATH": path, "BENCH_TOKENS": str(token_file)}
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                                timeout=duration + 60).stdout
    figures = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    return LoadResult(figures["requests"], figures["duration_us"] / 1e6, figures["non2xx"],
                      figures["p50_us"] / 1000, figures["p99_us"] / 1000)


async def _run_python(url: str, path: str, tokens: list[str], duration: float,
                      connections: int) -> LoadResult:
    host, _, port = url.removeprefix("http://").partition(":")
    latencies: list[float] = []
    non2xx = 0
    count = 0
    deadline = time.perf_counter() + duration

    async def worker(offset: int) -> None:
        nonlocal non2xx, count
        reader, writer = await asyncio.open_connection(host, int(port or 80))
        index = offset
        try:
            while time.perf_counter() < deadline:
                token = tokens[index % len(tokens)]
                index += connections
                started = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
                             f"Authorization: Bearer {token}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                count += 1
                if not 200 <= status < 300:
                    non2xx += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(offset) for offset in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    return LoadResult(count, elapsed, non2xx, percentile(0.5), percentile(0.99))
