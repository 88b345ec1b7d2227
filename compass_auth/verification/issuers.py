"""The ``jwt`` authenticators of ``AUTH_AUTHENTICATION_CONFIG``: tokens of issuers other than the
cluster's own (issue 22; docs/authentication-config.md#in-the-service).

One ``IssuerState`` per authenticator: its own key fetcher (discovery from ``discoveryURL`` or
``url``, trust from ``certificateAuthority``), ``KeyCache`` (refresh loop, cool-down, last good
keys), unknown-kid memory and verified-token cache. So one issuer's outage or key rotation
touches only its own state. ``JwtAuthenticators`` routes a token by its ``iss`` (read from the
unverified payload only to choose: the chosen issuer's keys and rules then verify everything),
and reloads the file: a valid new version replaces the set, keeping the state (keys, cache) of
issuers whose entry did not change; a removed issuer's cached identities go with it; an invalid
version is refused and the last good one keeps serving.

No TokenReview fallback here: the cluster's API server cannot review another issuer's tokens.
When an issuer's keys are unavailable its tokens get 503 with ``Retry-After``; no other
issuer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..authn_config import (
    AuthenticationConfig,
    AuthenticationConfigError,
    CompiledAuthenticator,
    IssuerUnknown,
    load_authentication_config,
)
from ..core.bearer import Bearer, check_token
from ..core.cache import VerdictCache
from ..core.errors import KeysUnavailable, UnknownKey
from ..core.identity import Identity
from ..core.keyset import KeySet
from ..core.verifier import DecodedToken, decode
from ..keys.cache import KeyCache
from ..keys.oidc_discovery import OidcKeyFetcher
from ..keys.unknown import UnknownNames
from ..logs.text import clip, render
from ..telemetry import METHOD_JWKS, Verification
from .jwt_token import verify_jwt

logger = logging.getLogger(__name__)

#: Seconds between two looks at the file (its size, mtime and inode; the content is read and
#: validated only when one changed). A Kubernetes ConfigMap update reaches the pod within about
#: a minute anyway.
RELOAD_INTERVAL = 10.0
#: Log messages operators grep for; keep them stable.
MSG_RELOADED = "authentication configuration reloaded"
MSG_REFUSED = "authentication configuration refused; the last good one keeps serving"


@dataclass(frozen=True, slots=True)
class KeyTimings:
    """The key cache's intervals (the cluster's ``AUTH_JWKS_*`` settings, one rule for all)."""

    refresh_interval: float
    min_refresh_interval: float
    max_stale: float
    retry_interval: float


class IssuerState:
    """Everything one authenticator keeps: its keys, their refresh, its verified tokens."""

    def __init__(self, entry: CompiledAuthenticator, timings: KeyTimings, *, cache_size: int,
                 cache_ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.entry = entry
        issuer = entry.spec.issuer
        self.url = issuer.url
        self.fetcher = OidcKeyFetcher(issuer.url, issuer.discovery_url,
                                      issuer.certificate_authority)
        self.keys = KeyCache(self.fetcher.fetch, refresh_interval=timings.refresh_interval,
                             min_refresh_interval=timings.min_refresh_interval,
                             max_stale=timings.max_stale, retry_interval=timings.retry_interval)
        self.unknown = UnknownNames(self.keys)
        self.verified: VerdictCache[Identity] = VerdictCache(cache_size)
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.keys.add_listener(self._on_keys)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"compass-auth-issuer {self.url}")

    async def _run(self) -> None:
        with contextlib.suppress(KeysUnavailable):
            await self.keys.refresh()
        try:
            await self.keys.run(self._stop)
        finally:
            self.unknown.stop()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.verified.clear()
        await self.fetcher.close()

    async def verify(self, bearer: Bearer, decoded: DecodedToken, leeway: float) -> Identity:
        keys = self.keys.snapshot()
        if keys is None:
            keys = await self._keys_now()
        try:
            identity = verify_jwt(decoded, keys, self.entry, leeway)
        except UnknownKey as error:
            keys = await self.unknown.look_for_kid(error.kid)
            identity = verify_jwt(decoded, keys, self.entry, leeway)
        if identity.expires_at is not None:
            lifetime = min(self._cache_ttl, identity.expires_at - self._clock())
            self.verified.put(bearer.key, identity, lifetime, identity.key_id)
        return identity

    async def _keys_now(self) -> KeySet:
        """No usable key set: join the fetch under way, or fetch once the cool-down since the
        last one has passed (``keys/unknown.py``'s rule: a flood of this issuer's tokens while
        it is down costs it one fetch per cool-down), else 503 for this issuer's tokens."""
        try:
            return await self.unknown.look_for_issuer(self.url)
        except KeysUnavailable:
            raise KeysUnavailable(
                f"keys of {self.url} unavailable: {self.keys.last_error or 'not loaded yet'}",
                retry_after=max(1.0, self.keys.seconds_until_retry())) from None

    def status(self) -> dict[str, Any]:
        """This issuer's readiness detail."""
        keys, age = self.keys.snapshot(), self.keys.age()
        return {"ready": keys is not None,
                "keys": sorted(keys.keys) if keys is not None else [],
                "keys_age_seconds": None if age is None else round(age, 1),
                "last_error": self.keys.last_error}

    def _on_keys(self, previous: KeySet | None, current: KeySet) -> None:
        self.verified.retain_kids(current.keys)


