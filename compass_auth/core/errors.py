"""Why a request was not authenticated.

The class of an exception *is* the outcome: ``reason`` feeds span attributes, metric labels, log
lines and the demo table; ``status`` and ``error_code`` decide the HTTP answer. Callers branch on
the class, never on message text.

Every error carries two texts, kept apart like Tornado's ``HTTPError.reason`` and ``log_message``:

* ``description``: short and safe, sent to the client in ``error_description``;
* ``detail``: for the log only (may name claim values, never the token itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, NoReturn

Outcome = Literal["allowed", "denied", "revoked", "unavailable"]


class AuthError(Exception):
    """Base class: the request could not be authenticated or authorised."""

    reason: ClassVar[str] = "error"
    outcome: ClassVar[Outcome] = "denied"
    status: ClassVar[int] = 401
    #: RFC 6750 §3.1 error code for ``WWW-Authenticate``; ``None`` omits the attribute.
    error_code: ClassVar[str | None] = "invalid_token"
    #: Default public text when the raiser gives none.
    default_description: ClassVar[str] = "the token could not be verified"

    def __init__(self, detail: str, description: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.description = description or self.default_description

    def __str__(self) -> str:
        return self.detail


# --- The token (or the request carrying it) is bad: 401 / 400 / 403. -------------------------


class TokenRejected(AuthError):
    """The caller's credentials were examined and refused."""


class MissingToken(TokenRejected):
    """No bearer token was sent (RFC 6750 §3.1: no ``error`` attribute in the challenge)."""

    reason = "missing"
    error_code = None
    default_description = "a bearer token is required"


class MalformedHeader(TokenRejected):
    """The ``Authorization`` header is not one well-formed ``Bearer <token>``."""

    reason = "malformed_header"
    status = 400
    error_code = "invalid_request"
    default_description = "the Authorization header must be 'Bearer <token>'"


class TokenTooLarge(TokenRejected):
    """The token exceeds the size limit and was not parsed."""

    reason = "too_large"
    default_description = "the token is too large"


class MalformedToken(TokenRejected):
    """The token is not a well-formed JWS/JWT with the claims a service-account token has."""

    reason = "malformed"
    default_description = "the token is malformed"


class UnsupportedAlgorithm(TokenRejected):
    """The header names an algorithm we never accept (``none``, HMAC, ...) or one no key uses."""

    reason = "unsupported_algorithm"
    default_description = "the token's signing algorithm is not accepted"


class UnknownKey(TokenRejected):
    """No published key has the token's ``kid``."""

    reason = "unknown_key"
    default_description = "the token was signed by an unknown key"

    def __init__(self, detail: str, kid: str, description: str | None = None) -> None:
        super().__init__(detail, description)
        self.kid = kid


class BadSignature(TokenRejected):
    """The signature does not verify with the published key."""

    reason = "bad_signature"
    default_description = "the token signature is invalid"


class TokenExpired(TokenRejected):
    """``exp`` is in the past (beyond the leeway)."""

    reason = "expired"
    default_description = "the token has expired"


class NotYetValid(TokenRejected):
    """``nbf`` or ``iat`` is in the future (beyond the leeway)."""

    reason = "not_yet_valid"
    default_description = "the token is not valid yet"


class AudienceMismatch(TokenRejected):
    """``aud`` does not contain our audience."""

    reason = "audience_mismatch"
    default_description = "the token audience does not include this service"


class IssuerMismatch(TokenRejected):
    """``iss`` is not an accepted issuer."""

    reason = "issuer_mismatch"
    default_description = "the token issuer is not accepted"

    def __init__(self, detail: str, issuer: str | None = None,
                 description: str | None = None) -> None:
        super().__init__(detail, description)
        #: The issuer the token names (unverified).
        self.issuer = issuer


class LegacyToken(TokenRejected):
    """A legacy Secret-based token: no audience, no expiry, never accepted by a relying party."""

    reason = "legacy_token"
    default_description = "legacy service-account tokens are not accepted"


