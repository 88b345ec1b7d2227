"""Bounded caches of verdicts, keyed by an HMAC of the token (never the token itself).

Used for locally verified identities (the common case: a client reuses one bound token for up to
an hour), for TokenReview answers and for SubjectAccessReview decisions. The token caches are
keyed by ``TokenHasher``: HMAC-SHA256 with a random per-process key, so a cache key reveals
nothing about a token, cannot be precomputed, and is useless outside this process (even in a
heap dump).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")
_SHA256_BLOCK = 64


class TokenHasher:
    """HMAC-SHA256 (RFC 2104) of a token under a random key created with the process."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        # The key's inner and outer SHA-256 states are computed once; each token then costs two
        # continuations (~1.2 µs for a 1.1 KiB token) instead of ``hmac.digest``'s ~2.1 µs,
        # which sets the key up again on every call. The output is the same (tests compare).
        block = self._key.ljust(_SHA256_BLOCK, b"\0")  # a key this short is used as it is
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def __call__(self, token: str) -> bytes:
        inner = self._inner.copy()
        # surrogatepass: a header Tornado decoded as latin-1 always encodes; never raise here.
        inner.update(token.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    expires: float  # monotonic
    kid: str | None


#: The protected segment's part of the capacity. Caffeine gives its protected segment 80 % of
#: the main space (BoundedLocalCache.PERCENT_MAIN_PROTECTED); the rest, probation, is where new
#: entries wait to be asked for again.
PROTECTED_SHARE = 0.8
#: The part of the protected segment one owner may hold (see ``VerdictCache``'s ``owner``): the
#: same fraction as a caller's share of the reviews in flight (budget.CALLER_SHARE).
OWNER_SHARE = 0.5


class VerdictCache(Generic[V]):
    """A segmented LRU map (SLRU) with a per-entry expiry; ``get`` is a dict lookup plus a clock
    read.

    Keys are token HMACs (``TokenHasher``) or, for authorization decisions, tuples of the
    caller's principal and the check.

    Why segmented: with one LRU list, a flood of new keys (junk tokens, one caller's distinct
    checks) pushes out every entry that callers are still using. Here a new entry enters the
    *probation* segment; a hit moves it to the *protected* segment (at most ``PROTECTED_SHARE``
    of the capacity), whose least recently used entry steps back to probation when it is full.
    Eviction takes probation's least recently used entry, so entries seen once churn among
    themselves and entries asked for again stay (Karedla, Love and Wherry, "Caching strategies
    to improve disk system performance", IEEE Computer 27(3), 1994). The total never exceeds
    ``capacity``.

    ``owner`` (optional) names whose an entry is, from its key: then one owner holds at most
    ``OWNER_SHARE`` of the protected segment, and an owner past its share steps back its own
    least recently used entry, not someone else's. A caller that repeats each of its new
    checks cannot crowd the others out of the protected segment that way either.
    """

    def __init__(
        self,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        owner: Callable[[Hashable], Hashable] | None = None,
    ) -> None:
        self._capacity = capacity
        self._clock = clock
        self._owner = owner
        # At least one probation slot, so that a new entry never evicts a protected one.
        self._protected_capacity = min(int(capacity * PROTECTED_SHARE), capacity - 1)
        self._owner_capacity = max(1, int(self._protected_capacity * OWNER_SHARE))
        self._probation: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._protected: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        #: Per owner, its protected keys, least recently used first (only with ``owner``).
        self._owned: dict[Hashable, OrderedDict[Hashable, None]] = {}

    def get(self, key: Hashable) -> V | None:
        entry = self._protected.get(key)
        if entry is not None:
            if entry.expires <= self._clock():
                self._drop_protected(key)
                return None
            self._protected.move_to_end(key)
            if self._owner is not None:
                self._owned[self._owner(key)].move_to_end(key)
            return entry.value
        entry = self._probation.get(key)
        if entry is None:
            return None
        del self._probation[key]
        if entry.expires <= self._clock():
            return None
        self._promote(key, entry)
        return entry.value

    def put(self, key: Hashable, value: V, lifetime: float, kid: str | None = None) -> None:
        """Keep ``value`` for ``lifetime`` seconds (nothing when it is not positive)."""
        if lifetime <= 0:
            return
        entry = _Entry(value, self._clock() + lifetime, kid)
        if key in self._protected:  # a new answer for a key in use: it stays protected
            self._protected[key] = entry
            self._protected.move_to_end(key)
            if self._owner is not None:
                self._owned[self._owner(key)].move_to_end(key)
            return
        self._probation[key] = entry
        self._probation.move_to_end(key)
        while len(self._probation) + len(self._protected) > self._capacity:
            if self._probation:
                self._probation.popitem(last=False)
            else:  # capacity 0: nothing is kept
                self._drop_protected(next(iter(self._protected)))

    def retain_kids(self, kids: Container[str]) -> int:
        """Drop entries verified with a key that is no longer published; return how many."""
        gone = 0
        for segment in (self._probation, self._protected):
            for key in [key for key, entry in segment.items()
                        if entry.kid is not None and entry.kid not in kids]:
                if segment is self._protected:
                    self._drop_protected(key)
                else:
                    del segment[key]
                gone += 1
        return gone

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (nothing when it is not held)."""
        if key in self._protected:
            self._drop_protected(key)
        else:
            self._probation.pop(key, None)

    def discard_where(self, doomed: Callable[[Hashable], bool]) -> int:
        """Forget every key for which ``doomed(key)`` holds; return how many. A scan of the
        whole cache: for rare events (a revoked token's decisions), never the request path."""
        keys = [key for key in self.keys() if doomed(key)]
        for key in keys:
            self.discard(key)
        return len(keys)

    def clear(self) -> None:
        self._probation.clear()
        self._protected.clear()
        self._owned.clear()

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    def keys(self) -> list[Hashable]:
        """Every key held, probation's first (for inspection: what a heap dump would show)."""
        return [*self._probation, *self._protected]

    # --- segments -------------------------------------------------------------------------

    def _promote(self, key: Hashable, entry: _Entry[V]) -> None:
        """Move ``key`` (just taken out of probation) to the protected segment's most recent
        end; step back what no longer fits there."""
        if self._protected_capacity <= 0:
            self._probation[key] = entry  # too small to segment: a plain LRU
            return
        if self._owner is not None:
            owner = self._owner(key)
            owned = self._owned.get(owner)
            if owned is not None and len(owned) >= self._owner_capacity:
                self._demote(next(iter(owned)))  # its own least recently used
            self._owned.setdefault(owner, OrderedDict())[key] = None
        self._protected[key] = entry
        if len(self._protected) > self._protected_capacity:
            self._demote(next(iter(self._protected)))

    def _demote(self, key: Hashable) -> None:
        """Step ``key`` back from protected to probation's most recent end (a second chance
        before eviction)."""
        entry = self._protected[key]
        self._drop_protected(key)
        self._probation[key] = entry

    def _drop_protected(self, key: Hashable) -> None:
        del self._protected[key]
        if self._owner is not None:
            owner = self._owner(key)
            owned = self._owned[owner]
            del owned[key]
            if not owned:
                del self._owned[owner]
