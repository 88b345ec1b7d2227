"""How many reviews may be outstanding at once: in total, and for one caller.

Each reviewer (``tokenreview.TokenReviewer``, ``subjectaccess.AccessReviewer``) caps the reviews
it has outstanding, so that a flood of callers or of checks never becomes a flood of API-server
calls: beyond the cap, callers get 503 at once. A cap alone is first come, first served: one
caller that floods (distinct tokens, distinct namespaces) keeps every slot taken, and everyone
else is shed with it (issue 18, finding 7). So one caller may hold at most ``CALLER_SHARE`` of the
slots; its excess is shed while the others still find slots free.

A caller is whatever the reviewer names: the subject of the identity being authorized, or the
subject of a token whose signature was verified before its TokenReview (``AUTH_MODE=review``).
A caller of ``None`` is unknown, and counts against the total cap alone: a subject that only a
token claims, unverified (the fallback, an unknown key), could name someone else, and a flood
of forged claims would then shed that someone's requests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

#: The part of the slots one caller may hold. A half leaves the other half to everyone else,
#: however hard one caller pushes, and still lets a lone caller use several slots at once.
CALLER_SHARE = 0.5


class InFlightBudget:
    """Counts outstanding reviews per caller against a total cap and a per-caller share."""

    def __init__(self, capacity: int, *, what: str, setting: str) -> None:
        self.capacity = capacity
        #: At least one slot each: with a cap of 1 the lone slot is first come, first served.
        self.per_caller = max(1, int(capacity * CALLER_SHARE))
        self._what = what  # "TokenReviews", "SubjectAccessReviews": for the refusal text
        self._setting = setting
        self._total = 0
        self._by_caller: Counter[Hashable] = Counter()

    def __len__(self) -> int:
        return self._total

    def held_by(self, caller: Hashable) -> int:
        return self._by_caller[caller]

    def take(self, caller: Hashable | None) -> str | None:
        """Take a slot for ``caller`` (``None``: unknown, no share applies): ``None`` when
        taken, else why not (a sentence for the 503's log line; it names the setting, never
        the caller)."""
        if self._total >= self.capacity:
            return (f"{self._total} {self._what} outstanding, the cap ({self._setting}) is "
                    "reached")
        if caller is not None:
            held = self._by_caller[caller]
            if held >= self.per_caller:
                return (f"one caller already has {held} of the {self.capacity} {self._what} "
                        f"allowed in flight ({self._setting}), its share; the rest stay free "
                        "for other callers")
            self._by_caller[caller] = held + 1
        self._total += 1
        return None

    def give_back(self, caller: Hashable | None) -> None:
        """Return a slot ``take`` gave ``caller``."""
        self._total -= 1
        if caller is None:
            return
        held = self._by_caller[caller] - 1
        if held > 0:
            self._by_caller[caller] = held
        else:
            del self._by_caller[caller]
