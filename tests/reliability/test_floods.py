"""Floods, bounded and on loopback: the API server is protected and valid callers keep being
served. ``COMPASS_FLOOD_REQUESTS`` sets the size (default: the issue's 10,000; about 10-15 s
each on two cores)."""

from __future__ import annotations

import asyncio
import os
import secrets

from compass_auth.apiserver.tokenreview import TokenReviewer
from compass_auth.core.errors import ReviewRejected
from compass_auth.testing import DevCluster, Fault

from ..conftest import RunningService, StartService
from .flood import flood, interleaved, random_kid, with_claim, with_header

REQUESTS = int(os.environ.get("COMPASS_FLOOD_REQUESTS", "10000"))


async def test_random_unknown_kids_stay_within_the_refetch_rate_limit(
    start_service: StartService,
) -> None:
    running: RunningService = await start_service(AUTH_JWKS_MIN_REFRESH_INTERVAL="1")
    template = running.token()
    valid = running.token()
    jwks_before = running.api_calls("jwks")
    result = await flood(running.base_url, REQUESTS, interleaved(
        junk=lambda _: with_header(template, {"alg": "RS256", "kid": random_kid()}),
        valid=lambda _: valid,
    ))
    fetches = running.api_calls("jwks") - jwks_before
    print(f"\nunknown kids: {REQUESTS} requests in {result.seconds:.1f}s "
          f"({result.rate:.0f}/s), JWKS fetches {fetches}, answers {dict(result.statuses)}")
    assert result.count("junk") == result.count("junk", 401)
    assert set(result.reasons) == {("junk", "unknown_key")}
    assert result.count("valid") == result.count("valid", 200)
    # Fetches start at least one cool-down apart (AUTH_JWKS_MIN_REFRESH_INTERVAL=1): at most
    # one per second of flood, plus the first.
    assert fetches <= result.seconds / 1.0 + 1


async def test_distinct_invalid_tokens_in_fallback_cost_bounded_reviews(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))  # TokenReview verifies everything
    # Cache TTLs longer than any CI run of the flood, so nothing expires halfway.
    running: RunningService = await start_service(
        AUTH_REDISCOVERY_INTERVAL="60", AUTH_TOKENREVIEW_NEGATIVE_TTL="600",
        AUTH_TOKENREVIEW_CACHE_TTL="600")
    reviewer = running.authenticator.review.reviewer
    known = [running.token(pod=f"known-{index}") for index in range(5)]
    for token in known:  # callers seen before the flood: cached for 120 s
        assert (await running.get(token=token)).code == 200
    template = running.token()
    # Each invalid token (a claim changed: bad signature, for the API server to find) is sent
    # twice in a row; REQUESTS / 2 distinct ones in all.
    junk = [with_claim(template, "jti", secrets.token_hex(8)) for _ in range(REQUESTS // 2)]

    def plan(index: int) -> tuple[str, str]:
        if index % 100 == 0:
            return "new valid", running.token(pod=f"new-{index}")
        if index % 50 == 0:
            return "known valid", known[index % len(known)]
        return "junk", junk[(index // 2) % len(junk)]

    most_in_flight = 0

    async def watch_in_flight(stop: asyncio.Event) -> None:
        nonlocal most_in_flight
        while not stop.is_set():
            most_in_flight = max(most_in_flight, reviewer.in_flight())
            await asyncio.sleep(0)

    reviews_before = running.api_calls("tokenreview")
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_in_flight(stop))
    result = await flood(running.base_url, REQUESTS, plan)
    stop.set()
    await watcher
    reviews = running.api_calls("tokenreview") - reviews_before
    print(f"\nfallback flood: {REQUESTS} requests in {result.seconds:.1f}s "
          f"({result.rate:.0f}/s), TokenReviews {reviews}, most in flight {most_in_flight}, "
          f"answers {dict(result.statuses)}, reasons {dict(result.reasons)}")
    cap = running.authenticator.settings.tokenreview_max_in_flight
    assert most_in_flight <= cap
    # Never accepted; refused by the API server (401) or shed by the cap (503).
    assert result.count("junk") == (result.count("junk", 401) + result.count("junk", 503))
    # Known callers are answered from the cache throughout; new ones get 200 or, when the cap
    # is full, 503 with Retry-After: never 401.
    assert result.count("known valid") == result.count("known valid", 200)
    assert result.count("new valid") == (result.count("new valid", 200)
                                         + result.count("new valid", 503))
    # One review per refused token at most: its repeat is answered by the negative cache (or
    # joins the review in flight); sheds cost none.
    assert reviews <= result.count("junk", 401) + result.count("new valid", 200)
    assert reviews <= len(junk) + result.count("new valid")
    # Replaying the refused tokens costs the API server nothing (negative cache, 30 s).
    refused = [token for token in junk if rejected_from_cache(reviewer, token)]
    assert len(refused) >= result.count("junk", 401) // 2 - 1
    before = running.api_calls("tokenreview")
    replay = await flood(running.base_url, len(refused), lambda i: ("refused", refused[i]))
    assert replay.count("refused") == replay.count("refused", 401)
    assert set(replay.reasons) == {("refused", "review_rejected")}
    assert running.api_calls("tokenreview") == before


def rejected_from_cache(reviewer: TokenReviewer, token: str) -> bool:
    try:
        return reviewer.cached(reviewer.hasher(token)) is not None
    except ReviewRejected:
        return True
