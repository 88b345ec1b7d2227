"""The pure verification core, as a table: (name, token factory, expected error or None).

Tokens are minted by the emulator, which shares no code with the verifier.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from compass_auth.core import errors
from compass_auth.core.keyset import KeySet
from compass_auth.core.verifier import VerificationPolicy, verify_local
from compass_auth.testing import DevCluster

from .conftest import AUDIENCE, ISSUER
from .helpers import POLICY, mint, now


def ec_kid(cluster: DevCluster) -> str:
    return next(key["kid"] for key in cluster.jwks()["keys"] if key["kty"] == "EC")


def claims_of(cluster: DevCluster, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": [AUDIENCE], "exp": now + 3600, "iat": now, "iss": ISSUER, "nbf": now,
        "kubernetes.io": {"namespace": "default",
                          "serviceaccount": {"name": "collector", "uid": "u-1"}},
        "sub": "system:serviceaccount:default:collector",
    }
    claims.update(overrides)
    return claims


def raw(cluster: DevCluster, header: dict[str, Any] | None = None, **claims: Any) -> str:
    head = header or {"alg": "RS256", "kid": cluster.signing_key_id}
    return cluster.sign_raw(head, claims_of(cluster, **claims))


def tamper_payload(token: str) -> str:
    head, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["sub"] = "system:serviceaccount:kube-system:admin"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


Factory = Callable[[DevCluster], str]


CASES: list[tuple[str, Factory, type[errors.AuthError] | None]] = [
    ("valid RS256", lambda c: mint(c), None),
    ("valid ES256", lambda c: mint(c, key_id=ec_kid(c)), None),
    ("aud as a plain string", lambda c: raw(c, aud=AUDIENCE), None),
    ("one of several audiences", lambda c: mint(c, audiences=("vault", AUDIENCE)), None),
    ("expired 30 s ago, within the 60 s leeway",
     lambda c: mint(c, issued_at=now() - 3630, lifetime=3600), None),
    ("expired", lambda c: mint(c, issued_at=now() - 7200, lifetime=3600), errors.TokenExpired),
    ("nbf in the future", lambda c: raw(c, nbf=now() + 600), errors.NotYetValid),
    ("iat in the future", lambda c: raw(c, iat=now() + 600), errors.NotYetValid),
    ("wrong audience", lambda c: mint(c, audiences=("vault",)), errors.AudienceMismatch),
    ("no aud", lambda c: mint(c, claims_override={"aud": None}), errors.AudienceMismatch),
    ("aud is a number", lambda c: raw(c, aud=42), errors.MalformedToken),
    ("aud list with a number", lambda c: raw(c, aud=[AUDIENCE, 1]), errors.MalformedToken),
    ("wrong issuer", lambda c: mint(c, issuer="https://evil.example"), errors.IssuerMismatch),
    ("legacy Secret token", lambda c: c.mint_legacy(namespace="default",
                                                    service_account="collector"),
     errors.LegacyToken),
    ("no exp", lambda c: mint(c, claims_override={"exp": None}), errors.MalformedToken),
    ("exp as a string", lambda c: raw(c, exp=str(now() + 3600)), errors.MalformedToken),
    ("exp as a bool", lambda c: raw(c, exp=True), errors.MalformedToken),
    ("exp as a list", lambda c: raw(c, exp=[now() + 3600]), errors.MalformedToken),
    ("exp huge", lambda c: raw(c, exp=10**30), errors.MalformedToken),
    ("exp a float", lambda c: raw(c, exp=now() + 3600.5), None),
    ("iat as an object", lambda c: raw(c, iat={"n": 1}), errors.MalformedToken),
    ("iat negative (before 1970)", lambda c: raw(c, iat=-5), errors.MalformedToken),
    ("nbf negative", lambda c: raw(c, nbf=-5), errors.MalformedToken),
    ("no iat", lambda c: mint(c, claims_override={"iat": None}), errors.MalformedToken),
    ("no sub", lambda c: mint(c, claims_override={"sub": None}), errors.MalformedToken),
    ("sub not a service account", lambda c: raw(c, sub="admin"), errors.MalformedToken),
    ("sub disagrees with kubernetes.io",
     lambda c: raw(c, sub="system:serviceaccount:kube-system:admin"), errors.MalformedToken),
    ("kubernetes.io missing", lambda c: mint(c, claims_override={"kubernetes.io": None}),
     errors.MalformedToken),
    ("alg none", lambda c: c.sign_raw({"alg": "none", "kid": c.signing_key_id},
                                      claims_of(c), alg="none"), errors.UnsupportedAlgorithm),
    ("alg NONE", lambda c: c.sign_raw({"alg": "NONE", "kid": c.signing_key_id},
                                      claims_of(c), alg="none"), errors.UnsupportedAlgorithm),
    ("HS256 with the public key as secret",
     lambda c: c.sign_raw({"alg": "HS256", "kid": c.signing_key_id}, claims_of(c)),
     errors.UnsupportedAlgorithm),
    ("ES256 header on the RSA key",
     lambda c: c.sign_raw({"alg": "ES256", "kid": c.signing_key_id}, claims_of(c),
                          key_id=ec_kid(c)), errors.UnsupportedAlgorithm),
    ("RS256 header on the EC key",
     lambda c: c.sign_raw({"alg": "RS256", "kid": ec_kid(c)}, claims_of(c),
                          key_id=c.signing_key_id), errors.UnsupportedAlgorithm),
    ("PS256 (never produced by kube-apiserver)",
     lambda c: c.sign_raw({"alg": "PS256", "kid": c.signing_key_id}, claims_of(c),
                          alg="RS256"), errors.UnsupportedAlgorithm),
    ("unknown kid", lambda c: raw(c, header={"alg": "RS256", "kid": "nope"}), errors.UnknownKey),
    ("no kid", lambda c: raw(c, header={"alg": "RS256"}), errors.MalformedToken),
    ("kid is a number", lambda c: raw(c, header={"alg": "RS256", "kid": 7}),
     errors.MalformedToken),
    ("crit header", lambda c: raw(c, header={"alg": "RS256", "kid": c.signing_key_id,
                                             "crit": ["exp"], "exp": 1}),
     errors.MalformedToken),
    ("jku/x5u/jwk headers are ignored, our key still verifies",
     lambda c: raw(c, header={"alg": "RS256", "kid": c.signing_key_id,
                              "jku": "https://127.0.0.1:1/keys", "x5u": "https://127.0.0.1:1/x",
                              "jwk": {"kty": "oct", "k": "AAAA"}}), None),
    ("payload tampered after signing", lambda c: tamper_payload(mint(c)), errors.BadSignature),
    ("signature stripped", lambda c: mint(c).rsplit(".", 1)[0] + ".", errors.BadSignature),
    ("signature of another token", lambda c: ".".join(
        [*mint(c).split(".")[:2], mint(c, audiences=(AUDIENCE, "x")).split(".")[2]]),
     errors.BadSignature),
    ("two segments", lambda c: ".".join(mint(c).split(".")[:2]), errors.MalformedToken),
    ("four segments", lambda c: mint(c) + ".AAAA", errors.MalformedToken),
    ("header not JSON", lambda c: "bm90IGpzb24." + mint(c).split(".", 1)[1],
     errors.MalformedToken),
    ("payload not JSON", lambda c: c.sign_raw({"alg": "RS256", "kid": c.signing_key_id},
                                              b"not json"), errors.MalformedToken),
    ("payload a JSON list", lambda c: c.sign_raw({"alg": "RS256", "kid": c.signing_key_id},
                                                 b"[1,2]"), errors.MalformedToken),
    ("duplicate keys in the payload",
     lambda c: c.sign_raw({"alg": "RS256", "kid": c.signing_key_id},
                          json.dumps(claims_of(c)).encode()[:-1]
                          + b',"sub":"system:serviceaccount:kube-system:admin"}'),
     errors.MalformedToken),
    ("NaN in the payload", lambda c: c.sign_raw({"alg": "RS256", "kid": c.signing_key_id},
                                                json.dumps(claims_of(c)).encode()[:-1]
                                                + b',"x":NaN}'), errors.MalformedToken),
    ("deeply nested JSON", lambda c: c.sign_raw({"alg": "RS256", "kid": c.signing_key_id},
                                                b"[" * 3000 + b"]" * 3000),
     errors.TokenTooLarge),
    ("over the size limit", lambda c: mint(c, claims_override={"pad": "x" * 9000}),
     errors.TokenTooLarge),
]


@pytest.mark.parametrize(("name", "factory", "expected"), CASES, ids=[case[0] for case in CASES])
def test_verify_local(
    name: str,
    factory: Factory,
    expected: type[errors.AuthError] | None,
    cluster: DevCluster,
    keys: KeySet,
) -> None:
    token = factory(cluster)
    if expected is None:
        identity = verify_local(token, keys, POLICY, time.time())
        assert identity.subject == "system:serviceaccount:default:collector"
        assert identity.verified_by == "jwks"
    else:
        with pytest.raises(expected) as caught:
            verify_local(token, keys, POLICY, time.time())
        # The class decides the outcome: no subclass of a different reason sneaks in.
        assert type(caught.value) is expected


def test_nested_json_within_the_size_limit_is_malformed(cluster: DevCluster, keys: KeySet) -> None:
    token = cluster.sign_raw({"alg": "RS256", "kid": cluster.signing_key_id},
                             b"[" * 1500 + b"]" * 1500)
    with pytest.raises(errors.MalformedToken):
        verify_local(token, keys, POLICY, time.time())


def test_identity_carries_every_kubernetes_field(cluster: DevCluster, keys: KeySet) -> None:
    token = mint(cluster, pod="collector-6c9d8b7f5-x2k9q", node="kind-worker")
    identity = verify_local(token, keys, POLICY, time.time())
    assert identity.namespace == "default"
    assert identity.service_account == "collector"
    assert identity.service_account_uid == cluster.service_account_uid("default", "collector")
    assert identity.pod_name == "collector-6c9d8b7f5-x2k9q"
    assert identity.pod_uid == cluster.pod_uid("default", "collector-6c9d8b7f5-x2k9q")
    assert identity.node_name == "kind-worker"
    assert identity.audiences == (AUDIENCE,)
    assert identity.expires_at is not None
    assert identity.issued_at is not None
    assert identity.expires_at - identity.issued_at == 3600
    assert identity.token_id
    assert len(identity.token_id) == 36
    assert identity.claims["kubernetes.io"]["namespace"] == "default"
    with pytest.raises(TypeError):
        identity.claims["sub"] = "x"  # type: ignore[index]


def test_pinned_issuers_replace_the_discovered_one(cluster: DevCluster, keys: KeySet) -> None:
    alias = "https://kubernetes.default.svc"
    policy = VerificationPolicy(AUDIENCE, (alias, ISSUER), 60, 8192)
    assert verify_local(mint(cluster, issuer=alias), keys, policy, time.time())
    only_alias = VerificationPolicy(AUDIENCE, (alias,), 60, 8192)
    with pytest.raises(errors.IssuerMismatch) as caught:
        verify_local(mint(cluster), keys, only_alias, time.time())
    assert alias in caught.value.detail
    assert ISSUER in caught.value.detail


def test_a_pod_less_token_is_accepted_with_empty_pod_fields(
    cluster: DevCluster, keys: KeySet
) -> None:
    identity = verify_local(mint(cluster, pod=None, node=None), keys, POLICY, time.time())
    assert identity.pod_name is None
    assert identity.node_name is None


def test_public_description_never_contains_the_detail(cluster: DevCluster, keys: KeySet) -> None:
    token = mint(cluster, audiences=("vault",))
    with pytest.raises(errors.AudienceMismatch) as caught:
        verify_local(token, keys, POLICY, time.time())
    assert "vault" in caught.value.detail
    assert "vault" not in caught.value.description
    assert AUDIENCE in caught.value.description
