"""The ``Authorization: Bearer`` header (RFC 6750 §2.1), read once per request, and fingerprints.

``read_bearer`` reads the header values into a ``Bearer`` (the token and the key of its cache
entries) or a ``HeaderProblem`` that says why there is none. Both the
cached answer and the full verification start from that one reading. ``check_token`` adds the
size and alphabet rules before a token is verified, once per request (the verifier does not
check the size again); a token found in a cache passed them when it was first verified (cache keys
are HMACs of the exact token), so a cache hit skips them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import MalformedHeader, MissingToken, Refusal, TokenTooLarge

#: RFC 6750 §2.1 ``b64token``; a JWT uses a subset of it (base64url and dots).
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True, slots=True)
class Bearer:
    """A request's bearer token, read from its header."""

    token: str
    #: The key of this token's entries in the verdict caches (``cache.TokenHasher``).
    key: bytes


@dataclass(frozen=True, slots=True)
class HeaderProblem(Refusal):
    """Why a request's ``Authorization`` header holds no bearer token, as data: each request
    that has it raises an exception of its own (``raise_error``)."""


#: What a request's ``Authorization`` header says.
Credential = Bearer | HeaderProblem


def read_bearer(header_values: list[str], hasher: Callable[[str], bytes]) -> Credential:
    """Read the request's ``Authorization`` header values.

    No header, or a scheme other than Bearer, is ``MissingToken`` (RFC 6750 §3.1: a client using
    another scheme gets a challenge without an error code); two headers, or the scheme without a
    token, is ``MalformedHeader`` (400).
    """
    if not header_values:
        return HeaderProblem(MissingToken, "no Authorization header")
    if len(header_values) > 1:
        return HeaderProblem(MalformedHeader, f"{len(header_values)} Authorization headers")
    scheme, _, credentials = header_values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        # Only the scheme name is logged: it is not a secret, the credentials may be.
        return HeaderProblem(MissingToken, f"Authorization scheme {scheme[:20]!r} is not Bearer")
    token = credentials.strip(" ")
    if not token:
        return HeaderProblem(MalformedHeader, "Bearer scheme without a token")
    return Bearer(token, hasher(token))


def check_token(token: str, max_token_bytes: int) -> None:
    """The rules a token must meet before it is verified: at most ``max_token_bytes`` (checked
    first, so an oversized token costs nothing more), and one RFC 6750 ``b64token``."""
    if len(token) > max_token_bytes:
        raise TokenTooLarge(f"token of {len(token)} bytes exceeds the limit of {max_token_bytes}")
    if not B64TOKEN.fullmatch(token):
        raise MalformedHeader(
            "the bearer token contains characters outside RFC 6750 b64token (or several tokens)"
        )


def extract_bearer(header_values: list[str], max_token_bytes: int) -> str:
    """The token of the header values, with every rule applied (``read_bearer`` then
    ``check_token``); raise the ``TokenRejected`` that says why there is none."""
    credential = read_bearer(header_values, lambda token: b"")
    if isinstance(credential, HeaderProblem):
        credential.raise_error()
    check_token(credential.token, max_token_bytes)
    return credential.token


def fingerprint(token: str) -> str:
    """A short SHA-256 fingerprint for logs: identifies a token without revealing it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12]
