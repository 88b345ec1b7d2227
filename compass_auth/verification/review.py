"""The TokenReview path: the API server decides.

Answers "identity or error" for a token: from the TokenReview cache (``cached``, the one read of
that cache per request), else (``verify``, which assumes that read missed) by asking
kube-apiserver (``tokenreview.TokenReviewer``, with singleflight and caps), after the local
checks that keep junk from costing a review: the full local verification when ``keys`` is given
and loaded (``AUTH_MODE=review``), else the pre-check alone (the fallback, when no key set is
usable).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..apiserver.tokenreview import TokenReviewer
from ..core.bearer import Bearer
from ..core.claims import check_kubernetes_policy
from ..core.errors import Refusal, ReviewRejected, TokenRejected, UnknownKey
from ..core.identity import Identity
from ..core.verifier import DecodedToken, VerificationPolicy, precheck, verify_decoded
from ..keys.cache import KeyCache
from ..telemetry import METHOD_TOKENREVIEW


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

    def cached(self, bearer: Bearer) -> Identity | Refusal | None:
        """A review within its TTL, without I/O: the identity it accepted (that the policy
        allows), the refusal (as data), or ``None``."""
        verdict = self.reviewer.cached(bearer.key)
        if verdict is None:
            return None
        identity = verdict.identity
        if identity is None:
            return Refusal(ReviewRejected, verdict.rejection or "TokenReview: not authenticated")
        if self.policy.require_pod_bound:  # the one option of _policy a review's answer meets
            try:
                self._policy(identity)
            except TokenRejected as refused:
                return Refusal(type(refused), refused.detail)
        return identity

    async def verify(self, bearer: Bearer, token: DecodedToken) -> Identity:
        """The identity the API server confirms (``cached`` missed); raise an ``AuthError``.
        ``token`` is ``bearer.token`` decoded (once per request)."""
        expires_at, caller = self._local_checks(token, self._clock())
        identity = await self.reviewer.review(bearer.token, bearer.key, expires_at, caller)
        return self._policy(identity)

    def healthy(self) -> bool | None:
        return self.reviewer.healthy()

    async def check_health(self) -> bool:
        """Whether TokenReview works: what a call or probe said recently, else one probe shared
        by every concurrent check (``TokenReviewer.check_health``)."""
        return await self.reviewer.check_health()

    def _local_checks(self, token: DecodedToken, now: float) -> tuple[int | None, str | None]:
        """Refuse what need not reach the API server; the token's ``exp``, which bounds how long
        an accepted answer is cached, and, when its signature was verified here, its subject:
        whose share of the reviews in flight the review takes. A subject only claimed (the
        fallback, an unknown key) is not used: a forged claim could name another caller and
        shed its requests; such reviews count against the total cap alone (apiserver/budget.py)."""
        keys = self._keys.snapshot() if self._keys is not None else None
        if keys is None:
            # Without discovery the issuer is only known if pinned; the API server checks it.
            precheck(token, self.policy, self.policy.accepted_issuers(None), now)
            return _expiry(token.payload), None
        try:
            identity = verify_decoded(token, keys, self.policy, now)
            return identity.expires_at, identity.subject
        except UnknownKey:
            # A key we have not seen yet: the API server decides. Its answer has no expiry, and
            # the exp it authenticates is this one (the signature covers it); the pre-check
            # passed inside verify_decoded, issuer included.
            return _expiry(token.payload), None

    def _policy(self, identity: Identity) -> Identity:
        """The Kubernetes-aware options on a TokenReview answer: pod binding comes from
        ``status.user.extra``; the lifetime and ``warnafter`` are not in the answer."""
        check_kubernetes_policy(identity, require_pod_bound=self.policy.require_pod_bound,
                                max_lifetime=None, reject_stale=False)
        return identity


def _expiry(payload: Mapping[str, Any]) -> int | None:
    exp = payload.get("exp")
    return int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
