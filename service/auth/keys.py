"""The key cache: a lock-free snapshot, shared refreshes, and a bounded memory of unknown kids.

Modelled on go-oidc's ``RemoteKeySet`` (jwks.go) and adding what it lacks:

* ``snapshot()`` is a plain attribute read: the request path never awaits or locks;
* one refresh at a time: concurrent callers share the in-flight ``asyncio.Task`` (singleflight);
* a refresh that fails keeps the last good snapshot, for at most ``max_stale`` seconds;
* a token with an unknown ``kid`` triggers an immediate refetch, but at most once per
  ``min_refresh_interval`` and never twice for the same kid within ``NEGATIVE_KID_TTL``, so a flood
  of random kids costs the API server at most two requests per cool-down (the second: a fetch
  that was already under way when the token arrived may predate its key, so it gets one
  follow-up);
* a background loop refreshes every ``refresh_interval`` (±10% jitter so replicas do not
  synchronise), and every ``retry_interval`` while refreshes fail;
* a failed fetch whose error carries ``retry_after`` (the server's ``Retry-After``, seconds) holds
  back every automatic fetch (unknown kid, background loop) until that time has passed.

The fetch function and the clock are constructor parameters, so tests pass fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from .errors import KeysUnavailable
from .keyset import KeySet

logger = logging.getLogger(__name__)

#: fetch(force) -> KeySet. ``force`` asks the server to bypass caches (Cache-Control: no-cache).
FetchKeys = Callable[[bool], Awaitable[KeySet]]

#: How long an unknown kid stays unknown without another refetch. kube-apiserver publishes a new
#: key at least max-age (3600 s) before signing with it (k8s-wire.md §4), so a kid that a fresh
#: fetch did not contain will not become valid within minutes; the background refresh would pick
#: it up anyway.
NEGATIVE_KID_TTL = 300.0
#: Bound on remembered unknown kids: a flood of random kids evicts the oldest, never grows memory.
NEGATIVE_KID_CAPACITY = 4096
#: Relative jitter on background refresh intervals.
JITTER = 0.1


class KeyCache:
    """Holds the current ``KeySet`` and refreshes it; see the module docstring."""

    def __init__(
        self,
        fetch: FetchKeys,
        *,
        refresh_interval: float,
        min_refresh_interval: float,
        max_stale: float,
        retry_interval: float,
        clock: Callable[[], float] = time.monotonic,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._fetch = fetch
        self._refresh_interval = refresh_interval
        self._min_refresh_interval = min_refresh_interval
        self._max_stale = max_stale
        self._retry_interval = retry_interval
        self._clock = clock
        self._uniform = uniform
        self._snapshot: KeySet | None = None
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        #: No automatic fetch before this (monotonic), when the server sent Retry-After.
        self._not_before: float | None = None
        self._inflight: asyncio.Task[KeySet] | None = None
        self._inflight_started = 0.0
        self._last_follow_up: float | None = None
        self._unknown_kids: OrderedDict[str, float] = OrderedDict()
        self._listeners: list[Callable[[KeySet | None, KeySet], None]] = []

    # --- reads (request path) ----------------------------------------------------------------

    def snapshot(self) -> KeySet | None:
        """The current key set, or ``None`` if never loaded or stale beyond ``max_stale``."""
        if self._loaded_at is None or self._clock() - self._loaded_at > self._max_stale:
            return None
        return self._snapshot

    @property
    def last_error(self) -> str | None:
        """Why the most recent refresh failed (``None`` after a success)."""
        return self._last_error

    def age(self) -> float | None:
        """Seconds since the last successful refresh."""
        return None if self._loaded_at is None else self._clock() - self._loaded_at

    def add_listener(self, listener: Callable[[KeySet | None, KeySet], None]) -> None:
        """Call ``listener(old, new)`` after each successful refresh (e.g. to drop cached
        verdicts of keys that left the set). Listeners must not raise or block."""
        self._listeners.append(listener)

    # --- refreshes -------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> KeySet:
        """Fetch now (or join the fetch in flight); raise ``KeysUnavailable`` if it fails.

        On failure the previous snapshot stays in place until it is ``max_stale`` old.
        """
        if self._inflight is None:
            self._inflight_started = self._clock()
            self._inflight = asyncio.create_task(self._do_refresh(force))
        # shield: a cancelled waiter (client went away) must not cancel the shared fetch.
        return await asyncio.shield(self._inflight)

    async def refresh_for_kid(self, kid: str) -> KeySet:
        """Called for a token whose ``kid`` is not in the snapshot; see ``refresh_for``."""
        return await self.refresh_for(kid, lambda snapshot: snapshot.get(kid) is not None)

    async def refresh_for_issuer(self, issuer: str) -> KeySet:
        """Called for a token that names an issuer other than the declared one: discovery may
        have changed its issuer since the last refresh. Same limits as an unknown kid."""
        return await self.refresh_for(
            "issuer " + issuer, lambda snapshot: snapshot.issuer == issuer
        )

    async def refresh_for(self, unknown: str, found: Callable[[KeySet], bool]) -> KeySet:
        """Refetch for something a token names that the snapshot lacks (``found`` is false).

        Refetches unless ``unknown`` was already looked up recently or the cool-down since the
        last fetch has not passed; returns the (possibly unchanged) snapshot. Raises
        ``KeysUnavailable`` when the most recent fetch failed, so the caller can tell "unknown"
        (401) from "could not check" (fallback or 503).
        """
        kid = unknown
        now = self._clock()
        self._expire_unknown(now)
        fetch_allowed = kid not in self._unknown_kids and (
            self._inflight is not None
            or self._last_attempt is None
            or (
                now - self._last_attempt >= self._min_refresh_interval
                and not self._held_back(now)
            )
        )
        if fetch_allowed:
            # A fetch that was already under way may have left before this kid was published
            # (a key used as soon as it is published; API servers behind one address that
            # publish at different moments): its answer says nothing about this kid.
            late = self._inflight is not None and self._inflight_started < now
            snapshot = await self.refresh(force=True)
            if late and not found(snapshot):
                if self._inflight is None and not self._may_follow_up():
                    return snapshot  # 401 now, but not remembered: a later request looks again
                snapshot = await self.refresh(force=True)  # starts or joins the follow-up
        else:
            current = self.snapshot()
            if current is None or self._last_error is not None:
                raise KeysUnavailable(f"key refresh failed: {self._last_error or 'no keys'}")
            snapshot = current
        if not found(snapshot):
            self._remember_unknown(kid, now)
        return snapshot

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh periodically until ``stop`` is set; never raises (failures are logged)."""
        while not stop.is_set():
            failing = self._last_error is not None or self._snapshot is None
            interval = self._retry_interval if failing else self._refresh_interval
            delay = interval * self._uniform(1 - JITTER, 1 + JITTER)
            if self._not_before is not None:
                delay = max(delay, self._not_before - self._clock())
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            # A failure is logged in _do_refresh; the loop retries after retry_interval.
            with contextlib.suppress(KeysUnavailable):
                await self.refresh()

    def seconds_until_retry(self) -> float:
        """A hint for ``Retry-After`` while keys are unavailable."""
        if self._last_attempt is None:
            return self._retry_interval
        now = self._clock()
        wait = self._last_attempt + self._retry_interval - now
        if self._not_before is not None:
            wait = max(wait, self._not_before - now)
        return max(0.0, wait)

    # --- internals --------------------------------------------------------------------------

    async def _do_refresh(self, force: bool) -> KeySet:
        self._last_attempt = self._clock()
        try:
            snapshot = await self._fetch(force)
        except Exception as error:  # noqa: BLE001 - any fetch failure keeps the last good keys
            self.note_failure(error)
            level = logging.WARNING if self._snapshot is not None else logging.ERROR
            logger.log(
                level,
                "key set refresh failed; keeping the last good key set",
                extra={"error": self._last_error, "keys_age": self._age_text()},
            )
            raise KeysUnavailable(f"key refresh failed: {self._last_error}") from None
        finally:
            self._inflight = None
        self.seed(snapshot)
        return snapshot

    def note_failure(self, error: BaseException) -> None:
        """Record a failed fetch made elsewhere (the start-up discovery)."""
        self._last_attempt = self._clock()
        self._last_error = str(error) or type(error).__name__
        hint = getattr(error, "retry_after", None)
        self._not_before = (
            self._last_attempt + hint if isinstance(hint, int | float) and hint > 0 else None
        )

    def seed(self, snapshot: KeySet) -> None:
        """Install a key set fetched elsewhere (the start-up discovery) as the current one."""
        previous, self._snapshot = self._snapshot, snapshot
        self._loaded_at = self._clock()
        recovered = self._last_error is not None
        self._last_error = None
        self._not_before = None
        # A kid that is now published must not stay in the negative cache.
        for kid in snapshot.keys:
            self._unknown_kids.pop(kid, None)
        if previous is None or recovered or previous.keys.keys() != snapshot.keys.keys():
            logger.info(
                "key set loaded",
                extra={"issuer": snapshot.issuer, "kids": ",".join(sorted(snapshot.keys))},
            )
        for listener in self._listeners:
            listener(previous, snapshot)

    def _may_follow_up(self) -> bool:
        """At most one follow-up fetch per cool-down, and none while Retry-After holds."""
        now = self._clock()
        if self._held_back(now) or (
            self._last_follow_up is not None
            and now - self._last_follow_up < self._min_refresh_interval
        ):
            return False
        self._last_follow_up = now
        return True

    def _held_back(self, now: float) -> bool:
        return self._not_before is not None and now < self._not_before

    def _remember_unknown(self, kid: str, now: float) -> None:
        self._unknown_kids[kid] = now + NEGATIVE_KID_TTL
        self._unknown_kids.move_to_end(kid)
        while len(self._unknown_kids) > NEGATIVE_KID_CAPACITY:
            self._unknown_kids.popitem(last=False)

    def _expire_unknown(self, now: float) -> None:
        while self._unknown_kids:
            kid, expiry = next(iter(self._unknown_kids.items()))
            if expiry > now:
                break
            del self._unknown_kids[kid]

    def _age_text(self) -> str:
        age = self.age()
        return "never loaded" if age is None else f"{age:.0f}s"