class JwtAuthenticators:
    """The authenticators of one configuration file, by issuer URL, reloaded when it changes."""

    def __init__(self, config: AuthenticationConfig, timings: KeyTimings, *, cache_size: int,
                 cache_ttl: float, leeway: float, disallowed_issuers: Iterable[str] = (),
                 reload_interval: float = RELOAD_INTERVAL) -> None:
        self.config = config
        self.path = config.source
        self._timings = timings
        self._cache_size, self._cache_ttl, self._leeway = cache_size, cache_ttl, leeway
        self.disallowed = set(disallowed_issuers)
        self.reload_interval = reload_interval
        self.states: dict[str, IssuerState] = {
            entry.spec.issuer.url: self._state(entry) for entry in config.authenticators}
        #: Why the latest reload was refused (``None`` when the file in force is the latest).
        self.reload_error: str | None = None
        #: Reloads by result, ``applied`` or ``refused`` (the ``auth.config.reloads`` metric).
        self.reloads: dict[str, int] = {"applied": 0, "refused": 0}
        self._stamp = _stamp(self.path)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._started = False

    def _state(self, entry: CompiledAuthenticator) -> IssuerState:
        return IssuerState(entry, self._timings, cache_size=self._cache_size,
                           cache_ttl=self._cache_ttl)

    # --- the request path ----------------------------------------------------------------

    def cached(self, bearer: Bearer) -> Identity | None:
        """A token one of the issuers verified before (no I/O)."""
        for state in self.states.values():
            hit = state.verified.get(bearer.key)
            if hit is not None:
                return hit
        return None

    def route(self, issuer: object) -> IssuerState | None:
        """The authenticator whose ``issuer.url`` equals the token's ``iss`` exactly."""
        return self.states.get(issuer) if isinstance(issuer, str) else None

    async def verify(self, state: IssuerState, bearer: Bearer,
                     decoded: DecodedToken) -> Identity:
        return await state.verify(bearer, decoded, self._leeway)

    async def verify_other(self, bearer: Bearer, cluster_issuers: tuple[str, ...],
                           max_token_bytes: int, record: Verification
                           ) -> tuple[Identity | None, DecodedToken]:
        """A token whose ``iss`` is a ``jwt`` authenticator's, verified by that authenticator
        alone; ``None`` for the cluster's own tokens (``cluster_issuers``: the service-account
        paths verify those) and for an ``iss`` no authenticator has while the cluster's issuer
        is not known yet (TokenReview decides). The unverified ``iss`` only routes. With the
        token decoded, which those paths then reuse (one decode per token)."""
        check_token(bearer.token, max_token_bytes)
        decoded = decode(bearer.token)
        issuer = decoded.payload.get("iss")
        if issuer in cluster_issuers:
            return None, decoded
        state = self.route(issuer)
        if state is None:
            if not cluster_issuers:
                return None, decoded
            raise IssuerUnknown(f"token issuer {str(issuer)[:200]!r} is neither the cluster's "
                                f"nor one of {self.path}")
        record.method, record.authenticator = METHOD_JWKS, state.url
        return await self.verify(state, bearer, decoded), decoded

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        for state in self.states.values():
            state.start()
        if self._task is None and self.reload_interval > 0:
            self._task = asyncio.create_task(self._watch(), name="compass-auth-authn-config")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for state in self.states.values():
            await state.stop()

    async def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.reload_interval)
                return
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                await self.reload()

    async def reload(self) -> bool:
        """Read the file again; apply it if valid (True), else keep the last good one (False)."""
        try:
            config = load_authentication_config(self.path, self.disallowed)
        except AuthenticationConfigError as error:
            self.reload_error = str(error)
            self.reloads["refused"] += 1
            fields = {"path": self.path, "error": clip(error, 2000)}
            logger.error(render(MSG_REFUSED, fields), extra=fields)
            return False
        previous = self.states
        states: dict[str, IssuerState] = {}
        for entry in config.authenticators:
            url = entry.spec.issuer.url
            kept = previous.get(url)
            if kept is not None and kept.entry.spec == entry.spec:
                states[url] = kept  # unchanged: its keys and verified tokens stay
            else:
                states[url] = self._state(entry)
                if self._started:
                    states[url].start()
        self.states, self.config = states, config
        self.reload_error = None
        self.reloads["applied"] += 1
        # A removed or changed issuer's verified tokens stop being accepted now.
        for url, state in previous.items():
            if states.get(url) is not state:
                await state.stop()
        fields = {"path": self.path, "issuers": ",".join(states),
                  "removed": ",".join(url for url in previous if url not in states) or "none"}
        logger.info(render(MSG_RELOADED, fields), extra=fields)
        return True

    def status(self) -> dict[str, Any]:
        """The readiness detail: the file, why its latest version was refused, each issuer."""
        return {"path": self.path, "reload_error": self.reload_error,
                "issuers": {url: state.status() for url, state in self.states.items()}}

    def cache_size(self) -> int:
        return sum(len(state.verified) for state in self.states.values())


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)
