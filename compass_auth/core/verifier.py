"""Local verification of a service-account token: pure, synchronous, no I/O.

``verify_local(token, keys, policy, now)`` returns an ``Identity`` or raises an ``AuthError``
(``decode`` then ``verify_decoded``, for a caller that reads a token once and checks it more
than once). Order of checks (cheapest first, so junk never reaches a key lookup or a signature
check):

1. size limit (``bearer.check_token`` on the request path), compact-JWS shape (three base64url
   segments);
2. header: JSON object, ``alg`` in our allow-list, ``kid`` a string, no ``crit``;
3. unverified payload pre-filter: ``iss``, ``aud``, ``exp``/``nbf``/``iat`` (``claims.prefilter``);
4. key lookup by ``kid`` (``UnknownKey`` lets the caller refetch the JWKS);
5. PyJWT: signature with that key's algorithm only, then ``aud``/``iss``/``exp``/``nbf``/``iat``;
6. Kubernetes claim layout (``Identity.from_claims``);
7. the optional Kubernetes-aware policy (``claims.check_kubernetes_policy``): pod-bound only,
   maximum lifetime, stale tokens (past ``kubernetes.io.warnafter``).

It does NOT apply subject allow-lists (the caller does, for both verification paths), and it
does NOT check that the pod or service account still exists: only TokenReview can (see
``AUTH_MODE=review``). Keys and URLs named in the token header (``jku``, ``x5u``, ``jwk``,
``x5c``) are never used: the key comes only from the snapshot the caller passes in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jwt

from .claims import StalePolicy, check_kubernetes_policy, is_stale, prefilter
from .errors import (
    AudienceMismatch,
    AuthError,
    BadSignature,
    IssuerMismatch,
    MalformedToken,
    NotYetValid,
    TokenExpired,
    TokenTooLarge,
    UnknownKey,
    UnsupportedAlgorithm,
)
from .identity import Identity
from .keyset import SUPPORTED_ALGORITHMS, KeySet
from .segments import canonical_base64url, decode_segment, decode_segment_bytes

#: Three base64url segments; the signature may be empty here so that ``alg: none`` tokens are
#: reported as an unsupported algorithm rather than as mere malformation.
_COMPACT_JWS = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")

#: Claims every bound service-account token carries (docs/kubernetes-api.md#claims). PyJWT
#: checks only the claims that are present unless told they are required.
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """What a token must satisfy besides its signature."""

    audience: str
    #: Accepted issuers; empty means "the issuer the discovery document declares".
    issuers: tuple[str, ...]
    #: Leeway in seconds for exp/nbf/iat. 60 s like kube-apiserver
    #: (docs/kubernetes-api.md#time-checks-and-leeway), so local verification and TokenReview
    #: agree on the same token.
    clock_skew: float
    max_token_bytes: int
    #: INSECURE (``AUTH_SKIP_ISSUER_CHECK``): accept any ``iss``. Legacy tokens stay refused.
    insecure_skip_issuer_check: bool = False
    #: Kubernetes-aware options, all off by default (``claims.check_kubernetes_policy``).
    require_pod_bound: bool = False
    max_token_lifetime: float | None = None
    stale_tokens: StalePolicy = "off"

    def accepted_issuers(self, discovered: str | None) -> tuple[str, ...]:
        """The issuers a token may carry; empty (no check) when the (insecure) skip is on, or
        when nothing is pinned and no discovery document is known (TokenReview then checks)."""
        if self.insecure_skip_issuer_check:
            return ()
        return self.issuers or ((discovered,) if discovered else ())


@dataclass(frozen=True, slots=True)
class DecodedToken:
    """A token read once: its three segments, and its header and payload parsed. Nothing here is
    trusted yet. Every check after this one reads these fields, so that the token is decoded
    once per request, whichever paths look at it (an unknown kid, a fallback to TokenReview)."""

    token: str
    segments: tuple[str, str, str]
    kid: str
    algorithm: str
    payload: dict[str, Any]
    #: The decoded payload bytes ``payload`` was parsed from.
    payload_bytes: bytes


def decode(token: str) -> DecodedToken:
    """Steps 1-2 without the size limit (``bearer.check_token`` applies it once, before):
    the compact-JWS shape in the base64url alphabet, then the header and the payload.

    The alphabet is checked here, for both paths: a lenient base64 decoder skips characters it
    does not know, so that without it two spellings of one header would decode alike."""
    match = _COMPACT_JWS.fullmatch(token)
    if match is None:
        raise MalformedToken("token is not three base64url segments separated by dots")
    header_segment, payload_segment, signature = match.groups()
    kid, algorithm = _check_header(decode_segment(header_segment, "header"))
    payload_bytes, payload = decode_segment_bytes(payload_segment, "payload")
    return DecodedToken(token, (header_segment, payload_segment, signature), kid, algorithm,
                        payload, payload_bytes)


def precheck(decoded: DecodedToken, policy: VerificationPolicy, issuers: tuple[str, ...],
             now: float) -> None:
    """Step 3 and the signature's spelling: the unverified claim pre-filter.

    Also the gate in front of TokenReview, so that junk, expired tokens and tokens for other
    audiences never cost the API server a review. ``issuers`` empty skips the issuer check (the
    API server checks it during a review).
    """
    prefilter(decoded.payload, policy.audience, issuers, now, policy.clock_skew)
    signature = decoded.segments[2]
    if not signature:
        raise BadSignature("token has an empty signature")
    if not canonical_base64url(signature):
        # The last character of a segment may carry unused bits that lenient decoders (Go's
        # RawURLEncoding, so kube-apiserver's TokenReview) ignore: several spellings of one
        # signature. PyJWT refuses them; refusing them here makes TokenReview agree.
        raise MalformedToken("token signature is not canonical base64url")


def verify_decoded(decoded: DecodedToken, keys: KeySet, policy: VerificationPolicy,
                   now: float) -> Identity:
    """Verify a decoded token against the key snapshot ``keys``; see the module docstring."""
    issuers = policy.accepted_issuers(keys.issuer)
    precheck(decoded, policy, issuers, now)
    kid, algorithm = decoded.kid, decoded.algorithm
    key = keys.get(kid)
    if key is None:
        raise UnknownKey(f"no published key has kid {kid[:64]!r}", kid=kid)
    if key.algorithm != algorithm:
        raise UnsupportedAlgorithm(f"token alg {algorithm} does not match key alg {key.algorithm}")
    claims = _decode_verified(decoded, key.jwk, key.algorithm, policy, issuers)
    if claims is not decoded.payload and claims != decoded.payload:
        # PyJWT parsed other bytes than the pre-filter (it cannot, but if a PyJWT version split
        # tokens differently): two parsers would disagree about what was signed (go-oidc makes
        # the same final check).
        raise MalformedToken("verified payload differs from the pre-filtered one")
    identity = Identity.from_claims(claims, verified_by="jwks", key_id=kid)
    if is_stale(identity, now):
        identity = dataclasses.replace(identity, stale=True)
    check_kubernetes_policy(
        identity,
        require_pod_bound=policy.require_pod_bound,
        max_lifetime=policy.max_token_lifetime,
        reject_stale=policy.stale_tokens == "reject",
    )
    return identity


def verify_local(token: str, keys: KeySet, policy: VerificationPolicy, now: float) -> Identity:
    """Every step for a token given as text: the size limit, ``decode``, ``verify_decoded``.
    (The authenticator checks the size with the header and decodes once per request.)"""
    if len(token) > policy.max_token_bytes:
        raise TokenTooLarge(f"token of {len(token)} bytes exceeds {policy.max_token_bytes}")
    return verify_decoded(decode(token), keys, policy, now)


def _check_header(header: Mapping[str, Any]) -> tuple[str, str]:
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in SUPPORTED_ALGORITHMS:
        raise UnsupportedAlgorithm(f"token alg {str(algorithm)[:20]!r} is not accepted")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so a critical one must be refused.
        raise MalformedToken("token header has a crit parameter")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        # kube-apiserver always sets kid (since 1.16); trying every key for kid-less tokens would
        # let junk cost several signature checks each.
        raise MalformedToken("token header has no string kid")
    return kid, algorithm


#: PyJWT's token errors to ours, most specific first (several are subclasses of DecodeError or
#: InvalidTokenError); any other ``PyJWTError`` is ``MalformedToken``. (``core/keyset.py`` handles
#: the one error PyJWT raises while building keys from the JWKS, which is not about a token.)
_PYJWT_ERRORS: tuple[tuple[type[Exception], type[AuthError]], ...] = (
    (jwt.ExpiredSignatureError, TokenExpired),
    (jwt.ImmatureSignatureError, NotYetValid),
    (jwt.InvalidAudienceError, AudienceMismatch),
    (jwt.InvalidIssuerError, IssuerMismatch),
    (jwt.MissingRequiredClaimError, MalformedToken),
    (jwt.InvalidSignatureError, BadSignature),
    (jwt.InvalidAlgorithmError, UnsupportedAlgorithm),
    (jwt.DecodeError, MalformedToken),
)


def _decode_verified(
    decoded: DecodedToken,
    key: jwt.PyJWK,
    algorithm: str,
    policy: VerificationPolicy,
    issuers: tuple[str, ...],
) -> dict[str, Any]:
    shared = _PREPARSED.set((decoded.payload_bytes, decoded.payload))
    try:
        with pyjwt_errors_as_ours():
            return _JWT.decode(
                decoded.token,
                key,
                # From the key, never from the token header (RFC 8725 §2.1).
                algorithms=[algorithm],
                audience=policy.audience,
                issuer=issuers or None,
                leeway=policy.clock_skew,
            )
    finally:
        _PREPARSED.reset(shared)


@contextlib.contextmanager
def pyjwt_errors_as_ours() -> Iterator[None]:
    """The one place PyJWT's errors become ours (``_PYJWT_ERRORS``), for every verifier that
    calls ``jwt.decode``: this module and another issuer's tokens (verification/jwt_token.py)."""
    try:
        yield
    except jwt.PyJWTError as error:
        ours = next(
            (ours for pyjwt_class, ours in _PYJWT_ERRORS if isinstance(error, pyjwt_class)),
            MalformedToken,
        )
        raise ours(f"{type(error).__name__}: {error}") from None
    except (TypeError, ValueError, OverflowError) as error:
        # PyJWT's claim checks catch only ValueError around int(): a list or object claim raises
        # TypeError and a huge number OverflowError. Client input must never become a 500.
        raise MalformedToken(f"claim of the wrong type: {error}") from None


#: The payload the pre-filter parsed, with its bytes, for the PyJWT call that follows.
_PREPARSED: ContextVar[tuple[bytes, dict[str, Any]] | None] = ContextVar(
    "compass_auth_preparsed_payload", default=None
)


class _SharedPayloadJWT(jwt.PyJWT):
    """PyJWT that reuses the payload the pre-filter parsed from the same bytes.

    ``_decode_payload`` is PyJWT's extension point for decoding the payload ("intended to be
    overridden by subclasses", api_jwt.py). PyJWT still checks the signature over the token's
    exact bytes and validates every claim; only a second ``json.loads`` of identical bytes is
    skipped, which also makes the claims PyJWT validates the very ones the pre-filter read.
    """

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        preparsed = _PREPARSED.get()
        if preparsed is not None and decoded["payload"] == preparsed[0]:
            return preparsed[1]
        return super()._decode_payload(decoded)


# Options fixed once: PyJWT merges per-call options on every call.
_JWT = _SharedPayloadJWT(options={"require": _REQUIRED_CLAIMS})


