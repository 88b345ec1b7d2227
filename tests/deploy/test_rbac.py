"""RBAC: the service account may do what the service needs (and nothing else is bound)."""

from __future__ import annotations

import pytest

from .manifests import Manifests, pod_spec
from .rbac import DISCOVERY_URLS, Rule, allows, cluster_rules, service_account_subjects


@pytest.fixture
def service_rules(manifests: Manifests) -> list[Rule]:
    deployment = manifests.get("Deployment", "compass-auth")
    account = pod_spec(deployment)["serviceAccountName"]
    manifests.get("ServiceAccount", account)
    return cluster_rules(manifests, deployment["metadata"]["namespace"], account)


def test_the_service_may_create_tokenreviews(service_rules: list[Rule]) -> None:
    assert allows(service_rules, "create", group="authentication.k8s.io",
                  resource="tokenreviews")


def test_the_tokenreview_grant_is_the_auth_delegator_role(manifests: Manifests) -> None:
    refs = {b["roleRef"]["name"] for b in manifests.of_kind("ClusterRoleBinding")}
    assert "system:auth-delegator" in refs


@pytest.mark.parametrize("url", DISCOVERY_URLS)
def test_the_service_may_read_the_discovery_endpoints(
    service_rules: list[Rule], url: str
) -> None:
    assert allows(service_rules, "get", url=url)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "url"),
    [
        ("list", "", "secrets", ""),
        ("create", "", "serviceaccounts/token", ""),
        ("get", "", "pods", ""),
        ("get", "", "", "/metrics"),
        ("post", "", "", "/openid/v1/jwks"),
    ],
)
def test_nothing_else_is_granted(
    service_rules: list[Rule], verb: str, group: str, resource: str, url: str
) -> None:
    assert not allows(service_rules, verb, group=group, resource=resource, url=url)


def test_bindings_name_the_rendered_service_account(manifests: Manifests) -> None:
    """The subject's namespace is where the account really is (kustomize may move it)."""
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"])
                for a in manifests.of_kind("ServiceAccount")}
    subjects = service_account_subjects(manifests)
    assert len(subjects) == len(manifests.of_kind("ClusterRoleBinding")) == 2
    for binding, namespace, name in subjects:
        assert (namespace, name) in accounts, binding


@pytest.mark.parametrize("client", ["collector", "wrong-audience"])
def test_clients_have_no_api_permissions(manifests: Manifests, client: str) -> None:
    assert cluster_rules(manifests, "compass", client) == []
    assert manifests.of_kind("RoleBinding") == []
