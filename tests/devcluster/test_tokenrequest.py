"""TokenRequest (``serviceaccounts/token``) as an admin would call it."""

from __future__ import annotations

import datetime

from compass_auth.testing import DevCluster

from .kubehttp import call, payload_of, review, token_request_path


def test_pod_bound_token_request(devcluster: DevCluster) -> None:
    pod_uid = devcluster.pod_uid("default", "api-0")
    devcluster.service_account_uid("default", "api")
    spec = {
        "audiences": ["compass-internal"],
        "expirationSeconds": 600,
        "boundObjectRef": {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": "api-0",
            "uid": pod_uid,
        },
    }
    answer = call(
        devcluster,
        token_request_path("default", "api"),
        token=devcluster.admin_token,
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": spec,
        },
    )
    assert answer.status == 201
    body = answer.json()
    assert (body["kind"], body["apiVersion"]) == (
        "TokenRequest",
        "authentication.k8s.io/v1",
    )
    assert body["spec"] == spec
    token = body["status"]["token"]
    claims = payload_of(token)
    assert (
        claims["aud"] == ["compass-internal"]
    )
    assert (
        claims["exp"] - claims["iat"] == 600
    )
    assert claims["kubernetes.io"]["pod"] == {"name": "api-0", "uid": pod_uid}
    expires = datetime.datetime.strptime(
        body["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"
    )
    assert int(expires.replace(tzinfo=datetime.UTC).timestamp()) == claims["exp"]
    status = review(devcluster, token, ["compass-internal"]).json()["status"]
    assert status["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["api-0"]


def test_defaults_are_api_audiences_and_one_hour(devcluster: DevCluster) -> None:
    answer = call(
        devcluster,
        token_request_path("compass-system", "compass-auth"),
        token=devcluster.admin_token,
        body={},
    )
    assert answer.status == 201
    claims = payload_of(answer.json()["status"]["token"])
    assert claims["aud"] == list(devcluster.api_audiences)
    assert claims["exp"] - claims["iat"] == 3600
    assert list(claims["kubernetes.io"]) == ["namespace", "serviceaccount"]


def test_null_expiration_is_the_default(devcluster: DevCluster) -> None:
    """kubectl 1.28-1.31 send ``"expirationSeconds": null`` (JSON) when given no --duration."""
    answer = call(
        devcluster,
        token_request_path("compass-system", "compass-auth"),
        token=devcluster.admin_token,
        body={"spec": {"audiences": None, "expirationSeconds": None, "boundObjectRef": None}},
    )
    assert answer.status == 201, answer.body
    assert answer.json()["spec"]["expirationSeconds"] == 3600
    claims = payload_of(answer.json()["status"]["token"])
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["aud"] == list(devcluster.api_audiences)


def test_too_short_expiration_is_invalid(devcluster: DevCluster) -> None:
    answer = call(
        devcluster,
        token_request_path("compass-system", "compass-auth"),
        token=devcluster.admin_token,
        body={"spec": {"expirationSeconds": 599}},
    )
    assert answer.status == 422
    assert answer.json()["reason"] == "Invalid"
    assert "may not specify a duration less than 10 minutes" in answer.json()["message"]


def test_unknown_service_account_and_pod_are_404(devcluster: DevCluster) -> None:
    missing_sa = call(
        devcluster,
        token_request_path("default", "never-created"),
        token=devcluster.admin_token,
        body={},
    )
    assert missing_sa.status == 404
    assert missing_sa.json()["message"] == 'serviceaccounts "never-created" not found'
    missing_pod = call(
        devcluster,
        token_request_path("compass-system", "compass-auth"),
        token=devcluster.admin_token,
        body={"spec": {"boundObjectRef": {"kind": "Pod", "name": "ghost"}}},
    )
    assert missing_pod.status == 404
    assert missing_pod.json()["message"] == 'pods "ghost" not found'


def test_service_accounts_may_not_request_tokens(devcluster: DevCluster) -> None:
    answer = call(
        devcluster, token_request_path("default", "api"), token=devcluster.service_token(), body={}
    )
    assert answer.status == 403
    assert answer.json()["message"] == (
        'serviceaccounts "api" is forbidden: '
        'User "system:serviceaccount:compass-system:compass-auth" '
        'cannot create resource "serviceaccounts/token" in API group "" in the namespace "default"'
    )
