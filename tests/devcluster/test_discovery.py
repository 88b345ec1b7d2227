"""OIDC discovery and JWKS over real HTTPS: shapes, headers and who may read them."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from compass_auth.testing import DevCluster
from compass_auth.testing.credentials import jws

from .kubehttp import Response, call, segments, tls_context

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/openid/v1/jwks"


def _assert_common_headers(answer: Response) -> None:
    assert "Server" not in answer.headers
    assert uuid.UUID(answer.headers["Audit-Id"])
    assert answer.headers["X-Kubernetes-Pf-Flowschema-Uid"]
    assert answer.headers["X-Kubernetes-Pf-Prioritylevel-Uid"]


def test_discovery_document_bytes(devcluster: DevCluster) -> None:
    answer = call(devcluster, DISCOVERY, token=devcluster.service_token())
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    _assert_common_headers(answer)
    assert answer.body == (
        b'{"issuer":"https://kubernetes.default.svc.cluster.local",'
        b'"jwks_uri":"https://172.18.0.2:6443/openid/v1/jwks",'
        b'"response_types_supported":["id_token"],"subject_types_supported":["public"],'
        b'"id_token_signing_alg_values_supported":["RS256"]}'
    )


def test_jwks_shape_and_key_verifies_minted_token(devcluster: DevCluster) -> None:
    answer = call(devcluster, JWKS, token=devcluster.service_token())
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/jwk-set+json"
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert answer.json() == devcluster.jwks()
    [key] = [k for k in answer.json()["keys"] if k["kid"] == devcluster.signing_key_id]
    assert list(key) == ["use", "kty", "kid", "alg", "n", "e"]
    public = rsa.RSAPublicNumbers(
        int.from_bytes(jws.b64url_decode(key["e"]), "big"),
        int.from_bytes(jws.b64url_decode(key["n"]), "big"),
    ).public_key()
    assert jws.key_id(public) == key["kid"]
    token = devcluster.mint()
    signing_input, _, _ = token.rpartition(".")
    public.verify(
        segments(token)[2], signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_ec_cluster_publishes_es256() -> None:
    with DevCluster(key_type="EC") as cluster:
        keys = call(cluster, JWKS, token=cluster.admin_token).json()["keys"]
        assert [list(k) for k in keys] == [
            ["use", "kty", "kid", "crv", "alg", "x", "y"]
        ]
        doc = call(cluster, DISCOVERY, token=cluster.admin_token).json()
        assert doc["id_token_signing_alg_values_supported"] == ["ES256"]


def test_algs_are_a_sorted_set_over_published_keys(devcluster: DevCluster) -> None:
    kid = devcluster.add_key("EC")
    try:
        doc = call(devcluster, DISCOVERY, token=devcluster.service_token()).json()
        assert doc["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    finally:
        devcluster.remove_key(kid)


@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_anonymous_is_forbidden(devcluster: DevCluster, path: str) -> None:
    answer = call(devcluster, path)
    assert answer.status == 403
    assert answer.headers["Cache-Control"] == "no-cache, private"
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'forbidden: User "system:anonymous" cannot get path "{path}"',
        "reason": "Forbidden",
        "details": {},
        "code": 403,
    }
    _assert_common_headers(answer)


@pytest.mark.parametrize(
    "case", ["garbage", "expired", "wrong-audience", "unknown-kid", "deleted-sa"]
)
def test_bad_bearer_is_401_never_anonymous(devcluster: DevCluster, case: str) -> None:
    tokens: dict[str, Callable[[], str]] = {
        "garbage": lambda: "not-a-jwt",
        "expired": lambda: devcluster.mint(
            audiences=devcluster.api_audiences, issued_at=0, lifetime=600
        ),
        # compass-internal is not an API audience: the API server refuses it.
        "wrong-audience": lambda: devcluster.mint(),
        "unknown-kid": lambda: devcluster.mint(
            audiences=devcluster.api_audiences, header_override={"kid": "nope"}
        ),
    }
    if case == "deleted-sa":
        token = devcluster.service_token("team", "short-lived")
        devcluster.delete_service_account("team", "short-lived")
    else:
        token = tokens[case]()
    answer = call(devcluster, JWKS, token=token)
    assert answer.status == 401
    assert "WWW-Authenticate" not in answer.headers
    assert answer.headers["Cache-Control"] == "no-cache, private"
    assert answer.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Unauthorized","reason":"Unauthorized","code":401}'
    )


def test_any_service_account_token_with_api_audience_may_read(
    devcluster: DevCluster,
) -> None:
    token = devcluster.mint(
        namespace="apps", service_account="worker", audiences=devcluster.api_audiences
    )
    assert call(devcluster, JWKS, token=token).status == 200


def test_admin_token_and_client_certificate(devcluster: DevCluster) -> None:
    assert call(devcluster, DISCOVERY, token=devcluster.admin_token).status == 200
    context = tls_context(devcluster, devcluster.admin_client_certificate())
    assert call(devcluster, JWKS, context=context).status == 200


def test_client_certificate_from_another_ca_fails_the_handshake(
    devcluster: DevCluster,
) -> None:
    stranger = DevCluster().admin_client_certificate()  # signed by a different CA
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        call(devcluster, JWKS, context=tls_context(devcluster, stranger))


def test_discovery_rbac_switch(devcluster: DevCluster) -> None:
    devcluster.set_discovery_allowed(False)
    sa_token = devcluster.service_token()
    answer = call(devcluster, JWKS, token=sa_token)
    assert answer.status == 403
    assert answer.json()["message"] == (
        'forbidden: User "system:serviceaccount:compass-system:compass-auth" '
        'cannot get path "/openid/v1/jwks"'
    )
    assert call(devcluster, JWKS, token=devcluster.admin_token).status == 200
    devcluster.reset()
    assert call(devcluster, JWKS, token=sa_token).status == 200
