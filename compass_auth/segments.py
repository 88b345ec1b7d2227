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
        text = raw.decode("utf-8")
        value = _DECODER.decode(text)
        if not isinstance(value, dict):
            raise MalformedToken(f"token {name} is not a JSON object")
        # Parsers differ on duplicate keys (first or last wins): refuse them. Checking with an
        # object_pairs_hook costs ~6 µs per payload, so it runs only when a cheap count says a
        # duplicate is possible: every key is followed by '":' unless whitespace intervenes,
        # so as many '":' as parsed keys means no key was seen twice.
        if text.count('":') != _count_keys(value):
            _STRICT_DECODER.decode(text)
    except (binascii.Error, ValueError, RecursionError) as error:
        raise MalformedToken(f"token {name} is not base64url JSON: {error}") from None
    return raw, value


def _count_keys(value: dict[str, Any]) -> int:
    """Keys of an object and of the objects in it, three levels deep (a token payload's
    ``kubernetes.io.pod`` is the deepest). Deeper keys are not counted, so an object nested
    deeper makes the count differ and sends the text through the exact (slower) check."""
    count = len(value)
    for child in value.values():
        if type(child) is dict:
            count += len(child)
            for grandchild in child.values():
                if type(grandchild) is dict:
                    count += len(grandchild)
    return count


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
    result = dict(pairs)
    if len(result) != len(pairs):
        # Parsers differ on duplicates (first or last wins); refuse rather than guess.
        raise ValueError("duplicate key in JSON object")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


# Built once: json.loads() with keyword arguments builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
)
