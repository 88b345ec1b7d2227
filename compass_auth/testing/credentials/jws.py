"""Compact JWS encoding, signing and verification with plain ``cryptography``.

The emulator deliberately does not use PyJWT (the verifier under test does):
writing the few lines of JWS ourselves gives byte-exact control over headers
and payloads (what a real API server emits, or something hostile) and keeps a
bug in a shared library from being mirrored on both sides of the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

logger = logging.getLogger(__name__)

KeyType = Literal["RSA", "EC"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# ES* algorithms are tied to one curve each (RFC 7518 §3.4); go-jose refuses
# any other pairing, so the emulator does too.
_EC_CURVES: dict[str, str] = {
    "ES256": "secp256r1",
    "ES384": "secp384r1",
    "ES512": "secp521r1",
}
_EC_JWK_CURVES: dict[str, str] = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}
_EC_DEFAULT_ALG: dict[str, str] = {v: k for k, v in _EC_CURVES.items()}


class SignatureError(Exception):
    """The signature does not verify, or the algorithm does not fit the key."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as RFC 7515 §2 requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict inverse of :func:`b64url_encode`.

    Padding and characters outside the url-safe alphabet are rejected, like Go's
    ``base64.RawURLEncoding`` that the API server uses.
    """
    if "=" in text or any(c in text for c in "+/ \n\r\t"):
        raise ValueError("not unpadded base64url")
    return base64.b64decode(
        text + "=" * (-len(text) % 4), altchars=b"-_", validate=True
    )


def go_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Serialise like Go's ``encoding/json``: compact, raw UTF-8, HTML-escaped.

    Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029 inside strings; in compact
    output those characters can only occur inside strings, so replacing them
    after ``json.dumps`` is safe and keeps byte layout identical to a real
    cluster's tokens.
    """
    text = json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    )
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def public_key_der(public_key: PublicKey) -> bytes:
    """DER-encoded PKIX SubjectPublicKeyInfo."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: PublicKey) -> str:
    """The API server's ``kid``: unpadded base64url(SHA-256(DER SPKI)).

    See kubernetes ``pkg/serviceaccount/jwt.go`` ``keyIDFromPublicKey`` and its
    stability test vector in ``keyid_test.go`` (covered by our tests).
    """
    return b64url_encode(hashlib.sha256(public_key_der(public_key)).digest())


def default_alg(public_key: PublicKey) -> str:
    """The algorithm the API server signs with for this key type."""
    if isinstance(public_key, rsa.RSAPublicKey):
        # RSA keys are always RS256 in kube-apiserver, whatever the size.
        return "RS256"
    return _EC_DEFAULT_ALG[public_key.curve.name]


def generate_key(key_type: KeyType) -> PrivateKey:
    """A fresh signing key: RSA 2048 (RS256) or EC P-256 (ES256)."""
    if key_type == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported key type {key_type!r} (want 'RSA' or 'EC')")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def jwk(public_key: PublicKey, kid: str) -> dict[str, str]:
    """The JWK the API server publishes, with its exact field order.

    RSA: use, kty, kid, alg, n, e.  EC: use, kty, kid, crv, alg, x, y with the
    coordinates left-padded to the curve size (RFC 7518 §6.2.1.2).
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": kid,
            "alg": "RS256",
            "n": b64url_encode(_int_bytes(numbers.n)),
            "e": b64url_encode(_int_bytes(numbers.e)),
        }
    size = (public_key.curve.key_size + 7) // 8
    point = public_key.public_numbers()
    return {
        "use": "sig",
        "kty": "EC",
        "kid": kid,
        "crv": _EC_JWK_CURVES[public_key.curve.name],
        "alg": default_alg(public_key),
        "x": b64url_encode(_int_bytes(point.x, size)),
        "y": b64url_encode(_int_bytes(point.y, size)),
    }


def sign(signing_input: bytes, alg: str, key: PrivateKey | bytes | None) -> bytes:
    """Produce the raw JWS signature bytes for ``alg``.

    ``key`` is a private key for RS*/PS*/ES*, a shared secret (bytes) for HS*
    (hostile tests: HS256 keyed with the public key PEM), and ignored for
    ``none`` which gives an empty signature.
    """
    if alg == "none":
        return b""
    family, bits = alg[:2], alg[2:]
    if bits not in _HASHES:
        raise ValueError(f"unsupported alg {alg!r}")
    digest = _HASHES[bits]
    if family == "HS":
        if not isinstance(key, bytes):
            raise ValueError("HS* needs a bytes secret")
        return hmac.new(key, signing_input, f"sha{bits}").digest()
    if family in ("RS", "PS") and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(signing_input, _rsa_padding(family, digest()), digest())
    if family == "ES" and isinstance(key, ec.EllipticCurvePrivateKey):
        der = key.sign(signing_input, ec.ECDSA(digest()))
        r, s = decode_dss_signature(der)
        size = (key.curve.key_size + 7) // 8
        # JWS wants fixed-size R || S, not DER (RFC 7518 §3.4).
        return _int_bytes(r, size) + _int_bytes(s, size)
    raise ValueError(f"alg {alg!r} does not fit the given key")


def _rsa_padding(
    family: str, digest: hashes.HashAlgorithm
) -> padding.AsymmetricPadding:
    if family == "PS":
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def verify(
    signing_input: bytes, signature: bytes, alg: str, public_key: PublicKey
) -> None:
    """Verify like go-jose does against a public key, or raise :class:`SignatureError`.

    Only asymmetric algorithms that fit the key type verify: ``none`` and HS*
    never do against a public key (the classic alg-confusion attacks).
    """
    family, bits = alg[:2], alg[2:]
    digest = _HASHES.get(bits)
    if digest is None or family not in ("RS", "PS", "ES"):
        raise SignatureError("go-jose/go-jose: unexpected signature algorithm")
    try:
        if family in ("RS", "PS"):
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise SignatureError("go-jose/go-jose: unexpected signature algorithm")
            public_key.verify(
                signature, signing_input, _rsa_padding(family, digest()), digest()
            )
            return
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SignatureError("go-jose/go-jose: unexpected signature algorithm")
        if _EC_CURVES.get(alg) != public_key.curve.name:
            raise SignatureError("go-jose/go-jose: unexpected signature algorithm")
        size = (public_key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise SignatureError("go-jose/go-jose: error in cryptographic primitive")
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        public_key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest()))
    except InvalidSignature as exc:
        raise SignatureError(
            "go-jose/go-jose: error in cryptographic primitive"
        ) from exc


def encode(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    alg: str,
    key: PrivateKey | bytes | None,
    *,
    sort_payload: bool = False,
) -> str:
    """Build a compact JWS from a header dict (order kept) and a payload.

    ``header`` and ``payload`` may be raw bytes so hostile tests can sign anything at all
    (duplicate keys, invalid JSON, ...).
    """
    header_b64 = b64url_encode(header if isinstance(header, bytes) else go_json(header))
    body = (
        payload
        if isinstance(payload, bytes)
        else go_json(payload, sort_keys=sort_payload)
    )
    signing_input = f"{header_b64}.{b64url_encode(body)}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{b64url_encode(sign(signing_input, alg, key))}"
