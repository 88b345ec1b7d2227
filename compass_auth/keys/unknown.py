"""Look-ups for what a token names that the key set lacks: an unknown kid, another issuer.

The rule, stated once in docs/reliability.md ("Unknown kids"): a name counts as unknown only
once a fetch that started after it was first asked for came back without it; fetches start at
least one cool-down (``AUTH_JWKS_MIN_REFRESH_INTERVAL``) apart, whatever asked for them; a name
asked for during a cool-down gets a fetch at its end. The key cache (keys/cache.py) owns the fetches
and records them in its ``FetchSchedule`` (keys/schedule.py, the rule itself); this module
remembers when each name was first asked for and asks the schedule what to do. It reaches the
cache through the small ``KeySource`` protocol below, so neither module imports the other.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from ..core.errors import KeysUnavailable
from ..core.keyset import KeySet
from .schedule import FetchSchedule

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


class KeySource(Protocol):
    """What ``UnknownNames`` needs of the key cache (``keys.KeyCache`` has it)."""

    @property
    def schedule(self) -> FetchSchedule: ...

    async def refresh(self, *, force: bool = False) -> KeySet: ...

    def current_or_unavailable(self) -> KeySet: ...

    def add_listener(self, listener: Callable[[KeySet | None, KeySet], None]) -> None: ...


class UnknownNames:
    """Decides, for each name a token brings that the snapshot lacks, whether to fetch now, join
    the fetch under way, answer from the snapshot, or fetch at the end of the cool-down.

    ``clock`` must be the key cache's (both record moments in its ``FetchSchedule``)."""

    def __init__(
        self,
        keys: KeySource,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._keys = keys
        self._schedule = keys.schedule
        self._clock = clock
        self._sleep = sleep
        self._first_asked = FirstAsks()
        #: The fetch at the end of a cool-down for what was asked for during it.
        self._trailing: asyncio.Task[None] | None = None
        keys.add_listener(self._on_keys)

    async def look_for_kid(self, kid: str) -> KeySet:
        """For a token whose ``kid`` is not in the snapshot: the (possibly unchanged) snapshot;
        ``KeysUnavailable`` when the latest fetch failed."""
        return await self.look_for(kid, lambda snapshot: snapshot.get(kid) is not None)

    async def look_for_issuer(self, issuer: str) -> KeySet:
        """For a token that names an issuer other than the declared one: discovery may have
        changed its issuer since the last refresh. Same limits as an unknown kid."""
        return await self.look_for(issuer_entry(issuer),
                                   lambda snapshot: snapshot.issuer == issuer)

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
        plan = self._schedule.plan(first_asked, now)
        if plan == "answered":
            return self._keys.current_or_unavailable()  # looked for since, and not found
        if plan in ("fetch", "join"):
            return await self._keys.refresh(force=True)
        if plan == "join_then_check":
            snapshot = await self._keys.refresh(force=True)
            if found(snapshot):
                return snapshot
        self._schedule_trailing_fetch()
        return self._keys.current_or_unavailable()

    def _on_keys(self, previous: KeySet | None, current: KeySet) -> None:
        """What the new snapshot holds is no longer unknown."""
        self._first_asked.forget([*current.keys, issuer_entry(current.issuer)])

    def remembered(self) -> list[str]:
        """The names remembered, oldest first."""
        return self._first_asked.names()

    def stop(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()

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
            while self._schedule.unanswered(self._first_asked.newest()):
                wait = self._schedule.next_allowed() - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                else:
                    await self._keys.refresh(force=True)  # starts a fetch, or joins one
        except KeysUnavailable:
            pass
        finally:
            self._trailing = None


def issuer_entry(issuer: str) -> str:
    """How an unknown issuer is remembered beside unknown kids."""
    return "issuer " + issuer
