"""Authorization header parsing (RFC 6750 §2.1) and fingerprints."""

from __future__ import annotations

import hashlib

import pytest

from compass_auth.core import errors
from compass_auth.core.bearer import extract_bearer, fingerprint

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"

CASES: list[tuple[str, list[str], type[errors.AuthError] | str]] = [
    ("bearer", [f"Bearer {TOKEN}"], TOKEN),
    ("scheme is case-insensitive", [f"bEaReR {TOKEN}"], TOKEN),
    ("extra spaces", [f"  Bearer   {TOKEN}  "], TOKEN),
    ("no header", [], errors.MissingToken),
    ("basic scheme", ["Basic dXNlcjpwYXNz"], errors.MissingToken),
    ("scheme only", ["Bearer"], errors.MalformedHeader),
    ("scheme and spaces", ["Bearer    "], errors.MalformedHeader),
    ("two tokens", [f"Bearer {TOKEN} {TOKEN}"], errors.MalformedHeader),
    ("two headers", [f"Bearer {TOKEN}", f"Bearer {TOKEN}"], errors.MalformedHeader),
    ("comma-joined tokens", [f"Bearer {TOKEN},{TOKEN}"], errors.MalformedHeader),
    ("non-ASCII", ["Bearer tökén"], errors.MalformedHeader),
    ("control character", ["Bearer abc\x00def"], errors.MalformedHeader),
    ("tab inside", ["Bearer abc\tdef"], errors.MalformedHeader),
    ("quotes", ['Bearer "abc"'], errors.MalformedHeader),
    ("too large", ["Bearer " + "a" * 9000], errors.TokenTooLarge),
]


@pytest.mark.parametrize(("name", "values", "expected"), CASES, ids=[c[0] for c in CASES])
def test_extract_bearer(
    name: str, values: list[str], expected: type[errors.AuthError] | str
) -> None:
    if isinstance(expected, str):
        assert extract_bearer(values, 8192) == expected
    else:
        with pytest.raises(expected) as caught:
            extract_bearer(values, 8192)
        assert type(caught.value) is expected
        assert TOKEN not in str(caught.value)


def test_fingerprint_is_a_short_sha256_prefix() -> None:
    assert fingerprint(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
    assert fingerprint(TOKEN) != fingerprint(TOKEN + "x")
