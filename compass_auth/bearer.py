"""Pure helpers for the ``Authorization: Bearer`` header (RFC 6750 §2.1) and token fingerprints."""

from __future__ import annotations

import hashlib
import re

from .errors import MalformedHeader, MissingToken, TokenTooLarge

#: RFC 6750 §2.1 ``b64token``; a JWT uses a subset of it (base64url and dots).
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def extract_bearer(header_values: list[str], max_token_bytes: int) -> str:
    """Return the token from the request's ``Authorization`` header values.

    No header, or a scheme other than Bearer, is ``MissingToken`` (RFC 6750 §3.1: a client using
    another scheme gets a challenge without an error code). Anything else that is not exactly one
    ``Bearer <b64token>`` is ``MalformedHeader`` (400). The size limit is checked before any
    further work so an oversized header costs nothing.
    """
    if not header_values:
        raise MissingToken("no Authorization header")
    if len(header_values) > 1:
        raise MalformedHeader(f"{len(header_values)} Authorization headers")
    value = header_values[0].strip()
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        # Only the scheme name is logged: it is not a secret, the credentials may be.
        raise MissingToken(f"Authorization scheme {scheme[:20]!r} is not Bearer")
    token = credentials.strip(" ")
    if not token:
        raise MalformedHeader("Bearer scheme without a token")
    if len(token) > max_token_bytes:
        raise TokenTooLarge(f"token of {len(token)} bytes exceeds the limit of {max_token_bytes}")
    if not _B64TOKEN.fullmatch(token):
        raise MalformedHeader(
            "the bearer token contains characters outside RFC 6750 b64token (or several tokens)"
        )
    return token


def fingerprint(token: str) -> str:
    """A short SHA-256 fingerprint for logs: identifies a token without revealing it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12]
