"""Discovery and JWKS fetches through the API server connection, against the emulator."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from compass_auth.apiserver.connection import ApiServer, connect
from compass_auth.apiserver.discovery import DiscoveryClient, FetchError
from compass_auth.testing import DevCluster, Fault

from .conftest import StartService, log_text
from .helpers import settings_from


@pytest.fixture
async def api(devcluster: DevCluster, tmp_path: Path) -> AsyncIterator[ApiServer]:
    environ = {"KUBECONFIG": str(devcluster.write_kubeconfig(tmp_path / "kubeconfig")),
               "AUTH_API_TIMEOUT": "2"}
    server = await connect(settings_from(environ), environ)
    yield server
    await server.close()


async def test_fetches_keys_through_the_api_server_not_jwks_uri(
    devcluster: DevCluster, api: ApiServer
) -> None:
    # The emulator's discovery document names https://172.18.0.2:6443 (unreachable from here).
    keys = await DiscoveryClient(api).fetch()
    assert keys.issuer == devcluster.issuer
    assert set(keys.keys) == {key["kid"] for key in devcluster.jwks()["keys"]}
    assert devcluster.request_count("discovery") == 1
    assert devcluster.request_count("jwks") == 1


async def test_requests_carry_the_service_credentials(
    devcluster: DevCluster, api: ApiServer
) -> None:
    await DiscoveryClient(api).fetch()
    records = devcluster.request_log
    assert {record.status for record in records} == {200}
    assert all(record.headers_subset.get("Authorization-Fingerprint") for record in records)


async def test_forced_fetch_asks_for_no_cache(devcluster: DevCluster, api: ApiServer) -> None:
    await DiscoveryClient(api).fetch(force=True)
    assert [r.headers_subset.get("Cache-Control") for r in devcluster.request_log] == [
        "no-cache", "no-cache"]


async def test_startup_retries_three_times_1_2_4_seconds_apart(
    devcluster: DevCluster, api: ApiServer, no_sleep: Any
) -> None:
    devcluster.set_fault("discovery", Fault(status=503, times=3))
    keys = await DiscoveryClient(api, sleep=no_sleep).fetch_with_retries()
    assert keys.issuer == devcluster.issuer
    assert no_sleep.waits == [1, 2, 4]
    assert devcluster.request_count("discovery") == 4


async def test_startup_gives_up_after_three_retries(
    devcluster: DevCluster, api: ApiServer, no_sleep: Any
) -> None:
    devcluster.set_fault("discovery", Fault(status=500))
    with pytest.raises(FetchError, match="answered 500") as caught:
        await DiscoveryClient(api, sleep=no_sleep).fetch_with_retries()
    assert caught.value.transient
    assert no_sleep.waits == [1, 2, 4]
    assert devcluster.request_count("discovery") == 4


@pytest.mark.parametrize(
    ("name", "setup", "message"),
    [
        ("RBAC: discovery forbidden", lambda c: c.set_discovery_allowed(False),
         "system:service-account-issuer-discovery"),
        ("not found", lambda c: c.set_fault("discovery", Fault(status=404)),
         "ServiceAccountIssuerDiscovery"),
        ("not JSON", lambda c: c.set_fault("jwks", Fault(body=b"<html>")), "not JSON"),
        ("no keys", lambda c: c.set_fault("jwks", Fault(body=b'{"keys": []}')), "unusable"),
        ("no issuer", lambda c: c.set_fault("discovery", Fault(body=b'{"jwks_uri": "x"}')),
         "no issuer"),
        ("oversized JWKS", lambda c: c.set_fault("jwks", Fault(body=b"[" + b" " * 600_000)),
         "exceeds"),
    ],
)
async def test_permanent_failures_are_not_retried(
    devcluster: DevCluster, api: ApiServer, no_sleep: Any, name: str,
    setup: Callable[[DevCluster], None], message: str,
) -> None:
    setup(devcluster)
    with pytest.raises(FetchError, match=message) as caught:
        await DiscoveryClient(api, sleep=no_sleep).fetch_with_retries()
    assert not caught.value.transient
    assert no_sleep.waits == []


async def test_redirects_are_refused_and_never_followed(
    devcluster: DevCluster, api: ApiServer
) -> None:
    contacted: list[bool] = []

    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        contacted.append(True)
        writer.close()

    listener = await asyncio.start_server(elsewhere, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    devcluster.set_fault("jwks", Fault(status=302, location=f"https://127.0.0.1:{port}/keys"))
    try:
        with pytest.raises(FetchError, match="redirected"):
            await DiscoveryClient(api).fetch()
        await asyncio.sleep(0.05)
    finally:
        listener.close()
    assert contacted == []


async def test_timeouts_are_transient(devcluster: DevCluster, api: ApiServer) -> None:
    devcluster.set_fault("jwks", Fault(delay=3))
    with pytest.raises(FetchError, match="Timeout") as caught:
        await DiscoveryClient(api).fetch()
    assert caught.value.transient


async def test_dropped_connections_are_transient(devcluster: DevCluster, api: ApiServer) -> None:
    devcluster.set_fault("discovery", Fault(drop=True))
    with pytest.raises(FetchError) as caught:
        await DiscoveryClient(api).fetch()
    assert caught.value.transient


async def test_raw_documents_are_parsed_not_python_reprs(
    devcluster: DevCluster, api: ApiServer
) -> None:
    # kubernetes-asyncio's generated methods turn these JSON bodies into str(dict); we read the
    # raw body. A JWKS served with single quotes (a Python repr) must be refused, not eval'd.
    devcluster.set_fault("jwks", Fault(body=str(devcluster.jwks()).encode()))
    with pytest.raises(FetchError, match="not JSON"):
        await DiscoveryClient(api).fetch()
    devcluster.clear_faults()
    assert (await DiscoveryClient(api).fetch()).keys


async def test_giving_up_logs_the_discovery_line_and_falls_back(
    start_service: StartService, devcluster: DevCluster, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running = await start_service()  # waits for start-up discovery to finish
    text = log_text(caplog)
    assert 'level=ERROR' in text
    assert ('logger=compass_auth.keys.lifecycle msg="failed to create OIDC provider after '
            'retries"') in text
    assert "fatal" not in text  # the service goes on, with TokenReview
    # Under plain logging.basicConfig(), the line still says where and why.
    [record] = [r for r in caplog.records if r.name == "compass_auth.keys.lifecycle"]
    plain = logging.Formatter(logging.BASIC_FORMAT).format(record)
    assert plain.startswith("ERROR:compass_auth.keys.lifecycle:failed to create OIDC provider "
                            "after retries: api_server=https://127.0.0.1:")
    assert "403" in plain
    assert "TokenReview verifies tokens meanwhile" in plain
    assert "403" in text
    response = await running.get(token=running.token())
    assert response.code == 200
    assert json.loads(response.body)["verified_by"] == "tokenreview"
