"""examples/quickstart.py, the README's "Use it in your service" snippet, run as a process; and
examples/test_quickstart.py, the README's test, run by pytest in a project with no settings.

The README shows both files verbatim, so a snippet that stops working fails here.
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
EXAMPLE_TEST = ROOT / "examples" / "test_quickstart.py"
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


def test_the_readme_shows_its_test_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{EXAMPLE_TEST.read_text()}```\n" in readme


def test_the_readme_test_passes_in_a_project_without_settings(tmp_path: Path) -> None:
    """Issue 19 (finding 4): the two files alone, no conftest.py, no pytest settings: the
    plugin's fixtures and pytest-asyncio (both from compass-auth[testing]) are enough, and
    pytest-asyncio does not ask for a loop-scope setting."""
    for source in (EXAMPLE, EXAMPLE_TEST):
        (tmp_path / source.name).write_text(source.read_text())
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("AUTH_", "PYTEST_"))}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / EXAMPLE_TEST.name)],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "1 passed" in output
    assert "asyncio_default_fixture_loop_scope=function" in output  # pytest-asyncio's header
    assert "is unset" not in output, output  # its warning that asks for the setting
