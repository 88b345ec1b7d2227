"""From a request's ``Authorization`` header to an ``Identity``: pick the path, record the outcome.

The ``Authenticator`` is thin on purpose. It reads the header once (``bearer.read_bearer``), asks
the verification paths in order (``local_path.LocalPath``, then ``review_path.ReviewPath`` when
the local path cannot verify now; in ``AUTH_MODE=review`` only the latter), applies the subject
allow-lists, and records the outcome at one place: the ``auth.verify`` span, the metrics and,
for a rejection, the log line. ``verification/factory.py`` builds it (``compass_auth.connect``);
``handler.AuthenticatedHandler`` is the Tornado adapter over it. Authorization is the
``Authorizer``'s (authorization/authorizer.py): the factory builds one beside it.

Each request reads each cache at most once: ``authenticate_cached`` reads the caches of the paths
that may answer now (in ``auto`` mode with a usable key set, the verified-token cache alone), and
``authenticate_uncached`` continues from what they said (``Pending``), reading a cache it has not
read yet only when its path is reached, and decoding the token once for every path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..apiserver.connection import ApiServer
from ..authorization.authorizer import Authorizer
from ..core.bearer import Bearer, Credential, HeaderProblem, check_token, fingerprint, read_bearer
from ..core.cache import TokenHasher
from ..core.claims import check_subject_allowed, subject_allowed
from ..core.errors import (
    AuthError,
    KeysUnavailable,
    Refusal,
    TokenRevoked,
)
from ..core.identity import Identity
from ..core.verifier import DecodedToken, decode
from ..keys.lifecycle import KeyLifecycle
from ..logs.budget import LogBudget
from ..logs.text import LogText, clip, render
from ..settings import AuthSettings
from ..telemetry import METHOD_JWKS, Telemetry, Verification
from .issuers import JwtAuthenticators
from .local import LocalPath
from .path_status import PathStatus
from .review import ReviewPath
from .revocation import RevocationCheck
from .stale import StaleTokenLog

logger = logging.getLogger(__name__)

#: Log messages operators grep for; keep them stable.
MSG_REJECTED = "token verification failed"
MSG_ACCEPTED = "token verified"
MSG_FALLBACK = "local verification unavailable; verifying tokens with TokenReview"
#: Characters of a rejection's detail in its log line: the detail quotes claim values, which a
#: client chooses (issue 18: a padded ``aud`` made a 3 KB request write 11 KB of log).
MAX_DETAIL_CHARS = 400


class VerificationPath(Protocol):
    """One way to verify a token: answers with the identity, or raises an ``AuthError``.
    ``KeysUnavailable`` says "not now": the authenticator asks the next path."""

    method: str

    def cached(self, bearer: Bearer) -> Identity | Refusal | None:
        """What this path's cache holds for the token, without I/O: the one read of that cache
        in a request."""
        ...

    async def verify(self, bearer: Bearer, token: DecodedToken) -> Identity:
        """Verify the token, ``cached`` having missed (``token`` is it decoded)."""
        ...


@dataclass(frozen=True, slots=True)
class Pending:
    """A request ``authenticate_cached`` did not answer, for ``authenticate_uncached``: its
    token, how many of the paths' caches were read (the first ``read``, in order), and what one
    of them held that the full path must report or refuse (a stale or not-allowed identity, a
    cached rejection) with that path's method."""

    bearer: Bearer
    read: int
    hit: Identity | Refusal | None = None
    method: str = METHOD_JWKS


#: ``compass_auth.verification.factory.connect``, installed by the factory module when it is
#: imported (as ``compass_auth/__init__.py`` does): ``Authenticator.connect`` forwards to it. A
#: hook, not an import, because the factory builds this class; importing it here would be an
#: import cycle.
_connect: Callable[[AuthSettings, Mapping[str, str], Telemetry | None],
                   Awaitable[Authenticator]] | None = None


