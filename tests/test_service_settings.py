"""``python -m service serve`` reads its settings: the library's (no default audience) and the
example's own (``AUTH_LOG_FORMAT``, ``AUTH_LOG_LEVEL``, service/settings.py). Real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from compass_auth.testing import DevCluster

from .helpers import ROOT, service_process, stop_process


def _serve_without_audience(environ: dict[str, str]) -> subprocess.Popen[str]:
    bare = {name: value for name, value in os.environ.items() if not name.startswith("AUTH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, env={**bare, **environ}, stderr=subprocess.PIPE, text=True)


def _lines_until(process: subprocess.Popen[str], listening: Callable[[str], bool]) -> list[str]:
    """stderr up to the process's exit, or up to the line that says it is ``listening`` (then it
    is stopped)."""
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if listening(line):
                break
    finally:
        stop_process(process)
    return lines


def _lines_until_exit_or_listening(process: subprocess.Popen[str]) -> list[str]:
    return _lines_until(process, lambda line: "msg=listening" in line)


def test_serve_without_an_audience_refuses_to_start_naming_it(
        devcluster: DevCluster, tmp_path: Path) -> None:
    """Issue 18, finding 10: no default audience that two deployments would share. Everything
    else the service needs is there (a working cluster), so only the audience can stop it."""
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = _serve_without_audience({"KUBECONFIG": str(kubeconfig)})
    output = "".join(_lines_until_exit_or_listening(process))
    assert "msg=listening" not in output
    assert process.returncode == 2
    assert 'msg="invalid settings"' in output
    assert "AUTH_AUDIENCE is not set." in output
    assert "no default" in output


def test_serve_refuses_the_api_servers_audience(devcluster: DevCluster, tmp_path: Path) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = service_process({"KUBECONFIG": str(kubeconfig),
                               "AUTH_AUDIENCE": devcluster.api_audiences[0]})
    output = "".join(_lines_until_exit_or_listening(process))
    assert "msg=listening" not in output
    assert process.returncode == 2
    assert "own audience: every pod's automounted token carries it" in output


def test_serve_logs_in_the_format_and_level_the_example_settings_name(
        devcluster: DevCluster, tmp_path: Path) -> None:
    """AUTH_LOG_FORMAT and AUTH_LOG_LEVEL moved to the example service and still apply; the
    library does not take them for typos; the settings line shows the audience in force."""
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = service_process({"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": "reports",
                               "AUTH_LOG_FORMAT": "json", "AUTH_LOG_LEVEL": "debug"})
    # Every line is a JSON object (json.loads fails the test on one that is not).
    lines = _lines_until(process, lambda line: json.loads(line)["msg"] == "listening")
    records = [json.loads(line) for line in lines]
    messages = [record["msg"] for record in records]
    assert "listening" in messages
    assert "DEBUG" in {record["level"] for record in records}
    [settings] = [record for record in records if record["msg"] == "settings"]
    assert settings["audience"] == "reports"
    assert not [record for record in records if "unknown setting" in record["msg"]]


def test_a_bad_log_level_stops_the_service_with_a_sentence() -> None:
    process = service_process({"AUTH_LOG_LEVEL": "LOUD", "KUBECONFIG": "/nonexistent"})
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "AUTH_LOG_LEVEL='LOUD' must be DEBUG, INFO, WARNING or ERROR" in stderr
