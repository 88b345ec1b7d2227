"""The example service as a process: CLI, start-up errors, SIGTERM drain, and the demo."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from compass_auth.testing import DevCluster, Fault

from .conftest import RunningService, read_until_closed
from .helpers import ROOT, service_process, stop_process, wait_for_port


async def test_serve_answers_then_exits_0_on_sigterm(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = service_process({"KUBECONFIG": str(kubeconfig)})
    lines: list[str] = []
    try:
        port = wait_for_port(process, lines)
        client = AsyncHTTPClient()
        token = devcluster.mint(audiences=("compass-internal",))
        for _ in range(100):
            ready = await client.fetch(f"http://127.0.0.1:{port}/readyz", raise_error=False)
            if ready.code == 200:
                break
            await asyncio.sleep(0.05)
        response = await client.fetch(f"http://127.0.0.1:{port}/whoami", raise_error=False,
                                      headers={"Authorization": f"Bearer {token}"})
        assert response.code == 200
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    output = "".join(lines) + rest
    assert 'msg="shutting down"' in output
    assert "msg=stopped" in output
    assert token not in output
    assert token.split(".")[2] not in output


def test_invalid_settings_stop_the_service_with_a_sentence() -> None:
    process = service_process({"AUTH_AUDIENCE": "", "KUBECONFIG": "/nonexistent"})
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "AUTH_AUDIENCE must not be empty" in stderr


@pytest.mark.parametrize(("flag", "value"), [
    ("--max-connections", "0"), ("--max-connections", "many"), ("--idle-timeout", "-1"),
    ("--max-connections-per-address", "0"), ("--max-websockets", "0"),
])
def test_bad_connection_limits_are_refused_with_a_sentence(flag: str, value: str) -> None:
    process = service_process({"KUBECONFIG": "/nonexistent"}, flag, value)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert f"argument {flag}:" in stderr


async def test_connection_limits_from_the_command_line(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = service_process({"KUBECONFIG": str(kubeconfig)},
                              "--max-connections", "1", "--idle-timeout", "1")
    lines: list[str] = []
    try:
        port = wait_for_port(process, lines)
        assert "max_connections=1 idle_timeout=1.0" in lines[-1]
        # The one connection allowed, idle; a second is closed without a byte of HTTP.
        _, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await read_until_closed(reader, 5) == b""
        writer.close()
        # After the idle timeout the first one is cut and others get in again.
        await asyncio.sleep(1.5)
        response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/healthz",
                                                 raise_error=False)
        assert response.code == 200
        idle_writer.close()
    finally:
        stop_process(process)


@pytest.mark.parametrize(("flags", "loop"), [((), "uvloop"), (("--loop", "asyncio"), "asyncio")])
def test_uvloop_by_default_and_the_listening_line_says_which_loop(
    devcluster: DevCluster, tmp_path: Path, flags: tuple[str, ...], loop: str
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = service_process({"KUBECONFIG": str(kubeconfig)}, *flags)
    lines: list[str] = []
    try:
        wait_for_port(process, lines)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert f" loop={loop}" in lines[-1]


def hide_uvloop(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import uvloop`` fails, as where it is not installed."""
    shadow = tmp_path / "shadow" / "uvloop"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named uvloop')\n")
    return {"PYTHONPATH": str(shadow.parent)}


def test_without_uvloop_auto_runs_on_asyncio(devcluster: DevCluster, tmp_path: Path) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = service_process({"KUBECONFIG": str(kubeconfig), **hide_uvloop(tmp_path)})
    lines: list[str] = []
    try:
        wait_for_port(process, lines)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert " loop=asyncio" in lines[-1]


def test_loop_uvloop_without_uvloop_is_refused_with_a_sentence(tmp_path: Path) -> None:
    process = service_process({"KUBECONFIG": "/nonexistent", **hide_uvloop(tmp_path)},
                              "--loop", "uvloop")
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "--loop uvloop: uvloop is not installed" in stderr


def test_missing_cluster_configuration_stops_the_service(tmp_path: Path) -> None:
    process = service_process({"KUBECONFIG": str(tmp_path / "absent")})
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "cannot configure the API server connection" in stderr


async def test_drain_lets_requests_in_flight_finish(running: RunningService) -> None:
    cluster = running.cluster
    cluster.rotate_key()
    # The new kid makes the request refetch the JWKS, which the emulator answers slowly.
    cluster.set_fault("jwks", Fault(delay=1.0, times=1))
    in_flight = asyncio.ensure_future(running.get(token=running.token()))
    await asyncio.sleep(0.3)
    assert running.service.in_flight == 1
    drain = asyncio.ensure_future(running.service.drain())
    await asyncio.sleep(0.1)
    ready = await running.service.readiness()
    assert ready["ready"] is False
    assert ready["draining"] is True
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", running.service.port)
    response = await in_flight
    assert response.code == 200
    await asyncio.wait_for(drain, 5)


