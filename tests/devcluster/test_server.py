"""Lifecycle, pause/resume, issuer and key rotation, certificate swaps, misc paths."""

from __future__ import annotations

import base64
import json
import socket
import ssl

import pytest

from compass_auth.testing import DevCluster

from .kubehttp import call, review

JWKS = "/openid/v1/jwks"
DISCOVERY = "/.well-known/openid-configuration"


def test_context_manager_manages_ca_file_and_port() -> None:
    with DevCluster(key_type="EC") as cluster:
        path = cluster.ca_path
        assert path.read_bytes() == cluster.ca_pem
        assert cluster.url == f"https://127.0.0.1:{cluster.port}"
        assert cluster.port > 0
        assert call(cluster, "/healthz").body == b"ok"
    assert not path.exists()
    with pytest.raises(RuntimeError):
        _ = cluster.ca_path


def test_pause_refuses_connections_and_resume_keeps_the_port(
    devcluster: DevCluster,
) -> None:
    port = devcluster.port
    devcluster.pause()
    with pytest.raises(ConnectionRefusedError):
        call(devcluster, "/version", timeout=1)
    devcluster.resume()
    assert devcluster.port == port
    assert call(devcluster, "/version").status == 200


def test_reset_resumes_a_paused_cluster(devcluster: DevCluster) -> None:
    devcluster.pause()
    devcluster.reset()
    assert call(devcluster, "/readyz").status == 200


def test_set_issuer(devcluster: DevCluster) -> None:
    old_token = devcluster.mint()
    devcluster.set_issuer("https://oidc.example.com/cluster-1")
    doc = call(devcluster, DISCOVERY, token=devcluster.service_token()).json()
    assert doc["issuer"] == "https://oidc.example.com/cluster-1"
    assert (
        doc["jwks_uri"] == "https://172.18.0.2:6443/openid/v1/jwks"
    )  # not derived from the issuer
    new_claims = json.loads(
        base64.urlsafe_b64decode(devcluster.mint().split(".")[1] + "==")
    )
    assert new_claims["iss"] == "https://oidc.example.com/cluster-1"
    # The old issuer stays accepted, as when an operator migrates issuers.
    assert (
        review(devcluster, old_token, ["compass-internal"]).json()["status"][
            "authenticated"
        ]
        is True
    )
    devcluster.reset()
    assert devcluster.issuer == "https://kubernetes.default.svc.cluster.local"


def test_rotate_and_remove_keys(devcluster: DevCluster) -> None:
    first = devcluster.signing_key_id
    second = devcluster.rotate_key("EC")
    assert devcluster.signing_key_id == second != first
    kids = [
        k["kid"]
        for k in call(devcluster, JWKS, token=devcluster.admin_token).json()["keys"]
    ]
    assert kids[-1] == second
    assert first in kids
    old_token = devcluster.mint(key_id=first)
    assert (
        review(devcluster, old_token, ["compass-internal"]).json()["status"][
            "authenticated"
        ]
        is True
    )
    with pytest.raises(ValueError, match="current signing key"):
        devcluster.remove_key(second)  # the current signer
    devcluster.remove_key(first)
    kids = [
        k["kid"]
        for k in call(devcluster, JWKS, token=devcluster.admin_token).json()["keys"]
    ]
    assert first not in kids
    assert (
        "authenticated"
        not in review(devcluster, old_token, ["compass-internal"]).json()["status"]
    )
    assert (
        json.loads(base64.urlsafe_b64decode(devcluster.mint().split(".")[0] + "=="))[
            "alg"
        ]
        == "ES256"
    )


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"names": ("wrong.example",)}, "mismatch"),
        ({"expired": True}, "expired"),
        ({"self_signed": True}, "self-signed"),
    ],
)
def test_bad_server_certificates_fail_verification(
    devcluster: DevCluster, kwargs: dict[str, object], reason: str
) -> None:
    devcluster.set_server_certificate(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        call(devcluster, "/version")
    assert reason in str(failure.value).lower()
    devcluster.reset()
    assert call(devcluster, "/version").status == 200


def test_default_certificate_names(devcluster: DevCluster) -> None:
    for host in ("localhost", "127.0.0.1"):
        assert call(devcluster, "/version", host=host).status == 200
    context = ssl.create_default_context(cafile=str(devcluster.ca_path))
    # Connect to loopback but verify as the in-cluster service name (DNS bypass).
    for name in ("kubernetes.default.svc", "kubernetes.default.svc.cluster.local"):
        with (
            socket.create_connection(("127.0.0.1", devcluster.port)) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.getpeercert() is not None
    with (
        socket.create_connection(("127.0.0.1", devcluster.port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="kubernetes.evil")


def test_informational_paths(devcluster: DevCluster) -> None:
    version = call(devcluster, "/version")
    assert version.status == 200
    assert version.json()["gitVersion"].startswith("v1.")
    for path in ("/healthz", "/livez", "/readyz"):
        assert call(devcluster, path).body == b"ok"
    token = devcluster.service_token()
    assert call(devcluster, "/api", token=token).json()["kind"] == "APIVersions"
    assert call(devcluster, "/apis", token=token).json()["kind"] == "APIGroupList"
    resources = call(devcluster, "/apis/authentication.k8s.io/v1", token=token).json()
    assert resources["kind"] == "APIResourceList"
    [tokenreviews] = [r for r in resources["resources"] if r["name"] == "tokenreviews"]
    assert tokenreviews["verbs"] == ["create"]
    assert tokenreviews["namespaced"] is False
    core = call(devcluster, "/api/v1", token=token).json()
    assert [(r["name"], r["kind"]) for r in core["resources"]] == [
        ("serviceaccounts/token", "TokenRequest")
    ]
    assert (
        call(devcluster, "/apis").status == 403
    )  # discovery needs an authenticated user


def test_unknown_paths(devcluster: DevCluster) -> None:
    answer = call(devcluster, "/api/v1/pods", token=devcluster.admin_token)
    assert answer.status == 404
    assert (
        answer.json()["message"] == "the server could not find the requested resource"
    )
    assert (
        call(devcluster, "/nothing").status == 403
    )  # anonymous is refused before routing
