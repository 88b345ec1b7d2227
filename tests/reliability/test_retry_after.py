"""Retry-After from the API server is honoured: discovery retries, key refetches and TokenReview
wait at least as long as told (capped), and callers get a 503 carrying that wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from compass_auth.apiserver.backoff import MAX_RETRY_AFTER, parse_retry_after
from compass_auth.apiserver.connection import ApiServer, connect
from compass_auth.apiserver.discovery import DiscoveryClient, FetchError
from compass_auth.testing import DevCluster, Fault

from ..conftest import RunningService, StartService, log_text, wait_until
from ..helpers import body, settings_from
from .conftest import NewKey


@pytest.fixture
async def api(devcluster: DevCluster, tmp_path: Path) -> AsyncIterator[ApiServer]:
    environ = {"KUBECONFIG": str(devcluster.write_kubeconfig(tmp_path / "kubeconfig"))}
    server = await connect(settings_from(environ), environ)
    yield server
    await server.close()


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("3", 3.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("86400", MAX_RETRY_AFTER),  # nonsense is capped, never a day's sleep
        ("-5", None),
        ("1.5", None),  # RFC 9110 delay-seconds is a non-negative integer
        ("soon", None),
        ("", None),
        (format_datetime(datetime.fromtimestamp(NOW + 12, UTC), usegmt=True), 12.0),
        (format_datetime(datetime.fromtimestamp(NOW - 60, UTC), usegmt=True), 0.0),
        ("Fri, 15 Jan 2027 10:00:00", None),  # no zone: not an HTTP-date
    ],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


async def test_startup_waits_as_long_as_a_429_asks(
    devcluster: DevCluster, api: ApiServer, no_sleep: Any, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_fault("discovery", Fault(status=429, retry_after=3, times=2))
    keys = await DiscoveryClient(api, sleep=no_sleep).fetch_with_retries()
    assert keys.issuer == devcluster.issuer
    # max(exponential 1 s / 2 s, Retry-After 3 s)
    assert no_sleep.waits == [3, 3]
    assert devcluster.request_count("discovery") == 3
    assert "retry_in=3s" in log_text(caplog)


async def test_short_retry_after_keeps_the_exponential_schedule(
    devcluster: DevCluster, api: ApiServer, no_sleep: Any
) -> None:
    devcluster.set_fault("discovery", Fault(status=503, retry_after=1, times=3))
    await DiscoveryClient(api, sleep=no_sleep).fetch_with_retries()
    assert no_sleep.waits == [1, 2, 4]


async def test_huge_retry_after_is_capped(
    devcluster: DevCluster, api: ApiServer, no_sleep: Any
) -> None:
    devcluster.set_fault("jwks", Fault(status=503, retry_after=100_000))
    with pytest.raises(FetchError, match="answered 503") as caught:
        await DiscoveryClient(api, sleep=no_sleep).fetch_with_retries()
    assert caught.value.retry_after == MAX_RETRY_AFTER
    assert no_sleep.waits == [MAX_RETRY_AFTER] * 3


async def test_a_jwks_429_holds_back_unknown_kid_refetches(
    start_service: StartService, new_key: NewKey
) -> None:
    running: RunningService = await start_service(AUTH_JWKS_MIN_REFRESH_INTERVAL="0.1")
    cluster = running.cluster
    first, second = new_key("EC"), new_key("EC")
    cluster.set_fault("jwks", Fault(status=429, retry_after=2))
    before = running.api_calls("jwks")
    # The refetch for the first new kid is refused: TokenReview decides instead.
    response = await running.get(token=running.token(key_id=first))
    assert (response.code, body(response)["verified_by"]) == (200, "tokenreview")
    assert running.api_calls("jwks") == before + 1
    await asyncio.sleep(0.3)  # past the 0.1 s cool-down, inside the 2 s Retry-After
    response = await running.get(token=running.token(key_id=second))
    assert (response.code, body(response)["verified_by"]) == (200, "tokenreview")
    assert running.api_calls("jwks") == before + 1  # the API server was not asked again
    cluster.clear_faults()
    # When the hold ends, one fetch looks for what was asked for during it.
    await wait_until(lambda: running.api_calls("jwks") == before + 2, timeout=3.0)
    response = await running.get(token=running.token(key_id=second))
    assert (response.code, body(response)["verified_by"]) == (200, "jwks")
    await asyncio.sleep(0.2)  # past the cool-down
    third = new_key("EC")
    response = await running.get(token=running.token(key_id=third))
    assert (response.code, body(response)["verified_by"]) == (200, "jwks")
    assert running.api_calls("jwks") == before + 3


@pytest.fixture
async def in_fallback(devcluster: DevCluster, start_service: StartService) -> RunningService:
    devcluster.set_fault("discovery", Fault(status=403))  # not retried: fallback at once
    running: RunningService = await start_service(AUTH_REDISCOVERY_INTERVAL="30")
    assert running.authenticator.active_path() == "tokenreview"
    return running


async def test_tokenreview_429_is_503_with_its_retry_after_and_stops_reviews(
    in_fallback: RunningService,
) -> None:
    running = in_fallback
    cluster = running.cluster
    cluster.set_fault("tokenreview", Fault(status=429, retry_after=2))
    before = running.api_calls("tokenreview")
    token = running.token()
    started = time.monotonic()
    response = await running.get(token=token)
    assert response.code == 503
    assert response.headers["Retry-After"] == "2"
    assert body(response)["reason"] == "tokenreview_unavailable"
    # Inside the window: no review is sent, callers are told how long is left.
    other = await running.get(token=running.token(pod="collector-other"))
    assert other.code == 503
    assert 1 <= int(other.headers["Retry-After"]) <= 2
    assert running.api_calls("tokenreview") == before + 1
    ready = await running.get("/readyz")
    assert ready.code == 503
    # The 429 was never cached: after the window, the same token passes.
    cluster.clear_faults()
    await asyncio.sleep(max(0.0, 2.1 - (time.monotonic() - started)))
    response = await running.get(token=token)
    assert (response.code, body(response)["verified_by"]) == (200, "tokenreview")
    assert running.api_calls("tokenreview") == before + 2


async def test_tokenreview_retry_after_is_capped_for_callers(in_fallback: RunningService) -> None:
    running = in_fallback
    running.cluster.set_fault("tokenreview", Fault(status=503, retry_after=3600))
    response = await running.get(token=running.token())
    assert response.code == 503
    assert response.headers["Retry-After"] == str(int(MAX_RETRY_AFTER))
