"""What RBAC grants a service account in rendered manifests (bindings, roles, built-in roles)."""

from __future__ import annotations

from typing import Any

from .manifests import Manifests

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
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")


def _matches(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _url_matches(patterns: list[str], url: str) -> bool:
    # RBAC: a trailing * is a prefix match on non-resource URLs.
    return any(p == url or (p.endswith("*") and url.startswith(p[:-1])) for p in patterns)


def service_account_subjects(manifests: Manifests) -> list[tuple[str, str, str]]:
    """(binding name, subject namespace, subject name) of every ServiceAccount subject."""
    return [(binding["metadata"]["name"], subject.get("namespace", ""), subject["name"])
            for kind in BINDING_KINDS for binding in manifests.of_kind(kind)
            for subject in binding.get("subjects", []) if subject["kind"] == "ServiceAccount"]


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
