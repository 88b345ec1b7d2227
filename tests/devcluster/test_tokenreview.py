"""TokenReview: answers and rejections shaped like kube-apiserver's
(docs/kubernetes-api.md#tokenreview)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from compass_auth.testing import DevCluster

from .kubehttp import call, payload_of, review

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
EXTRA = "authentication.kubernetes.io/"


def _status(token_review: dict[str, Any]) -> dict[str, Any]:
    assert token_review["kind"] == "TokenReview"
    assert token_review["apiVersion"] == "authentication.k8s.io/v1"
    assert token_review["metadata"] == {"creationTimestamp": None}
    status: dict[str, Any] = token_review["status"]
    return status


def _assert_rejected(answer_json: dict[str, Any], fragment: str) -> None:
    _assert_rejected_status(_status(answer_json), fragment)


def _assert_rejected_status(status: dict[str, Any], fragment: str) -> None:
    assert set(status) == {"user", "error"}  # authenticated and audiences omitted
    assert status["user"] == {}
    assert (
        status["error"].startswith("[invalid bearer token, ")
        or status["error"] == "invalid bearer token"
    )
    assert fragment in status["error"]


def test_accepted_pod_bound_token(devcluster: DevCluster) -> None:
    token = devcluster.mint()
    answer = review(devcluster, token, ["compass-internal", "other"])
    assert answer.status == 201
    assert answer.headers["Cache-Control"] == "no-cache, private"
    body = answer.json()
    assert body["spec"] == {"token": token, "audiences": ["compass-internal", "other"]}
    status = _status(body)
    assert list(status) == ["authenticated", "user", "audiences"]
    assert status["authenticated"] is True
    assert status["audiences"] == ["compass-internal"]
    jti = payload_of(token)["jti"]
    pod = "collector-6c9d8b7f5-x2k9q"
    assert status["user"] == {
        "username": "system:serviceaccount:default:collector",
        "uid": devcluster.service_account_uid("default", "collector"),
        "groups": [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated",
        ],
        "extra": {
            EXTRA + "credential-id": [f"JTI={jti}"],
            EXTRA + "node-name": ["kind-worker"],
            EXTRA + "node-uid": [status["user"]["extra"][EXTRA + "node-uid"][0]],
            EXTRA + "pod-name": [pod],
            EXTRA + "pod-uid": [devcluster.pod_uid("default", pod)],
        },
    }
    assert list(status["user"]["extra"]) == sorted(status["user"]["extra"])


def test_node_only_token_carries_node_extra(devcluster: DevCluster) -> None:
    token = devcluster.mint(pod=None, node="kind-worker3")
    extra = _status(review(devcluster, token, ["compass-internal"]).json())["user"][
        "extra"
    ]
    assert set(extra) == {
        EXTRA + "credential-id",
        EXTRA + "node-name",
        EXTRA + "node-uid",
    }


def test_wrong_audience(devcluster: DevCluster) -> None:
    answer = review(devcluster, devcluster.mint(), ["billing"])
    assert answer.status == 201
    _assert_rejected(
        answer.json(),
        'token audiences ["compass-internal"] is invalid for the target audiences ["billing"]',
    )


def test_empty_spec_audiences_means_api_audiences(devcluster: DevCluster) -> None:
    api_token = devcluster.mint(audiences=devcluster.api_audiences)
    status = _status(review(devcluster, api_token).json())
    assert status["audiences"] == list(devcluster.api_audiences)
    assert "audiences" not in review(devcluster, api_token).json()["spec"]
    _assert_rejected(
        review(devcluster, devcluster.mint()).json(),
        "is invalid for the target audiences",
    )


def test_revoked_pod_and_recreated_pod(devcluster: DevCluster) -> None:
    token = devcluster.mint(pod="doomed-0")
    devcluster.delete_pod("default", "doomed-0")
    _assert_rejected(
        review(devcluster, token, ["compass-internal"]).json(),
        "service account token has been invalidated",
    )
    devcluster.mint(pod="doomed-0")  # same name, new UID
    _assert_rejected(
        review(devcluster, token, ["compass-internal"]).json(),
        "does not match service account pod ref claim",
    )


def test_deleted_service_account(devcluster: DevCluster) -> None:
    token = devcluster.mint(service_account="gone", pod=None, node=None)
    devcluster.delete_service_account("default", "gone")
    _assert_rejected(
        review(devcluster, token, ["compass-internal"]).json(),
        'serviceaccounts "gone" not found',
    )


@pytest.mark.parametrize(
    ("age_past_expiry", "accepted"),
    [(30, True), (59, True), (75, False), (3600, False)],
)
def test_expiry_has_60s_leeway(
    devcluster: DevCluster, age_past_expiry: int, accepted: bool
) -> None:
    lifetime = 600
    token = devcluster.mint(
        issued_at=int(time.time()) - lifetime - age_past_expiry, lifetime=lifetime
    )
    status = _status(review(devcluster, token, ["compass-internal"]).json())
    if accepted:
        assert status["authenticated"] is True
    else:
        _assert_rejected_status(status, "service account token has expired")


@pytest.mark.parametrize(
    ("claim", "message"), [("nbf", "not valid yet"), ("iat", "issued in the future")]
)
def test_future_tokens_beyond_leeway(
    devcluster: DevCluster, claim: str, message: str
) -> None:
    future = int(time.time()) + 600
    token = devcluster.mint(claims_override={claim: future})
    _assert_rejected(review(devcluster, token, ["compass-internal"]).json(), message)
    near = devcluster.mint(claims_override={claim: int(time.time()) + 30})
    assert (
        _status(review(devcluster, near, ["compass-internal"]).json())["authenticated"]
        is True
    )


def test_legacy_token(devcluster: DevCluster) -> None:
    token = devcluster.mint_legacy()
    status = _status(review(devcluster, token).json())
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:default:collector"
    assert status["audiences"] == list(devcluster.api_audiences)
    # A relying party with its own audience never gets a legacy token accepted.
    _assert_rejected(
        review(devcluster, token, ["compass-internal"]).json(),
        "is invalid for the target audiences",
    )


@pytest.mark.parametrize(
    "case",
    [
        "none",
        "hs256",
        "unknown-kid",
        "removed-key",
        "bad-signature",
        "not-a-jwt",
        "foreign-issuer",
    ],
)
def test_forgeries_are_rejected(devcluster: DevCluster, case: str) -> None:
    kid = devcluster.signing_key_id
    good = devcluster.mint()
    header, _, signature = good.split(".")
    if case == "none":
        token = devcluster.sign_raw(
            {"alg": "none", "kid": kid}, payload_of(good), alg="none"
        )
        fragment = "unexpected signature algorithm"
    elif case == "hs256":
        token = devcluster.mint(header_override={"alg": "HS256"})
        fragment = "unexpected signature algorithm"
    elif case == "unknown-kid":
        token = devcluster.mint(header_override={"kid": "unknown"})
        fragment = "invalid signature, no keys found"
    elif case == "removed-key":
        old = devcluster.add_key("RSA")
        token = devcluster.mint(key_id=old)
        devcluster.remove_key(old)
        fragment = "invalid signature, no keys found"
    elif case == "bad-signature":
        token = (
            f"{header}.{devcluster.mint(service_account='x').split('.')[1]}.{signature}"
        )
        fragment = "error in cryptographic primitive"
    elif case == "not-a-jwt":
        token, fragment = "abc.def", "invalid bearer token"
    else:
        token, fragment = (
            devcluster.mint(issuer="https://evil.example"),
            "invalid bearer token",
        )
    _assert_rejected(review(devcluster, token, ["compass-internal"]).json(), fragment)


def test_extra_issuers_are_accepted() -> None:
    with DevCluster(extra_issuers=("https://old-issuer",), key_type="EC") as cluster:
        token = cluster.mint(issuer="https://old-issuer")
        assert (
            _status(review(cluster, token, ["compass-internal"]).json())[
                "authenticated"
            ]
            is True
        )


def test_missing_kind_and_api_version_are_defaulted(devcluster: DevCluster) -> None:
    answer = call(
        devcluster,
        TOKENREVIEWS,
        token=devcluster.service_token(),
        body={"spec": {"token": devcluster.mint(), "audiences": ["compass-internal"]}},
    )
    assert answer.status == 201
    assert _status(answer.json())["authenticated"] is True


def test_empty_token_is_400(devcluster: DevCluster) -> None:
    answer = call(
        devcluster,
        TOKENREVIEWS,
        token=devcluster.service_token(),
        body={"spec": {"token": ""}},
    )
    assert answer.status == 400
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "token is required for TokenReview in authentication",
        "reason": "BadRequest",
        "code": 400,
    }


def test_rbac_switch_and_unprivileged_callers(devcluster: DevCluster) -> None:
    devcluster.set_tokenreview_allowed(False)
    answer = review(devcluster, devcluster.mint(), ["compass-internal"])
    assert answer.status == 403
    assert answer.json()["message"] == (
        'tokenreviews.authentication.k8s.io is forbidden: '
        'User "system:serviceaccount:compass-system:compass-auth" '
        'cannot create resource "tokenreviews" in API group "authentication.k8s.io" '
        'at the cluster scope'
    )
    assert answer.json()["details"] == {
        "group": "authentication.k8s.io",
        "kind": "tokenreviews",
    }
    assert (
        review(
            devcluster,
            devcluster.mint(),
            ["compass-internal"],
            caller=devcluster.admin_token,
        ).status
        == 201
    )
    devcluster.reset()
    workload = devcluster.mint(
        namespace="apps", service_account="random", audiences=devcluster.api_audiences
    )
    assert review(devcluster, devcluster.mint(), caller=workload).status == 403
    assert (
        call(devcluster, TOKENREVIEWS, body={"spec": {"token": "x"}}).status == 403
    )  # anonymous
    assert (
        call(
            devcluster, TOKENREVIEWS, body={"spec": {"token": "x"}}, token="bad"
        ).status
        == 401
    )


def test_get_is_method_not_allowed(devcluster: DevCluster) -> None:
    answer = call(devcluster, TOKENREVIEWS, token=devcluster.admin_token)
    assert answer.status == 405
    assert answer.json()["reason"] == "MethodNotAllowed"
