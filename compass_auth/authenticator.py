"""Orchestration: from an ``Authorization`` header to an ``Identity``, with logging.

The ``Authenticator`` owns the API-server connection, the key cache and the TokenReview client,
runs the start-up discovery (with retries) and the background refresh (which, while discovery
fails, retries forever every ``AUTH_REDISCOVERY_INTERVAL``), and decides which way a token is
verified.
It is framework-neutral: ``handler.AuthenticatedHandler`` is a thin Tornado adapter over it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .bearer import extract_bearer, fingerprint
from .cache import TokenHasher, VerdictCache
from .claims import check_kubernetes_policy, check_subject_allowed, subject_allowed
from .discovery import DiscoveryClient
from .errors import (
    AuthError,
    IssuerMismatch,
    KeysUnavailable,
    TokenReviewUnavailable,
    UnknownKey,
    VerificationUnavailable,
)
from .identity import Identity
from .keys import KeyCache
from .keyset import KeySet
from .kube import ApiServer, connect
from .settings import AuthSettings
from .stale import StaleTokenLog
from .telemetry import METHOD_JWKS, METHOD_TOKENREVIEW, Telemetry, Verification
from .tokenreview import TokenReviewer
from .troubleshoot import IssuerCrossCheck
from .verifier import VerificationPolicy, precheck, verify_local

logger = logging.getLogger(__name__)

#: Log messages operators grep for; keep them stable.
MSG_REJECTED = "token verification failed"
MSG_ACCEPTED = "token verified"
MSG_FATAL = "fatal: failed to create OIDC provider after retries"
#: Retry-After for 503s caused by TokenReview (busy or failing): a short pause, not a schedule.
TOKENREVIEW_RETRY_AFTER = 2


class Authenticator:
    """Verifies bearer tokens for one service (one audience).

    Which way a token is verified (``AUTH_MODE``):

    * ``auto`` (default): locally against the JWKS. TokenReview only when no key set is loaded
      (start-up, discovery down) or when an unknown ``kid`` meets a failed JWKS refresh (the key
      may be new). A token the local checks reject is rejected: no second opinion.
    * ``review``: every first sight of a token also goes through TokenReview (after the local
      checks, when keys are loaded), so a deleted pod's token stops working within
      ``AUTH_TOKENREVIEW_CACHE_TTL``; costs one API call per distinct token per TTL, and 503 when
      the API server cannot answer.
    """

    def __init__(
        self,
        settings: AuthSettings,
        api: ApiServer,
        *,
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self._api = api
        self._clock = clock
        self.telemetry = telemetry or Telemetry()
        self._discovery = DiscoveryClient(api, telemetry=self.telemetry)
        self._keys = KeyCache(
            self._discovery.fetch,
            refresh_interval=settings.jwks_refresh_interval,
            min_refresh_interval=settings.jwks_min_refresh_interval,
            max_stale=settings.jwks_max_stale,
            retry_interval=settings.rediscovery_interval,
        )
        self._keys.add_listener(self._on_keys_loaded)
        self._hasher = TokenHasher()
        # Locally verified identities. Not used in review mode: there every first sight of a
        # token must reach the API server (its answers are cached by the reviewer instead).
        self._verified: VerdictCache[Identity] = VerdictCache(
            settings.cache_size if settings.mode == "auto" else 0
        )
        self._reviewer = TokenReviewer(
            api,
            settings.audience,
            max_in_flight=settings.tokenreview_max_in_flight,
            accepted_ttl=settings.tokenreview_cache_ttl,
            rejected_ttl=settings.tokenreview_negative_ttl,
            capacity=settings.tokenreview_cache_size,
            hasher=self._hasher,
            telemetry=self.telemetry,
        )
        self.telemetry.observe_cache("tokenreview", self._reviewer.cache_size)
        self.telemetry.observe_cache("verified", self._verified.__len__)
        self.telemetry.observe_path(self.current_path)
        self.policy = VerificationPolicy.from_settings(settings)
        # In-cluster quirks: warn when discovery's issuer, AUTH_ISSUER and our own token's iss
        # disagree (at start-up, and whenever the discovered issuer changes).
        self._keys.add_listener(IssuerCrossCheck(
            settings.issuers, api.own_token, skip=settings.insecure_skip_issuer_check
        ).on_keys)
        self._stale_log = StaleTokenLog()
        self._in_fallback = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._startup_done = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        settings: AuthSettings,
        environ: Mapping[str, str],
        telemetry: Telemetry | None = None,
    ) -> Authenticator:
        """Configure the API-server client (fails fast on bad configuration); call ``start()``."""
        return cls(settings, await connect(settings, environ), telemetry=telemetry)

    @property
    def keys(self) -> KeyCache:
        return self._keys

    @property
    def reviewer(self) -> TokenReviewer:
        return self._reviewer

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin discovery in the background; TokenReview serves until keys are loaded."""
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._run(), name="compass-auth-keys"))

    async def wait_started(self) -> None:
        """Wait until the start-up discovery finished (successfully or not)."""
        await self._startup_done.wait()

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._api.close()

    async def _run(self) -> None:
        try:
            # Each failed attempt is noted at once, so /readyz shows why during the retries.
            keys = await self._discovery.fetch_with_retries(on_failure=self._keys.note_failure)
        except Exception as error:  # noqa: BLE001 - every failure is reported the same way
            self._keys.note_failure(error)
            logger.error(MSG_FATAL, extra={"error": str(error), "api_server": self._api.host})
            self._enter_fallback(str(error))
        else:
            # Seed the cache with what start-up fetched, without a second request.
            self._keys.seed(keys)
        finally:
            self._startup_done.set()
        # Forever: refresh, and while discovery fails retry every AUTH_REDISCOVERY_INTERVAL.
        await self._keys.run(self._stop)

    # --- verification ---------------------------------------------------------------------

    def authenticate_cached(
        self,
        authorization: list[str],
        allowed_subjects: Collection[str] | None = None,
    ) -> Identity | None:
        """The common case, without I/O or ``await``: a token verified before (locally, or by a
        TokenReview within its TTL) that is allowed here; ``None`` for anything else.

        A client reuses its bound token for up to an hour, so this answers most requests for a
        hash and a dict lookup. The answer is counted and its attributes go on the request's
        span, without a span of its own (a span would cost several times the answer).
        """
        if len(authorization) != 1:
            return None
        scheme, _, token = authorization[0].partition(" ")
        if scheme != "Bearer" or not token:
            return None  # other shapes take the full path, which explains its refusal
        key = self._hasher(token)
        hit = self._verified.get(key)
        method = METHOD_JWKS
        if hit is None:
            hit = self._reviewer.accepted(key)
            if hit is None or not self._review_allowed(hit):
                return None
            method = METHOD_TOKENREVIEW
        if hit.stale:
            return None  # the full path reports or refuses it
        if (self.settings.allowed_subjects or allowed_subjects) and not subject_allowed(
                hit.subject, self.settings.allowed_subjects, allowed_subjects):
            return None  # the full path refuses it
        self.telemetry.cache_hit(hit, method)
        return hit

    async def authenticate_request(
        self,
        authorization: list[str],
        allowed_subjects: Collection[str] | None = None,
    ) -> Identity:
        """Authenticate the ``Authorization`` header values of one request.

        Raises an ``AuthError`` subclass (already logged, counted and traced) when the caller is
        not let in.
        """
        hit = self.authenticate_cached(authorization, allowed_subjects)
        if hit is not None:
            return hit
        return await self.authenticate_uncached(authorization, allowed_subjects)

    async def authenticate_uncached(
        self,
        authorization: list[str],
        allowed_subjects: Collection[str] | None = None,
    ) -> Identity:
        """``authenticate_request`` after ``authenticate_cached`` said ``None``: the full path,
        with its span, duration sample and, for a rejection, the log line."""
        with self.telemetry.verification() as record:
            # A request refused before any path looked at it (no header, a malformed one) is
            # labelled with the path that would have verified it (README, "Metrics").
            record.method = self.active_path()
            token = ""
            try:
                token = extract_bearer(authorization, self.settings.max_token_bytes)
                key = self._hasher(token)
                cached = self._verified.get(key)
                if cached is None:
                    identity = await self._verify(token, key, record)
                else:
                    # The common case: a client reuses its bound token for up to an hour.
                    record.method = METHOD_JWKS  # verified locally, whatever the path now
                    record.cache_hit = True
                    identity = cached
                # Allow-lists apply on every request, cached or not.
                check_subject_allowed(
                    identity.subject, self.settings.allowed_subjects, allowed_subjects
                )
                if identity.stale and self.policy.stale_tokens == "warn":
                    self._report_stale(identity, token)
            except AuthError as error:
                with self.telemetry.within(record):  # the log line carries the span's ids
                    self._log_rejection(error, token)
                raise
            record.identity = identity
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(MSG_ACCEPTED, extra=_identity_fields(identity))
        return identity

    async def _verify(self, token: str, key: bytes, record: Verification) -> Identity:
        now = self._clock()
        if self.settings.mode == "review":
            record.method = METHOD_TOKENREVIEW
            return await self._verify_with_review(token, key, now, record)
        keys = self._keys.snapshot()
        if keys is None:
            reason = self._keys.last_error or "no key set yet"
            return await self._fallback(token, key, now, reason, record)
        try:
            identity = verify_local(token, keys, self.policy, now)
        except IssuerMismatch as mismatch:
            # Discovery may have moved to the issuer this token names (an issuer migration):
            # look once (rate-limited like unknown kids), unless the operator pinned issuers.
            if self.policy.issuers or mismatch.issuer is None:
                raise
            try:
                with self.telemetry.within(record):
                    keys = await self._keys.refresh_for_issuer(mismatch.issuer)
            except KeysUnavailable:
                raise mismatch from None
            if keys.issuer != mismatch.issuer:
                raise
            identity = verify_local(token, keys, self.policy, now)
        except UnknownKey as error:
            # The key may be new: refetch (rate-limited, shared) and try once more.
            try:
                with self.telemetry.within(record):
                    keys = await self._keys.refresh_for_kid(error.kid)
            except KeysUnavailable as unavailable:
                return await self._fallback(token, key, now, unavailable.detail, record)
            identity = verify_local(token, keys, self.policy, now)
        self._remember(key, identity, now)
        return identity

    def _remember(self, key: bytes, identity: Identity, now: float) -> None:
        if identity.expires_at is None:
            return
        lifetime = min(self.settings.cache_ttl, identity.expires_at - now)
        if self.policy.stale_tokens != "off" and identity.warn_after and not identity.stale:
            # Becoming stale is a matter of time: re-verify then, so it is flagged or refused.
            lifetime = min(lifetime, identity.warn_after - now)
        self._verified.put(key, identity, lifetime, identity.key_id)

    def _report_stale(self, identity: Identity, token: str) -> None:
        self.telemetry.stale_token(identity)
        self._stale_log(identity, token)  # one WARN per token, by fingerprint

    async def _fallback(
        self, token: str, key: bytes, now: float, why: str, record: Verification
    ) -> Identity:
        """Ask the API server, after the same cheap checks the local path makes."""
        self._enter_fallback(why)
        record.method = METHOD_TOKENREVIEW
        cached = self._reviewer.cached(key)
        if cached is not None:
            record.cache_hit = True
            return self._review_policy(cached)
        # Without discovery the issuer is only known if pinned; the API server checks it anyway.
        unverified = precheck(token, self.policy, self.policy.accepted_issuers(None), now)
        with self.telemetry.within(record):
            identity = await self._reviewer.review(token, key, _expiry(unverified.payload))
        return self._review_policy(identity)

    def _review_allowed(self, identity: Identity) -> bool:
        """``_review_policy`` as a test, for the cached fast path."""
        return not self.policy.require_pod_bound or identity.pod_name is not None

    def _review_policy(self, identity: Identity) -> Identity:
        """The Kubernetes-aware options on a TokenReview answer: pod binding comes from
        ``status.user.extra``; the lifetime and ``warnafter`` are not in the answer."""
        check_kubernetes_policy(identity, require_pod_bound=self.policy.require_pod_bound,
                                max_lifetime=None, reject_stale=False)
        return identity

    async def _verify_with_review(
        self, token: str, key: bytes, now: float, record: Verification
    ) -> Identity:
        cached = self._reviewer.cached(key)
        if cached is not None:
            record.cache_hit = True
            return self._review_policy(cached)
        keys = self._keys.snapshot()
        if keys is None:
            unverified = precheck(token, self.policy, self.policy.accepted_issuers(None), now)
            expiry = _expiry(unverified.payload)
        else:
            try:
                expiry = verify_local(token, keys, self.policy, now).expires_at
            except UnknownKey:
                expiry = None  # a key we have not seen yet: the API server decides
        with self.telemetry.within(record):
            identity = await self._reviewer.review(token, key, expiry)
        return self._review_policy(identity)

    # --- paths and status -----------------------------------------------------------------

    def _enter_fallback(self, why: str) -> None:
        if not self._in_fallback:
            self._in_fallback = True
            logger.warning(
                "local verification unavailable; verifying tokens with TokenReview",
                extra={"error": why},
            )

    def _on_keys_loaded(self, previous: KeySet | None, current: KeySet) -> None:
        if previous is not None and previous.issuer != current.issuer:
            self._verified.clear()  # verified against an issuer that is no longer declared
        else:
            self._verified.retain_kids(current.keys)  # keys that left the set take theirs along
        if self._in_fallback:
            self._in_fallback = False
            logger.info("discovery recovered; verifying tokens locally again",
                        extra={"issuer": current.issuer})

    def active_path(self) -> str:
        """``jwks`` or ``tokenreview``: how the next token would be verified."""
        if self.settings.mode == "review" or self._keys.snapshot() is None:
            return "tokenreview"
        return "jwks"

    def current_path(self) -> str:
        """``active_path()``, or ``none`` when TokenReview is the path and is known to fail
        (for the ``auth.active_path`` gauge; never sends a probe)."""
        path = self.active_path()
        if path == "tokenreview" and self._reviewer.healthy() is False:
            return "none"
        return path

    async def readiness(self) -> dict[str, Any]:
        """What ``/readyz`` reports: whether a verification path is available, and which.

        When TokenReview is the path and nothing recent says whether it works, one probe review
        is sent (at most every few seconds, since the answer is remembered).
        """
        keys = self._keys.snapshot()
        path = self.active_path()
        ready = True
        if path == "tokenreview":
            healthy = self._reviewer.healthy()
            if healthy is None:
                healthy = await self._reviewer.probe()
            ready = healthy
        age = self._keys.age()
        return {
            "ready": ready,
            "path": path if ready else "none",
            "mode": self.settings.mode,
            "issuer": keys.issuer if keys is not None else None,
            "keys": sorted(keys.keys) if keys is not None else [],
            "keys_age_seconds": None if age is None else round(age, 1),
            "last_error": self._keys.last_error,
            "tokenreview_cache_entries": self._reviewer.cache_size(),
        }

    def retry_after(self, error: AuthError | None = None) -> int:
        """Seconds a client should wait after a 503: what the API server asked of us when it
        sent Retry-After, else a moment when TokenReview was busy or failing, else until our
        next discovery attempt (1..60)."""
        if isinstance(error, VerificationUnavailable) and error.retry_after is not None:
            return max(1, min(60, math.ceil(error.retry_after)))
        if isinstance(error, TokenReviewUnavailable):
            return TOKENREVIEW_RETRY_AFTER
        return max(1, min(60, round(self._keys.seconds_until_retry())))

    def _log_rejection(self, error: AuthError, token: str) -> None:
        fields: dict[str, Any] = {
            "reason": error.reason,
            "status": error.status,
            "error": error.detail,
        }
        if token:
            fields["token_fp"] = fingerprint(token)
        # The reason and fingerprint are in the text too, so that an application with plain
        # logging.basicConfig() (which prints no extra fields) still sees why, and for which
        # token; the fields stay for structured formatters. Operators grep for MSG_REJECTED.
        level = logging.ERROR if error.outcome == "unavailable" else logging.WARNING
        logger.log(level, "%s: %s (token_fp=%s): %s", MSG_REJECTED, error.reason,
                   fields.get("token_fp", "none"), error.detail, extra=fields)


def _expiry(payload: Mapping[str, Any]) -> int | None:
    exp = payload.get("exp")
    return int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _identity_fields(identity: Identity) -> dict[str, Any]:
    return {
        "subject": identity.subject,
        "verified_by": identity.verified_by,
        "pod": identity.pod_name or "",
    }
