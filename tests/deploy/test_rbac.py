"""RBAC: the service account may do what the service needs (and nothing else is bound)."""

from __future__ import annotations

import pytest

from compass_auth.core.access import Check, ResourceCheck, parse_access

from .manifests import Manifests, only_container, pod_spec
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
    assert len(manifests.of_kind("ClusterRoleBinding")) == 2
    assert len(subjects) == len(manifests.of_kind("ClusterRoleBinding")) + len(
        manifests.of_kind("RoleBinding")) == 3
    for binding, namespace, name in subjects:
        assert (namespace, name) in accounts, binding


def test_the_service_may_create_subjectaccessreviews(service_rules: list[Rule]) -> None:
    assert allows(service_rules, "create", group="authorization.k8s.io",
                  resource="subjectaccessreviews")


@pytest.mark.parametrize("client", ["collector", "wrong-audience", "no-grant"])
def test_clients_have_no_api_permissions(manifests: Manifests, client: str) -> None:
    assert cluster_rules(manifests, "compass", client) == []


def namespace_rules(manifests: Manifests, namespace: str, name: str) -> list[Rule]:
    """Rules RoleBindings in ``namespace`` give the account (Roles of that namespace)."""
    roles = {role["metadata"]["name"]: role["rules"] for role in manifests.of_kind("Role")
             if role["metadata"]["namespace"] == namespace}
    rules: list[Rule] = []
    for binding in manifests.of_kind("RoleBinding"):
        if binding["metadata"]["namespace"] == namespace and any(
                s["kind"] == "ServiceAccount" and s["name"] == name
                and s.get("namespace", namespace) == namespace for s in binding["subjects"]):
            assert binding["roleRef"]["kind"] == "Role"
            rules.extend(roles[binding["roleRef"]["name"]])
    return rules


def required_access(manifests: Manifests) -> tuple[Check, ...]:
    container = only_container(manifests.get("Deployment", "compass-auth"))
    [value] = [e["value"] for e in container["env"] if e["name"] == "AUTH_REQUIRED_ACCESS"]
    return parse_access(value)


def test_only_the_collector_may_call_whoami(manifests: Manifests) -> None:
    """The check /whoami requires (in the service's namespace) is granted to the collector by
    a Role and RoleBinding, to no other client, and the grant is that check alone."""
    [check] = required_access(manifests)
    assert isinstance(check, ResourceCheck)
    assert check.namespace == "{service_namespace}"
    namespace = manifests.get("Deployment", "compass-auth")["metadata"]["namespace"]
    collector = namespace_rules(manifests, namespace, "collector")
    assert allows(collector, check.verb, group=check.group, resource=check.resource)
    assert collector == [{"apiGroups": ["compass.example"], "resources": ["whoami"],
                          "verbs": ["get"]}]
    for client in ("wrong-audience", "no-grant", "compass-auth"):
        assert namespace_rules(manifests, namespace, client) == []
