"""One client for the API server's review APIs (TokenReview, SubjectAccessReview), written once.

A review API is a POST whose answer's ``status`` decides a question. What differs between them
(the request, how a 401/403 is explained, how a ``status`` becomes a verdict) is a small
``ReviewWire``; everything else is here, because a flood of tokens or of checks must not become
a flood of reviews:

* verdicts are cached as data, never as exception instances (issue 11), in a bounded segmented
  LRU (core/cache.py) whose ``owner`` lets one caller hold at most half of the protected entries;
  failures are never cached;
* concurrent identical questions share one review (singleflight); a client that hangs up does
  not cancel the review others wait for;
* at most ``max_in_flight`` reviews are outstanding, one caller at most its share of them
  (apiserver/budget.py); beyond that the caller is refused at once rather than queued;
* an answer with ``Retry-After`` (429 from priority and fairness, or a 503) stops all reviews
  until that time has passed: callers are refused at once, with that ``Retry-After``;
* every call has the connection's timeout and a bounded read, and its status is triaged: 401
  (our credentials), 403 (our RBAC), other non-2xx, an answer that is not a review;
* health: what the latest call said, for ``HEALTH_MEMORY`` seconds, else one shared probe
  (readiness: issue 18, finding 5).

Failures raise the wire's ``unavailable`` class (``TokenReviewUnavailable``,
``AuthorizationUnavailable``): 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, Protocol, TypeVar

import aiohttp

from ..core.cache import VerdictCache
from ..core.errors import AuthorizationUnavailable, TokenReviewUnavailable
from ..telemetry import AUTH_RESULT, HTTP_STATUS, Telemetry, http_attributes
from .backoff import retry_after_header
from .budget import InFlightBudget
from .connection import ApiServer, read_capped

#: A review answer echoes its question (a token, a user with groups and extra) and adds a
#: reason: a few KiB at most.
MAX_REVIEW_BYTES = 64 * 1024
#: How long the answer of a call or probe stands for readiness: a readiness check within this
#: time sends no probe. Kubernetes probes every 10 s by default (periodSeconds), so a pod with no
#: traffic costs the API server about one probe per kubelet probe, however often /readyz is hit.
HEALTH_MEMORY = 10.0

Unavailable = TokenReviewUnavailable | AuthorizationUnavailable
Question = TypeVar("Question", contravariant=True)
Verdict = TypeVar("Verdict")
Key = TypeVar("Key", bound=Hashable)


class ReviewWire(Protocol[Question]):
    """What one review API adds to the client: its names, its request and its refusals."""

    #: ``TokenReview``: in the failure sentences.
    kind: str
    #: The client span's name (``auth.tokenreview``).
    span_name: str
    #: The URL path, for the client span.
    path: str
    @property
    def unavailable(self) -> type[Unavailable]:
        """The error a failure raises (503)."""
        ...

    async def post(self, question: Question, request_timeout: Any) -> aiohttp.ClientResponse:
        """Send the review; the raw response (``_preload_content=False``)."""
        ...

    def refused(self, code: int, raw: bytes) -> str:
        """The sentence for a 401 or a 403 from the API server: whose permission is missing."""
        ...

    def status(self, raw: bytes) -> Mapping[str, Any]:
        """The answer's ``status``; raise ``ValueError``/``KeyError``/``TypeError`` when the
        answer is not a review."""
        ...

    def result(self, status: Mapping[str, Any]) -> str:
        """The client span's ``auth.result``."""
        ...

    def count(self, result: str) -> None:
        """Count a call's result in the wire's metric, if it has one (``error`` when a review
        failed; a judge counts the verdicts it gives)."""
        ...


@dataclass(frozen=True, slots=True)
class Failure:
    """A review that could not be made, shared by every request that waited for it (as data:
    each request raises an exception of its own)."""

    unavailable: type[Unavailable]
    message: str
    retry_after: float | None

    def raise_error(self) -> NoReturn:
        raise self.unavailable(self.message, retry_after=self.retry_after)


