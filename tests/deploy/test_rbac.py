"""RBAC: the service account may do what the service needs (and nothing else is bound)."""

from __future__ import annotations

from typing import Any

import pytest

from .manifests import Manifests, pod_spec

Rule = dict[str, Any]

#: Built-in ClusterRoles every cluster has (kubernetes ``plugin/pkg/auth/authorizer/rbac/
#: bootstrappolicy/policy.go``); the manifests bind them by name rather than define them.
BOOTSTRAP_CLUSTER_ROLES: dict[str, list[Rule]] = {
    "system:auth-delegator": [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
         "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
         "verbs": ["create"]},
    ],
    "system:service-account-issuer-discovery": [
        {"nonResourceURLs": ["/.well-known/openid-configuration", "/openid/v1/jwks"],
         "verbs": ["get"]},
    ],
}
DISCOVERY_URLS = ("/.well-known/openid-configuration", "/openid/v1/jwks")


def _matches(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _url_matches(patterns: list[str], url: str) -> bool:
    # RBAC: a trailing * is a prefix match on non-resource URLs.
    return any(p == url or (p.endswith("*") and url.startswith(p[:-1])) for p in patterns)


def cluster_rules(manifests: Manifests, namespace: str, name: str) -> list[Rule]:
    """Every cluster-wide rule bound to the service account (rendered roles or built-in ones)."""
    rules: list[Rule] = []
    defined = {role["metadata"]["name"]: role.get("rules", [])
               for role in manifests.of_kind("ClusterRole")}
    for binding in manifests.of_kind("ClusterRoleBinding"):
        bound = any(s["kind"] == "ServiceAccount" and s["name"] == name
                    and s.get("namespace") == namespace for s in binding["subjects"])
        if not bound:
            continue
        role = binding["roleRef"]
        assert role["kind"] == "ClusterRole"
        assert role["name"] in defined or role["name"] in BOOTSTRAP_CLUSTER_ROLES, role["name"]
        rules.extend(defined.get(role["name"]) or BOOTSTRAP_CLUSTER_ROLES[role["name"]])
    return rules


def allows(rules: list[Rule], verb: str, *, group: str = "", resource: str = "",
           url: str = "") -> bool:
    for rule in rules:
        if not _matches(rule["verbs"], verb):
            continue
        if url and _url_matches(rule.get("nonResourceURLs", []), url):
            return True
        if resource and _matches(rule.get("apiGroups", []), group) and _matches(
                rule.get("resources", []), resource):
            return True
    return False


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
    for binding in manifests.of_kind("ClusterRoleBinding"):
        for subject in binding["subjects"]:
            assert (subject["namespace"], subject["name"]) in accounts, subject


@pytest.mark.parametrize("client", ["collector", "wrong-audience"])
def test_clients_have_no_api_permissions(manifests: Manifests, client: str) -> None:
    assert cluster_rules(manifests, "compass", client) == []
    assert manifests.of_kind("RoleBinding") == []
