"""When the next fetch of the key set may start: the cool-down rule, stated once, without I/O.

docs/reliability.md ("Unknown kids") states the rule: fetches start at least one cool-down
(``AUTH_JWKS_MIN_REFRESH_INTERVAL``) apart, whatever asked for them, and not before a
``Retry-After`` the API server sent has passed; a name a token brings that the key set lacks (a
kid, an issuer) counts as unknown only once a fetch that started after it was first asked for
came back without it.

``FetchSchedule`` holds the moments that rule needs (when the last fetch was attempted, when the
one under way started, when the fetch behind the current key set started, the hold) and answers
from them for a given ``now``. The key cache (keys/cache.py) records its fetches here; the memory of
unknown names (keys/unknown.py) asks it what to do for a name. Neither knows the other.
"""

from __future__ import annotations

from typing import Literal

#: What to do for a name the key set lacks, first asked for at some moment:
#: ``answered``: a fetch that started after that moment came back, so the current key set is
#: the answer; ``fetch``: start a fetch now; ``join``: a fetch under way started after that
#: moment and will answer; ``join_then_check``: a fetch is under way but started before (join
#: it, it may still carry the name); ``later``: within the cool-down, a fetch at its end.
Plan = Literal["answered", "fetch", "join", "join_then_check", "later"]


class FetchSchedule:
    """The moments of the key fetches (seconds on one monotonic clock) and the rule on them."""

    def __init__(self, min_interval: float) -> None:
        #: The cool-down: the least time between the starts of two fetches.
        self.min_interval = min_interval
        #: When the latest fetch was attempted (started, or failed elsewhere); ``None``: never.
        self.last_attempt: float | None = None
        #: When the fetch under way started; ``None`` when none is.
        self.started: float | None = None
        #: When the fetch whose answer is the current key set started.
        self.fetched_from: float | None = None
        #: No automatic fetch before this, when the server sent ``Retry-After``.
        self.not_before: float | None = None

    def next_allowed(self) -> float:
        """The end of the cool-down since the last attempt, or of a ``Retry-After`` hold."""
        if self.last_attempt is None:
            return float("-inf")
        allowed = self.last_attempt + self.min_interval
        return max(allowed, self.not_before) if self.not_before is not None else allowed

    def plan(self, first_asked: float, now: float) -> Plan:
        """What to do for a name first asked for at ``first_asked`` (see ``Plan``)."""
        if self.fetched_from is not None and self.fetched_from >= first_asked:
            return "answered"
        if self.started is None:
            return "fetch" if now >= self.next_allowed() else "later"
        return "join" if self.started >= first_asked else "join_then_check"

    def unanswered(self, newest_ask: float | None) -> bool:
        """Whether a name asked for at ``newest_ask`` still waits for a fetch that started
        after it."""
        return newest_ask is not None and (self.fetched_from is None
                                           or newest_ask > self.fetched_from)

    # --- what the key cache records ----------------------------------------------------------

    def begin(self, now: float) -> None:
        """A fetch starts now. It counts as started before its request leaves, so a name asked
        for after this moment is never taken as looked for by it."""
        self.started = self.last_attempt = now

    def ended(self) -> None:
        """The fetch under way ended (either way)."""
        self.started = None

    def succeeded(self, fetched_from: float) -> None:
        """A key set fetched by a fetch started at ``fetched_from`` is now the current one."""
        self.fetched_from = fetched_from
        self.not_before = None

    def failed(self, now: float, retry_after: float | None) -> None:
        """A fetch failed at ``now``; ``retry_after``: the server's hint, in seconds."""
        self.last_attempt = now
        held = retry_after is not None and retry_after > 0
        self.not_before = now + retry_after if held and retry_after is not None else None

    def seconds_until_retry(self, now: float, retry_interval: float) -> float:
        """A hint for ``Retry-After`` while keys are unavailable: until the next attempt of a
        loop that retries every ``retry_interval``, or the end of a hold."""
        if self.last_attempt is None:
            return retry_interval
        wait = self.last_attempt + retry_interval - now
        if self.not_before is not None:
            wait = max(wait, self.not_before - now)
        return max(0.0, wait)
