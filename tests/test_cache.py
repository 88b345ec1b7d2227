"""Verdict caches: HMAC keys, segmented LRU bound, expiry, dropping entries of keys that left the
set."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import pytest

from compass_auth.core.cache import TokenHasher, VerdictCache

from .conftest import RunningService, StartService


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_hasher_is_keyed_per_process_and_never_contains_the_token() -> None:
    one, other = TokenHasher(), TokenHasher()
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    assert one(token) == one(token)
    assert one(token) != other(token)  # a random key each
    assert len(one(token)) == 32
    assert token.encode() not in one(token)
    assert one("\udcff") != one("x")  # undecodable input never raises


@pytest.mark.parametrize("token", ["", "x", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
                                   "a" * 1130, "a" * 64, "\udcff\u00e9"])
def test_hasher_is_hmac_sha256(token: str) -> None:
    """Its precomputed key states give exactly RFC 2104 HMAC-SHA256 (the stdlib's)."""
    hasher = TokenHasher()
    expected = hmac.digest(hasher._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256)
    assert hasher(token) == expected
    assert hasher(token) == expected  # the precomputed states are not consumed


def test_lru_bound_and_expiry() -> None:
    clock = Clock()
    cache: VerdictCache[str] = VerdictCache(3, clock)
    for index in range(5):
        cache.put(bytes([index]), f"v{index}", lifetime=10)
    assert len(cache) == 3
    assert cache.get(bytes([0])) is None
    assert cache.get(bytes([1])) is None
    assert cache.get(bytes([2])) == "v2"  # now most recently used
    cache.put(bytes([5]), "v5", lifetime=10)
    assert cache.get(bytes([3])) is None  # the least recently used went
    assert cache.get(bytes([2])) == "v2"
    clock.now += 10
    assert cache.get(bytes([2])) is None  # expired
    cache.put(b"x", "never", lifetime=0)
    assert cache.get(b"x") is None


def test_a_flood_of_new_keys_never_evicts_entries_in_use() -> None:
    """Segmented LRU: an entry hit again is protected; keys seen once churn among themselves."""
    cache: VerdictCache[str] = VerdictCache(10, Clock())
    cache.put(b"used", "allow", lifetime=60)
    assert cache.get(b"used") == "allow"  # a second use: promoted
    for index in range(10_000):
        cache.put(index.to_bytes(4, "big"), "junk", lifetime=60)
        assert len(cache) <= 10
    assert cache.get(b"used") == "allow"
    assert cache.get((9_999).to_bytes(4, "big")) == "junk"  # the newest are kept too


def test_plain_lru_would_have_lost_it() -> None:
    """The same flood without a second use: a new entry has no protection (it is new)."""
    cache: VerdictCache[str] = VerdictCache(10, Clock())
    cache.put(b"once", "allow", lifetime=60)
    for index in range(10):
        cache.put(index.to_bytes(4, "big"), "junk", lifetime=60)
    assert cache.get(b"once") is None


def owner_of(key: object) -> object:
    assert isinstance(key, tuple)
    return key[0]


def test_one_owner_holds_at_most_its_share_of_the_protected_entries() -> None:
    """A flooder that hits each of its new keys again (promoting them) pushes out only its own
    protected entries once it holds OWNER_SHARE of the protected segment."""
    cache: VerdictCache[str] = VerdictCache(100, Clock(), owner=owner_of)
    others = [("other", index) for index in range(40)]
    for key in others:
        cache.put(key, "allow", lifetime=60)
        assert cache.get(key) == "allow"
    for index in range(5_000):
        key = ("flooder", index)
        cache.put(key, "deny", lifetime=60)
        assert cache.get(key) == "deny"
        assert len(cache) <= 100
    assert all(cache.get(key) == "allow" for key in others)
    assert cache.get(("flooder", 4_999)) == "deny"


def test_segments_keep_expiry_kids_and_updates() -> None:
    clock = Clock()
    cache: VerdictCache[str] = VerdictCache(5, clock, owner=owner_of)
    cache.put(("a", 1), "v1", lifetime=10, kid="k1")
    assert cache.get(("a", 1)) == "v1"  # protected now
    cache.put(("a", 1), "v2", lifetime=20, kid="k1")  # a new answer for a key in use
    cache.put(("b", 1), "w", lifetime=5, kid="k2")
    assert cache.get(("a", 1)) == "v2"
    clock.now += 10
    assert cache.get(("b", 1)) is None  # expired in probation
    assert cache.get(("a", 1)) == "v2"
    assert cache.retain_kids({"k2"}) == 1  # dropped from the protected segment
    assert cache.get(("a", 1)) is None
    assert len(cache) == 0
    cache.put(("c", 1), "x", lifetime=5)
    assert cache.get(("c", 1)) == "x"
    clock.now += 5
    assert cache.get(("c", 1)) is None  # expired in the protected segment
    assert len(cache) == 0


@pytest.mark.parametrize("capacity", [1, 2, 3, 7])
def test_small_capacities_stay_bounded(capacity: int) -> None:
    cache: VerdictCache[int] = VerdictCache(capacity, Clock(), owner=owner_of)
    for index in range(50):
        cache.put((index % 3, index), index, lifetime=60)
        cache.get((index % 3, index))
        cache.get((index % 3, index - 1))
        assert len(cache) <= capacity
    assert cache.get((49 % 3, 49)) == 49


def test_retain_kids_drops_entries_of_removed_keys() -> None:
    cache: VerdictCache[str] = VerdictCache(10, Clock())
    cache.put(b"a", "a", 10, kid="old")
    cache.put(b"b", "b", 10, kid="new")
    cache.put(b"c", "c", 10, kid=None)
    assert cache.retain_kids({"new"}) == 1
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == (None, "b", "c")


def test_capacity_zero_caches_nothing() -> None:
    cache: VerdictCache[str] = VerdictCache(0, Clock())
    cache.put(b"a", "a", 10)
    assert cache.get(b"a") is None


async def test_cached_answers_never_outlive_the_token(start_service: StartService) -> None:
    running: RunningService = await start_service(AUTH_CLOCK_SKEW="0")
    token = running.token(issued_at=int(time.time()) - 598, lifetime=600)
    assert (await running.get(token=token)).code == 200
    assert (await running.get(token=token)).code == 200  # from the cache
    await asyncio.sleep(2.5)
    response = await running.get(token=token)
    assert response.code == 401


async def test_issuer_change_forgets_cached_tokens(running: RunningService) -> None:
    token = running.token()
    assert (await running.get(token=token)).code == 200
    running.cluster.set_issuer("https://oidc.example.com/cluster-2")
    await running.authenticator.local.keys.refresh()
    response = await running.get(token=token)
    assert response.code == 401
    assert b"issuer_mismatch" in response.body
