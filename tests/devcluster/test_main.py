"""``python -m compass_auth.testing`` starts, prints how to reach it, and cleans up when stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from compass_auth.testing import DevCluster

ROOT = Path(__file__).resolve().parents[2]


def test_standalone_run_prints_and_cleans_up() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "compass_auth.testing", "--key-type", "EC"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("files are removed"):
                break
            key, _, value = line.partition(":")
            lines[key.strip()] = value.strip()
        assert lines["url"].startswith("https://127.0.0.1:")
        ca = Path(lines["ca"])
        assert ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert Path(lines["kubeconfig"]).exists()
        admin = Path(lines["admin kubeconfig"])
        assert "client-certificate-data" in admin.read_text()
        # SIGTERM, not SIGINT: a shell that starts the test run in the background makes its
        # children ignore SIGINT (and the emulator respects that, like any Python program).
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert not ca.exists()
        assert not admin.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_server_thread_leaves_ctrl_c_to_the_main_thread() -> None:
    """A SIGINT taken by the server thread would never wake a main thread asleep in a lock
    (the standalone run waiting for Ctrl-C): the server thread blocks it."""

    async def blocked_here() -> set[signal.Signals]:
        return signal.pthread_sigmask(signal.SIG_BLOCK, [])

    with DevCluster() as cluster:
        blocked = cluster._server.call(blocked_here)
    assert {signal.SIGINT, signal.SIGTERM} <= blocked
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # not here
