"""The segments of a compact JWS: base64url-decoded JSON, strictly (a leaf: no other module of
the library is needed here).

Used by the verifier for the header and the payload it pre-filters, and by the diagnostics that
read a claim of the service's own token. Parsers differ on duplicate keys and on non-standard
constants (``NaN``, ``Infinity``), so both are refused; a segment must be the one canonical
unpadded encoding of its bytes (RFC 4648 §3.5), as kube-apiserver's decoder would read it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import MalformedToken


def decode_segment(segment: str, name: str) -> dict[str, Any]:
    """base64url-decode one JWS segment into a JSON object, rejecting duplicate keys."""
    return decode_segment_bytes(segment, name)[1]


def decode_segment_bytes(segment: str, name: str) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = _DECODER.decode(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError) as error:
        raise MalformedToken(f"token {name} is not base64url JSON: {error}") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"token {name} is not a JSON object")
    return raw, value


#: Value of each base64url character (RFC 4648 §5).
_B64URL_VALUE = {
    char: value
    for value, char in enumerate(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
}


def canonical_base64url(segment: str) -> bool:
    """Whether ``segment`` is the one unpadded encoding of its bytes: no ``=`` (PyJWT decodes a
    correctly padded segment too), and the bits its last character does not use are zero
    (RFC 4648 §3.5). Other characters outside the alphabet are refused by the shape check (and
    by PyJWT's decoder); here they only make the answer False, never an exception."""
    if "=" in segment:
        return False
    unused_bits = {0: 0, 2: 4, 3: 2}.get(len(segment) % 4)
    if unused_bits is None:
        return False  # a length of 4n+1 encodes no byte string
    if unused_bits == 0:
        return True
    value = _B64URL_VALUE.get(segment[-1])
    return value is not None and value & ((1 << unused_bits) - 1) == 0


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Every JSON object of a segment, at any depth: the parser hands over each key as it read
    it (after whitespace and ``\\u`` escapes), so no spelling of a key hides a duplicate.

    Every depth, not only the claims we read: a nested object is signed data too, and a
    consumer downstream (a policy engine reading ``kubernetes.io``) may resolve it the other
    way. The cost is one call per object (~0.3 µs; a bound token's payload has four objects).
    """
    result = dict(pairs)
    if len(result) != len(pairs):
        # Parsers differ on duplicates (first or last wins). RFC 7515 §4 and RFC 7519 §4 let
        # a parser refuse them or keep the last: refuse, so no reader can see another value.
        raise ValueError("duplicate key in a JSON object")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


# Built once: json.loads() with keyword arguments builds a new decoder per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
