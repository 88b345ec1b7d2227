"""Asking the API server whether a caller may: SubjectAccessReview, cached and bounded.

``AuthorizationV1Api.create_subject_access_review`` through the service's own connection (the
ClusterRole ``system:auth-delegator``, which the service binds for TokenReview, grants
``create`` on ``subjectaccessreviews``). This module is the SubjectAccessReview wire; the
protection is the review client's (apiserver/reviews.py), as for TokenReview, because a flood of
callers or
of checks must not become a flood of reviews:

* decisions are cached per (caller, check): allowed for ``allowed_ttl``, denied for
  ``denied_ttl`` (kube-apiserver's webhook authorizer defaults: 5 minutes and 30 seconds,
  ``--authorization-webhook-cache-authorized-ttl`` / ``-unauthorized-ttl``); bounded in entries
  (a segmented LRU, core/cache.py, in which one caller holds at most half of the protected entries:
  one caller's flood of new checks cannot push out the decisions other callers are using). A
  decision is cached as data, never as an exception instance (docs/reliability.md, issue 11).
  Errors, and denials that came with an ``evaluationError``, are never cached;
* concurrent identical questions share one review (singleflight);
* at most ``max_in_flight`` reviews are outstanding, and one caller (subject) at most half of
  them (apiserver/budget.py); beyond that the caller gets 503 at once;
* an answer with ``Retry-After`` (429 from priority and fairness, or a 503) stops all reviews
  until that time has passed: callers get 503 at once, with that ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from kubernetes_asyncio.client import AuthorizationV1Api

from ..core.errors import AuthorizationUnavailable
from ..telemetry import SPAN_SUBJECTACCESSREVIEW, Telemetry
from .connection import ApiServer
from .reviews import ReviewClient, json_status

logger = logging.getLogger(__name__)

REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#: The API server's reason is logged, never parsed: this much of it is enough to read.
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class Decision:
    """The API server's answer to one review, as data."""

    allowed: bool
    #: ``status.reason``: why (RBAC names the binding that allowed); may be empty.
    reason: str = ""
    #: ``status.evaluationError``: the authorizer could not evaluate everything.
    evaluation_error: str = ""


#: A decision's cache key: (``access.principal(identity)``, the resolved check).
Key = tuple[Hashable, Hashable]


def caller_of(key: Key) -> Hashable:
    """Whose question ``key`` is, for the budgets: the subject, the first item of
    ``access.principal`` (not the whole principal, which names the token too: a caller with many
    tokens is still one caller)."""
    principal = key[0]
    return principal[0] if isinstance(principal, tuple) and principal else principal


class SubjectAccessReviewWire:
    """``AuthorizationV1Api.create_subject_access_review`` (a ``reviews.ReviewWire``)."""

    kind = "SubjectAccessReview"
    span_name = SPAN_SUBJECTACCESSREVIEW
    path = REVIEW_PATH
    unavailable = AuthorizationUnavailable

    def __init__(self, api: ApiServer) -> None:
        self._authorization = AuthorizationV1Api(api.client)

    async def post(self, body: Mapping[str, Any],
                   request_timeout: Any) -> aiohttp.ClientResponse:
        # With _preload_content=False the generated method returns the raw aiohttp response: a
        # bounded read, no model building (its annotation says V1SubjectAccessReview). The body
        # is the wire JSON already, which the client's sanitize_for_serialization passes through
        # as it is (a dict, not a model).
        return cast(aiohttp.ClientResponse,
                    await self._authorization.create_subject_access_review(
                        cast(Any, body), _preload_content=False, _request_timeout=request_timeout))

    def refused(self, code: int, raw: bytes) -> str:
        if code == 403:
            return ("API server answered 403 to SubjectAccessReview: the service account needs "
                    "`create` on subjectaccessreviews.authorization.k8s.io (bind the ClusterRole "
                    f"system:auth-delegator); it said: {_status_message(raw)}")
        return ("API server answered 401 to SubjectAccessReview: our own credentials were "
                "refused (expired or rotated service-account token?)")

    def status(self, raw: bytes) -> Mapping[str, Any]:
        status = json_status(raw)
        if not isinstance(status.get("allowed"), bool):
            raise TypeError("status.allowed is not a boolean")
        return status

    def result(self, status: Mapping[str, Any]) -> str:
        return "allowed" if decision_of(status).allowed else "denied"

    def count(self, result: str) -> None:
        """SubjectAccessReview calls have no metric of their own (``auth.authorizations`` counts
        decisions)."""


def decision_of(status: Mapping[str, Any]) -> Decision:
    """The ``Decision`` a review's ``status`` holds."""
    # Fail closed: `denied` may not be true when `allowed` is (authorization/v1 types.go).
    allowed = status["allowed"] is True and status.get("denied") is not True
    return Decision(allowed, _text(status.get("reason")), _text(status.get("evaluationError")))


class AccessReviewer:
    """Decides (caller, check) questions with SubjectAccessReviews: the wire over the review
    client."""

    def __init__(
        self,
        api: ApiServer,
        *,
        allowed_ttl: float,
        denied_ttl: float,
        capacity: int,
        max_in_flight: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._client: ReviewClient[Key, Mapping[str, Any], Decision] = ReviewClient(
            api, SubjectAccessReviewWire(api), capacity=capacity, max_in_flight=max_in_flight,
            setting="AUTH_AUTHZ_MAX_IN_FLIGHT",
            owner=lambda key: caller_of(cast(Key, key)), clock=clock, wall_clock=wall_clock,
            telemetry=telemetry)
        self._allowed_ttl = allowed_ttl
        self._denied_ttl = denied_ttl

    def cached(self, key: Key) -> Decision | None:
        """The cached decision for ``key`` (a (principal, check) tuple), without I/O: the one
        read of the cache per request and check."""
        return self._client.cached(key)

    async def review(self, key: Key, body: Mapping[str, Any]) -> Decision:
        """The decision for ``key`` (not cached: the caller looked), asking with ``body``
        (``access.review_body``) unless it is already being asked; raise
        ``AuthorizationUnavailable``."""
        return await self._client.review(key, body, self._judge, caller_of(key))

    def forget(self, caller: Hashable) -> int:
        """Drop every cached decision whose principal is ``caller``; return how many."""
        return self._client.forget_where(lambda key: cast(Key, key)[0] == caller)

    def cache_size(self) -> int:
        return self._client.cache_size()

    def in_flight(self, caller: Hashable | None = None) -> int:
        """Reviews outstanding: all, or those of ``caller`` (a subject)."""
        return self._client.in_flight(caller)

    def _judge(self, status: Mapping[str, Any]) -> tuple[Decision, float | None]:
        decision = decision_of(status)
        if decision.evaluation_error:
            return decision, None  # a partial evaluation is an error: asked again
        return decision, self._allowed_ttl if decision.allowed else self._denied_ttl


def _text(value: object) -> str:
    return value[:MAX_REASON_CHARS] if isinstance(value, str) else ""


def _status_message(raw: bytes) -> str:
    """The ``message`` of a ``metav1.Status`` error body, which names the missing permission
    (``... cannot create resource "subjectaccessreviews" in API group ...``)."""
    try:
        message = json.loads(raw).get("message")
    except (ValueError, AttributeError):
        message = None
    return _text(message) or "(no message)"
