"""Building hostile tokens: with the cluster's keys (so only the crafted property can make them
fail), with an attacker's own keys, and byte by byte."""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from compass_auth.testing import DevCluster
from compass_auth.testing.credentials import jws

from ..conftest import AUDIENCE


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, payload, signature = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))),
            json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
            signature)


@functools.cache
def attacker_key(key_type: Literal["RSA", "EC"]) -> jws.PrivateKey:
    """A key the cluster never published (one per test run: RSA generation is slow)."""
    return jws.generate_key(key_type)


@dataclass
class Forge:
    """Hostile tokens against one cluster, which publishes the RSA key ``rsa_kid`` and the EC
    (P-256) key ``ec_kid``."""

    cluster: DevCluster
    rsa_kid: str
    ec_kid: str
    attacker_rsa: jws.PrivateKey = field(default_factory=lambda: attacker_key("RSA"))
    attacker_ec: jws.PrivateKey = field(default_factory=lambda: attacker_key("EC"))

    @property
    def kid(self) -> str:
        """The RSA key that signs the forged tokens."""
        return self.rsa_kid

    def claims(self, **changes: Any) -> dict[str, Any]:
        """The claims of a valid token for the collector, with ``changes`` (None deletes)."""
        _, payload, _ = segments(self.valid())
        for name, value in changes.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return payload

    def valid(self, **mint: Any) -> str:
        return self.cluster.mint(audiences=(AUDIENCE,), **{"key_id": self.rsa_kid, **mint})

    def signed(self, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes,
               kid: str | None = None, alg: str | None = None) -> str:
        """Signed by the cluster's key ``kid`` (default: its signing key)."""
        return self.cluster.sign_raw(header, payload, key_id=kid or self.kid, alg=alg)

    def with_claims(self, **changes: Any) -> str:
        """A validly signed token whose claims are ``claims(**changes)``."""
        return self.signed({"alg": "RS256", "kid": self.kid}, self.claims(**changes))

    def with_raw_payload(self, payload: bytes) -> str:
        return self.signed({"alg": "RS256", "kid": self.kid}, payload)

    def with_header(self, **changes: Any) -> str:
        """An RS256 signature of the cluster's key, under the header ``{"alg", "kid"}`` with
        ``changes`` (which may name another alg: the signature stays RS256)."""
        header: dict[str, Any] = {"alg": "RS256", "kid": self.kid}
        for name, value in changes.items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return self.signed(header, self.claims(), alg="RS256")

    def attacker_signed(self, header: dict[str, Any], alg: str = "RS256",
                        **claim_changes: Any) -> str:
        """Signed with a key the cluster never published."""
        key = self.attacker_rsa if alg.startswith("RS") else self.attacker_ec
        return jws.encode(header, self.claims(**claim_changes), alg, key)

    def attacker_jwk(self) -> dict[str, str]:
        public = self.attacker_rsa.public_key()
        return jws.jwk(public, jws.key_id(public))

    def unsigned(self, alg: str) -> str:
        """``alg`` (any spelling of none) with an empty signature."""
        return self.signed({"alg": alg, "kid": self.kid}, self.claims(), alg="none")
