"""The RBAC evaluator (compass_auth/testing/rbac/authorizer.py), one row per upstream matching rule.

The policy is built from the evaluator's own types, not decoded, so rows can hold objects the
API server's validation would refuse (a ClusterRoleBinding to a ServiceAccount without a
namespace) but that the evaluator must still treat like upstream ``rule.go`` does.
"""

from __future__ import annotations

import pytest

from compass_auth.testing.rbac.authorizer import (
    Attributes,
    Binding,
    Decision,
    Policy,
    PolicyRule,
    Role,
    RoleRef,
    Subject,
    authorize,
)

RBAC = "rbac.authorization.k8s.io"


def rule(
    verbs: list[str],
    groups: tuple[str, ...] = (),
    resources: tuple[str, ...] = (),
    names: tuple[str, ...] = (),
    urls: tuple[str, ...] = (),
) -> PolicyRule:
    return PolicyRule(tuple(verbs), groups, resources, names, urls)


def user(name: str) -> Subject:
    return Subject("User", name, api_group=RBAC)


def group(name: str) -> Subject:
    return Subject("Group", name, api_group=RBAC)


def account(name: str, namespace: str = "") -> Subject:
    return Subject("ServiceAccount", name, namespace)


def cluster_binding(name: str, role: str, *subjects: Subject) -> Binding:
    return Binding(name, RoleRef("ClusterRole", role), subjects)


def binding(namespace: str, name: str, kind: str, role: str, *subjects: Subject) -> Binding:
    return Binding(name, RoleRef(kind, role), subjects, namespace)


CLUSTER_ROLES = [
    Role("pod-reader", (rule(["get", "list"], ("",), ("pods",)),)),
    Role("log-reader", (rule(["get"], ("",), ("pods/log",)),)),
    Role("scaler", (rule(["get", "update"], ("apps",), ("*/scale",)),)),
    Role("named-config", (rule(["get"], ("",), ("configmaps",), ("app-config",)),)),
    Role("health", (rule(["get"], urls=("/healthz", "/logs/*")),)),
    Role("everything", (rule(["*"], ("*",), ("*",)),)),
    Role("any-url", (rule(["get"], urls=("*",)),)),
]
ROLES = [Role("secret-writer", (rule(["create"], ("",), ("secrets",)),), "team-a")]
CLUSTER_ROLE_BINDINGS = [
    cluster_binding("alice-pods", "pod-reader", user("alice")),
    cluster_binding("ops-logs", "log-reader", group("ops")),
    cluster_binding("ci-scaler", "scaler", user("nobody"), account("deployer", "ci")),
    cluster_binding("carol-config", "named-config", user("carol")),
    cluster_binding("monitoring", "health", group("monitoring")),
    cluster_binding("root", "everything", user("root")),
    cluster_binding("erin-urls", "any-url", user("erin")),
    # Invalid as an object (the subject needs a namespace): it must match nobody.
    cluster_binding("orphan", "pod-reader", account("orphan")),
    cluster_binding("missing", "does-not-exist", user("dave"), user("frank")),
    cluster_binding("frank-pods", "pod-reader", user("frank")),
]
ROLE_BINDINGS = [
    binding("team-a", "writers", "Role", "secret-writer", user("bob")),
    binding("team-a", "viewers", "ClusterRole", "pod-reader", group("team-a")),
    binding("team-a", "local-account", "ClusterRole", "log-reader", account("builder")),
    binding("team-a", "gone", "Role", "deleted-role", user("dave")),
    # A RoleBinding may only name a Role of its own namespace.
    binding("team-b", "borrowed", "Role", "secret-writer", user("bob")),
]
POLICY = Policy(
    cluster_roles={role.name: role for role in CLUSTER_ROLES},
    roles={(role.namespace, role.name): role for role in ROLES},
    cluster_role_bindings=tuple(CLUSTER_ROLE_BINDINGS),
    role_bindings={
        namespace: tuple(b for b in ROLE_BINDINGS if b.namespace == namespace)
        for namespace in ("team-a", "team-b")
    },
)


def res(
    who: str,
    verb: str,
    resource: str,
    *,
    api_group: str = "",
    subresource: str = "",
    name: str = "",
    namespace: str = "",
    groups: tuple[str, ...] = (),
) -> Attributes:
    return Attributes(who, groups, verb, True, namespace, api_group, resource, subresource, name)


