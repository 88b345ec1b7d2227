"""Token byte layout and claims, exactly as a real cluster mints them."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from compass_auth.testing import DevCluster
from compass_auth.testing.credentials import jws

from .kubehttp import segments

SORTED_TOP = ["aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"]


def _keys_in_order(raw: bytes) -> list[list[str]]:
    """Key order of every JSON object, as serialised (object_pairs_hook sees it)."""
    seen: list[list[str]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen.append([k for k, _ in pairs])
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return seen


def test_header_bytes_are_exactly_alg_then_kid(devcluster: DevCluster) -> None:
    header, _, _ = segments(devcluster.mint())
    assert (
        header == b'{"alg":"RS256","kid":"' + devcluster.signing_key_id.encode() + b'"}'
    )


def test_payload_layout(devcluster: DevCluster) -> None:
    before = int(time.time())
    _, payload, signature = segments(devcluster.mint(lifetime=3600))
    claims = json.loads(payload)
    assert b" " not in payload  # compact separators
    assert list(claims) == SORTED_TOP
    for keys in _keys_in_order(payload):
        assert keys == sorted(keys)
    assert list(claims["kubernetes.io"]) == [
        "namespace",
        "node",
        "pod",
        "serviceaccount",
    ]
    assert claims["aud"] == ["compass-internal"]
    assert claims["iat"] == claims["nbf"]
    assert before <= claims["iat"] <= int(
        time.time()
    )
    assert claims["exp"] == claims["iat"] + 3600
    assert uuid.UUID(claims["jti"]).version == 4
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == "system:serviceaccount:default:collector"
    kube = claims["kubernetes.io"]
    assert kube["serviceaccount"] == {
        "name": "collector",
        "uid": devcluster.service_account_uid("default", "collector"),
    }
    assert kube["pod"] == {
        "name": "collector-6c9d8b7f5-x2k9q",
        "uid": devcluster.pod_uid("default", "collector-6c9d8b7f5-x2k9q"),
    }
    assert kube["node"]["name"] == "kind-worker"
    assert len(signature) == 256  # RSA-2048 PKCS#1 v1.5


def test_segments_are_unpadded_base64url(devcluster: DevCluster) -> None:
    token = devcluster.mint()
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)


def test_uids_are_remembered_and_jti_fresh(devcluster: DevCluster) -> None:
    one = json.loads(segments(devcluster.mint(service_account="remember-me"))[1])
    two = json.loads(segments(devcluster.mint(service_account="remember-me"))[1])
    assert (
        one["kubernetes.io"]["serviceaccount"] == two["kubernetes.io"]["serviceaccount"]
    )
    assert one["jti"] != two["jti"]


def test_bindings_node_only_and_sa_only(devcluster: DevCluster) -> None:
    node_only = json.loads(segments(devcluster.mint(pod=None, node="kind-worker2"))[1])
    assert list(node_only["kubernetes.io"]) == ["namespace", "node", "serviceaccount"]
    sa_only = json.loads(segments(devcluster.mint(pod=None, node=None))[1])
    assert list(sa_only["kubernetes.io"]) == ["namespace", "serviceaccount"]


def test_warnafter_issued_at_and_issuer(devcluster: DevCluster) -> None:
    claims = json.loads(
        segments(
            devcluster.mint(
                issued_at=1_700_000_000,
                warnafter=3607,
                lifetime=31_536_000,
                issuer="https://other",
            )
        )[1]
    )
    assert claims["kubernetes.io"]["warnafter"] == 1_700_003_607
    assert claims["iat"] == claims["nbf"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_000 + 31_536_000
    assert claims["iss"] == "https://other"


def test_overrides_merge_and_delete(devcluster: DevCluster) -> None:
    token = devcluster.mint(
        claims_override={"aud": "single", "exp": None, "zz": 1},
        header_override={"typ": "JWT", "kid": None},
    )
    header, payload, _ = segments(token)
    assert json.loads(header) == {"alg": "RS256", "typ": "JWT"}
    claims = json.loads(payload)
    assert claims["aud"] == "single"
    assert "exp" not in claims
    assert claims["zz"] == 1


def test_audiences_must_not_be_a_bare_string(devcluster: DevCluster) -> None:
    with pytest.raises(TypeError):
        devcluster.mint(audiences="compass-internal")


def test_legacy_token_layout(devcluster: DevCluster) -> None:
    header, payload, _ = segments(devcluster.mint_legacy())
    assert json.loads(header)["kid"] == devcluster.signing_key_id
    claims = json.loads(payload)
    assert list(claims) == sorted(claims)
    assert claims["iss"] == "kubernetes/serviceaccount"
    for absent in ("aud", "exp", "iat", "nbf", "jti"):
        assert absent not in claims
    assert claims["kubernetes.io/serviceaccount/service-account.name"] == "collector"
    assert re.fullmatch(
        r"collector-token-[bcdfghjklmnpqrstvwxz2456789]{5}",
        claims["kubernetes.io/serviceaccount/secret.name"],
    )


def test_sign_raw_keeps_order_and_supports_none_and_hs256(
    devcluster: DevCluster,
) -> None:
    token = devcluster.sign_raw({"kid": "x", "alg": "RS256"}, {"z": 1, "a": 2})
    header, payload, _ = segments(token)
    assert header == b'{"kid":"x","alg":"RS256"}'
    assert payload == b'{"z":1,"a":2}'
    assert devcluster.sign_raw({"alg": "none"}, {"a": 1}, alg="none").endswith(".")
    kid = devcluster.signing_key_id
    hs = devcluster.sign_raw({"alg": "HS256", "kid": kid}, {"a": 1})
    signing_input = hs.rsplit(".", 1)[0].encode()
    expected = jws.sign(signing_input, "HS256", devcluster.public_key_pem(kid))
    assert segments(hs)[2] == expected


def test_sign_raw_signs_raw_header_bytes(devcluster: DevCluster) -> None:
    kid = devcluster.signing_key_id
    raw = b'{"alg":"RS256","kid":"' + kid.encode() + b'","kid":"other"}'
    token = devcluster.sign_raw(raw, {"a": 1}, alg="RS256")
    header, _, signature = segments(token)
    assert header == raw  # duplicate keys kept, as written
    signing_input = token.rsplit(".", 1)[0].encode()
    public_key = serialization.load_pem_public_key(devcluster.public_key_pem(kid))
    assert isinstance(public_key, rsa.RSAPublicKey)
    jws.verify(signing_input, signature, "RS256", public_key)


def test_ec_cluster_mints_es256() -> None:
    cluster = DevCluster(key_type="EC")  # not started: minting needs no server
    header, _, signature = segments(cluster.mint())
    assert json.loads(header)["alg"] == "ES256"
    assert len(signature) == 64
