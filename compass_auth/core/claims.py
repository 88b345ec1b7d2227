"""Pure checks on token claims: the unverified pre-filter, Kubernetes-aware policy options and
the subject allow-list.

The pre-filter runs on the *unverified* payload, before any key lookup, so junk and tokens that
are plainly for someone else never cost a signature check or a JWKS refetch (go-oidc's "cheap
checks before possibly re-syncing keys"). Unverified claims may reject a token, never accept one:
PyJWT checks the same claims again after the signature.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, Literal

from .errors import (
    AudienceMismatch,
    IssuerMismatch,
    LegacyToken,
    LifetimeTooLong,
    MalformedToken,
    NotPodBound,
    NotYetValid,
    StaleToken,
    SubjectNotAllowed,
    TokenExpired,
)
from .identity import Identity

#: ``AUTH_STALE_TOKENS``: what to do with a token past its ``kubernetes.io.warnafter``.
StalePolicy = Literal["off", "warn", "reject"]

#: Issuer of legacy Secret-based tokens: no exp, no aud; never accepted
#: (docs/kubernetes-api.md#legacy-tokens).
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


def is_stale(identity: Identity, now: float) -> bool:
    """Whether ``now`` is past the token's ``kubernetes.io.warnafter``.

    No leeway: kube-apiserver itself counts a token as stale as soon as ``warnafter`` has passed
    (``pkg/serviceaccount/claims.go``), and the flag only warns unless the operator chose
    ``AUTH_STALE_TOKENS=reject``.
    """
    return identity.warn_after is not None and now > identity.warn_after


def check_kubernetes_policy(
    identity: Identity,
    *,
    require_pod_bound: bool,
    max_lifetime: float | None,
    reject_stale: bool,
) -> None:
    """The optional Kubernetes-aware checks (each off by default), on a verified identity.

    * ``require_pod_bound``: the claims must name a pod (kubelet-projected tokens do;
      ``kubectl create token`` and Secret- or node-bound tokens do not);
    * ``max_lifetime``: ``exp - iat`` at most this many seconds. kube-apiserver stretches a
      kubelet's 3607 s request to a year (``--service-account-extend-token-expiration``, default
      on), but only for tokens whose audience is the API server's own
      (``pkg/registry/core/serviceaccount/storage/token.go``, ``isKubeAudiences``); tokens
      projected for a custom audience keep their requested lifetime;
    * ``reject_stale``: refuse tokens past ``warnafter`` (``identity.stale``).

    Not checked when the identity does not carry the fact (``issued_at`` is unknown for
    TokenReview answers, so the lifetime check is skipped there).
    """
    if require_pod_bound and identity.pod_name is None:
        raise NotPodBound(f"token of {identity.subject} is not bound to a pod")
    if max_lifetime is not None and identity.issued_at is not None and (
        identity.expires_at is not None
    ):
        lifetime = identity.expires_at - identity.issued_at
        if lifetime > max_lifetime:
            raise LifetimeTooLong(
                f"token lifetime (exp - iat): expected at most {max_lifetime:g}s, "
                f"got {lifetime}s"
            )
    if reject_stale and identity.stale:
        raise StaleToken(
            f"token is past kubernetes.io.warnafter {identity.warn_after}: the client of "
            f"{identity.subject} keeps a token its kubelet has rotated"
        )


def subject_allowed(subject: str, *allow_lists: Collection[str] | None) -> bool:
    """Whether ``subject`` is in every non-empty allow-list.

    The service-wide list (``AUTH_ALLOWED_SUBJECTS``) and a handler's ``allowed_subjects`` both
    apply: a handler can narrow the service's list, never widen it.
    """
    return all(not allowed or subject in allowed for allowed in allow_lists)


def check_subject_allowed(subject: str, *allow_lists: Collection[str] | None) -> None:
    """Raise ``SubjectNotAllowed`` unless ``subject_allowed``."""
    if not subject_allowed(subject, *allow_lists):
        raise SubjectNotAllowed(f"subject {subject} is not in the allow-list")


def _check_issuer(iss: object, issuers: Collection[str]) -> None:
    if not isinstance(iss, str):
        raise MalformedToken("claim iss is missing or not a string")
    if iss == LEGACY_ISSUER:
        raise LegacyToken("legacy Secret-based token (iss kubernetes/serviceaccount)")
    if issuers and iss not in issuers:
        raise IssuerMismatch(
            f"token issuer: expected {one_of(issuers)}, got {iss[:200]!r}", issuer=iss
        )


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


def one_of(issuers: Collection[str]) -> str:
    """``'a'`` or ``one of 'a', 'b'``: the expected values in a message."""
    quoted = [repr(issuer) for issuer in issuers]
    return quoted[0] if len(quoted) == 1 else "one of " + ", ".join(quoted)
