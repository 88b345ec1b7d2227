"""Asking the API server whether a caller may: SubjectAccessReview, cached and bounded.

``AuthorizationV1Api.create_subject_access_review`` through the service's own connection (the
ClusterRole ``system:auth-delegator``, which the service binds for TokenReview, grants
``create`` on ``subjectaccessreviews``). Protection, as for TokenReview (tokenreview.py), because
a flood of callers or of checks must not become a flood of reviews:

* decisions are cached per (caller, check): allowed for ``allowed_ttl``, denied for
  ``denied_ttl`` (kube-apiserver's webhook authorizer defaults: 5 minutes and 30 seconds,
  ``--authorization-webhook-cache-authorized-ttl`` / ``-unauthorized-ttl``); bounded in entries
  (a segmented LRU, cache.py, in which one caller holds at most half of the protected entries:
  one caller's flood of new checks cannot push out the decisions other callers are using). A
  decision is cached as data, never as an exception instance (docs/reliability.md, issue 11).
  Errors, and denials that came with an ``evaluationError``, are never cached;
* concurrent identical questions share one review (singleflight);
* at most ``max_in_flight`` reviews are outstanding, and one caller (subject) at most half of
  them (budget.py); beyond that the caller gets 503 at once;
* an answer with ``Retry-After`` (429 from priority and fairness, or a 503) stops all reviews
  until that time has passed: callers get 503 at once, with that ``Retry-After``.
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
from kubernetes_asyncio.client import AuthorizationV1Api

from .backoff import retry_after_header
from .budget import InFlightBudget
from .cache import VerdictCache
from .errors import AuthorizationUnavailable
from .kube import ApiServer, read_capped
from .telemetry import (
    AUTH_RESULT,
    HTTP_STATUS,
    SPAN_SUBJECTACCESSREVIEW,
    Span,
    Telemetry,
    http_attributes,
)

logger = logging.getLogger(__name__)

REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#: A SubjectAccessReview answer echoes the spec (user, groups, extra) and adds a reason: a few
#: KiB at most.
MAX_REVIEW_BYTES = 64 * 1024
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


@dataclass(frozen=True, slots=True)
class _Failure:
    """A review that could not be made, shared by every request that waited for it (as data:
    each request raises its own exception)."""

    message: str
    retry_after: float | None

    def raise_error(self) -> NoReturn:
        raise AuthorizationUnavailable(self.message, retry_after=self.retry_after)


#: A decision's cache key: (``access.principal(identity)``, the resolved check).
Key = tuple[Hashable, Hashable]


def caller_of(key: Key) -> Hashable:
    """Whose question ``key`` is, for the budgets: the subject, the first item of
    ``access.principal`` (not the whole principal, which names the token too: a caller with many
    tokens is still one caller)."""
    principal = key[0]
    return principal[0] if isinstance(principal, tuple) and principal else principal


class AccessReviewer:
    """Decides (caller, check) questions with SubjectAccessReviews, caching the answers."""

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
        self._api = api
        self._authorization = AuthorizationV1Api(api.client)
        self._telemetry = telemetry or Telemetry()
        self._allowed_ttl = allowed_ttl
        self._denied_ttl = denied_ttl
        self._budget = InFlightBudget(max_in_flight, what="SubjectAccessReviews",
                                      setting="AUTH_AUTHZ_MAX_IN_FLIGHT")
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: VerdictCache[Decision] = VerdictCache(
            capacity, clock, owner=lambda key: caller_of(cast(Key, key)))
        self._inflight: dict[Key, asyncio.Task[Decision | _Failure]] = {}
        #: No review is sent before this (monotonic) after an answer with Retry-After.
        self._not_before: float | None = None

    def cached(self, key: Key) -> Decision | None:
        """The cached decision for ``key`` (a (principal, check) tuple), without I/O."""
        return self._cache.get(key)

    async def review(self, key: Key, body: Mapping[str, Any]) -> Decision:
        """The decision for ``key``, asking with ``body`` (``access.review_body``) unless it is
        cached or already being asked; raise ``AuthorizationUnavailable``."""
        answer: Decision | _Failure | None = self._cache.get(key)
        if answer is None:
            task = self._inflight.get(key)
            if task is None:
                self._check_backoff()
                refusal = self._budget.take(caller_of(key))
                if refusal is not None:
                    raise AuthorizationUnavailable(refusal)
                task = asyncio.create_task(self._review(key, body))
                self._inflight[key] = task
            # shield: a client that hangs up must not cancel the review others wait for.
            answer = await asyncio.shield(task)
        if isinstance(answer, _Failure):
            answer.raise_error()
        return answer

    def cache_size(self) -> int:
        return len(self._cache)

    def in_flight(self, caller: Hashable | None = None) -> int:
        """Reviews outstanding: all, or those of ``caller`` (a subject)."""
        return len(self._budget) if caller is None else self._budget.held_by(caller)

    # --- internals --------------------------------------------------------------------------

    def _check_backoff(self) -> None:
        if self._not_before is None:
            return
        remaining = self._not_before - self._clock()
        if remaining > 0:
            raise AuthorizationUnavailable(
                f"the API server asked to wait (Retry-After); {remaining:.1f}s left",
                retry_after=remaining)
        self._not_before = None

    async def _review(self, key: Key, body: Mapping[str, Any]) -> Decision | _Failure:
        try:
            decision = await self._call(body)
        except AuthorizationUnavailable as error:
            return _Failure(error.detail, error.retry_after)
        finally:
            self._inflight.pop(key, None)
            self._budget.give_back(caller_of(key))
        lifetime = self._allowed_ttl if decision.allowed else self._denied_ttl
        if not decision.evaluation_error:  # a partial evaluation is an error: asked again
            self._cache.put(key, decision, lifetime)
        return decision

    async def _call(self, body: Mapping[str, Any]) -> Decision:
        attributes = http_attributes("POST", self._api.host + REVIEW_PATH)
        with self._telemetry.client_span(SPAN_SUBJECTACCESSREVIEW, attributes) as span:
            decision = await self._send(body, span)
            span.set_attribute(AUTH_RESULT, "allowed" if decision.allowed else "denied")
            return decision

    async def _send(self, body: Mapping[str, Any], span: Span) -> Decision:
        try:
            # With _preload_content=False the generated method returns the raw aiohttp
            # response: a bounded read, no model building (its annotation says
            # V1SubjectAccessReview). The body is the wire JSON already, which the client's
            # sanitize_for_serialization passes through as it is (a dict, not a model).
            response = cast(
                aiohttp.ClientResponse,
                await self._authorization.create_subject_access_review(
                    cast(Any, body), _preload_content=False,
                    _request_timeout=self._api.request_timeout()),
            )
            code = response.status
            span.set_attribute(HTTP_STATUS, code)
            retry_after = retry_after_header(response.headers, self._wall_clock())
            raw = await read_capped(response, MAX_REVIEW_BYTES)
        except (TimeoutError, aiohttp.ClientError) as error:
            self._failed(f"SubjectAccessReview call failed: {type(error).__name__}: {error}")
        if code == 403:
            self._failed(
                "API server answered 403 to SubjectAccessReview: the service account needs "
                "`create` on subjectaccessreviews.authorization.k8s.io (bind the ClusterRole "
                f"system:auth-delegator); it said: {_status_message(raw)}")
        if code == 401:
            self._failed("API server answered 401 to SubjectAccessReview: our own credentials "
                         "were refused (expired or rotated service-account token?)")
        if code not in (200, 201):
            self._failed(f"API server answered {code} to SubjectAccessReview", retry_after)
        try:
            status = json.loads(raw)["status"]
            if not isinstance(status, dict) or not isinstance(status.get("allowed"), bool):
                raise TypeError("status.allowed is not a boolean")
        except (ValueError, KeyError, TypeError) as error:
            self._failed(f"SubjectAccessReview answer is not one: {error}")
        # Fail closed: `denied` may not be true when `allowed` is (authorization/v1 types.go).
        allowed = status["allowed"] is True and status.get("denied") is not True
        return Decision(allowed, _text(status.get("reason")), _text(status.get("evaluationError")))

    def _failed(self, message: str, retry_after: float | None = None) -> NoReturn:
        # The message names the cause (RBAC, credentials, transport), never a token; the
        # authorizer logs it once per request that could not be decided.
        if retry_after:
            self._not_before = self._clock() + retry_after
            message += f" (Retry-After {retry_after:g}s)"
        raise AuthorizationUnavailable(message, retry_after=retry_after)


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
