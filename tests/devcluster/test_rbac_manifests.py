"""The project's own manifests (``kubectl kustomize k8s/``) loaded into the emulator.

tests/deploy/test_rbac.py reads the rendered rules with its own small matcher; here the
emulator's RBAC answers SubjectAccessReviews about them over HTTPS, and the service's account
calls TokenReview and SubjectAccessReview with its own token.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from compass_auth.testing import DevCluster

from ..deploy.tools import ROOT, run, tool
from .kubehttp import SARS, call, can, can_get, read_standalone_banner, sar

DISCOVERY_URLS = ("/.well-known/openid-configuration", "/openid/v1/jwks")


@pytest.fixture(scope="module")
def rendered() -> str:
    """``kubectl kustomize k8s/`` with the pinned kubectl (the deploy extra), as text."""
    return run(tool("kubectl"), "kustomize", str(ROOT / "k8s")).stdout


@pytest.fixture(scope="module")
def service_account(rendered: str) -> tuple[str, str]:
    """(namespace, name) the example service's Deployment runs as."""
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    [deployment] = [o for o in objects
                    if o["kind"] == "Deployment" and o["metadata"]["name"] == "compass-auth"]
    spec = deployment["spec"]["template"]["spec"]
    return deployment["metadata"]["namespace"], spec["serviceAccountName"]


@pytest.fixture
def loaded(devcluster: DevCluster, rendered: str) -> DevCluster:
    """The emulator with the rendered manifests applied (until the fixture's reset)."""
    assert devcluster.load_rbac(rendered) >= 3
    return devcluster


def _status(cluster: DevCluster, spec: dict[str, Any]) -> dict[str, Any]:
    answer = sar(cluster, spec)
    assert answer.status == 201, answer.body
    result: dict[str, Any] = answer.json()["status"]
    return result


def test_the_service_account_may_review_tokens_and_access(
    loaded: DevCluster, service_account: tuple[str, str]
) -> None:
    namespace, name = service_account
    user = f"system:serviceaccount:{namespace}:{name}"
    # No groups in the review: only what the manifests bind to the account itself counts.
    for group, resource in (("authentication.k8s.io", "tokenreviews"),
                            ("authorization.k8s.io", "subjectaccessreviews")):
        assert _status(loaded, can(user, "create", resource, group)) == {
            "allowed": True,
            "reason": 'RBAC: allowed by ClusterRoleBinding "compass-auth:tokenreview" of '
            f'ClusterRole "system:auth-delegator" to ServiceAccount "{name}/{namespace}"',
        }
    for path in DISCOVERY_URLS:
        assert _status(loaded, can_get(user, path)) == {
            "allowed": True,
            "reason": 'RBAC: allowed by ClusterRoleBinding "compass-auth:issuer-discovery" of '
            f'ClusterRole "compass-auth:issuer-discovery" to ServiceAccount "{name}/{namespace}"',
        }


@pytest.mark.parametrize(
    "spec",
    [
        can("{user}", "list", "secrets", namespace="compass"),
        can("{user}", "create", "serviceaccounts", subresource="token", namespace="compass",
            name="collector"),
        can("{user}", "get", "pods", namespace="compass"),
        can("{user}", "get", "tokenreviews", "authentication.k8s.io"),
        can_get("{user}", "/metrics"),
        {"nonResourceAttributes": {"path": "/openid/v1/jwks", "verb": "post"}, "user": "{user}"},
        # The manifests list each path without the trailing slash; the built-in role has both.
        can_get("{user}", "/openid/v1/jwks/"),
    ],
)
def test_nothing_else_is_granted(
    loaded: DevCluster, service_account: tuple[str, str], spec: dict[str, Any]
) -> None:
    user = "system:serviceaccount:{}:{}".format(*service_account)
    assert _status(loaded, json.loads(json.dumps(spec).replace("{user}", user))) == {
        "allowed": False
    }


@pytest.mark.parametrize("client", ["collector", "wrong-audience", "no-grant"])
def test_clients_have_no_api_permissions(loaded: DevCluster, client: str) -> None:
    user = f"system:serviceaccount:compass:{client}"
    assert not _status(loaded, can(user, "create", "tokenreviews", "authentication.k8s.io"))[
        "allowed"]
    # With their groups they still read discovery, through the built-in binding only.
    groups = ["system:serviceaccounts", "system:serviceaccounts:compass", "system:authenticated"]
    assert _status(loaded, can_get(user, "/openid/v1/jwks", groups))["reason"].startswith(
        'RBAC: allowed by ClusterRoleBinding "system:service-account-issuer-discovery"'
    )


def test_the_service_calls_reviews_with_its_own_token(
    devcluster: DevCluster, rendered: str, service_account: tuple[str, str]
) -> None:
    namespace, name = service_account
    token = devcluster.mint(namespace=namespace, service_account=name,
                            audiences=devcluster.api_audiences, pod=None, node=None)
    review = {"spec": {"token": devcluster.mint()}}
    access = {"spec": can_get("someone", "/openid/v1/jwks")}
    tokenreviews = "/apis/authentication.k8s.io/v1/tokenreviews"
    # Before the manifests are applied the account has no grant at all...
    assert call(devcluster, tokenreviews, token=token, body=review).status == 403
    assert call(devcluster, SARS, token=token, body=access).status == 403
    devcluster.load_rbac(rendered)
    # ...after, the ClusterRoleBinding to system:auth-delegator lets it call both.
    assert call(devcluster, tokenreviews, token=token, body=review).status == 201
    assert call(devcluster, SARS, token=token, body=access).status == 201


def test_standalone_run_loads_rbac_files(rendered: str, tmp_path: Path) -> None:
    manifests = tmp_path / "k8s.yaml"
    manifests.write_text(rendered)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "compass_auth.testing", "--rbac", str(manifests)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines = read_standalone_banner(process.stdout)
        assert lines["rbac"].endswith(f"objects from {manifests}")
        port = int(lines["url"].rsplit(":", 1)[1])
        spec = can("system:serviceaccount:compass:compass-auth", "create",
                   "subjectaccessreviews", "authorization.k8s.io")
        answer = _post_json(port, Path(lines["ca"]), lines["admin token"], SARS, {"spec": spec})
        assert answer["status"]["allowed"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _post_json(port: int, ca: Path, token: str, path: str, body: Any) -> Any:
    context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("POST", path, json.dumps(body),
                           {"Authorization": f"Bearer {token}",
                            "Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 201
        return json.loads(answer.read())
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("kind: ClusterRole\nmetadata: {name: x}\nrules: [{verbs: []}]\n",
         "document 1 (ClusterRole)"),
    ],
)
def test_standalone_run_refuses_a_bad_rbac_file(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "rbac.yaml"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "compass_auth.testing", "--rbac", str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
    )
    assert result.returncode == 2
    assert f"error: --rbac {path}: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