def test_demo_prints_the_spans_with_telemetry_console() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "demo", "--telemetry", "console"], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spans = [line for line in result.stdout.splitlines() if line.startswith("  span ")]
    verify = [line for line in spans if "'auth.verify'" in line]
    outcomes = {outcome: sum(f'"auth.outcome": "{outcome}"' in line for line in verify)
                for outcome in ("allowed", "denied", "unavailable")}
    # /whoami: 1 allowed, 4 denied; /ws/whoami: 1 allowed, 2 denied; fallback: 2 allowed, 1 denied;
    # authorization: both tokens verified (one is then denied by RBAC: an auth.authorize span);
    # another cluster: both tokens verified (the first then denied by RBAC); the ASGI example:
    # 2 verified (one denied by RBAC), 3 denied (no token twice, audience).
    assert outcomes == {"allowed": 10, "denied": 10, "unavailable": 0}, "\n".join(spans)
    authorize = [line for line in spans if "'auth.authorize'" in line]
    assert sum('"auth.outcome": "denied"' in line for line in authorize) == 3, "\n".join(spans)
    # The other cluster's verifications name the authenticator that answered.
    assert sum('"auth.authenticator": "https://second-cluster.example"' in line
               for line in verify) == 2, "\n".join(spans)
    # The WebSocket handshakes' server spans end with their status, refusals included.
    handshakes = [re.findall(r'"http.response.status_code": (\d+)', line)
                  for line in spans if "'GET /ws/whoami'" in line]
    assert handshakes == [["401"], ["403"], ["101"]], "\n".join(spans)
    assert any("'auth.tokenreview'" in line for line in spans)
    assert any("'auth.discovery'" in line for line in spans)


def test_demo_shows_every_case_as_expected() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "demo"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for case, status, reason in [
        ("valid token", "200", "-"),
        ("expired token", "401", "expired"),
        ("wrong audience", "401", "audience_mismatch"),
        ("subject not allowed", "403", "subject_not_allowed"),
        ("forged, alg: none", "401", "unsupported_algorithm"),
        ("websocket: no token", "401", "missing"),
        ("websocket: subject not allowed", "403", "subject_not_allowed"),
        # The example ASGI service on uvicorn, against the same emulator and RBAC.
        ("asgi: valid token, granted", "200", "-"),
        ("asgi: no token", "401", "missing"),
        ("asgi: wrong audience", "401", "audience_mismatch"),
        ("asgi: valid token, no grant", "403", "access_denied"),
        ("asgi websocket: no token", "401", "missing"),
    ]:
        assert re.search(rf"^{re.escape(case)}\s+{status}\s.*\s{reason}\s+yes\s*$", table,
                         flags=re.MULTILINE), table
    # Accepted, then closed by the server at the token's expiry with 1008 and the reason.
    assert re.search(r"^websocket: token expires in 3 s\s+101\s+system:serviceaccount:default:"
                     r"collector\s+jwks\s+closed 1008 'token expired' 0\.\d s after exp\s+yes",
                     table, flags=re.MULTILINE), table
    assert re.search(r"msg=\"websocket closed: token expired \(subject=system:serviceaccount:"
                     r"default:collector, token_fp=[0-9a-f]{12}\)\"", table), table
    assert re.search(r"^discovery down: valid token\s+200\s.*\stokenreview\s.*yes", table,
                     flags=re.MULTILINE), table
    assert re.search(r"^discovery back \([0-9.]+ s later\)\s+200\s.*\sjwks\s.*yes", table,
                     flags=re.MULTILINE), table
    # Authorization: the RoleBinding lets the collector in, a valid token without a grant not.
    assert re.search(r"^RoleBinding grants it\s+200\s+system:serviceaccount:default:collector\s"
                     r".*yes", table, flags=re.MULTILINE), table
    assert re.search(r"^valid token, no grant\s+403\s.*\saccess_denied\s+yes", table,
                     flags=re.MULTILINE), table
    # The demo shows the library's log lines of the refusals, each with a fingerprint only.
    _, _, logs = table.partition("log lines (tokens appear only as token_fp fingerprints):")
    refusals = [line for line in logs.splitlines() if "token verification failed" in line]
    assert len(refusals) >= 4, logs
    # (The WebSocket case without a token has nothing to fingerprint.)
    assert all(re.search(r"token_fp=[0-9a-f]{12}", line)
               or "reason=missing" in line for line in refusals), logs
    assert "every case as expected" in table
