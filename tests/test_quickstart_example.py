"""examples/quickstart.py, the README's "Use it in your service" snippet, run as a process.

The README shows the file verbatim, so a snippet that stops working fails here.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compass_auth.testing import DevCluster

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "quickstart.py"
CALLER = "system:serviceaccount:default:collector"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(port: int, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/hello", headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _wait_listening(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the example exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the example did not listen within 20 s")


Running = tuple[int, subprocess.Popen[str]]


@pytest.fixture
def quickstart(devcluster: DevCluster, tmp_path: Path) -> Iterator[Running]:
    port = _free_port()
    environ = {
        **os.environ,
        "KUBECONFIG": str(devcluster.write_kubeconfig(tmp_path / "kubeconfig")),
        "AUTH_AUDIENCE": "compass-internal",
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    process = subprocess.Popen([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=environ,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(process, port)
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_the_example_lets_in_valid_tokens_only_and_stops_on_sigterm(
    devcluster: DevCluster, quickstart: Running
) -> None:
    port, process = quickstart
    token = devcluster.mint(namespace="default", service_account="collector",
                            audiences=("compass-internal",), pod="collector-6c9d8b7f5-x2k9q")
    status, body = _get(port, token)
    assert (status, body) == (200, {"hello": CALLER, "pod": "collector-6c9d8b7f5-x2k9q"})
    status, body = _get(port)
    assert (status, body["reason"]) == (401, "missing")
    other = devcluster.mint(namespace="default", service_account="intruder",
                            audiences=("compass-internal",))
    status, body = _get(port, other)
    assert (status, body["reason"]) == (403, "subject_not_allowed")
    status, body = _get(port, devcluster.mint(audiences=("vault",)))
    assert (status, body["reason"]) == (401, "audience_mismatch")

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "token verification failed" in stderr  # the refusals were logged...
    assert token not in stderr  # ...without a token
    assert other not in stderr


def test_the_readme_shows_the_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{EXAMPLE.read_text()}```\n" in readme
