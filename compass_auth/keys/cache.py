"""The key cache: a lock-free snapshot, shared refreshes, a background refresh loop.

Modelled on go-oidc's ``RemoteKeySet`` (jwks.go) and adding what it lacks:

* ``snapshot()`` is a plain attribute read: the request path never awaits or locks;
* one refresh at a time: concurrent callers share the in-flight ``asyncio.Task`` (singleflight);
* a refresh that fails keeps the last good snapshot, for at most ``max_stale`` seconds;
* fetches start at least ``min_refresh_interval`` apart when something asks for one (an
  unknown ``kid``: ``keys/unknown.py``), by the rule of ``keys/schedule.py``, where each fetch
  is recorded;
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
from collections.abc import Awaitable, Callable

from ..core.errors import KeysUnavailable
from ..core.keyset import KeySet
from ..logs.text import render
from .schedule import FetchSchedule

logger = logging.getLogger(__name__)

#: fetch(force) -> KeySet. ``force`` asks the server to bypass caches (Cache-Control: no-cache).
FetchKeys = Callable[[bool], Awaitable[KeySet]]

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
        #: The moments of the fetches and the cool-down rule on them (keys/unknown.py reads it).
        self.schedule = FetchSchedule(min_refresh_interval)
        self._max_stale = max_stale
        self._retry_interval = retry_interval
        self._clock = clock
        self._uniform = uniform
        self._snapshot: KeySet | None = None
        self._loaded_at: float | None = None
        self._last_error: str | None = None
        self._inflight: asyncio.Task[KeySet | str] | None = None
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

    def current_or_unavailable(self) -> KeySet:
        """The current key set; ``KeysUnavailable`` when there is none or the latest fetch
        failed (the caller cannot tell "unknown" from "could not check")."""
        current = self.snapshot()
        if current is None or self._last_error is not None:
            raise KeysUnavailable(f"key refresh failed: {self._last_error or 'no keys'}")
        return current

    # --- refreshes -------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> KeySet:
        """Fetch now (or join the fetch in flight); raise ``KeysUnavailable`` if it fails.

        On failure the previous snapshot stays in place until it is ``max_stale`` old.
        """
        if self._inflight is None:
            # The fetch counts as started now (the task runs a moment later): never later than
            # its request leaves, so a kid asked for after this moment is never taken as looked for.
            started = self._clock()
            self.schedule.begin(started)
            self._inflight = asyncio.create_task(self._do_refresh(force, started))
        # shield: a cancelled waiter (client went away) must not cancel the shared fetch.
        result = await asyncio.shield(self._inflight)
        if isinstance(result, str):
            # Raised anew for each waiter: one exception instance raised by many would collect
            # all their frames in its __traceback__.
            raise KeysUnavailable(f"key refresh failed: {result}")
        return result

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh periodically until ``stop`` is set; never raises (failures are logged)."""
        while not stop.is_set():
            failing = self._last_error is not None or self._snapshot is None
            interval = self._retry_interval if failing else self._refresh_interval
            delay = interval * self._uniform(1 - JITTER, 1 + JITTER)
            if self.schedule.not_before is not None:
                delay = max(delay, self.schedule.not_before - self._clock())
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
        return self.schedule.seconds_until_retry(self._clock(), self._retry_interval)

    # --- internals --------------------------------------------------------------------------

    async def _do_refresh(self, force: bool, started: float) -> KeySet | str:
        """The shared fetch: the new snapshot, or why the fetch failed (as data, see
        ``refresh``)."""
        try:
            snapshot = await self._fetch(force)
        except Exception as error:  # noqa: BLE001 - any fetch failure keeps the last good keys
            self.note_failure(error)
            level = logging.WARNING if self._snapshot is not None else logging.ERROR
            fields = {"error": self._last_error, "keys_age": self._age_text()}
            logger.log(level, render("key set refresh failed; keeping the last good key set",
                                     fields), extra=fields)
            return self._last_error or "unknown error"
        finally:
            self._inflight = None
            self.schedule.ended()
        self.seed(snapshot, fetched_from=started)
        return snapshot

    def note_failure(self, error: BaseException) -> None:
        """Record a failed fetch made elsewhere (the start-up discovery)."""
        self._last_error = str(error) or type(error).__name__
        hint = getattr(error, "retry_after", None)
        self.schedule.failed(self._clock(), float(hint) if isinstance(hint, int | float) else None)

    def seed(self, snapshot: KeySet, *, fetched_from: float | None = None) -> None:
        """Install a key set fetched elsewhere (the start-up discovery) as the current one.

        ``fetched_from``: when the fetch started (default: now, for a fetch made elsewhere that
        just ended: no request could look for a kid before it, since there were no keys)."""
        previous, self._snapshot = self._snapshot, snapshot
        self._loaded_at = self._clock()
        self.schedule.succeeded(self._loaded_at if fetched_from is None else fetched_from)
        recovered = self._last_error is not None
        self._last_error = None
        if previous is None or recovered or previous.keys.keys() != snapshot.keys.keys():
            fields = {"issuer": snapshot.issuer, "kids": ",".join(sorted(snapshot.keys))}
            logger.info(render("key set loaded", fields), extra=fields)
        for listener in self._listeners:
            listener(previous, snapshot)

    def _age_text(self) -> str:
        age = self.age()
        return "never loaded" if age is None else f"{age:.0f}s"


