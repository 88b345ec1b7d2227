"""An immutable snapshot of the keys that may sign service-account tokens (pure, no I/O).

Built once per JWKS fetch, so PyJWT key objects are prepared once and not per request. Like
go-oidc's ``KeySet``, a snapshot only answers "which key has this kid": the policy checks live in
``core/verifier.py`` and the fetching in ``keys/cache.py``/``apiserver/discovery.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

logger = logging.getLogger(__name__)

#: The only algorithms we ever verify, with the key type each needs. kube-apiserver signs with RS256
#: (RSA keys) or ES256/384/512 (P-256/384/521 keys), docs/kubernetes-api.md#jwks. Never ``none``,
#: never HMAC (a public key used as an HMAC secret is the classic confusion attack, RFC 8725 §2.1),
#: and no PS*/RS384/RS512: the API server never produces them, so accepting them only widens attack
#: surface.
SUPPORTED_ALGORITHMS: Mapping[str, tuple[str, str | None]] = MappingProxyType({
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
})
#: Smaller RSA keys are factorable or close to it (NIST SP 800-131A disallows < 2048 bits).
MIN_RSA_BITS = 2048
#: A JWKS with more keys than this is not a Kubernetes issuer's (it publishes a handful).
MAX_KEYS = 100


class InvalidKeySet(ValueError):
    """The JWKS document has no usable key, or is not a JWKS at all."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One public key, ready for ``jwt.decode``."""

    kid: str
    algorithm: str
    jwk: jwt.PyJWK = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class KeySet:
    """The issuer declared by discovery and the usable keys of its JWKS, by ``kid``."""

    issuer: str
    keys: Mapping[str, VerificationKey]

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(key.algorithm for key in self.keys.values())

    def get(self, kid: str) -> VerificationKey | None:
        return self.keys.get(kid)

    @classmethod
    def from_jwks(cls, document: Any, issuer: str) -> KeySet:
        """Parse a JWKS document; skip unusable keys with a WARN, fail if none is usable."""
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise InvalidKeySet("JWKS document has no 'keys' list")
        entries = document["keys"]
        if len(entries) > MAX_KEYS:
            raise InvalidKeySet(f"JWKS has {len(entries)} keys, more than {MAX_KEYS}")
        keys: dict[str, VerificationKey] = {}
        for entry in entries:
            try:
                key = _parse_key(entry)
            except InvalidKeySet as error:
                logger.warning("JWKS key skipped error=%r", str(error))
                continue
            if key.kid in keys:
                # Two keys under one kid make the lookup ambiguous; keep the first, as
                # kube-apiserver never publishes duplicates.
                logger.warning("JWKS key skipped error=%r", f"duplicate kid {key.kid}")
                continue
            keys[key.kid] = key
        if not keys:
            raise InvalidKeySet("JWKS has no usable signing key")
        return cls(issuer=issuer, keys=MappingProxyType(keys))


def _parse_key(entry: Any) -> VerificationKey:
    if not isinstance(entry, dict):
        raise InvalidKeySet("JWKS entry is not an object")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidKeySet("key without a string kid")
    if entry.get("use", "sig") != "sig":
        raise InvalidKeySet(f"key {kid} has use={entry.get('use')!r}, not sig")
    if "d" in entry or entry.get("kty") == "oct":
        # A private or symmetric key in a public JWKS is a publisher bug; never use it.
        raise InvalidKeySet(f"key {kid} is not an asymmetric public key")
    algorithm = entry.get("alg") or _default_algorithm(entry)
    expected = SUPPORTED_ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    if expected is None or not isinstance(algorithm, str):
        raise InvalidKeySet(f"key {kid} has unsupported alg {algorithm!r}")
    kty, crv = expected
    if entry.get("kty") != kty or (crv is not None and entry.get("crv") != crv):
        raise InvalidKeySet(f"key {kid}: alg {algorithm} does not fit kty/crv")
    try:
        jwk = jwt.PyJWK(entry, algorithm=algorithm)
    except jwt.PyJWTError as error:
        raise InvalidKeySet(f"key {kid}: {error}") from None
    if isinstance(jwk.key, rsa.RSAPublicKey) and jwk.key.key_size < MIN_RSA_BITS:
        raise InvalidKeySet(f"key {kid}: RSA key of {jwk.key.key_size} bits is too small")
    return VerificationKey(kid=kid, algorithm=algorithm, jwk=jwk)


def _default_algorithm(entry: dict[str, Any]) -> str | None:
    if entry.get("kty") == "RSA":
        return "RS256"
    for algorithm, (kty, crv) in SUPPORTED_ALGORITHMS.items():
        if entry.get("kty") == kty and entry.get("crv") == crv:
            return algorithm
    return None
