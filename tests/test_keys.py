"""The key cache with a fake fetch and a fake clock: singleflight, cool-down, stale limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from service.auth.errors import KeysUnavailable
from service.auth.keys import NEGATIVE_KID_CAPACITY, NEGATIVE_KID_TTL, KeyCache
from service.auth.keyset import KeySet
from service.devcluster import DevCluster

ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def jwks_pair() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Two JWKS documents: the first key set, then with a second key added."""
    with DevCluster(issuer=ISSUER) as cluster:
        first = cluster.jwks()
        cluster.add_key("EC")
        yield first, cluster.jwks()


class FakeFetch:
    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.documents = documents
        self.calls: list[bool] = []
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, force: bool) -> KeySet:
        self.calls.append(force)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return KeySet.from_jwks(self.documents[min(len(self.calls), len(self.documents)) - 1],
                                ISSUER)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(fetch: FakeFetch, clock: Clock, **overrides: float) -> KeyCache:
    settings = {"refresh_interval": 300.0, "min_refresh_interval": 10.0, "max_stale": 3600.0,
                "retry_interval": 60.0}
    settings.update(overrides)
    return KeyCache(fetch, clock=clock, uniform=lambda a, b: 1.0, **settings)


async def test_concurrent_unknown_kids_share_one_fetch(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    fetch.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.refresh_for_kid("new")) for _ in range(100)]
    await asyncio.sleep(0)
    fetch.gate.set()
    results = await asyncio.gather(*waiters)
    assert fetch.calls == [True]  # one forced fetch for a hundred waiters
    assert all(result is results[0] for result in results)


async def test_unknown_kid_refetches_at_most_once_per_cooldown(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    await cache.refresh()
    clock.now += 11
    for index in range(1000):  # a flood of distinct random kids within one cool-down
        await cache.refresh_for_kid(f"random-{index}")
    assert len(fetch.calls) == 2
    clock.now += 11
    await cache.refresh_for_kid("random-0")  # remembered as unknown: no refetch for it
    assert len(fetch.calls) == 2
    await cache.refresh_for_kid("another")  # a new kid after the cool-down: one refetch
    assert len(fetch.calls) == 3


async def test_negative_cache_is_bounded_and_expires(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock, min_refresh_interval=0.0)
    await cache.refresh()
    for index in range(NEGATIVE_KID_CAPACITY + 500):
        cache._remember_unknown(f"kid-{index}", clock.now)
    assert len(cache._unknown_kids) == NEGATIVE_KID_CAPACITY
    assert "kid-0" not in cache._unknown_kids  # the oldest went first
    clock.now += NEGATIVE_KID_TTL + 1
    cache._expire_unknown(clock.now)
    assert not cache._unknown_kids


async def test_new_key_is_found_by_the_forced_refresh(jwks_pair: Any) -> None:
    first, second = jwks_pair
    fetch, clock = FakeFetch([first, second]), Clock()
    cache = make_cache(fetch, clock)
    await cache.refresh()
    new_kid = next(key["kid"] for key in second["keys"] if key["kty"] == "EC")
    assert cache.snapshot() is not None
    assert cache.snapshot().get(new_kid) is None
    clock.now += 11
    snapshot = await cache.refresh_for_kid(new_kid)
    assert snapshot.get(new_kid) is not None
    assert fetch.calls == [False, True]


async def test_failed_refresh_keeps_the_last_good_keys_until_stale(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock, max_stale=600.0)
    good = await cache.refresh()
    fetch.fail = ConnectionError("API server down")
    clock.now += 100
    with pytest.raises(KeysUnavailable):
        await cache.refresh()
    assert cache.snapshot() is good
    assert cache.last_error == "API server down"
    clock.now += 501
    assert cache.snapshot() is None  # stale beyond max_stale: no longer trusted
    fetch.fail = None
    await cache.refresh()
    assert cache.snapshot() is not None
    assert cache.last_error is None


async def test_unknown_kid_after_a_failed_refresh_says_unavailable(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    await cache.refresh()
    fetch.fail = ConnectionError("down")
    clock.now += 11
    with pytest.raises(KeysUnavailable):
        await cache.refresh_for_kid("new")  # the fetch it triggered failed
    with pytest.raises(KeysUnavailable):
        await cache.refresh_for_kid("other")  # within the cool-down, last fetch failed


async def test_removed_keys_leave_the_snapshot_and_listeners_hear(jwks_pair: Any) -> None:
    first, second = jwks_pair
    fetch, clock = FakeFetch([second, first]), Clock()
    cache = make_cache(fetch, clock)
    seen: list[tuple[Any, Any]] = []
    cache.add_listener(lambda old, new: seen.append((old, new)))
    before = await cache.refresh()
    after = await cache.refresh()
    assert len(before.keys) == 2
    assert len(after.keys) == 1
    assert seen == [(None, before), (before, after)]


async def test_background_loop_refreshes_and_stops(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock, refresh_interval=0.01, retry_interval=0.01)
    stop = asyncio.Event()
    loop = asyncio.create_task(cache.run(stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(loop, 1)
    assert len(fetch.calls) >= 3
    assert all(force is False for force in fetch.calls)


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    fetch.gate = asyncio.Event()
    impatient = asyncio.create_task(cache.refresh())
    patient = asyncio.create_task(cache.refresh())
    await asyncio.sleep(0)
    impatient.cancel()
    fetch.gate.set()
    assert (await patient).issuer == ISSUER
    assert fetch.calls == [False]
