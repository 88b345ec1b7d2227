"""The emulator's service-account signing keys: publication, rotation, retirement."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from compass_auth.testing.credentials import jws

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key pair with the ``kid`` and ``alg`` the API server derives for it."""

    kid: str
    alg: str
    private_key: jws.PrivateKey

    @property
    def public_key(self) -> jws.PublicKey:
        """The public half, as published in the JWKS."""
        return self.private_key.public_key()

    @classmethod
    def generate(cls, key_type: jws.KeyType) -> SigningKey:
        """A fresh key of ``key_type`` with its derived ``kid`` and ``alg``."""
        private_key = jws.generate_key(key_type)
        public_key = private_key.public_key()
        return cls(jws.key_id(public_key), jws.default_alg(public_key), private_key)


class KeyRing:
    """Published keys in publication order, the current signer, and retired keys.

    A removed key is no longer published nor accepted by TokenReview, but it is
    kept so tests can still mint with it (a token signed by an unknown key).
    Thread-safe: the test thread rotates while the server thread reads.
    """

    def __init__(self, key_type: jws.KeyType) -> None:
        self._lock = threading.Lock()
        first = SigningKey.generate(key_type)
        self._published: dict[str, SigningKey] = {first.kid: first}
        self._retired: dict[str, SigningKey] = {}
        self._current = first.kid

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        with self._lock:
            return self._published.get(self._current) or self._retired[self._current]

    def add(self, key_type: jws.KeyType, *, make_current: bool = False) -> str:
        """Generate and publish a key at once; optionally sign with it from now on.

        A real cluster publishes a key at least max-age (3600 s) before signing
        with it; ``make_current=True`` skips that wait, which is exactly the
        "new kid not yet in my cached JWKS" case a verifier must handle.
        """
        key = SigningKey.generate(key_type)
        with self._lock:
            self._published[key.kid] = key
            if make_current:
                self._current = key.kid
        logger.info(
            "devcluster key added kid=%s alg=%s current=%s",
            key.kid,
            key.alg,
            make_current,
        )
        return key.kid

    def remove(self, kid: str) -> None:
        """Stop publishing ``kid`` and stop accepting it in TokenReview."""
        with self._lock:
            if kid == self._current:
                raise ValueError("cannot remove the current signing key; rotate first")
            try:
                self._retired[kid] = self._published.pop(kid)
            except KeyError:
                raise KeyError(f"no published key with kid {kid!r}") from None
        logger.info("devcluster key removed kid=%s", kid)

    def get(self, kid: str) -> SigningKey:
        """A published or retired key, for minting with a chosen key."""
        with self._lock:
            key = self._published.get(kid) or self._retired.get(kid)
        if key is None:
            raise KeyError(f"unknown kid {kid!r}")
        return key

    def published(self) -> list[SigningKey]:
        """All keys the JWKS serves, oldest first."""
        with self._lock:
            return list(self._published.values())

    def verification_keys(self, kid_hint: str) -> list[SigningKey]:
        """Keys TokenReview tries: those with ``kid_hint``, or all when it is empty.

        Mirrors ``staticPublicKeysGetter.GetPublicKeys`` in kubernetes
        ``pkg/serviceaccount/jwt.go``.
        """
        with self._lock:
            if not kid_hint:
                return list(self._published.values())
            key = self._published.get(kid_hint)
            return [key] if key else []

    def public_key_pem(self, kid: str) -> bytes:
        """PEM SubjectPublicKeyInfo of a key (for HS256-with-public-key attacks)."""
        return self.get(kid).public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
