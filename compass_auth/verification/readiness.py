"""What ``Authenticator.readiness()`` answers: can tokens be verified now, how, and why.

Pure data and wording; the authenticator gathers the facts (``Authenticator.readiness``) and
the example service's ``/readyz`` writes ``as_dict()`` as its body (docs/verification.md#readiness
lists the fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..core.keyset import KeySet

Path = Literal["jwks", "tokenreview", "none"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether a verification path is available (``ready``), which (``path``), and why
    (``reason``), with the facts behind it."""

    ready: bool
    #: ``jwks`` (local verification with the key set), ``tokenreview``, or ``none`` when not
    #: ready.
    path: Path
    #: ``AUTH_MODE``: ``auto`` or ``review``.
    mode: str
    #: One sentence: why this path, or why none.
    reason: str
    #: The discovered issuer, the key ids of the key set, its age in seconds (``None`` before
    #: the first load) and why the latest discovery or key fetch failed (``None`` if it did not).
    issuer: str | None
    keys: tuple[str, ...]
    keys_age_seconds: float | None
    last_error: str | None
    tokenreview_cache_entries: int
    #: With ``AUTH_AUTHENTICATION_CONFIG``: the file, why its latest version was refused, and
    #: each other issuer's keys (``JwtAuthenticators.status``). They do not decide ``ready``:
    #: one issuer's outage costs only its own tokens.
    authentication_config: dict[str, Any] | None = None
    #: Background confirmation of locally verified tokens (verification/revocation.py):
    #: ``off``, ``available``, or ``unavailable`` (tokens are still served locally: never a
    #: reason to fail readiness).
    revocation_check: str = "off"

    def as_dict(self) -> dict[str, Any]:
        """The ``/readyz`` body (JSON-ready)."""
        body: dict[str, Any] = {
            "ready": self.ready, "path": self.path, "mode": self.mode, "reason": self.reason,
            "issuer": self.issuer, "keys": list(self.keys),
            "keys_age_seconds": self.keys_age_seconds, "last_error": self.last_error,
            "tokenreview_cache_entries": self.tokenreview_cache_entries,
            "revocation_check": self.revocation_check,
        }
        if self.authentication_config is not None:
            body["authentication_config"] = self.authentication_config
        return body


def readiness_from(*, mode: str, path: str, tokenreview_ok: bool, keys: KeySet | None,
                   keys_age: float | None, keys_error: str | None, review_error: str | None,
                   tokenreview_cache_entries: int,
                   authentication_config: dict[str, Any] | None = None,
                   revocation_check: str = "off") -> Readiness:
    """The answer from the facts the authenticator gathered: the active ``path`` (``jwks`` or
    ``tokenreview``), whether TokenReview works (only asked on that path), the key set."""
    ready = path == "jwks" or tokenreview_ok
    return Readiness(
        ready=ready,
        path="none" if not ready else "jwks" if path == "jwks" else "tokenreview",
        mode=mode,
        reason=explain(mode, path, tokenreview_ok, keys_error, review_error),
        issuer=keys.issuer if keys is not None else None,
        keys=tuple(sorted(keys.keys)) if keys is not None else (),
        keys_age_seconds=None if keys_age is None else round(keys_age, 1),
        last_error=keys_error,
        tokenreview_cache_entries=tokenreview_cache_entries,
        authentication_config=authentication_config,
        revocation_check=revocation_check,
    )


def explain(mode: str, path: str, tokenreview_ok: bool, keys_error: str | None,
            review_error: str | None) -> str:
    """The ``reason`` sentence for a readiness answer. ``path`` is the active one (``jwks`` or
    ``tokenreview``); ``tokenreview_ok`` only matters on the latter."""
    if path == "jwks":
        return "verifying tokens locally with the key set"
    why_review = ("AUTH_MODE=review: every new token is reviewed" if mode == "review"
                  else f"no usable key set ({keys_error or 'discovery has not finished'})")
    if tokenreview_ok:
        return f"{why_review}; TokenReview answers"
    return f"{why_review}, and TokenReview fails: {review_error or 'no answer'}"
