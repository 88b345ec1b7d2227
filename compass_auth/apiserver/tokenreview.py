"""Asking the API server: TokenReview, through the review client (apiserver/reviews.py).

Used when local verification is not possible (no key set yet, discovery gave up, or an unknown
``kid`` right after a failed JWKS refresh) and, with ``AUTH_MODE=review``, for every first sight
of a token. The API server also checks what local verification cannot: that the bound pod and
service account still exist (docs/kubernetes-api.md#bound-objects).

This module is the TokenReview wire (its request, its refusals, how its ``status`` becomes a
verdict); the protection is the review client's (apiserver/reviews.py), because a flood of tokens
must not
become a flood of reviews:

* answers are cached under an HMAC of the token with a random per-process key (never the token
  itself; a reviewer serves one audience, so the key need not name it): accepted until the
  earlier of the token's ``exp`` and ``accepted_ttl``, rejected for ``rejected_ttl`` (the
  defaults of kube-apiserver's webhook token authenticator, 2 minutes and 30 seconds); bounded
  in entries (a segmented LRU, core/cache.py: tokens seen once, such as junk, cannot push out the
  answers for tokens in use). A verdict is cached as data, never as an exception instance.
  Infrastructure errors are never cached;
* concurrent requests with the same token share one review (singleflight);
* at most ``max_in_flight`` reviews are outstanding, and at most half of them for one caller
  whose token was verified locally first (``AUTH_MODE=review``; apiserver/budget.py says why a
  claimed
  subject does not count); beyond that the caller gets 503 at once rather than a queue that
  grows with the flood;
* an answer with ``Retry-After`` (429 from priority and fairness, or a 503) stops all reviews
  until that time has passed: callers get 503 at once, with that ``Retry-After``;
* readiness (``probe``) has a budget of its own: one probe in flight, shared by every
  concurrent readiness call, and its answer remembered for ``HEALTH_MEMORY`` seconds, so that
  unauthenticated ``/readyz`` calls never cost a review each (issue 18, finding 5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from kubernetes_asyncio.client import (
    AuthenticationV1Api,
    V1TokenReview,
    V1TokenReviewSpec,
)

from ..core.cache import TokenHasher
from ..core.errors import ReviewRejected, TokenReviewUnavailable
from ..core.identity import Identity, parse_subject
from ..telemetry import SPAN_TOKENREVIEW, Telemetry
from .budget import InFlightBudget
from .connection import ApiServer
from .reviews import HEALTH_MEMORY, ReviewClient, json_status

logger = logging.getLogger(__name__)

__all__ = ["HEALTH_MEMORY", "PROBE_TOKEN", "REVIEW_PATH", "TokenReviewer"]

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
#: The token the readiness probe reviews: not a JWT, so it can never be authenticated.
PROBE_TOKEN = "compass-auth.readiness-probe.invalid"  # noqa: S105 (not a secret)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A review's answer as data. Each request that reads it raises an exception of its own: a
    cached exception instance, raised again on every hit, would prepend each raiser's frames to
    its ``__traceback__`` and keep them alive as long as the cache entry (issue 11)."""

    identity: Identity | None
    rejection: str | None  # why the API server (or our checks of its answer) refused the token

    def identity_or_raise(self) -> Identity:
        if self.identity is None:
            raise ReviewRejected(self.rejection or "TokenReview: not authenticated")
        return self.identity


class TokenReviewWire:
    """``AuthenticationV1Api.create_token_review`` for one audience (a ``reviews.ReviewWire``)."""

    kind = "TokenReview"
    span_name = SPAN_TOKENREVIEW
    path = REVIEW_PATH
    unavailable = TokenReviewUnavailable

    def __init__(self, api: ApiServer, audience: str, telemetry: Telemetry) -> None:
        self._authentication = AuthenticationV1Api(api.client)
        self._audience = audience
        self._telemetry = telemetry

    async def post(self, token: str, request_timeout: Any) -> aiohttp.ClientResponse:
        body = V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=V1TokenReviewSpec(token=token, audiences=[self._audience]),
        )
        # With _preload_content=False the generated method returns the raw aiohttp response
        # (its annotation says V1TokenReview): a bounded read, no model building.
        return cast(aiohttp.ClientResponse, await self._authentication.create_token_review(
            body, _preload_content=False, _request_timeout=request_timeout))

    def refused(self, code: int, raw: bytes) -> str:
        if code == 403:
            return (f"API server answered {code} to TokenReview: the service account needs "
                    "`create` on tokenreviews.authentication.k8s.io "
                    "(bind the ClusterRole system:auth-delegator)")
        return (f"API server answered {code} to TokenReview: our own credentials were refused "
                "(expired or rotated service-account token?)")

    def status(self, raw: bytes) -> Mapping[str, Any]:
        return json_status(raw)

    def result(self, status: Mapping[str, Any]) -> str:
        return "authenticated" if status.get("authenticated") is True else "rejected"

    def count(self, result: str) -> None:
        self._telemetry.review_call(result)

    def verdict(self, status: Mapping[str, Any], expires_at: int | None
                ) -> tuple[Identity | None, str | None]:
        """The identity the answer confirms, or why it does not (our checks of the answer)."""
        if status.get("authenticated") is not True:
            # The error text is an aggregate that varies by version: log it, never parse it.
            error = str(status.get("error") or "not authenticated")[:300]
            return None, f"TokenReview: {error}"
        user = status.get("user")
        if not isinstance(user, dict) or parse_subject(user.get("username")) is None:
            name = str(user.get("username") if isinstance(user, dict) else None)[:100]
            return None, f"TokenReview user {name!r} is not a service account"
        audiences = status.get("audiences")
        # "If a TokenReview returns an empty status.audience field where status.authenticated
        # is 'true', then the token is valid against the audience of the Kubernetes API server"
        # (TokenReviewStatus, authentication.k8s.io/v1): not against ours. A client that sets
        # spec.audiences must find its audience returned, or the reviewer is not audience aware.
        if not isinstance(audiences, list) or self._audience not in audiences:
            return None, f"TokenReview audiences {audiences!r} lack {self._audience!r}"
        returned = tuple(a for a in audiences if isinstance(a, str))
        return Identity.from_token_review(user, returned, expires_at), None


