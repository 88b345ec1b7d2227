"""``python -m service serve`` under a file descriptor limit, observed from outside: its log in
a file (bytes and lines counted, no pipe to drain), its CPU time and descriptors from /proc, and
raw connections from a chosen loopback address (127.0.0.2 is another client to the service)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..helpers import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class LimitedService:
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_size(self) -> tuple[int, int]:
        """(bytes, lines) written to the log so far."""
        data = self.log.read_bytes()
        return len(data), data.count(b"\n")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process (/proc/PID/stat fields 14 and 15)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def soft_nofile(self) -> int:
        return resource.prlimit(self.pid, resource.RLIMIT_NOFILE)[0]


#: Runs as the child: sets RLIMIT_NOFILE (as ``ulimit -n``), then becomes the service (same
#: PID). Not a ``preexec_fn``, which is unsafe in a process with threads (the emulator's).
WITH_LIMIT = ("import os, resource, sys; "
              "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
              "os.execv(sys.argv[3], sys.argv[3:])")


def start(kubeconfig: Path, log: Path, limit: tuple[int, int], *flags: str) -> LimitedService:
    environ = {**os.environ, "KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": "compass-internal"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", WITH_LIMIT, str(limit[0]), str(limit[1]),
             sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", "0",
             "--drain-seconds", "2", *flags],
            cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=sink,
        )
    return LimitedService(process, log)


def wait_listening(service: LimitedService, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"msg=listening .*port=(\d+)", service.log_text())
        if match:
            service.port = int(match.group(1))
            return service.port
        if service.process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError("the service did not start:\n" + service.log_text())


@contextmanager
def running(kubeconfig: Path, log: Path, limit: tuple[int, int],
            *flags: str) -> Iterator[LimitedService]:
    """The service listening; stopped (SIGTERM, then SIGKILL) afterwards."""
    service = start(kubeconfig, log, limit, *flags)
    try:
        wait_listening(service)
        yield service
    finally:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
            try:
                service.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()


async def connect_from(address: str, port: int) -> tuple[asyncio.StreamReader,
                                                          asyncio.StreamWriter]:
    """A TCP connection to the service from the loopback ``address``."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))


async def answer_or_close(port: int, path: str = "/healthz", address: str = "127.0.0.1",
                          timeout: float = 10.0, token: str | None = None) -> bytes | None:
    """A new client's GET: the answer's status line, ``b""`` for a clean refusal (closed or
    reset without a byte), ``None`` if nothing came within ``timeout`` (the finding's "no
    answer")."""
    try:
        reader, writer = await asyncio.wait_for(connect_from(address, port), timeout)
    except ConnectionError:
        return b""
    except TimeoutError:
        return None
    try:
        authorization = f"Authorization: Bearer {token}\r\n" if token else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     f"{authorization}\r\n".encode())
        data = await asyncio.wait_for(reader.read(), timeout)
    except ConnectionError:
        data = b""
    except TimeoutError:
        return None
    finally:
        writer.close()
    return data.partition(b"\r\n")[0]


async def wait_ready(port: int) -> None:
    for _ in range(200):
        if await answer_or_close(port, "/readyz") == b"HTTP/1.1 200 OK":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the service did not become ready")


async def open_websocket(port: int, token: str, address: str) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A WebSocket handshake on ``/ws/whoami`` from ``address``, by hand (the client never reads
    a frame); the open connection, or ``None`` if it was not upgraded."""
    try:
        reader, writer = await connect_from(address, port)
    except ConnectionError:
        return None
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws/whoami HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        writer.close()
        return None
    if not head.startswith(b"HTTP/1.1 101 "):
        writer.close()
        return None
    return reader, writer
