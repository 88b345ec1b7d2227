"""The service's own token follows the kubelet's rotations (issue 5), against the emulator.

The emulator can revoke the replaced token, so a client that kept the old one gets 401: these
tests fail if the next API call after a rotation still carries the old token.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from compass_auth.apiserver.connection import ApiServer, connect
from compass_auth.apiserver.discovery import DiscoveryClient, FetchError
from compass_auth.apiserver.tokenfile import TokenFile
from compass_auth.core.bearer import fingerprint
from compass_auth.testing import DevCluster

from .conftest import StartService, log_text
from .helpers import review_once, settings_from


def frozen_stat() -> Callable[[Path], os.stat_result]:
    """A filesystem whose attributes are cached forever (think NFS ``actimeo``)."""
    seen: dict[Path, os.stat_result] = {}

    def stat(path: Path) -> os.stat_result:
        return seen.setdefault(path, os.stat(path))

    return stat


def in_cluster_environ(devcluster: DevCluster, sa_dir: Path) -> dict[str, str]:
    return {**devcluster.incluster_environ(), "AUTH_SERVICEACCOUNT_DIR": str(sa_dir)}


@pytest.fixture
async def api(devcluster: DevCluster, devcluster_sa_dir: Path) -> AsyncIterator[ApiServer]:
    environ = in_cluster_environ(devcluster, devcluster_sa_dir)
    server = await connect(settings_from(environ), environ)
    yield server
    await server.close()


def fingerprints(devcluster: DevCluster) -> list[tuple[int, str]]:
    return [(r.status, r.headers_subset.get("Authorization-Fingerprint", ""))
            for r in devcluster.request_log]


# --- TokenFile on real files ---------------------------------------------------------------


def test_refresh_notices_the_kubelet_symlink_swap(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = TokenFile(devcluster_sa_dir / "token")
    before = token_file.token
    assert token_file.refresh() is False
    rotated = devcluster.rotate_serviceaccount_token(devcluster_sa_dir)
    assert token_file.refresh() is True
    assert token_file.token == rotated != before
    assert token_file.refresh() is False
    text = log_text(caplog)
    assert 'msg="service account token reloaded"' in text
    assert f"token_fp={fingerprint(rotated)}" in text
    assert f"previous_token_fp={fingerprint(before)}" in text
    assert rotated not in text
    assert before not in text


def test_refresh_notices_an_in_place_rewrite(devcluster: DevCluster, tmp_path: Path) -> None:
    folder = devcluster.write_serviceaccount_dir(tmp_path / "sa", layout="flat")
    token_file = TokenFile(folder / "token")
    new = devcluster.service_token()
    with open(folder / "token", "r+") as handle:  # same inode
        handle.write(new)
        handle.truncate()
    assert token_file.refresh() is True
    assert token_file.token == new


def test_reload_reads_what_a_caching_filesystem_hides(
    devcluster: DevCluster, devcluster_sa_dir: Path
) -> None:
    token_file = TokenFile(devcluster_sa_dir / "token", stat=frozen_stat())
    assert token_file.refresh() is False  # the attributes are cached from here on
    rotated = devcluster.rotate_serviceaccount_token(devcluster_sa_dir)
    assert token_file.refresh() is False
    assert token_file.token != rotated
    assert token_file.reload() is True
    assert token_file.token == rotated
    assert token_file.reload() is False


def test_a_vanished_file_keeps_the_last_token_and_warns_once(
    devcluster: DevCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = devcluster.write_serviceaccount_dir(tmp_path / "sa", layout="flat")
    token_file = TokenFile(folder / "token")
    before = token_file.token
    (folder / "token").unlink()
    assert token_file.refresh() is False
    assert token_file.reload() is False
    assert token_file.token == before
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.msg.message for r in warnings] == [
        "service account token file unreadable; keeping the last token"]
    assert str(folder / "token") in warnings[0].getMessage()  # plain logging shows where
    (folder / "token").write_text("")
    assert token_file.refresh() is False  # empty: still the last good token
    assert token_file.token == before
    (folder / "token").write_text(devcluster.service_token() + "\n")
    assert token_file.refresh() is True
    assert not token_file.token.endswith("\n")
    assert "service account token file readable again" in log_text(caplog)


# --- Through the API server -----------------------------------------------------------------


async def test_the_next_api_call_after_a_rotation_uses_the_new_token(
    devcluster: DevCluster, devcluster_sa_dir: Path, api: ApiServer
) -> None:
    client = DiscoveryClient(api)
    await client.fetch()
    old = fingerprint((devcluster_sa_dir / "token").read_text())
    new = fingerprint(devcluster.rotate_serviceaccount_token(devcluster_sa_dir, revoke_old=True))
    await client.fetch()
    # The stat before the call saw the swap: no request ever carried the revoked token again.
    assert fingerprints(devcluster) == [(200, old), (200, old), (200, new), (200, new)]


async def test_a_401_rereads_the_token_and_retries_once(
    devcluster: DevCluster, devcluster_sa_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = in_cluster_environ(devcluster, devcluster_sa_dir)
    api = await connect(settings_from(environ), environ, stat=frozen_stat())
    try:
        old = fingerprint((devcluster_sa_dir / "token").read_text())
        rotated = devcluster.rotate_serviceaccount_token(devcluster_sa_dir, revoke_old=True)
        keys = await DiscoveryClient(api).fetch()
    finally:
        await api.close()
    assert keys.issuer == devcluster.issuer
    new = fingerprint(rotated)
    assert fingerprints(devcluster) == [(401, old), (200, new), (200, new)]
    assert "API server answered 401; retrying once with the re-read token" in log_text(caplog)


async def test_a_tokenreview_is_sent_again_after_a_401(
    devcluster: DevCluster, devcluster_sa_dir: Path
) -> None:
    # The same middleware serves the TokenReview client: a POST body is re-sent as well.
    environ = in_cluster_environ(devcluster, devcluster_sa_dir)
    api = await connect(settings_from(environ), environ, stat=frozen_stat())
    try:
        old = fingerprint((devcluster_sa_dir / "token").read_text())
        new = fingerprint(
            devcluster.rotate_serviceaccount_token(devcluster_sa_dir, revoke_old=True))
        assert await review_once(api, devcluster.mint()) == 201
    finally:
        await api.close()
    assert fingerprints(devcluster) == [(401, old), (201, new)]


async def test_a_401_with_an_unchanged_token_is_not_retried(
    devcluster: DevCluster, devcluster_sa_dir: Path, api: ApiServer
) -> None:
    devcluster.revoke_token((devcluster_sa_dir / "token").read_text())
    with pytest.raises(FetchError, match="answered 401") as caught:
        await DiscoveryClient(api).fetch()
    assert caught.value.status == 401
    assert [status for status, _ in fingerprints(devcluster)] == [401]


async def test_the_running_service_follows_a_rotation(
    start_service: StartService, devcluster: DevCluster
) -> None:
    running = await start_service(in_cluster=True)
    sa_dir = Path(running.environ["AUTH_SERVICEACCOUNT_DIR"])
    rotated = devcluster.rotate_serviceaccount_token(sa_dir, revoke_old=True)
    devcluster.rotate_key()  # a token with a new kid makes the service fetch the JWKS now
    response = await running.get(token=running.token())
    assert response.code == 200, response.body
    assert json.loads(response.body)["service_account"] == "collector"
    jwks_calls = [r for r in devcluster.request_log if r.endpoint == "jwks"]
    assert jwks_calls[-1].status == 200
    assert jwks_calls[-1].headers_subset["Authorization-Fingerprint"] == fingerprint(rotated)
    assert all(record.status == 200 for record in devcluster.request_log)
