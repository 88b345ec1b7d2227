"""Look-ups for what a token names that the key set lacks: an unknown kid, another issuer.

The rule, stated once in docs/reliability.md ("Unknown kids"): a name counts as unknown only
once a fetch that started after it was first asked for came back without it; fetches start at
least one cool-down (``AUTH_JWKS_MIN_REFRESH_INTERVAL``) apart, whatever asked for them; a name
asked for during a cool-down gets a fetch at its end. ``KeyCache`` owns the fetches; this module
decides when one is needed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from .errors import KeysUnavailable
from .keyset import KeySet

if TYPE_CHECKING:  # keys.py imports this module
    from .keys import KeyCache

#: How long a kid is remembered after it was first asked for: once a fetch that started after
#: that moment has come back without it, no request for it causes another fetch until then.
#: Key rotation publishes a new public key to every API server before any signs with it
#: (docs/kubernetes-api.md#key-rotation-and-caching), so a kid that such a fetch did not contain
#: is not expected to become valid within minutes; the background refresh would pick it up.
NEGATIVE_KID_TTL = 300.0
#: Bound on remembered kids: a flood of random kids evicts the oldest, never grows memory.
NEGATIVE_KID_CAPACITY = 4096

class FirstAsks:
    """When each unknown name (a kid, ``"issuer X"``) was first asked for, oldest first: bounded
    by ``NEGATIVE_KID_CAPACITY`` (the oldest go first) and by ``NEGATIVE_KID_TTL``."""

    def __init__(self) -> None:
        self._asked: OrderedDict[str, float] = OrderedDict()

    def note(self, name: str, now: float) -> float:
        """Remember ``name`` unless it is known; return when it was first asked for."""
        asked = self._asked
        while asked:
            oldest, when = next(iter(asked.items()))
            if now - when < NEGATIVE_KID_TTL and len(asked) < NEGATIVE_KID_CAPACITY:
                break
            del asked[oldest]
        # Not moved to the end when asked again: the order stays that of first asks.
        return asked.setdefault(name, now)

    def forget(self, names: Iterable[str]) -> None:
        for name in names:
            self._asked.pop(name, None)

    def newest(self) -> float | None:
        """When the most recent first ask was, if any is remembered."""
        return next(reversed(self._asked.values())) if self._asked else None

    def __len__(self) -> int:
        return len(self._asked)

    def names(self) -> list[str]:
        return list(self._asked)


class UnknownNames:
    """Decides, for each name a token brings that the snapshot lacks, whether to fetch now, join
    the fetch under way, answer from the snapshot, or fetch at the end of the cool-down."""

    def __init__(
        self,
        cache: KeyCache,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._cache = cache
        self._clock = clock
        self._sleep = sleep
        self._first_asked = FirstAsks()
        #: The fetch at the end of a cool-down for what was asked for during it.
        self._trailing: asyncio.Task[None] | None = None

    async def look_for(self, unknown: str, found: Callable[[KeySet], bool]) -> KeySet:
        """Look for something a token names that the snapshot lacks (``found`` is false).

        ``unknown`` counts as unknown only once a fetch that *started after it was first asked
        for* came back without it; until ``NEGATIVE_KID_TTL`` after that first ask, asking again
        costs nothing. Otherwise a fetch is made now when the cool-down since the last one has
        passed, or joined when one is under way; else the current snapshot answers (the caller
        refuses the token, nothing is remembered) and a fetch is scheduled for the end of the
        cool-down. So whatever is published at any moment is usable within one cool-down plus
        one fetch, and however many distinct names a flood brings, fetches start at least
        the cool-down apart.

        Returns the (possibly unchanged) snapshot. Raises ``KeysUnavailable`` when the most
        recent fetch failed, so the caller can tell "unknown" (401) from "could not check"
        (fallback or 503).
        """
        now = self._clock()
        first_asked = self._first_asked.note(unknown, now)
        cache = self._cache
        if cache.fetched_from is not None and cache.fetched_from >= first_asked:
            return self._current_or_unavailable()  # looked for since, and not found
        started = cache.fetch_started
        if started is None and now >= cache.next_fetch_allowed():
            return await cache.refresh(force=True)
        if started is not None:
            snapshot = await cache.refresh(force=True)
            if started >= first_asked or found(snapshot):
                return snapshot
        self._schedule_trailing_fetch()
        return self._current_or_unavailable()

    def forget(self, names: Iterable[str]) -> None:
        """What the new snapshot holds is no longer unknown."""
        self._first_asked.forget(names)

    def remembered(self) -> list[str]:
        """The names remembered, oldest first."""
        return self._first_asked.names()

    def stop(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()

    def _current_or_unavailable(self) -> KeySet:
        current = self._cache.snapshot()
        error = self._cache.last_error
        if current is None or error is not None:
            raise KeysUnavailable(f"key refresh failed: {error or 'no keys'}")
        return current

    def _schedule_trailing_fetch(self) -> None:
        if self._trailing is None:
            self._trailing = asyncio.create_task(
                self._trailing_fetch(), name="compass-auth-unknown-kid-fetch"
            )

    async def _trailing_fetch(self) -> None:
        """At the end of the cool-down, look for what was asked for since the last fetch
        started; again after each fetch while something asked for later remains unanswered.
        Stops when a fetch fails: the background loop's retries take over."""
        try:
            while (newest := self._first_asked.newest()) is not None and (
                    self._cache.fetched_from is None or newest > self._cache.fetched_from):
                wait = self._cache.next_fetch_allowed() - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                else:
                    await self._cache.refresh(force=True)  # starts a fetch, or joins one
        except KeysUnavailable:
            pass
        finally:
            self._trailing = None


def issuer_entry(issuer: str) -> str:
    """How an unknown issuer is remembered beside unknown kids."""
    return "issuer " + issuer
