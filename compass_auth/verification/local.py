"""The local path: a token verified against the cluster's published keys, without an API call.

Answers "identity or error" for a token: from the verified-token cache (``cached``, the one read
of that cache per request), else (``verify``, which assumes that read missed) ``verify_decoded``
against the key snapshot. A kid or an issuer the snapshot lacks makes it look at the JWKS again,
rate-limited (docs/reliability.md#unknown-kids). ``KeysUnavailable`` means this path cannot
verify the token now (no key set, or the refetch failed): the authenticator then tries the next
path, TokenReview.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.bearer import Bearer
from ..core.cache import VerdictCache
from ..core.errors import IssuerMismatch, KeysUnavailable, UnknownKey
from ..core.identity import Identity
from ..core.keyset import KeySet
from ..core.verifier import DecodedToken, VerificationPolicy, verify_decoded
from ..keys.cache import KeyCache
from ..keys.unknown import UnknownNames
from ..telemetry import METHOD_JWKS


class LocalPath:
    """Verifies tokens with the key snapshot of ``keys`` and remembers what it verified."""

    method = METHOD_JWKS

    def __init__(
        self,
        keys: KeyCache,
        policy: VerificationPolicy,
        *,
        unknown: UnknownNames,
        cache_size: int,
        cache_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.unknown = unknown
        self.policy = policy
        self._verified: VerdictCache[Identity] = VerdictCache(cache_size)
        self._cache_ttl = cache_ttl
        self._clock = clock
        keys.add_listener(self._on_keys)

    def cached(self, bearer: Bearer) -> Identity | None:
        """A token verified before, without I/O (the caller applies the allow-lists)."""
        return self._verified.get(bearer.key)

    async def verify(self, bearer: Bearer, token: DecodedToken) -> Identity:
        """The caller's identity (``cached`` missed); raise an ``AuthError``. ``token`` is
        ``bearer.token`` decoded (once per request, also when a kid is unknown)."""
        keys = self.keys.snapshot()
        if keys is None:
            raise KeysUnavailable(self.keys.last_error or "no key set yet")
        now = self._clock()
        try:
            identity = verify_decoded(token, keys, self.policy, now)
        except IssuerMismatch as mismatch:
            keys = await self._refresh_for_issuer(mismatch)
            identity = verify_decoded(token, keys, self.policy, now)
        except UnknownKey as error:
            # The key may be new: look again (raises KeysUnavailable when that fails).
            keys = await self.unknown.look_for_kid(error.kid)
            identity = verify_decoded(token, keys, self.policy, now)
        self._remember(bearer.key, identity, now)
        return identity

    def forget(self, key: bytes) -> None:
        """Drop a verified token (``bearer.key``): the API server refused it (revocation.py)."""
        self._verified.discard(key)

    def available(self) -> bool:
        return self.keys.snapshot() is not None

    def cache_size(self) -> int:
        return len(self._verified)

    async def _refresh_for_issuer(self, mismatch: IssuerMismatch) -> KeySet:
        """Discovery may have moved to the issuer this token names (an issuer migration): look
        once, rate-limited like unknown kids, unless the operator pinned the issuers."""
        if self.policy.issuers or mismatch.issuer is None:
            raise mismatch
        try:
            keys = await self.unknown.look_for_issuer(mismatch.issuer)
        except KeysUnavailable:
            raise mismatch from None
        if keys.issuer != mismatch.issuer:
            raise mismatch
        return keys

    def _remember(self, key: bytes, identity: Identity, now: float) -> None:
        if identity.expires_at is None:
            return
        lifetime = min(self._cache_ttl, identity.expires_at - now)
        if self.policy.stale_tokens != "off" and identity.warn_after and not identity.stale:
            # Becoming stale is a matter of time: re-verify then, so it is flagged or refused.
            lifetime = min(lifetime, identity.warn_after - now)
        self._verified.put(key, identity, lifetime, identity.key_id)

    def _on_keys(self, previous: KeySet | None, current: KeySet) -> None:
        if previous is not None and previous.issuer != current.issuer:
            self._verified.clear()  # verified against an issuer that is no longer declared
        else:
            self._verified.retain_kids(current.keys)  # keys that left the set take theirs along