def url(who: str, verb: str, path: str, groups: tuple[str, ...] = ()) -> Attributes:
    return Attributes(who, groups, verb, False, path=path)


def by(kind: str, name: str, role_kind: str, role: str, subject: str) -> str:
    return f'RBAC: allowed by {kind} "{name}" of {role_kind} "{role}" to {subject}'


ALICE = by("ClusterRoleBinding", "alice-pods", "ClusterRole", "pod-reader", 'User "alice"')
DEPLOYER = "system:serviceaccount:ci:deployer"

CASES = [
    # verbs
    ("listed verb", res("alice", "get", "pods", namespace="x"), Decision(True, ALICE)),
    ("second listed verb", res("alice", "list", "pods"), Decision(True, ALICE)),
    ("verb not listed", res("alice", "delete", "pods"), Decision(False)),
    ("request verb * is not a wildcard", res("alice", "*", "pods"), Decision(False)),
    # API groups
    ("core group is the empty string", res("alice", "get", "pods", api_group="apps"),
     Decision(False)),
    # resources and subresources
    ("other resource", res("alice", "get", "secrets"), Decision(False)),
    ("parent does not cover a subresource",
     res("alice", "get", "pods", subresource="log"), Decision(False)),
    ("exact subresource, group subject",
     res("someone", "get", "pods", subresource="log", groups=("ops",)),
     Decision(True, by("ClusterRoleBinding", "ops-logs", "ClusterRole", "log-reader",
                       'Group "ops"'))),
    ("subresource does not cover its parent",
     res("someone", "get", "pods", groups=("ops",)), Decision(False)),
    ("*/scale covers any resource's scale, service account subject",
     res(DEPLOYER, "update", "deployments", api_group="apps", subresource="scale"),
     Decision(True, by("ClusterRoleBinding", "ci-scaler", "ClusterRole", "scaler",
                       'ServiceAccount "deployer/ci"'))),
    ("*/scale does not cover another subresource",
     res(DEPLOYER, "update", "deployments", api_group="apps", subresource="status"),
     Decision(False)),
    ("*/scale does not cover the parent",
     res(DEPLOYER, "get", "deployments", api_group="apps"), Decision(False)),
    # resourceNames
    ("listed name", res("carol", "get", "configmaps", name="app-config"),
     Decision(True, by("ClusterRoleBinding", "carol-config", "ClusterRole", "named-config",
                       'User "carol"'))),
    ("other name", res("carol", "get", "configmaps", name="other"), Decision(False)),
    ("no name (list, create) never fits a named rule",
     res("carol", "get", "configmaps"), Decision(False)),
    # non-resource URLs
    ("exact URL", url("m", "get", "/healthz", ("monitoring",)),
     Decision(True, by("ClusterRoleBinding", "monitoring", "ClusterRole", "health",
                       'Group "monitoring"'))),
    ("URL without * is not a prefix", url("m", "get", "/healthz/etcd", ("monitoring",)),
     Decision(False)),
    ("URL with trailing slash is another URL", url("m", "get", "/healthz/", ("monitoring",)),
     Decision(False)),
    ("trailing * is a prefix match", url("m", "get", "/logs/kube.log", ("monitoring",)),
     Decision(True, by("ClusterRoleBinding", "monitoring", "ClusterRole", "health",
                       'Group "monitoring"'))),
    ("the prefix keeps its slash", url("m", "get", "/logs", ("monitoring",)), Decision(False)),
    ("URL verb mismatch", url("m", "post", "/healthz", ("monitoring",)), Decision(False)),
    ("resource rules never match URLs", url("alice", "get", "/api/v1/pods"), Decision(False)),
    # wildcards
    ("* verbs, groups and resources",
     res("root", "deletecollection", "widgets", api_group="example.com", subresource="status",
         name="w", namespace="n"),
     Decision(True, by("ClusterRoleBinding", "root", "ClusterRole", "everything",
                       'User "root"'))),
    ("resource wildcards do not cover URLs", url("root", "get", "/metrics"), Decision(False)),
    ("URL * covers every path", url("erin", "get", "/anything/at/all"),
     Decision(True, by("ClusterRoleBinding", "erin-urls", "ClusterRole", "any-url",
                       'User "erin"'))),
    ("URL * does not cover resources", res("erin", "get", "pods"), Decision(False)),
    # subjects
    ("a group subject needs the group, not a user of that name", res("ops", "get", "pods",
     subresource="log"), Decision(False)),
    ("a user subject needs the user name, not a group", res("x", "get", "pods",
     groups=("alice",)), Decision(False)),
    ("service account of another namespace",
     res("system:serviceaccount:other:deployer", "update", "deployments", api_group="apps",
         subresource="scale"), Decision(False)),
    ("service account subject is not its groups",
     res("x", "update", "deployments", api_group="apps", subresource="scale",
         groups=("system:serviceaccounts", "system:serviceaccounts:ci")), Decision(False)),
    ("cluster binding to an account without namespace matches nobody",
     res("system:serviceaccount::orphan", "get", "pods"), Decision(False)),
    ("... not even in default", res("system:serviceaccount:default:orphan", "get", "pods"),
     Decision(False)),
    # namespace scoping
    ("RoleBinding in its namespace",
     res("bob", "create", "secrets", namespace="team-a"),
     Decision(True, by("RoleBinding", "writers/team-a", "Role", "secret-writer",
                       'User "bob"'))),
    ("RoleBinding not in another namespace", res("bob", "create", "secrets", namespace="c"),
     Decision(False)),
    ("RoleBinding not for all namespaces", res("bob", "create", "secrets"), Decision(False)),
    ("RoleBinding names a Role of its own namespace only",
     res("bob", "create", "secrets", namespace="team-b"),
     Decision(False, 'RBAC: role.rbac.authorization.k8s.io "secret-writer" not found')),
    ("RoleBinding to a ClusterRole grants it in the namespace",
     res("u", "list", "pods", namespace="team-a", groups=("team-a",)),
     Decision(True, by("RoleBinding", "viewers/team-a", "ClusterRole", "pod-reader",
                       'Group "team-a"'))),
    ("... and nowhere else", res("u", "list", "pods", namespace="z", groups=("team-a",)),
     Decision(False)),
    ("RoleBinding account without namespace is in the binding's",
     res("system:serviceaccount:team-a:builder", "get", "pods", subresource="log",
         namespace="team-a"),
     Decision(True, by("RoleBinding", "local-account/team-a", "ClusterRole", "log-reader",
                       'ServiceAccount "builder/team-a"'))),
    ("... not an account of that name elsewhere",
     res("system:serviceaccount:z:builder", "get", "pods", subresource="log",
         namespace="team-a"), Decision(False)),
    # missing roles: reported in the reason, other grants still count
    ("binding to a missing ClusterRole", res("dave", "get", "pods"),
     Decision(False,
              'RBAC: clusterrole.rbac.authorization.k8s.io "does-not-exist" not found')),
    ("missing ClusterRole and Role",
     res("dave", "get", "pods", namespace="team-a"),
     Decision(False,
              'RBAC: [clusterrole.rbac.authorization.k8s.io "does-not-exist" not found, '
              'role.rbac.authorization.k8s.io "deleted-role" not found]')),
    ("a missing role does not hide another grant", res("frank", "get", "pods"),
     Decision(True, by("ClusterRoleBinding", "frank-pods", "ClusterRole", "pod-reader",
                       'User "frank"'))),
    # privileged group
    ("system:masters, before RBAC and without a reason",
     res("anyone", "escalate", "clusterroles", api_group=RBAC, groups=("system:masters",)),
     Decision(True, "")),
    ("nobody", res("", "get", "pods", groups=("system:unauthenticated",)), Decision(False)),
]


@pytest.mark.parametrize(("name", "attributes", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rbac_decision(name: str, attributes: Attributes, expected: Decision) -> None:
    assert authorize(attributes, POLICY) == expected


def test_an_empty_policy_allows_nothing_but_masters() -> None:
    assert authorize(res("root", "get", "pods"), Policy()) == Decision(False)
    assert authorize(url("root", "get", "/healthz"), Policy()) == Decision(False)
    masters = res("root", "get", "pods", groups=("system:masters",))
    assert authorize(masters, Policy()) == Decision(True)
