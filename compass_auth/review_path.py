"""The TokenReview path: the API server decides.

Answers "identity or error" for a token by asking kube-apiserver (``tokenreview.TokenReviewer``,
with its cache, singleflight and caps), after the local checks that keep junk from costing a
review: the full local verification when ``keys`` is given and loaded (``AUTH_MODE=review``), else
the pre-check alone (the fallback, when no key set is usable).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .bearer import Bearer
from .claims import check_kubernetes_policy
from .errors import UnknownKey
from .identity import Identity
from .keys import KeyCache
from .telemetry import METHOD_TOKENREVIEW
from .tokenreview import TokenReviewer
from .verifier import VerificationPolicy, precheck, verify_local


class ReviewPath:
    """Verifies tokens with TokenReview."""

    method = METHOD_TOKENREVIEW

    def __init__(
        self,
        reviewer: TokenReviewer,
        policy: VerificationPolicy,
        *,
        keys: KeyCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reviewer = reviewer
        self.policy = policy
        self._keys = keys
        self._clock = clock

    def cached(self, bearer: Bearer) -> Identity | None:
        """An accepted review within its TTL that the policy allows, without I/O."""
        identity = self.reviewer.accepted(bearer.key)
        if identity is None or (self.policy.require_pod_bound and identity.pod_name is None):
            return None
        return identity

    async def verify(self, bearer: Bearer) -> tuple[Identity, bool]:
        """The identity the API server confirms, and whether the cache answered; raise an
        ``AuthError``."""
        cached = self.reviewer.cached(bearer.key)
        if cached is not None:
            return self._policy(cached), True
        expires_at, caller = self._local_checks(bearer, self._clock())
        identity = await self.reviewer.review(bearer.token, bearer.key, expires_at, caller)
        return self._policy(identity), False

    def healthy(self) -> bool | None:
        return self.reviewer.healthy()

    async def check_health(self) -> bool:
        """Whether TokenReview works: what a call or probe said recently, else one probe shared
        by every concurrent check (``TokenReviewer.check_health``)."""
        return await self.reviewer.check_health()

    def _local_checks(self, bearer: Bearer, now: float) -> tuple[int | None, str | None]:
        """Refuse what need not reach the API server; the token's ``exp``, which bounds how long
        an accepted answer is cached, and, when its signature was verified here, its subject:
        whose share of the reviews in flight the review takes. A subject only claimed (the
        fallback, an unknown key) is not used: a forged claim could name another caller and
        shed its requests; such reviews count against the total cap alone (budget.py)."""
        keys = self._keys.snapshot() if self._keys is not None else None
        if keys is None:
            # Without discovery the issuer is only known if pinned; the API server checks it.
            unverified = precheck(bearer.token, self.policy, self.policy.accepted_issuers(None),
                                  now, bearer.parts)
            return _expiry(unverified.payload), None
        try:
            identity = verify_local(bearer.token, keys, self.policy, now, bearer.parts)
            return identity.expires_at, identity.subject
        except UnknownKey:
            # A key we have not seen yet: the API server decides. Its answer has no expiry, and
            # the exp it authenticates is this one (the signature covers it); the pre-check
            # passed inside verify_local, issuer included.
            unverified = precheck(bearer.token, self.policy, (), now, bearer.parts)
            return _expiry(unverified.payload), None

    def _policy(self, identity: Identity) -> Identity:
        """The Kubernetes-aware options on a TokenReview answer: pod binding comes from
        ``status.user.extra``; the lifetime and ``warnafter`` are not in the answer."""
        check_kubernetes_policy(identity, require_pod_bound=self.policy.require_pod_bound,
                                max_lifetime=None, reject_stale=False)
        return identity


def _expiry(payload: Mapping[str, Any]) -> int | None:
    exp = payload.get("exp")
    return int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
