"""Asking the API server: TokenReview, with a bounded cache and protection for the API server.

Used when local verification is not possible (no key set yet, discovery gave up, or an unknown
``kid`` right after a failed JWKS refresh) and, with ``AUTH_MODE=review``, for every first sight
of a token. The API server also checks what local verification cannot: that the bound pod and
service account still exist (docs/kubernetes-api.md#bound-objects).

Protection, because a flood of tokens must not become a flood of reviews:

* answers are cached under an HMAC of the token with a random per-process key (never the token
  itself; a reviewer serves one audience, so the key need not name it): accepted until the
  earlier of the token's ``exp`` and ``accepted_ttl``, rejected for ``rejected_ttl`` (the
  defaults of kube-apiserver's webhook token authenticator, 2 minutes and 30 seconds); bounded
  in entries (a segmented LRU, cache.py: tokens seen once, such as junk, cannot push out the
  answers for tokens in use). A verdict is cached as data, never as an exception instance.
  Infrastructure errors are never cached;
* concurrent requests with the same token share one review (singleflight);
* at most ``max_in_flight`` reviews are outstanding, and at most half of them for one caller
  whose token was verified locally first (``AUTH_MODE=review``; budget.py says why a claimed
  subject does not count); beyond that the caller gets 503 at once rather than a queue that
  grows with the flood;
* an answer with ``Retry-After`` (429 from priority and fairness, or a 503) stops all reviews
  until that time has passed: callers get 503 at once, with that ``Retry-After``;
* readiness (``probe``) has a budget of its own: one probe in flight, shared by every
  concurrent readiness call, and its answer remembered for ``HEALTH_MEMORY`` seconds, so that
  unauthenticated ``/readyz`` calls never cost a review each (issue 18, finding 5).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import aiohttp
from kubernetes_asyncio.client import (
    AuthenticationV1Api,
    V1TokenReview,
    V1TokenReviewSpec,
)

from .backoff import retry_after_header
from .budget import InFlightBudget
from .cache import TokenHasher, VerdictCache
from .errors import ReviewRejected, TokenReviewUnavailable
from .identity import Identity, parse_subject
from .kube import ApiServer, read_capped
from .telemetry import (
    AUTH_RESULT,
    HTTP_STATUS,
    SPAN_TOKENREVIEW,
    Span,
    Telemetry,
    http_attributes,
)

logger = logging.getLogger(__name__)

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
#: A TokenReview answer echoes the token and lists a user: a few KiB at most.
MAX_REVIEW_BYTES = 64 * 1024
#: How long the answer of a call or probe stands for /readyz: a readiness check within this
#: time sends no probe. Kubernetes probes every 10 s by default (periodSeconds), so a pod with no
#: traffic costs the API server about one probe per kubelet probe, however often /readyz is hit.
HEALTH_MEMORY = 10.0
#: The token the readiness probe reviews: not a JWT, so it can never be authenticated.
PROBE_TOKEN = "compass-auth.readiness-probe.invalid"  # noqa: S105 (not a secret)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """A review's answer as data. Each request that reads it raises an exception of its own: a
    cached exception instance, raised again on every hit, would prepend each raiser's frames to
    its ``__traceback__`` and keep them alive as long as the cache entry (issue 11)."""

    identity: Identity | None
    rejection: str | None  # why the API server (or our checks of its answer) refused the token
    lifetime: float  # seconds to cache it

    def identity_or_raise(self) -> Identity:
        if self.identity is None:
            raise ReviewRejected(self.rejection or "TokenReview: not authenticated")
        return self.identity


@dataclass(frozen=True, slots=True)
class _Failure:
    """A review that could not be made, shared by every request that waited for it (as data,
    for the same reason as ``_Verdict``)."""

    message: str
    retry_after: float | None

    def raise_error(self) -> NoReturn:
        raise TokenReviewUnavailable(self.message, retry_after=self.retry_after)


class TokenReviewer:
    """Reviews tokens for one audience through ``AuthenticationV1Api.create_token_review``."""

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
        self._api = api
        self._telemetry = telemetry or Telemetry()
        self._authentication = AuthenticationV1Api(api.client)
        self._audience = audience
        self._budget = InFlightBudget(max_in_flight, what="TokenReviews",
                                      setting="AUTH_TOKENREVIEW_MAX_IN_FLIGHT")
        self._accepted_ttl = accepted_ttl
        self._rejected_ttl = rejected_ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self.hasher = hasher or TokenHasher()
        self._cache: VerdictCache[_Verdict] = VerdictCache(capacity, clock)
        self._inflight: dict[bytes, asyncio.Task[_Verdict | _Failure]] = {}
        self._last_failure: float | None = None
        self._last_success: float | None = None
        #: Why the latest call or probe failed (for readiness), without any token.
        self.last_failure_message: str | None = None
        #: The readiness probe in flight, shared by concurrent readiness checks.
        self._probe: asyncio.Task[bool] | None = None
        #: No review is sent before this (monotonic) after an answer with Retry-After.
        self._not_before: float | None = None

    # --- the request path -------------------------------------------------------------------

    def cached(self, key: bytes) -> Identity | None:
        """A cached verdict without any I/O: the identity, or raise the cached rejection.

        ``key`` is ``self.hasher(token)`` (computed once per request by the caller)."""
        verdict = self._cache.get(key)
        return None if verdict is None else verdict.identity_or_raise()

    def accepted(self, key: bytes) -> Identity | None:
        """The cached identity of an accepted review; ``None`` otherwise (never raises)."""
        verdict = self._cache.get(key)
        return verdict.identity if verdict is not None else None

    async def review(self, token: str, key: bytes, expires_at: int | None,
                     caller: Hashable | None = None) -> Identity:
        """The identity the API server confirms, or raise ``ReviewRejected`` /
        ``TokenReviewUnavailable``. ``expires_at`` (the token's ``exp``, read by the caller's
        pre-check) bounds how long an accepted answer is cached; ``caller`` (the verified
        subject, or ``None`` when unknown) is whose share of the in-flight reviews this one
        takes."""
        answer: _Verdict | _Failure | None = self._cache.get(key)
        if answer is None:
            task = self._inflight.get(key)
            if task is None:
                self._check_backoff()
                refusal = self._budget.take(caller)
                if refusal is not None:
                    raise TokenReviewUnavailable(refusal)
                task = asyncio.create_task(self._review(token, key, expires_at, caller))
                self._inflight[key] = task
            # shield: a client that hangs up must not cancel the review others wait for.
            answer = await asyncio.shield(task)
        if isinstance(answer, _Failure):
            answer.raise_error()
        return answer.identity_or_raise()

    def healthy(self) -> bool | None:
        """``True``/``False`` from the latest call or probe within ``HEALTH_MEMORY`` seconds,
        ``None`` when nothing recent is known."""
        now = self._clock()
        recent = [
            (when, ok)
            for when, ok in ((self._last_success, True), (self._last_failure, False))
            if when is not None and now - when <= HEALTH_MEMORY
        ]
        return max(recent)[1] if recent else None

    async def check_health(self) -> bool:
        """Whether TokenReview works: ``healthy()`` when a call or probe answered within
        ``HEALTH_MEMORY`` seconds, else the answer of one probe. Concurrent checks share the
        probe in flight (singleflight), so at most one probe is ever outstanding, and its answer
        stands for ``HEALTH_MEMORY`` seconds: however many readiness checks arrive, they cost
        the API server at most one review per that time."""
        healthy = self.healthy()
        if healthy is not None:
            return healthy
        if self._probe is None:
            self._probe = asyncio.create_task(self._run_probe(), name="compass-auth-probe")
        # shield: a readiness caller that hangs up must not cancel the probe others wait for.
        return await asyncio.shield(self._probe)

    async def probe(self) -> bool:
        """Review a token that cannot be valid: 201 "not authenticated" proves connectivity and
        RBAC without caching anything. Sends one review each call: readiness goes through
        ``check_health``, which shares and remembers it."""
        try:
            self._check_backoff()
            await self._call(PROBE_TOKEN)
        except TokenReviewUnavailable as error:
            self.last_failure_message = error.detail
            self._telemetry.review_call("probe_error")
            return False
        self._telemetry.review_call("probe_ok")
        return True

    def cache_size(self) -> int:
        return len(self._cache)

    def in_flight(self) -> int:
        """Reviews outstanding (the readiness probe not counted: it has its own budget)."""
        return len(self._budget)

    # --- internals --------------------------------------------------------------------------

    async def _run_probe(self) -> bool:
        # The probe's call records its answer (``_send`` on success, ``_failed`` on failure),
        # which ``healthy()`` then serves for HEALTH_MEMORY. A refusal by a pending Retry-After
        # sends nothing and records nothing: the next check asks the backoff again, no I/O.
        try:
            return await self.probe()
        finally:
            self._probe = None

    def _check_backoff(self) -> None:
        if self._not_before is None:
            return
        remaining = self._not_before - self._clock()
        if remaining > 0:
            raise TokenReviewUnavailable(
                f"the API server asked to wait (Retry-After); {remaining:.1f}s left",
                retry_after=remaining,
            )
        self._not_before = None

    async def _review(self, token: str, key: bytes, expires_at: int | None,
                      caller: Hashable | None) -> _Verdict | _Failure:
        try:
            status = await self._call(token)
            verdict = self._judge(status, token, expires_at)
        except TokenReviewUnavailable as error:
            self._telemetry.review_call("error")
            return _Failure(error.detail, error.retry_after)
        finally:
            self._inflight.pop(key, None)
            self._budget.give_back(caller)
        self._telemetry.review_call("authenticated" if verdict.identity else "rejected")
        self._cache.put(key, verdict, verdict.lifetime)
        return verdict

    async def _call(self, token: str) -> Mapping[str, Any]:
        attributes = http_attributes("POST", self._api.host + REVIEW_PATH)
        with self._telemetry.client_span(SPAN_TOKENREVIEW, attributes) as span:
            status = await self._send(token, span)
            span.set_attribute(AUTH_RESULT, "authenticated" if status.get("authenticated") is True
                               else "rejected")
            return status

    async def _send(self, token: str, span: Span) -> Mapping[str, Any]:
        body = V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=V1TokenReviewSpec(token=token, audiences=[self._audience]),
        )
        try:
            # With _preload_content=False the generated method returns the raw aiohttp
            # response (its annotation says V1TokenReview): a bounded read, no model building.
            response = cast(
                aiohttp.ClientResponse,
                await self._authentication.create_token_review(
                    body,
                    _preload_content=False,
                    _request_timeout=self._api.request_timeout(),
                ),
            )
            code = response.status
            span.set_attribute(HTTP_STATUS, code)
            retry_after = retry_after_header(response.headers, self._wall_clock())
            raw = await read_capped(response, MAX_REVIEW_BYTES)
        except (TimeoutError, aiohttp.ClientError) as error:
            self._failed(f"TokenReview call failed: {type(error).__name__}: {error}")
        if code in (401, 403):
            self._failed(
                f"API server answered {code} to TokenReview: the service account needs "
                "`create` on tokenreviews.authentication.k8s.io "
                "(bind the ClusterRole system:auth-delegator)"
                if code == 403
                else f"API server answered {code} to TokenReview: our own credentials "
                "were refused (expired or rotated service-account token?)"
            )
        if code not in (200, 201):
            self._failed(f"API server answered {code} to TokenReview", retry_after)
        try:
            document = json.loads(raw)
            status = document["status"]
            if not isinstance(status, dict):
                raise TypeError("status is not an object")
        except (ValueError, KeyError, TypeError) as error:
            self._failed(f"TokenReview answer is not a TokenReview: {error}")
        self._last_success = self._clock()
        return status

    def _failed(self, message: str, retry_after: float | None = None) -> NoReturn:
        # The message names the cause (RBAC, credentials, transport), never the token; the
        # caller logs it once per rejected request (ERROR, reason=tokenreview_unavailable).
        self._last_failure = self._clock()
        self.last_failure_message = message
        if retry_after:
            self._not_before = self._last_failure + retry_after
            message += f" (Retry-After {retry_after:g}s)"
        raise TokenReviewUnavailable(message, retry_after=retry_after)

    def _judge(self, status: Mapping[str, Any], token: str, expires_at: int | None) -> _Verdict:
        rejected_for = self._rejected_ttl
        if status.get("authenticated") is not True:
            # The error text is an aggregate that varies by version: log it, never parse it.
            error = str(status.get("error") or "not authenticated")[:300]
            return _Verdict(None, f"TokenReview: {error}", rejected_for)
        user = status.get("user")
        if not isinstance(user, dict) or parse_subject(user.get("username")) is None:
            name = str(user.get("username") if isinstance(user, dict) else None)[:100]
            return _Verdict(
                None, f"TokenReview user {name!r} is not a service account", rejected_for
            )
        audiences = status.get("audiences")
        if audiences is not None and (
            not isinstance(audiences, list) or self._audience not in audiences
        ):
            return _Verdict(
                None, f"TokenReview audiences {audiences!r} lack {self._audience!r}", rejected_for
            )
        returned = tuple(a for a in audiences or [self._audience] if isinstance(a, str))
        identity = Identity.from_token_review(user, returned, expires_at)
        lifetime = self._accepted_ttl
        if expires_at is not None:
            lifetime = min(lifetime, expires_at - self._wall_clock())
        return _Verdict(identity, None, lifetime)
