"""Building a key snapshot from a JWKS document: only usable asymmetric signing keys."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from compass_auth.core.keyset import MAX_KEYS, InvalidKeySet, KeySet
from compass_auth.testing import DevCluster

ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def jwks() -> Iterator[dict[str, Any]]:
    with DevCluster(issuer=ISSUER) as cluster:
        cluster.add_key("EC")
        yield cluster.jwks()


def test_publishes_rsa_and_ec_keys_with_their_algorithms(jwks: dict[str, Any]) -> None:
    keys = KeySet.from_jwks(jwks, ISSUER)
    assert keys.algorithms == {"RS256", "ES256"}
    assert set(keys.keys) == {key["kid"] for key in jwks["keys"]}
    assert keys.issuer == ISSUER


def _with(jwks: dict[str, Any], **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(jwks)
    document["keys"][0].update(changes)
    return document


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("symmetric key", {"kty": "oct", "k": "c2VjcmV0"}),
        ("private key material", {"d": "AAAA"}),
        ("encryption key", {"use": "enc"}),
        ("HMAC algorithm", {"alg": "HS256"}),
        ("alg none", {"alg": "none"}),
        ("alg that does not fit the key type", {"alg": "ES256"}),
        ("no kid", {"kid": None}),
        ("kid not a string", {"kid": 5}),
        ("broken modulus", {"n": "!!!"}),
    ],
)
def test_unusable_keys_are_skipped(
    name: str, changes: dict[str, Any], jwks: dict[str, Any]
) -> None:
    document = _with(jwks, **changes)
    skipped_kid = jwks["keys"][0]["kid"]
    keys = KeySet.from_jwks(document, ISSUER)
    assert skipped_kid not in keys.keys
    assert len(keys.keys) == len(jwks["keys"]) - 1


def test_small_rsa_keys_are_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    jwk = RSAAlgorithm.to_jwk(small, as_dict=True)
    jwk.update(kid="small", alg="RS256", use="sig")
    with pytest.raises(InvalidKeySet, match="no usable"):
        KeySet.from_jwks({"keys": [jwk]}, ISSUER)


def test_duplicate_kids_keep_the_first(jwks: dict[str, Any]) -> None:
    first = jwks["keys"][0]
    second = copy.deepcopy(jwks["keys"][1])
    second["kid"] = first["kid"]
    keys = KeySet.from_jwks({"keys": [first, second]}, ISSUER)
    assert keys.keys[first["kid"]].algorithm == first["alg"]


@pytest.mark.parametrize(
    "document",
    [None, [], {"keys": "x"}, {"keys": []}, {"nokeys": []}],
)
def test_documents_without_usable_keys_fail(document: Any) -> None:
    with pytest.raises(InvalidKeySet):
        KeySet.from_jwks(document, ISSUER)


def test_too_many_keys_fail(jwks: dict[str, Any]) -> None:
    with pytest.raises(InvalidKeySet, match="more than"):
        KeySet.from_jwks({"keys": [jwks["keys"][0]] * (MAX_KEYS + 1)}, ISSUER)
