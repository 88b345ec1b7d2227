"""The key cache with a fake fetch and a fake clock: singleflight, cool-down, stale limit, and
when a kid counts as unknown (issue 11: a key published within one cool-down of any fetch was
refused until the periodic refresh)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from compass_auth.core.errors import KeysUnavailable
from compass_auth.core.keyset import KeySet
from compass_auth.keys.cache import KeyCache
from compass_auth.keys.unknown import NEGATIVE_KID_CAPACITY, NEGATIVE_KID_TTL, UnknownNames
from compass_auth.testing import DevCluster

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
    def __init__(self, jump: bool = True) -> None:
        self.now = 1000.0
        #: What the cache asked to sleep for (its fetch at the end of a cool-down).
        self.sleeps: list[float] = []
        self.jump = jump

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """With ``jump``, the cache's sleep ends at once and moves the clock on; without, it
        ends when the test has moved the clock that far."""
        self.sleeps.append(seconds)
        if self.jump:
            self.now += seconds
        wake = self.now + seconds if not self.jump else self.now
        while self.now < wake:
            await asyncio.sleep(0)
        await asyncio.sleep(0)


class TimedFetch(FakeFetch):
    """Records when each fetch started (fake clock)."""

    def __init__(self, documents: list[dict[str, Any]], clock: Clock) -> None:
        super().__init__(documents)
        self.clock = clock
        self.started: list[float] = []

    async def __call__(self, force: bool) -> KeySet:
        self.started.append(self.clock.now)
        return await super().__call__(force)


def make_cache(fetch: FakeFetch, clock: Clock, **overrides: float) -> KeyCache:
    settings = {"refresh_interval": 300.0, "min_refresh_interval": 10.0, "max_stale": 3600.0,
                "retry_interval": 60.0}
    settings.update(overrides)
    return KeyCache(fetch, clock=clock, uniform=lambda a, b: 1.0, **settings)


def unknown_names(cache: KeyCache, clock: Clock) -> UnknownNames:
    """The memory of unknown kids over ``cache``, on the same fake clock."""
    return UnknownNames(cache, clock=clock, sleep=clock.sleep)


async def settle() -> None:
    """Let background tasks (the fetch at the end of a cool-down) run to completion."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_concurrent_unknown_kids_share_one_fetch(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    fetch.gate = asyncio.Event()
    waiters = [asyncio.create_task(unknown.look_for_kid("new")) for _ in range(100)]
    await asyncio.sleep(0)
    fetch.gate.set()
    results = await asyncio.gather(*waiters)
    assert fetch.calls == [True]  # one forced fetch for a hundred waiters
    assert all(result is results[0] for result in results)