class NotPodBound(TokenRejected):
    """The token is not bound to a pod and ``AUTH_REQUIRE_POD_BOUND`` is on."""

    reason = "not_pod_bound"
    default_description = "only pod-bound tokens are accepted"


class LifetimeTooLong(TokenRejected):
    """``exp - iat`` exceeds ``AUTH_MAX_TOKEN_LIFETIME``."""

    reason = "lifetime_too_long"
    default_description = "the token's lifetime is longer than this service accepts"


class StaleToken(TokenRejected):
    """The token is past ``kubernetes.io.warnafter`` and ``AUTH_STALE_TOKENS=reject``."""

    reason = "stale_token"
    default_description = "the token is stale: the client must re-read its token file"


class ReviewRejected(TokenRejected):
    """The API server's TokenReview did not authenticate the token."""

    reason = "review_rejected"
    default_description = "the token was not accepted by the cluster"


class TokenRevoked(TokenRejected):
    """The API server refused a token that local verification had accepted (its pod or service
    account is gone: verification/revocation.py); refused until the token's ``exp``."""

    reason = "token_revoked"
    outcome = "revoked"
    default_description = "the token has been revoked"


class SubjectNotAllowed(TokenRejected):
    """The token is valid but its subject may not call this service (403, not 401)."""

    reason = "subject_not_allowed"
    status = 403
    error_code = "insufficient_scope"
    default_description = "this service account may not call this endpoint"


# --- We cannot verify right now: 503 with Retry-After. --------------------------------------


class VerificationUnavailable(AuthError):
    """No way to verify the token is available; the client should retry later."""

    outcome = "unavailable"
    status = 503
    error_code = None
    reason = "unavailable"
    default_description = "token verification is temporarily unavailable"

    def __init__(
        self, detail: str, description: str | None = None, *, retry_after: float | None = None
    ) -> None:
        super().__init__(detail, description)
        #: Seconds the API server asked us to wait (its ``Retry-After``), when it sent one.
        self.retry_after = retry_after


class DiscoveryUnavailable(VerificationUnavailable):
    """The OIDC discovery document could not be fetched or is invalid."""

    reason = "discovery_unavailable"


class KeysUnavailable(VerificationUnavailable):
    """No usable key set is loaded (never fetched, invalid, or stale past the limit)."""

    reason = "keys_unavailable"


class TokenReviewUnavailable(VerificationUnavailable):
    """The TokenReview API could not answer (error, timeout, RBAC, or the concurrency cap)."""

    reason = "tokenreview_unavailable"



# --- Authenticated, but the cluster's RBAC does not let the caller in: 403 / 503. -----------


class AccessDenied(AuthError):
    """A SubjectAccessReview (or its cached answer) did not allow one of the handler's checks.

    The public text names neither the check nor the API server's reason; the log line does."""

    reason = "access_denied"
    status = 403
    error_code = "insufficient_scope"
    default_description = "the caller is not allowed to call this endpoint"

    def __init__(self, detail: str, description: str | None = None, *,
                 check: str = "") -> None:
        super().__init__(detail, description)
        #: The check that failed, in the ``AUTH_REQUIRED_ACCESS`` syntax (for the log line).
        self.check = check


class AuthorizationUnavailable(AuthError):
    """The API server could not decide (error, timeout, RBAC of our own, or the cap)."""

    outcome = "unavailable"
    status = 503
    error_code = None
    reason = "authorization_unavailable"
    default_description = "authorization is temporarily unavailable"

    def __init__(
        self, detail: str, description: str | None = None, *, retry_after: float | None = None,
        check: str = "",
    ) -> None:
        super().__init__(detail, description)
        #: Seconds the API server asked us to wait (its ``Retry-After``), when it sent one.
        self.retry_after = retry_after
        self.check = check


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refusal as data (a cached rejection, a header without a token): each request that meets
    it raises an exception of its own (``raise_error``). A cached exception instance, raised
    again on every hit, would collect each raiser's frames in its ``__traceback__`` (issue 11)."""

    error: type[AuthError]
    detail: str

    def raise_error(self) -> NoReturn:
        raise self.error(self.detail)
