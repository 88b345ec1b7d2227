"""Faults of the API server, one at a time: what callers see, what /readyz says, recovery
without a restart, and that no invalid token is ever accepted meanwhile.

| fault                              | valid token           | invalid token | /readyz            |
|------------------------------------|-----------------------|---------------|--------------------|
| unreachable at start               | 503 (+Retry-After)    | 401 or 503    | 503, path none     |
| down mid-run, keys loaded          | 200 (cached keys)     | 401           | 200, path jwks     |
| down mid-run, new kid              | 503                   | 401 or 503    | 200, path jwks     |
| slower than AUTH_API_TIMEOUT       | 503 within the timeout| 401 or 503    | 200 (keys loaded)  |
| 500 everywhere at start            | 503                   | 401 or 503    | 503, path none     |
| JWKS 500, discovery fine           | 200 via TokenReview   | 401           | 200                |
| wrong/expired/self-signed cert     | 503                   | 401 or 503    | 503, path none     |

Every scenario ends with the fault removed and the service back on local verification.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from compass_auth.testing import DevCluster, Fault

from ..conftest import RunningService, StartService
from ..helpers import body
from .conftest import NewKey
from .decisions import Decisions
from .recovery import FAST, assert_recovered, readyz


async def test_unreachable_at_start(devcluster: DevCluster, start_service: StartService) -> None:
    devcluster.pause()  # connection refused for discovery, JWKS and TokenReview
    running: RunningService = await start_service(wait=False, **FAST)
    decisions = Decisions()
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()
    assert decisions.count("valid", 503) == 1
    # Junk is refused by the local checks even with no key set and no API server.
    for kind in ("expired", "wrong audience", "alg none", "garbage"):
        assert decisions.count(kind, 401) == 1, kind
    response = await running.get(token=running.token())
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    code, status = await readyz(running)
    assert (code, status["ready"], status["path"]) == (503, False, "none")
    assert (await running.get("/healthz")).code == 200  # alive: no restart wanted
    devcluster.resume()
    await assert_recovered(running)


async def test_down_for_a_while_mid_run(running_fast: RunningService, new_key: NewKey) -> None:
    running = running_fast
    cluster = running.cluster
    kid_during_outage = new_key("EC")
    cluster.pause()
    try:
        decisions = Decisions()
        await decisions.probe(running, {"valid": running.token(),
                                        "valid, new kid": running.token(key_id=kid_during_outage)})
        decisions.assert_none_wrong()
        assert decisions.count("valid", 200) == 1  # the cached key set keeps serving
        assert decisions.count("valid, new kid", 503) == 1  # cannot fetch it, cannot review it
        for kind in ("expired", "wrong audience", "alg none", "bad signature", "garbage"):
            assert decisions.count(kind, 401) == 1, kind
        code, status = await readyz(running)
        assert (code, status["path"]) == (200, "jwks")
        assert status["last_error"]  # the failed refetch is visible
    finally:
        cluster.resume()
    await asyncio.sleep(0.25)
    response = await running.get(token=running.token(key_id=kid_during_outage))
    assert (response.code, body(response)["verified_by"]) == (200, "jwks")
    await assert_recovered(running)


@pytest.fixture
async def running_fast(start_service: StartService) -> RunningService:
    running: RunningService = await start_service(**FAST)
    assert running.authenticator.active_path() == "jwks"
    return running


async def test_slower_than_our_timeout(running_fast: RunningService, new_key: NewKey) -> None:
    running = running_fast
    cluster = running.cluster
    new_kid = new_key("EC")
    cluster.set_fault("all", Fault(delay=3))  # AUTH_API_TIMEOUT is 1 s
    decisions = Decisions()
    started = time.monotonic()
    response = await running.get(token=running.token(key_id=new_kid))
    elapsed = time.monotonic() - started
    # The JWKS refetch times out (1 s), then TokenReview does (1 s): 503, not a hang.
    assert response.code == 503
    assert body(response)["reason"] == "tokenreview_unavailable"
    assert elapsed < 3.5  # two 1 s timeouts and a loaded CI machine
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()
    assert decisions.count("valid", 200) == 1
    code, status = await readyz(running)
    assert (code, status["path"]) == (200, "jwks")
    cluster.clear_faults()
    await asyncio.sleep(1.2)  # past the TokenReview failure memory of the timed-out call
    await assert_recovered(running)


async def test_server_errors_everywhere_at_start(
    devcluster: DevCluster, start_service: StartService
) -> None:
    devcluster.set_fault("all", Fault(status=500))
    running: RunningService = await start_service(wait=False, **FAST)
    decisions = Decisions()
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()
    assert decisions.count("valid", 503) == 1
    code, status = await readyz(running)
    assert (code, status["path"]) == (503, "none")
    devcluster.clear_faults()
    await assert_recovered(running)


async def test_jwks_errors_mid_run_fall_back_to_tokenreview(
    running_fast: RunningService, new_key: NewKey
) -> None:
    running = running_fast
    cluster = running.cluster
    new_kid = new_key("EC")
    cluster.set_fault("jwks", Fault(status=500))
    response = await running.get(token=running.token(key_id=new_kid))
    assert (response.code, body(response)["verified_by"]) == (200, "tokenreview")
    decisions = Decisions()
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()
    for kind in ("expired", "wrong audience", "alg none", "bad signature", "garbage",
                 "unknown kid, bad signature"):
        assert decisions.count(kind, 401) == 1, kind
    cluster.clear_faults()
    await assert_recovered(running)


CERTIFICATES: list[tuple[str, Callable[[DevCluster], None]]] = [
    ("wrong names", lambda c: c.set_server_certificate(names=["api.example.invalid"])),
    ("expired", lambda c: c.set_server_certificate(expired=True)),
    ("self-signed (not from the cluster CA)", lambda c: c.set_server_certificate(
        self_signed=True)),
]


@pytest.mark.parametrize(("name", "break_certificate"), CERTIFICATES)
async def test_bad_certificate_at_start(
    devcluster: DevCluster, start_service: StartService, name: str,
    break_certificate: Callable[[DevCluster], None],
) -> None:
    break_certificate(devcluster)
    running: RunningService = await start_service(wait=False, **FAST)
    decisions = Decisions()
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()
    # Nothing was verified by a server we could not authenticate.
    assert decisions.count("valid", 503) == 1
    assert running.api_calls("discovery") == 0
    assert running.api_calls("tokenreview") == 0
    code, status = await readyz(running)
    assert (code, status["path"]) == (503, "none")
    error = status["last_error"] or ""  # why, while the start-up retries go on
    assert "certificate" in error.lower() or "ssl" in error.lower(), status
    devcluster.reset()  # the good certificate again
    await assert_recovered(running)


async def test_bad_certificate_mid_run(running_fast: RunningService, new_key: NewKey) -> None:
    running = running_fast
    cluster = running.cluster
    new_kid = new_key("EC")
    before = (running.api_calls("jwks"), running.api_calls("tokenreview"))
    cluster.pause()  # drop the kept-alive connections: the next ones see the new certificate
    cluster.set_server_certificate(self_signed=True)
    cluster.resume()
    response = await running.get(token=running.token(key_id=new_kid))
    assert response.code == 503
    decisions = Decisions()
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()
    assert decisions.count("valid", 200) == 1
    # The TLS handshake failed: not one request (with our credentials) reached the impostor.
    assert (running.api_calls("jwks"), running.api_calls("tokenreview")) == before
    cluster.reset()
    await asyncio.sleep(1.2)
    await assert_recovered(running)