async def test_unknown_kid_refetches_at_most_once_per_cooldown(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    clock.now += 11
    for index in range(1000):  # a flood of distinct random kids within one cool-down
        await unknown.look_for_kid(f"random-{index}")
    assert len(fetch.calls) == 2
    clock.now += 11
    await unknown.look_for_kid("random-0")  # remembered as unknown: no refetch for it
    assert len(fetch.calls) == 2
    await unknown.look_for_kid("another")  # a new kid after the cool-down: one refetch
    assert len(fetch.calls) == 3


async def test_remembered_kids_are_bounded_and_expire(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    clock.now += 11
    for index in range(NEGATIVE_KID_CAPACITY + 500):
        await unknown.look_for_kid(f"kid-{index}")
    assert len(unknown.remembered()) <= NEGATIVE_KID_CAPACITY
    assert "kid-0" not in unknown.remembered()  # the oldest went first
    clock.now += NEGATIVE_KID_TTL + 1
    await unknown.look_for_kid("one more")
    assert unknown.remembered() == ["one more"]


async def test_one_unknown_kid_replayed_costs_one_fetch(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    clock.now += 11
    for _ in range(20_000):  # the same rejected token, replayed (0.1 ms apart)
        await unknown.look_for_kid("forged")
        clock.now += 0.0001
    await settle()
    assert len(fetch.calls) == 2  # the start, and one fetch that showed "forged" is unknown
    assert len(unknown.remembered()) == 1


async def test_a_key_published_just_after_a_fetch_is_found_within_one_cool_down(
    jwks_pair: Any,
) -> None:
    """The defect of issue 11: a random kid triggers a fetch, then a key is published and used
    at once. It used to be remembered as unknown without any fetch looking for it, and every
    retry extended that memory: refused until the periodic refresh (300 s)."""
    first, second = jwks_pair
    new_kid = next(key["kid"] for key in second["keys"] if key not in first["keys"])
    fetch, clock = TimedFetch([first, first, second], clock=(clock := Clock())), clock
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    clock.now += 11
    await unknown.look_for_kid("random")  # a fetch now: the cool-down starts again
    clock.now += 1  # the key is published and a client uses it at once
    assert (await unknown.look_for_kid(new_kid)).get(new_kid) is None  # 401 for now
    for _ in range(5):  # its retries cost nothing and extend nothing
        clock.now += 0.5
        assert (await unknown.look_for_kid(new_kid)).get(new_kid) is None
    await settle()  # the fetch scheduled for the end of the cool-down
    snapshot = cache.snapshot()
    assert snapshot is not None
    assert snapshot.get(new_kid) is not None
    assert fetch.started == [1000.0, 1011.0, 1021.0]  # exactly one cool-down after the last


async def test_a_key_published_during_a_fetch_is_found_at_the_end_of_the_cool_down(
    jwks_pair: Any,
) -> None:
    """A request that joins a fetch which left before its key was published: that fetch says
    nothing about the kid, so the kid is not remembered, and a fetch follows after the
    cool-down."""
    first, second = jwks_pair
    new_kid = next(key["kid"] for key in second["keys"] if key not in first["keys"])
    fetch, clock = FakeFetch([first, first, second]), Clock()
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    clock.now += 11
    fetch.gate = asyncio.Event()
    junk = asyncio.create_task(unknown.look_for_kid("junk"))  # starts the fetch
    await asyncio.sleep(0)
    clock.now += 0.01  # the key is published, a token signed with it arrives
    valid = asyncio.create_task(unknown.look_for_kid(new_kid))
    await asyncio.sleep(0)
    fetch.gate.set()
    assert (await valid).get(new_kid) is None  # the fetch it joined predates the key
    assert (await junk).get("junk") is None
    await settle()
    assert fetch.calls == [False, True, True]
    assert clock.sleeps == [pytest.approx(10.0 - 0.01)]
    assert cache.snapshot() is not None
    assert cache.snapshot().get(new_kid) is not None
    await unknown.look_for_kid("junk")  # the later fetch missed it too: unknown, no fetch
    await settle()
    assert len(fetch.calls) == 3


async def test_a_flood_of_distinct_kids_costs_one_fetch_per_cool_down(jwks_pair: Any) -> None:
    """100 random kids a second for 100 s; a key is published at 1035 s (in the middle of a
    cool-down) and used at once, and again with every request after."""
    first, second = jwks_pair
    new_kid = next(key["kid"] for key in second["keys"] if key not in first["keys"])
    clock = Clock(jump=False)
    published_at = clock.now + 35.0

    class Publishing(TimedFetch):
        async def __call__(self, force: bool) -> KeySet:
            self.calls.append(force)
            self.started.append(self.clock.now)
            return KeySet.from_jwks(second if self.clock.now >= published_at else first, ISSUER)

    fetch = Publishing([], clock)
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    found_at = None
    for index in range(10_000):
        clock.now += 0.01
        kid = new_kid if clock.now >= published_at else f"random-{index}"
        snapshot = cache.snapshot()
        if snapshot is not None and snapshot.get(kid) is not None:
            found_at = found_at or clock.now
            kid = f"random-{index}"
        await unknown.look_for_kid(kid)
        await asyncio.sleep(0)  # the scheduled fetch runs when its time has come
    gaps = [later - earlier for earlier, later in itertools.pairwise(fetch.started)]
    assert min(gaps) >= 10.0 - 1e-6  # never two fetches within one cool-down
    assert len(fetch.started) <= 1 + 100 / 10 + 1
    assert found_at is not None
    assert found_at - published_at <= 10.0 + 0.02  # within one cool-down (plus a tick)


async def test_new_key_is_found_by_the_forced_refresh(jwks_pair: Any) -> None:
    first, second = jwks_pair
    fetch, clock = FakeFetch([first, second]), Clock()
    cache = make_cache(fetch, clock)
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    new_kid = next(key["kid"] for key in second["keys"] if key["kty"] == "EC")
    assert cache.snapshot() is not None
    assert cache.snapshot().get(new_kid) is None
    clock.now += 11
    snapshot = await unknown.look_for_kid(new_kid)
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
    unknown = unknown_names(cache, clock)
    await cache.refresh()
    fetch.fail = ConnectionError("down")
    clock.now += 11
    with pytest.raises(KeysUnavailable):
        await unknown.look_for_kid("new")  # the fetch it triggered failed
    with pytest.raises(KeysUnavailable):
        await unknown.look_for_kid("other")  # within the cool-down, last fetch failed


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
