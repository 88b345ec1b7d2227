"""SelfSubjectReview (``kubectl auth whoami``): the caller as the emulator authenticated it."""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from compass_auth.testing import DevCluster, Fault

from .kubehttp import Response, call, segments, tls_context

PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
BODY = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
EXTRA = "authentication.kubernetes.io/"


def _whoami(cluster: DevCluster, token: str | None = None, **kwargs: Any) -> Response:
    return call(cluster, PATH, token=token, body=BODY, **kwargs)


def test_pod_bound_service_account_token(devcluster: DevCluster) -> None:
    token = devcluster.mint(audiences=devcluster.api_audiences)
    claims = json.loads(segments(token)[1])
    kube = claims["kubernetes.io"]
    answer = _whoami(devcluster, token)
    assert answer.status == 201, answer.body
    body = answer.json()
    assert (body["kind"], body["apiVersion"]) == ("SelfSubjectReview", "authentication.k8s.io/v1")
    created = datetime.datetime.strptime(
        body["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=datetime.UTC)
    assert abs(created.timestamp() - time.time()) < 5
    assert body["status"]["userInfo"] == {
        "username": "system:serviceaccount:default:collector",
        "uid": devcluster.service_account_uid("default", "collector"),
        "groups": [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated",
        ],
        "extra": {
            EXTRA + "credential-id": [f"JTI={claims['jti']}"],
            EXTRA + "node-name": [kube["node"]["name"]],
            EXTRA + "node-uid": [kube["node"]["uid"]],
            EXTRA + "pod-name": [kube["pod"]["name"]],
            EXTRA + "pod-uid": [kube["pod"]["uid"]],
        },
    }


def test_admin_token(devcluster: DevCluster) -> None:
    answer = _whoami(devcluster, devcluster.admin_token)
    assert answer.status == 201
    assert answer.json()["status"]["userInfo"] == {
        "username": "kubernetes-admin",
        "groups": ["system:masters", "system:authenticated"],
    }


def test_admin_client_certificate_is_named_by_its_fingerprint(devcluster: DevCluster) -> None:
    issued = devcluster.admin_client_certificate()
    der = x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(Encoding.DER)
    answer = _whoami(devcluster, context=tls_context(devcluster, issued))
    assert answer.status == 201
    assert answer.json()["status"]["userInfo"] == {
        "username": "kubernetes-admin",
        "groups": ["system:masters", "system:authenticated"],
        "extra": {EXTRA + "credential-id": [f"X509SHA256={hashlib.sha256(der).hexdigest()}"]},
    }


def test_anonymous_is_forbidden_and_a_bad_token_unauthorized(devcluster: DevCluster) -> None:
    anonymous = _whoami(devcluster)
    assert anonymous.status == 403
    assert anonymous.json()["message"] == (
        'selfsubjectreviews.authentication.k8s.io is forbidden: User "system:anonymous" cannot '
        'create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the '
        "cluster scope"
    )
    expired = devcluster.mint(
        audiences=devcluster.api_audiences, issued_at=int(time.time()) - 7200, lifetime=3600
    )
    for token in ("not-a-token", expired):
        answer = _whoami(devcluster, token)
        assert answer.status == 401
        assert answer.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }


def test_body_must_decode(devcluster: DevCluster) -> None:
    answer = call(devcluster, PATH, token=devcluster.admin_token, body=b"{not json")
    assert answer.status == 400
    assert answer.json()["reason"] == "BadRequest"


def test_listed_in_discovery_and_can_be_faulted(devcluster: DevCluster) -> None:
    resources = call(
        devcluster, "/apis/authentication.k8s.io/v1", token=devcluster.admin_token
    ).json()["resources"]
    assert [r["name"] for r in resources] == ["selfsubjectreviews", "tokenreviews"]
    assert resources[0]["kind"] == "SelfSubjectReview"
    assert resources[0]["verbs"] == ["create"]
    devcluster.set_fault("selfsubjectreview", Fault(status=503, times=1))
    assert _whoami(devcluster, devcluster.admin_token).status == 503
    assert _whoami(devcluster, devcluster.admin_token).status == 201
    assert devcluster.request_count("selfsubjectreview") == 2