#: How a ``status`` becomes a verdict, and for how many seconds to cache it (``None``: not at
#: all, e.g. a denial with an evaluation error).
Judge = Callable[[Mapping[str, Any]], tuple[Verdict, float | None]]


class ReviewClient(Generic[Key, Question, Verdict]):
    """Reviews questions through one ``ReviewWire``, with the protections of the module
    docstring. ``cached`` is the one read of the verdict cache; ``review`` assumes its caller
    read it and missed."""

    def __init__(
        self,
        api: ApiServer,
        wire: ReviewWire[Question],
        *,
        capacity: int,
        max_in_flight: int,
        setting: str,
        owner: Callable[[Hashable], Hashable] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._api = api
        self._wire = wire
        self._telemetry = telemetry or Telemetry()
        self._budget = InFlightBudget(max_in_flight, what=f"{wire.kind}s", setting=setting)
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: VerdictCache[Verdict] = VerdictCache(capacity, clock, owner=owner)
        self._inflight: dict[Key, asyncio.Task[Verdict | Failure]] = {}
        #: No review is sent before this (monotonic) after an answer with Retry-After.
        self._not_before: float | None = None
        self._last_success: float | None = None
        self._last_failure: float | None = None
        #: Why the latest call failed (for readiness), without any token.
        self.last_failure_message: str | None = None
        #: The probe in flight, shared by concurrent health checks.
        self._probe: asyncio.Task[bool] | None = None

    # --- the request path -------------------------------------------------------------------

    def cached(self, key: Key) -> Verdict | None:
        """The cached verdict for ``key``, without I/O."""
        return self._cache.get(key)

    async def review(self, key: Key, question: Question, judge: Judge[Verdict],
                     caller: Hashable | None, budget: InFlightBudget | None = None) -> Verdict:
        """The verdict for ``key`` (not in the cache: the caller looked), asking with
        ``question`` unless the same key is being asked already; raise the wire's
        ``unavailable``. ``caller`` is whose share of the in-flight reviews this takes
        (``None``: unknown, the total cap alone applies). ``budget`` replaces the client's own
        in-flight budget: background confirmations (verification/revocation.py) count against
        one of their own, so they never take a slot a request is waiting for."""
        task = self._inflight.get(key)
        if task is None:
            self._check_backoff()
            if budget is None:
                budget = self._budget
            refusal = budget.take(caller)
            if refusal is not None:
                raise self._wire.unavailable(refusal)
            task = asyncio.create_task(self._review(key, question, judge, caller, budget))
            self._inflight[key] = task
        # shield: a client that hangs up must not cancel the review others wait for.
        answer = await asyncio.shield(task)
        if isinstance(answer, Failure):
            answer.raise_error()
        return answer

    async def call(self, question: Question) -> Mapping[str, Any]:
        """One review, uncached and outside the budget (the health probe): its ``status``;
        raise the wire's ``unavailable``."""
        try:
            self._check_backoff()
        except (TokenReviewUnavailable, AuthorizationUnavailable) as error:
            self.last_failure_message = error.detail
            raise
        return await self._call(question)

    async def _call(self, question: Question) -> Mapping[str, Any]:
        attributes = http_attributes("POST", self._api.host + self._wire.path)
        with self._telemetry.client_span(self._wire.span_name, attributes) as span:
            status = await self._send(question, span)
            span.set_attribute(AUTH_RESULT, self._wire.result(status))
            return status

    # --- health -----------------------------------------------------------------------------

    def healthy(self) -> bool | None:
        """``True``/``False`` from the latest call within ``HEALTH_MEMORY`` seconds, ``None``
        when nothing recent is known."""
        now = self._clock()
        recent = [
            (when, ok)
            for when, ok in ((self._last_success, True), (self._last_failure, False))
            if when is not None and now - when <= HEALTH_MEMORY
        ]
        return max(recent)[1] if recent else None

    async def check_health(self, probe: Callable[[], Awaitable[bool]]) -> bool:
        """``healthy()`` when a call answered within ``HEALTH_MEMORY`` seconds, else the answer
        of one ``probe()``. Concurrent checks share the probe in flight (singleflight) and its
        answer stands for ``HEALTH_MEMORY`` seconds: however many checks arrive, they cost the
        API server at most one review per that time."""
        healthy = self.healthy()
        if healthy is not None:
            return healthy
        if self._probe is None:
            self._probe = asyncio.create_task(self._run_probe(probe), name="compass-auth-probe")
        # shield: a readiness caller that hangs up must not cancel the probe others wait for.
        return await asyncio.shield(self._probe)

    # --- sizes ------------------------------------------------------------------------------

    def cache_size(self) -> int:
        return len(self._cache)

    def in_flight(self, caller: Hashable | None = None) -> int:
        """Reviews outstanding: all, or those of ``caller``."""
        return len(self._budget) if caller is None else self._budget.held_by(caller)

    def forget_where(self, doomed: Callable[[Hashable], bool]) -> int:
        """Drop the cached verdicts whose key ``doomed`` names (a scan: rare events only)."""
        return self._cache.discard_where(doomed)

    def cache_keys(self) -> list[Hashable]:
        """The keys cached (for tests: never tokens)."""
        return self._cache.keys()

    # --- internals --------------------------------------------------------------------------

    async def _run_probe(self, probe: Callable[[], Awaitable[bool]]) -> bool:
        # The probe's call records its answer (``_send``), which ``healthy()`` then serves for
        # HEALTH_MEMORY. A refusal by a pending Retry-After sends nothing and records nothing:
        # the next check asks the backoff again, no I/O.
        try:
            return await probe()
        finally:
            self._probe = None

    def _check_backoff(self) -> None:
        if self._not_before is None:
            return
        remaining = self._not_before - self._clock()
        if remaining > 0:
            raise self._wire.unavailable(
                f"the API server asked to wait (Retry-After); {remaining:.1f}s left",
                retry_after=remaining)
        self._not_before = None

    async def _review(self, key: Key, question: Question, judge: Judge[Verdict],
                      caller: Hashable | None, budget: InFlightBudget) -> Verdict | Failure:
        try:
            status = await self._call(question)
        except (TokenReviewUnavailable, AuthorizationUnavailable) as error:
            self._wire.count("error")
            return Failure(self._wire.unavailable, error.detail, error.retry_after)
        finally:
            self._inflight.pop(key, None)
            budget.give_back(caller)
        verdict, lifetime = judge(status)
        if lifetime is not None:
            self._cache.put(key, verdict, lifetime)
        return verdict

    async def _send(self, question: Question, span: Any) -> Mapping[str, Any]:
        kind = self._wire.kind
        try:
            response = await self._wire.post(question, self._api.request_timeout())
            code = response.status
            span.set_attribute(HTTP_STATUS, code)
            retry_after = retry_after_header(response.headers, self._wall_clock())
            raw = await read_capped(response, MAX_REVIEW_BYTES)
        except (TimeoutError, aiohttp.ClientError) as error:
            self._failed(f"{kind} call failed: {type(error).__name__}: {error}")
        if code in (401, 403):
            self._failed(self._wire.refused(code, raw))
        if code not in (200, 201):
            self._failed(f"API server answered {code} to {kind}", retry_after)
        try:
            status = self._wire.status(raw)
        except (ValueError, KeyError, TypeError) as error:
            self._failed(f"{kind} answer is not one: {error}")
        self._last_success = self._clock()
        return status

    def _failed(self, message: str, retry_after: float | None = None) -> NoReturn:
        # The message names the cause (RBAC, credentials, transport), never a token; the
        # caller logs it once per request it refuses (ERROR, reason=..._unavailable).
        self._last_failure = self._clock()
        self.last_failure_message = message
        if retry_after:
            self._not_before = self._last_failure + retry_after
            message += f" (Retry-After {retry_after:g}s)"
        raise self._wire.unavailable(message, retry_after=retry_after)


def json_status(raw: bytes) -> Mapping[str, Any]:
    """The ``status`` object of a review's JSON answer (``ReviewWire.status``'s usual body)."""
    status = json.loads(raw)["status"]
    if not isinstance(status, dict):
        raise TypeError("status is not an object")
    return status
