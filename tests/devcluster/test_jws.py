"""JWS primitives: key ids, encodings, signatures (no server needed)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from compass_auth.testing.credentials import jws

# Public test vector from kubernetes pkg/serviceaccount/keyid_test.go
# (TestKeyIDStability): this key must always get the kid below.
KEYID_TEST_KEY = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA249XwEo9k4tM8fMxV7zx
OhcrP+WvXn917koM5Qr2ZXs4vo26e4ytdlrV0bQ9SlcLpQVSYjIxNfhTZdDt+ecI
zshKuv1gKIxbbLQMOuK1eA/4HALyEkFgmS/tleLJrhc65tKPMGD+pKQ/xhmzRuCG
51RoiMgbQxaCyYxGfNLpLAZK9L0Tctv9a0mJmGIYnIOQM4kC1A1I1n3EsXMWmeJU
j7OTh/AjjCnMnkgvKT2tpKxYQ59PgDgU8Ssc7RDSmSkLxnrv+OrN80j6xrw0OjEi
B4Ycr0PqfzZcvy8efTtFQ/Jnc4Bp1zUtFXt7+QeevePtQ2EcyELXE0i63T1CujRM
WwIDAQAB
-----END PUBLIC KEY-----
"""
KEYID_TEST_KID = "JHJehTTTZlsspKHT-GaJxK7Kd1NQgZJu3fyK6K_QDYU"


def test_key_id_matches_upstream_vector() -> None:
    key = serialization.load_pem_public_key(KEYID_TEST_KEY)
    assert isinstance(key, rsa.RSAPublicKey)
    assert jws.key_id(key) == KEYID_TEST_KID


def test_key_id_is_43_char_unpadded_base64url() -> None:
    kid = jws.key_id(jws.generate_key("EC").public_key())
    assert len(kid) == 43
    assert "=" not in kid
    assert "+" not in kid
    assert "/" not in kid


@pytest.mark.parametrize("text", ["YQ==", "a+b/", "YQ\n", "Y Q"])
def test_b64url_decode_is_strict(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        jws.b64url_decode(text)


def test_go_json_is_compact_utf8_and_html_escaped() -> None:
    assert (
        jws.go_json({"b": 1, "a": "<&>é\u2028"})
        == '{"b":1,"a":"\\u003c\\u0026\\u003eé\\u2028"}'.encode()
    )
    assert jws.go_json({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'


@pytest.mark.parametrize(
    ("key_type", "alg"),
    [("RSA", "RS256"), ("RSA", "PS256"), ("RSA", "RS512"), ("EC", "ES256")],
)
def test_sign_verify_round_trip(key_type: jws.KeyType, alg: str) -> None:
    key = jws.generate_key(key_type)
    signature = jws.sign(b"a.b", alg, key)
    jws.verify(b"a.b", signature, alg, key.public_key())
    with pytest.raises(jws.SignatureError, match="cryptographic primitive"):
        jws.verify(b"a.c", signature, alg, key.public_key())


def test_es256_signature_is_raw_r_s_64_bytes() -> None:
    key = jws.generate_key("EC")
    assert len(jws.sign(b"x", "ES256", key)) == 64


@pytest.mark.parametrize("alg", ["none", "HS256", "ES256", "XX256", "RS999"])
def test_rsa_key_never_verifies_foreign_algs(alg: str) -> None:
    key = jws.generate_key("RSA")
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = hmac.new(pem, b"a.b", hashlib.sha256).digest()
    with pytest.raises(jws.SignatureError, match="unexpected signature algorithm"):
        jws.verify(b"a.b", forged, alg, key.public_key())


def test_ec_key_refuses_rsa_alg_and_wrong_curve_alg() -> None:
    key = jws.generate_key("EC")
    for alg in ("RS256", "ES384"):
        with pytest.raises(jws.SignatureError):
            jws.verify(b"a.b", jws.sign(b"a.b", "ES256", key), alg, key.public_key())


def test_jwk_field_order_and_ec_padding() -> None:
    rsa_key = jws.generate_key("RSA").public_key()
    assert list(jws.jwk(rsa_key, "k")) == ["use", "kty", "kid", "alg", "n", "e"]
    assert jws.jwk(rsa_key, "k")["e"] == "AQAB"
    ec_key = jws.generate_key("EC").public_key()
    doc = jws.jwk(ec_key, "k")
    assert list(doc) == ["use", "kty", "kid", "crv", "alg", "x", "y"]
    assert (doc["crv"], doc["alg"]) == ("P-256", "ES256")
    assert isinstance(ec_key, ec.EllipticCurvePublicKey)
    assert len(jws.b64url_decode(doc["x"])) == len(jws.b64url_decode(doc["y"])) == 32