class Authenticator(PathStatus):
    """Verifies bearer tokens for one service (one audience); build it with
    ``compass_auth.connect``. Which path verifies now, readiness and ``Retry-After`` are
    ``PathStatus``'s (verification/path_status.py)."""

    def __init__(
        self,
        settings: AuthSettings,
        api: ApiServer,
        *,
        local: LocalPath,
        review: ReviewPath,
        lifecycle: KeyLifecycle,
        telemetry: Telemetry,
        hasher: TokenHasher,
        authorizer: Authorizer,
        revocation: RevocationCheck | None = None,
    ) -> None:
        self.settings = settings
        #: Background confirmation of locally verified tokens (``None``: off, or review mode).
        self.revocation = revocation
        #: The ``Authorizer`` built with it, for applications that pass only ``authenticator=``
        #: (``AuthenticatedHandler.get_authorizer``); never called here.
        self.authorizer = authorizer
        self.telemetry = telemetry
        self.local, self.review = local, review
        self._api = api
        self._lifecycle = lifecycle
        self._hasher = hasher
        # In review mode every first sight of a token must reach the API server.
        self._paths: Sequence[VerificationPath] = (
            (review,) if settings.mode == "review" else (local, review))
        self._stale_log = StaleTokenLog()
        self._rejections = RejectionLog()
        self._fallback = FallbackLog()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_close: list[Callable[[], None]] = []
        #: The ``jwt`` authenticators of ``AUTH_AUTHENTICATION_CONFIG`` (other issuers), set by
        #: the factory; ``None`` without that file (verification/issuers.py).
        self.issuers: JwtAuthenticators | None = None

    @classmethod
    async def connect(
        cls, settings: AuthSettings, environ: Mapping[str, str],
        telemetry: Telemetry | None = None,
    ) -> Authenticator:
        """The same as ``compass_auth.connect(settings, environ, telemetry)``, kept for code
        written before that function existed."""
        if _connect is None:  # pragma: no cover - compass_auth/__init__.py imports the factory
            raise RuntimeError("import compass_auth first: its factory provides connect()")
        return await _connect(settings, environ, telemetry)

    # --- lifecycle ------------------------------------------------------------------------

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when ``close()`` runs, before the connection closes."""
        self._on_close.append(callback)

    def start(self) -> None:
        """Begin discovery in the background; TokenReview serves until keys are loaded."""
        if not self._tasks:
            self._tasks.append(asyncio.create_task(
                self._lifecycle.run(self._stop, on_startup_failure=self._enter_fallback),
                name="compass-auth-keys"))
            if self.issuers is not None:
                self.issuers.start()

    async def wait_started(self) -> None:
        """Wait until the start-up discovery finished, either way: then tokens are verified
        locally if the key set loaded (until then TokenReview verifies)."""
        await self._lifecycle.started.wait()

    async def close(self) -> None:
        self._rejections.report_suppressed()
        for callback in self._on_close:
            callback()
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.issuers is not None:
            await self.issuers.close()
        if self.revocation is not None:
            await self.revocation.close()
        await self._api.close()

    # --- verification ---------------------------------------------------------------------

    def authenticate_cached(
        self, authorization: list[str], allowed_subjects: Collection[str] | None = None,
    ) -> Identity | HeaderProblem | Pending:
        """The common case, without I/O or ``await``: a token verified before (locally, or by a
        TokenReview within its TTL) that is allowed here. Anything else returns what
        ``authenticate_uncached`` continues from (the header's problem, or ``Pending``).

        A client reuses its bound token for up to an hour, so this answers most requests for a
        hash and a dict lookup. The answer is counted and its attributes go on the request's
        span, without a span of its own (a span would cost several times the answer).
        """
        credential = read_bearer(authorization, self._hasher)
        if isinstance(credential, HeaderProblem):
            return credential
        paths = self._paths
        path = paths[0]
        hit = path.cached(credential)
        read = 1
        if hit is None and self.issuers is not None:
            hit = self.issuers.cached(credential)  # another issuer's token, verified before
        if hit is None:
            # In auto mode with a usable key set a token is verified locally: the TokenReview
            # cache is read only when this request reaches that path (authenticate_uncached).
            if len(paths) == 1 or self.local.available():
                return Pending(credential, read)
            path = paths[1]
            hit = path.cached(credential)
            read = 2
            if hit is None:
                return Pending(credential, read)
        if (isinstance(hit, Refusal) or hit.stale
                or ((self.settings.allowed_subjects or allowed_subjects) and not
                    subject_allowed(hit.subject, self.settings.allowed_subjects,
                                    allowed_subjects))):
            return Pending(credential, read, hit, path.method)  # the full path reports it
        self.telemetry.cache_hit(hit, path.method)
        if self.revocation is not None and path is self.local:
            self.revocation.use(credential, hit)  # a clock compare unless a confirmation is due
        return hit

    async def authenticate_uncached(
        self, pending: Pending | Credential, allowed_subjects: Collection[str] | None = None,
    ) -> Identity:
        """The full path for what ``authenticate_cached`` did not answer, with its span, duration
        sample and, for a rejection, the log line; raise an ``AuthError`` (logged, counted and
        traced) when the caller is not let in. (Given a ``Bearer``, it reads every cache.)"""
        if isinstance(pending, Bearer):
            pending = Pending(pending, 0)
        token = pending.bearer.token if isinstance(pending, Pending) else ""
        with self.telemetry.verification() as record:
            # Refused before any path looked at the token: labelled with the path that would
            # have verified it (docs/telemetry.md).
            record.method = self.active_path()
            verified: Identity | None = None
            try:
                if isinstance(pending, Refusal):
                    pending.raise_error()
                revocation = self.revocation
                if revocation is not None and (refused := revocation.refused(pending.bearer)):
                    raise TokenRevoked(refused)
                if pending.hit is not None:
                    record.method, record.cache_hit = pending.method, True
                    if isinstance(pending.hit, Identity):
                        record.authenticator = pending.hit.authenticator
                    identity = _answer(pending.hit)
                else:
                    other, decoded = (
                        (None, None) if self.issuers is None else await self.issuers.verify_other(
                            pending.bearer, self.cluster_issuers(),
                            self.settings.max_token_bytes, record))
                    identity = other or await verify_on_paths(
                        self._paths, pending, record, self.settings.max_token_bytes,
                        self._enter_fallback, decoded)
                verified = identity
                # Allow-lists apply on every request, cached or not.
                check_subject_allowed(
                    identity.subject, self.settings.allowed_subjects, allowed_subjects)
                if identity.stale and self.local.policy.stale_tokens == "warn":
                    self.telemetry.stale_token(identity)
                    self._stale_log(identity, token)  # one WARN per token, by fingerprint
                if revocation is not None and record.method == METHOD_JWKS:
                    revocation.use(pending.bearer, identity)  # confirmed in the background
            except AuthError as error:
                self._rejections.rejected(error, token, verified, record.authenticator)
                raise
            record.identity = identity
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(MSG_ACCEPTED, extra={"subject": identity.subject,
                                              "verified_by": identity.verified_by,
                                              "authenticator": identity.authenticator or "none",
                                              "credential_id": identity.credential_id or "none"})
        return identity

    async def authenticate_request(
        self, authorization: list[str], allowed_subjects: Collection[str] | None = None,
    ) -> Identity:
        """``authenticate_cached``, then ``authenticate_uncached`` when that did not answer."""
        answer = self.authenticate_cached(authorization, allowed_subjects)
        if isinstance(answer, Identity):
            return answer
        return await self.authenticate_uncached(answer, allowed_subjects)

    def _enter_fallback(self, why: str) -> None:
        self._fallback.entered(why)

    def on_keys_loaded(self, issuer: str) -> None:
        """The key set loaded (a ``KeyCache`` listener): local verification is back."""
        self._fallback.left(issuer)

    def watch_revocation(self, authorization: list[str], identity: Identity,
                         close: Callable[[], None]) -> Callable[[], None]:
        """Call ``close()`` if the token of this ``Authorization`` header (verified as
        ``identity``) is found revoked: an open WebSocket (tornado/websocket.py,
        asgi/expiry.py), whose token is then confirmed once per window. Returns the function
        that stops watching, to call when the connection ends."""
        credential = read_bearer(authorization, self._hasher)
        if (self.revocation is None or not isinstance(credential, Bearer)
                or identity.verified_by != METHOD_JWKS or identity.authenticator):
            return _unwatched
        return self.revocation.watch(credential, identity, close)



async def verify_on_paths(paths: Sequence[VerificationPath], pending: Pending,
                          record: Verification, max_token_bytes: int,
                          on_fallback: Callable[[str], None],
                          decoded: DecodedToken | None = None) -> Identity:
    """The paths in order from what ``pending`` read: a cache not read yet is read when its path
    is reached; the token is checked and decoded once, before the first verify (``decoded``:
    already done, by the routing of other issuers). A path that says "not now"
    (``KeysUnavailable``) hands the token to the next, ``on_fallback(why)``."""
    bearer = pending.bearer
    for index, path in enumerate(paths):
        if index >= pending.read:
            hit = path.cached(bearer)
            if hit is not None:
                record.method, record.cache_hit = path.method, True
                return _answer(hit)
        if decoded is None:
            check_token(bearer.token, max_token_bytes)
            decoded = decode(bearer.token)
        record.method = path.method
        try:
            return await path.verify(bearer, decoded)
        except KeysUnavailable as unavailable:
            if index == len(paths) - 1:
                raise
            on_fallback(unavailable.detail)
    raise AssertionError("no verification path")  # pragma: no cover - there is always one


def _unwatched() -> None:
    """What ``watch_revocation`` returns when nothing is watched."""


def _answer(hit: Identity | Refusal) -> Identity:
    """The identity a cache held, or raise the refusal it held."""
    if isinstance(hit, Refusal):
        hit.raise_error()
    return hit


class RejectionLog:
    """The log lines of refused requests, within a budget per reason
    (docs/reliability.md#log-volume); every rejection is still counted by the
    ``auth.verifications`` metric."""

    def __init__(self) -> None:
        self.budget = LogBudget()

    def report_suppressed(self) -> None:
        """The rejection lines the budget left out since its last line, so that the counts in
        the log add up to what was refused."""
        for reason, count in self.budget.take_suppressed().items():
            fields = {"reason": reason, "suppressed": count, "at": "shutdown"}
            logger.warning(LogText(f"{MSG_REJECTED}: {count} more {reason} lines suppressed "
                                   "before shutdown", MSG_REJECTED), extra=fields)

    def rejected(self, error: AuthError, token: str, identity: Identity | None = None,
                 authenticator: str | None = None) -> None:
        """The line for a refused request (within the budget): why, for which token
        (fingerprint), and the credential id of a verified token refused by policy."""
        suppressed = self.budget.admit(error.reason)
        if suppressed is None:
            return  # over the budget: counted, and reported by the next line written
        detail = clip(error.detail, MAX_DETAIL_CHARS)
        fields: dict[str, Any] = {"reason": error.reason, "status": error.status,
                                  "error": detail}
        if token:
            fields["token_fp"] = fingerprint(token)
        if authenticator is not None:
            fields["authenticator"] = authenticator  # the file's issuer that refused it
        if identity is not None and identity.credential_id:
            # A verified token refused by policy (subject lists, staleness): the credential id
            # joins this line with the API server's audit log of the token's issuance.
            fields["credential_id"] = identity.credential_id
        # The reason and fingerprint are in the text too, so that an application with plain
        # logging.basicConfig() (which prints no extra fields) still sees why, and for which
        # token; the fields stay for structured formatters. Operators grep for MSG_REJECTED.
        via = f", authenticator={authenticator}" if authenticator is not None else ""
        text = (f"{MSG_REJECTED}: {error.reason} (token_fp={fields.get('token_fp', 'none')}"
                f"{via}): {detail}")
        if suppressed:
            fields["suppressed"] = suppressed
            text += f" [{suppressed} more {error.reason} lines suppressed before this one]"
        level = logging.ERROR if error.outcome == "unavailable" else logging.WARNING
        logger.log(level, LogText(text, MSG_REJECTED), extra=fields)


class FallbackLog:
    """One line when tokens start going to TokenReview because the key set is unusable, one
    when local verification is back: the transitions, not every request."""

    def __init__(self) -> None:
        self._in_fallback = False

    def entered(self, why: str) -> None:
        if not self._in_fallback:
            self._in_fallback = True
            fields = {"error": clip(why)}
            logger.warning(render(MSG_FALLBACK, fields), extra=fields)

    def left(self, issuer: str) -> None:
        if self._in_fallback:
            self._in_fallback = False
            fields = {"issuer": issuer}
            logger.info(render("discovery recovered; verifying tokens locally again", fields),
                        extra=fields)