class TokenReviewer:
    """Reviews tokens for one audience: the TokenReview wire over the review client."""

    def __init__(
        self,
        api: ApiServer,
        audience: str,
        *,
        max_in_flight: int,
        accepted_ttl: float,
        rejected_ttl: float,
        capacity: int,
        hasher: TokenHasher | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
    ) -> None:
        telemetry = telemetry or Telemetry()
        self._wire = TokenReviewWire(api, audience, telemetry)
        self._client: ReviewClient[bytes, str, Verdict] = ReviewClient(
            api, self._wire, capacity=capacity, max_in_flight=max_in_flight,
            setting="AUTH_TOKENREVIEW_MAX_IN_FLIGHT", clock=clock, wall_clock=wall_clock,
            telemetry=telemetry)
        self._telemetry = telemetry
        self._accepted_ttl = accepted_ttl
        self._rejected_ttl = rejected_ttl
        self._wall_clock = wall_clock
        self.hasher = hasher or TokenHasher()
        #: ``cached(key)``: the cached verdict for ``key`` (``self.hasher(token)``), without
        #: I/O: the one read of the cache per request (the client's method, bound here: it is
        #: on the path of every cached fallback answer).
        self.cached: Callable[[bytes], Verdict | None] = self._client.cached

    # --- the request path -------------------------------------------------------------------

    async def review(self, token: str, key: bytes, expires_at: int | None,
                     caller: Hashable | None = None,
                     budget: InFlightBudget | None = None) -> Identity:
        """The identity the API server confirms, or raise ``ReviewRejected`` /
        ``TokenReviewUnavailable``; the cache holds no verdict for ``key`` (the caller read it).
        ``expires_at`` (the token's ``exp``, read by the caller's pre-check) bounds how long an
        accepted answer is cached; ``caller`` (the verified subject, or ``None`` when unknown)
        is whose share of the in-flight reviews this one takes; ``budget`` (optional) the
        in-flight budget it counts against instead of the shared one (``ReviewClient.review``)."""

        def judge(status: Mapping[str, Any]) -> tuple[Verdict, float]:
            identity, rejection = self._wire.verdict(status, expires_at)
            self._wire.count("authenticated" if identity is not None else "rejected")
            lifetime = self._rejected_ttl
            if identity is not None:
                lifetime = self._accepted_ttl
                if expires_at is not None:
                    lifetime = min(lifetime, expires_at - self._wall_clock())
            return Verdict(identity, rejection), lifetime

        verdict = await self._client.review(key, token, judge, caller, budget)
        return verdict.identity_or_raise()

    # --- health -----------------------------------------------------------------------------

    def healthy(self) -> bool | None:
        """What the latest call or probe said within ``HEALTH_MEMORY`` seconds, else ``None``."""
        return self._client.healthy()

    async def check_health(self) -> bool:
        """Whether TokenReview works: ``healthy()``, else the answer of one probe shared by every
        concurrent check (``ReviewClient.check_health``)."""
        return await self._client.check_health(self.probe)

    async def probe(self) -> bool:
        """Review a token that cannot be valid: 201 "not authenticated" proves connectivity and
        RBAC without caching anything. Sends one review each call: readiness goes through
        ``check_health``, which shares and remembers it."""
        try:
            await self._client.call(PROBE_TOKEN)
        except TokenReviewUnavailable:
            self._telemetry.review_call("probe_error")
            return False
        self._telemetry.review_call("probe_ok")
        return True

    @property
    def last_failure_message(self) -> str | None:
        """Why the latest call or probe failed, without any token."""
        return self._client.last_failure_message

    def cache_size(self) -> int:
        return self._client.cache_size()

    def in_flight(self, caller: Hashable | None = None) -> int:
        """Reviews outstanding (the readiness probe not counted: it has its own budget)."""
        return self._client.in_flight(caller)

    def cache_keys(self) -> list[Hashable]:
        return self._client.cache_keys()
