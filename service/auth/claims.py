"""Pure checks on token claims: the unverified pre-filter and the subject allow-list.

The pre-filter runs on the *unverified* payload, before any key lookup, so junk and tokens that
are plainly for someone else never cost a signature check or a JWKS refetch (go-oidc's "cheap
checks before possibly re-syncing keys"). Unverified claims may reject a token, never accept one:
PyJWT checks the same claims again after the signature.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from .errors import (
    AudienceMismatch,
    IssuerMismatch,
    LegacyToken,
    MalformedToken,
    NotYetValid,
    SubjectNotAllowed,
    TokenExpired,
)

#: Issuer of legacy Secret-based tokens (k8s-wire.md §2): no exp, no aud; never accepted.
LEGACY_ISSUER = "kubernetes/serviceaccount"


def prefilter(
    payload: Mapping[str, Any],
    audience: str,
    issuers: Collection[str],
    now: float,
    clock_skew: float,
) -> None:
    """Reject on ``iss``, ``aud``, ``exp``, ``nbf`` or ``iat`` alone, before the signature check.

    ``issuers`` empty means the issuer check was switched off by the operator.
    """
    _check_issuer(payload.get("iss"), issuers)
    _check_audience(payload.get("aud"), audience)
    exp = _time_claim(payload, "exp", required=True)
    if exp is not None and exp <= now - clock_skew:
        raise TokenExpired(f"token expired at {int(exp)}, now {int(now)} (leeway {clock_skew:g}s)")
    for name in ("nbf", "iat"):
        value = _time_claim(payload, name, required=False)
        if value is not None and value > now + clock_skew:
            raise NotYetValid(
                f"token {name} {int(value)} is in the future, now {int(now)} "
                f"(leeway {clock_skew:g}s)"
            )


def check_subject_allowed(subject: str, *allow_lists: Collection[str] | None) -> None:
    """Raise ``SubjectNotAllowed`` unless ``subject`` is in every non-empty allow-list.

    The service-wide list (``AUTH_ALLOWED_SUBJECTS``) and a handler's ``allowed_subjects`` both
    apply: a handler can narrow the service's list, never widen it.
    """
    for allowed in allow_lists:
        if allowed and subject not in allowed:
            raise SubjectNotAllowed(f"subject {subject} is not in the allow-list")


def _check_issuer(iss: object, issuers: Collection[str]) -> None:
    if not isinstance(iss, str):
        raise MalformedToken("claim iss is missing or not a string")
    if iss == LEGACY_ISSUER:
        raise LegacyToken("legacy Secret-based token (iss kubernetes/serviceaccount)")
    if issuers and iss not in issuers:
        raise IssuerMismatch(f"token issuer: expected {_one_of(issuers)}, got {iss[:200]!r}")


def _check_audience(aud: object, audience: str) -> None:
    if isinstance(aud, str):
        audiences: list[object] = [aud]
    elif isinstance(aud, list):
        audiences = aud
    elif aud is None:
        raise AudienceMismatch(
            "token has no aud claim",
            description=f"the token audience does not include {audience}",
        )
    else:
        raise MalformedToken("claim aud is neither a string nor a list")
    if not all(isinstance(item, str) for item in audiences):
        raise MalformedToken("claim aud contains a non-string")
    if audience not in audiences:
        shown = [str(item)[:100] for item in audiences[:5]]
        raise AudienceMismatch(
            f"token audience: expected {audience!r}, got {shown}",
            description=f"the token audience does not include {audience}",
        )


def _time_claim(payload: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = payload.get(name)
    if value is None:
        if required and name not in payload:
            raise MalformedToken(f"token has no {name} claim")
        if name in payload:
            raise MalformedToken(f"claim {name} is null")
        return None
    # bool is an int in Python; JSON true is not a NumericDate (RFC 7519 §2).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedToken(f"claim {name} is not a number")
    # Before 1970 or past the year 318857: never written by an API server (it writes the
    # current time and time + lifetime). A negative iat/nbf would otherwise pass every check.
    if not math.isfinite(value) or not 0 <= value <= 1e13:
        raise MalformedToken(f"claim {name} is out of range")
    return float(value)


def _one_of(issuers: Collection[str]) -> str:
    quoted = [repr(issuer) for issuer in issuers]
    return quoted[0] if len(quoted) == 1 else "one of " + ", ".join(quoted)
