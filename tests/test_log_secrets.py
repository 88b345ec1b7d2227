"""No secret in any log path (issue 18, finding 8): a query string with ``access_token=`` on a
request that fails with 500, and a token in a header Tornado refuses, never reach the log of
the real process, whatever kind of handler failed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from compass_auth.testing import DevCluster

from .conftest import AUDIENCE
from .helpers import ROOT, raw_request, wait_for_port

SECRET = "SECRETSECRET"  # a marker to grep for, not a credential


async def test_no_query_string_or_header_value_reaches_the_log(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.log_service"], cwd=ROOT, stderr=subprocess.PIPE,
        text=True, env={"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE,
                        "PATH": "/usr/bin:/bin"})
    lines: list[str] = []
    try:
        port = wait_for_port(process, lines)
        token = devcluster.mint(audiences=(AUDIENCE,))
        for path in ("/boom/json", "/boom/authenticated", "/boom/plain"):
            head = (f"GET {path}?access_token={SECRET}&x=1 HTTP/1.1\r\nHost: test\r\n"
                    f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n")
            status, _ = await raw_request(port, head.encode())
            assert status == 500, path
        # A header value Tornado refuses (a control character) is quoted in its error.
        status, _ = await raw_request(port, (
            f"GET /whoami HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {SECRET}\x01\r\n"
            "Connection: close\r\n\r\n").encode())
        assert status == 400
        await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=20)
    log = "".join(lines) + rest
    # Each failure was logged, with its route, as a redacted target.
    for path in ("/boom/json", "/boom/authenticated", "/boom/plain"):
        assert f"GET {path}?REDACTED" in log, log
    assert "Malformed HTTP message" in log
    assert SECRET not in log
    assert token not in log
    assert token.split(".")[2] not in log
