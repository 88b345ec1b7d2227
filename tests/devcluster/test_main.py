"""``python -m compass_auth.testing`` starts, prints how to reach it, and cleans up when stopped."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from compass_auth import __version__
from compass_auth.testing import DevCluster

from ..helpers import ROOT
from .kubehttp import read_standalone_banner


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
        lines = read_standalone_banner(process.stdout)
        assert lines["url"].startswith("https://127.0.0.1:")
        ca = Path(lines["ca"])
        assert ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert Path(lines["kubeconfig"]).exists()
        admin = Path(lines["admin kubeconfig"])
        assert "client-certificate-data" in admin.read_text()
        # The printed command starts the service against it as pasted (a free port instead of
        # 8080, which may be taken here), and the printed call is let in.
        command = lines["in a compass-auth checkout"]
        assert command.endswith("--port 8080")
        assert_pasted_command_serves(command.replace("--port 8080", "--port 0"),
                                     lines["call it"])
        # A wheel user has no `python -m service` (issue 19): the first line names only the
        # variables, which a service of their own (the README's quick start) runs with.
        yours = lines["your service"]
        assert "-m service" not in yours
        assert_own_service_serves(yours, lines["call it"])
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


def assert_own_service_serves(line: str, call: str) -> None:
    """``KUBECONFIG=... AUTH_AUDIENCE=... python YOUR_SERVICE.py``, with the README's
    examples/quickstart.py as the service, lets the printed sample token in."""
    environ, argv = {}, shlex.split(line)
    while "=" in argv[0]:
        name, _, value = argv.pop(0).partition("=")
        environ[name] = value
    assert argv == ["python", "YOUR_SERVICE.py"]
    assert set(environ) == {"KUBECONFIG", "AUTH_AUDIENCE"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=ROOT,
        env={**os.environ, **environ, "PORT": str(port), "HOST": "127.0.0.1"},
        stderr=subprocess.DEVNULL)
    try:
        token_file = re.search(r"\$\(cat (\S+)\)", call)
        assert token_file is not None
        headers = {"Authorization": f"Bearer {Path(token_file.group(1)).read_text()}"}
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/hello", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    assert json.load(answer)["hello"] == "system:serviceaccount:default:collector"
                    return
            except (urllib.error.URLError, ConnectionError):
                assert service.poll() is None, "the service exited"
                assert time.monotonic() < deadline, "the service never let the token in"
                time.sleep(0.1)
    finally:
        service.terminate()
        service.wait(timeout=20)


def test_help_is_plain_text() -> None:
    """Issue 19: ``--help`` printed the module docstring's reST markup (``...``)."""
    text = subprocess.run([sys.executable, "-m", "compass_auth.testing", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert "``" not in text
    assert "`" not in text
    assert "Kubernetes API server emulator" in text


def assert_pasted_command_serves(command: str, call: str) -> None:
    environ, argv = {}, shlex.split(command)
    while "=" in argv[0]:
        name, _, value = argv.pop(0).partition("=")
        environ[name] = value
    service = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **environ},
                               stderr=subprocess.PIPE, text=True)
    try:
        assert service.stderr is not None
        port = None
        for line in service.stderr:
            match = re.search(r"msg=listening .*port=(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port is not None
        token_file = re.search(r"\$\(cat (\S+)\)", call)
        assert token_file is not None
        token = Path(token_file.group(1)).read_text()
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(100):  # until the service has its keys
            request = urllib.request.Request(f"http://127.0.0.1:{port}/whoami", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    assert json.load(answer)["subject"] == "system:serviceaccount:default:collector"
                    return
            except urllib.error.HTTPError as error:
                if error.code != 503:  # only "not ready yet" may come before the 200
                    raise
            time.sleep(0.1)
        raise AssertionError("the service never let the sample token in")
    finally:
        service.terminate()
        service.wait(timeout=20)


@pytest.mark.parametrize("module", ["service", "compass_auth.testing"])
def test_commands_say_their_version_and_how_they_were_started(module: str) -> None:
    version = subprocess.run([sys.executable, "-m", module, "--version"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    program = f"{Path(sys.executable).name} -m {module}"
    assert version.strip() == f"{program} (compass-auth {__version__})"
    usage = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert usage.startswith(f"usage: {program} ")


def test_every_emulator_option_has_help() -> None:
    parser_help = subprocess.run([sys.executable, "-m", "compass_auth.testing", "--help"],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout
    options = re.findall(r"^  (--[a-z-]+)(.*)$", parser_help, flags=re.MULTILINE)
    assert {name for name, _ in options} >= {"--host", "--port", "--issuer", "--key-type",
                                             "--audience", "--rbac", "--version"}
    # Each option line (or the line after it) carries text beyond the option's own name.
    described = re.split(r"^  --", parser_help, flags=re.MULTILINE)[1:]
    for block in described:
        words = block.split()
        assert len(words) > 2, f"--{block.strip()} has no help text"


def test_the_server_thread_leaves_ctrl_c_to_the_main_thread() -> None:
    """A SIGINT taken by the server thread would never wake a main thread asleep in a lock
    (the standalone run waiting for Ctrl-C): the server thread blocks it."""

    async def blocked_here() -> set[signal.Signals]:
        return signal.pthread_sigmask(signal.SIG_BLOCK, [])

    with DevCluster() as cluster:
        blocked = cluster._server.call(blocked_here)
    assert {signal.SIGINT, signal.SIGTERM} <= blocked
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # not here
