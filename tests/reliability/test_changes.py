"""The API server changes under a running service: it flaps, rotates keys, changes its issuer."""

from __future__ import annotations

import asyncio
import time

from compass_auth.testing import DevCluster

from ..conftest import RunningService, StartService
from ..helpers import body
from .conftest import NewKey
from .decisions import Decisions, KeysPublishedAhead
from .recovery import FAST, assert_recovered, readyz

#: Flapping in CI: down and up every half second for four seconds (the soak script flaps
#: longer). Each half is longer than nothing and shorter than AUTH_API_TIMEOUT.
FLAP_PERIOD = 0.5
FLAP_DURATION = 4.0
#: Past FAST's AUTH_JWKS_MIN_REFRESH_INTERVAL (0.2 s): see KeysPublishedAhead.
NEW_KEY_LEAD = 0.3


async def flap(cluster: DevCluster, stop: asyncio.Event) -> int:
    """Pause and resume the emulator every FLAP_PERIOD until ``stop``; returns the outages."""
    outages = 0
    while not stop.is_set():
        await asyncio.to_thread(cluster.pause)
        outages += 1
        await asyncio.sleep(FLAP_PERIOD)
        await asyncio.to_thread(cluster.resume)
        await asyncio.sleep(FLAP_PERIOD)
    return outages


async def test_flapping_api_server_from_start(
    devcluster: DevCluster, start_service: StartService
) -> None:
    stop = asyncio.Event()
    flapper = asyncio.create_task(flap(devcluster, stop))
    # Started while the API server flaps: it sees start-up retries, fallback and recovery.
    running: RunningService = await start_service(wait=False, **FAST)
    decisions = Decisions()
    paths: set[str] = set()
    # Each new key is used once, for the first time, while the API server flaps.
    new_keys = KeysPublishedAhead(devcluster, lead=NEW_KEY_LEAD)
    deadline = time.monotonic() + FLAP_DURATION
    try:
        while time.monotonic() < deadline:
            with new_keys.next_key() as new_kid:
                tokens = {"valid": running.token()}
                if new_kid is not None:
                    tokens["valid, new kid"] = running.token(key_id=new_kid)
                await decisions.probe(running, tokens)
            code, status = await readyz(running)
            assert code in (200, 503)
            paths.add(status["path"])
    finally:
        stop.set()
        outages = await flapper
        new_keys.close()
    decisions.assert_none_wrong()
    assert outages >= FLAP_DURATION / (2 * FLAP_PERIOD) - 1
    assert decisions.count("valid", 200) > 0  # it served whenever it could
    assert decisions.count("valid, new kid", 200) > 0
    await asyncio.sleep(1.2)  # let TokenReview's memory of the last outage fade
    await assert_recovered(running)


async def test_key_rotation_with_overlap(start_service: StartService, new_key: NewKey) -> None:
    running: RunningService = await start_service(**FAST)
    cluster = running.cluster
    old_kid = new_key("RSA")
    old_token = running.token(key_id=old_kid)
    assert (await running.get(token=old_token)).code == 200
    # Rotation step 1: the new key is published next to the old one.
    new_kid = new_key("RSA")
    await asyncio.sleep(0.25)
    new_token = running.token(key_id=new_kid)
    for token in (old_token, new_token):
        response = await running.get(token=token)
        assert (response.code, body(response)["verified_by"]) == (200, "jwks")
    # Step 2: the old key is removed. Until our next refresh it is still in our snapshot.
    cluster.remove_key(old_kid)
    assert (await running.get(token=old_token)).code == 200
    # Any refresh drops it: here the refetch an unknown kid triggers.
    await asyncio.sleep(0.25)
    reviews_before = running.api_calls("tokenreview")
    trigger = running.token(header_override={"kid": "rotation-trigger"})
    assert body(await running.get(token=trigger))["reason"] == "unknown_key"
    code, status = await readyz(running)
    assert (code, new_kid in status["keys"], old_kid in status["keys"]) == (200, True, False)
    for token in (old_token, running.token(key_id=old_kid)):  # also one minted just now
        response = await running.get(token=token)
        assert (response.code, body(response)["reason"]) == (401, "unknown_key")
    assert running.api_calls("tokenreview") == reviews_before  # the JWKS answered: no review
    response = await running.get(token=running.token(key_id=new_kid))
    assert (response.code, body(response)["verified_by"]) == (200, "jwks")


async def test_issuer_change_is_picked_up_on_first_sight(
    start_service: StartService,
) -> None:
    running: RunningService = await start_service(**FAST)
    cluster = running.cluster
    old_issuer = cluster.issuer
    old_token = running.token()
    assert (await running.get(token=old_token)).code == 200
    cluster.set_issuer("https://oidc.example.invalid/cluster-2")
    new_token = running.token()  # minted with the new issuer
    # The first token naming another issuer makes the service look at discovery again (rate
    # limited like unknown kids): the migration is seen at once, not at the next refresh.
    jwks_before = running.api_calls("jwks")
    response = await running.get(token=new_token)
    assert (response.code, body(response)["verified_by"]) == (200, "jwks")
    assert running.api_calls("jwks") == jwks_before + 1
    code, status = await readyz(running)
    assert (code, status["issuer"]) == (200, "https://oidc.example.invalid/cluster-2")
    # Tokens of the old issuer are refused from now on, though the API server still accepts
    # them: pin both issuers in AUTH_ISSUER for a migration (next test, docs/reliability.md).
    response = await running.get(token=old_token)
    assert (response.code, body(response)["reason"]) == (401, "issuer_mismatch")
    assert old_issuer != cluster.issuer
    decisions = Decisions()
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()


async def test_tokens_naming_random_issuers_cost_at_most_one_fetch_per_cool_down(
    start_service: StartService,
) -> None:
    running: RunningService = await start_service(AUTH_JWKS_MIN_REFRESH_INTERVAL="60")
    jwks_before = running.api_calls("jwks")
    for index in range(300):
        token = running.token(issuer=f"https://junk-{index}.example.invalid")
        response = await running.get(token=token)
        assert (response.code, body(response)["reason"]) == (401, "issuer_mismatch")
    assert running.api_calls("jwks") - jwks_before <= 1
    assert (await running.get(token=running.token())).code == 200


async def test_issuer_migration_with_both_issuers_pinned(
    devcluster: DevCluster, start_service: StartService
) -> None:
    old_issuer, new_issuer = devcluster.issuer, "https://oidc.example.invalid/cluster-2"
    running: RunningService = await start_service(
        AUTH_ISSUER=f"{old_issuer},{new_issuer}", **FAST)
    old_token = running.token()
    devcluster.set_issuer(new_issuer)
    new_token = running.token()
    for _ in range(2):  # before and after a refresh
        for token in (old_token, new_token):
            response = await running.get(token=token)
            assert (response.code, body(response)["verified_by"]) == (200, "jwks")
        await running.authenticator.local.keys.refresh()
    foreign = running.token(issuer="https://evil.example.invalid")
    response = await running.get(token=foreign)
    assert (response.code, body(response)["reason"]) == (401, "issuer_mismatch")
