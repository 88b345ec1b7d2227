"""Which path verifies now, whether the service is ready, and how long a refused client should
wait: the ``Authenticator``'s status, apart from the authentication it does
(verification/authenticator.py). ``Authenticator`` is a ``PathStatus``; everything here reads
what the paths, the key cache and the review client report, and sends nothing but the one shared
readiness probe.
"""

from __future__ import annotations

import math

from ..core.errors import AuthError, TokenReviewUnavailable, VerificationUnavailable
from ..settings import AuthSettings
from ..telemetry import METHOD_JWKS, METHOD_TOKENREVIEW
from .issuers import JwtAuthenticators
from .local import LocalPath
from .readiness import Readiness, readiness_from
from .review import ReviewPath
from .revocation import RevocationCheck

#: Retry-After for 503s caused by TokenReview (busy or failing): a short pause, not a schedule.
TOKENREVIEW_RETRY_AFTER = 2


class PathStatus:
    """The status half of the ``Authenticator``: the attributes below are the Authenticator's."""

    settings: AuthSettings
    local: LocalPath
    review: ReviewPath
    issuers: JwtAuthenticators | None
    revocation: RevocationCheck | None

    async def readiness(self) -> Readiness:
        """Whether a verification path is available now, which, and why (a Kubernetes readiness
        probe's answer; the example service's ``/readyz``).

        Ready when the key set is loaded (``jwks``; no I/O), or when TokenReview is the path and
        works: what a review said recently, else one probe shared by concurrent calls and
        remembered (``TokenReviewer.check_health``: at most one review every ``HEALTH_MEMORY``
        seconds, however many readiness calls)."""
        path = self.active_path()
        tokenreview_ok = path == METHOD_TOKENREVIEW and await self.review.check_health()
        # Read after the probe: the key set may have loaded meanwhile.
        key_cache, reviewer = self.local.keys, self.review.reviewer
        return readiness_from(
            mode=self.settings.mode, path=path, tokenreview_ok=tokenreview_ok,
            keys=key_cache.snapshot(), keys_age=key_cache.age(),
            keys_error=key_cache.last_error, review_error=reviewer.last_failure_message,
            tokenreview_cache_entries=reviewer.cache_size(),
            authentication_config=None if self.issuers is None else self.issuers.status(),
            revocation_check="off" if self.revocation is None else self.revocation.state())

    def active_path(self) -> str:
        """``jwks`` or ``tokenreview``: how the next token would be verified."""
        if self.settings.mode == "review" or not self.local.available():
            return METHOD_TOKENREVIEW
        return METHOD_JWKS

    def current_path(self) -> str:
        """``active_path()``, or ``none`` when TokenReview is the path and is known to fail
        (for the ``auth.active_path`` gauge; never sends a probe)."""
        path = self.active_path()
        if path == METHOD_TOKENREVIEW and self.review.healthy() is False:
            return "none"
        return path

    def retry_after(self, error: AuthError | None = None) -> int:
        """Seconds a client should wait after a verification 503: what the API server asked of
        us when it sent Retry-After, else a moment when TokenReview was busy or failing, else
        until our next discovery attempt (1..60). (``Authorizer.retry_after`` answers for
        authorization's 503s.)"""
        if isinstance(error, VerificationUnavailable) and error.retry_after is not None:
            return max(1, min(60, math.ceil(error.retry_after)))
        if isinstance(error, TokenReviewUnavailable):
            return TOKENREVIEW_RETRY_AFTER
        return max(1, min(60, round(self.local.keys.seconds_until_retry())))

    def cluster_issuers(self) -> tuple[str, ...]:
        """The cluster's own service-account issuer(s): ``AUTH_ISSUER``, else discovery's."""
        if self.settings.issuers:
            return self.settings.issuers
        keys = self.local.keys.snapshot()
        return (keys.issuer,) if keys is not None else ()
