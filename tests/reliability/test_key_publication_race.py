"""A token whose key was published while a JWKS fetch was already under way.

The request joins the fetch in flight (singleflight), whose answer predates the key. Found by the
flapping test: the valid token got 401 ``unknown_key``, and its kid was remembered as unknown for
five minutes. The fix: one follow-up fetch (shared, at most one per cool-down), and a kid is
remembered as unknown only when a fetch that started after the request missed it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..test_keys import Clock, FakeFetch, jwks_pair, make_cache

__all__ = ["jwks_pair"]


async def test_a_key_published_during_a_fetch_is_found_by_a_follow_up(jwks_pair: Any) -> None:
    first, second = jwks_pair  # the second document adds a key
    new_kid = next(key["kid"] for key in second["keys"] if key not in first["keys"])
    # Seed, the fetch under way (it left before the key was published), the follow-up.
    fetch, clock = FakeFetch([first, first, second]), Clock()
    cache = make_cache(fetch, clock)
    await cache.refresh()
    clock.now += 11  # past the cool-down
    fetch.gate = asyncio.Event()
    junk = asyncio.create_task(cache.refresh_for_kid("junk"))  # starts the fetch
    await asyncio.sleep(0)
    clock.now += 0.01  # the key is published, a token signed with it arrives
    valid = asyncio.create_task(cache.refresh_for_kid(new_kid))
    await asyncio.sleep(0)
    fetch.gate.set()
    snapshot = await valid
    assert snapshot.get(new_kid) is not None
    assert fetch.calls == [False, True, True]  # one follow-up
    assert (await junk).get("junk") is None


async def test_a_flood_of_late_joiners_costs_two_fetches_per_cooldown(jwks_pair: Any) -> None:
    first, _ = jwks_pair
    fetch, clock = FakeFetch([first]), Clock()
    cache = make_cache(fetch, clock)
    await cache.refresh()
    for cycle in range(3):
        clock.now += 11  # a new cool-down
        fetch.gate = asyncio.Event()
        starter = asyncio.create_task(cache.refresh_for_kid(f"starter-{cycle}"))
        await asyncio.sleep(0)
        clock.now += 0.01
        late = [asyncio.create_task(cache.refresh_for_kid(f"late-{cycle}-{i}"))
                for i in range(50)]
        await asyncio.sleep(0)
        fetch.gate.set()
        await asyncio.gather(starter, *late)
        # The fetch, and one follow-up shared by fifty late joiners.
        assert len(fetch.calls) == 1 + 2 * (cycle + 1)
    # The follow-up started after they arrived and missed them: now they are unknown, and
    # asking again costs nothing.
    clock.now += 11
    await cache.refresh_for_kid("late-2-7")
    assert len(fetch.calls) == 7
