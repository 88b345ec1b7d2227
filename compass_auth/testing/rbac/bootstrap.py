"""The built-in roles and bindings every cluster has, the few this project meets.

From kube-apiserver's bootstrap policy (``plugin/pkg/auth/authorizer/rbac/bootstrappolicy/
policy.go``, rendered in ``testdata/cluster-roles.yaml`` and ``cluster-role-bindings.yaml``).
Manifests bind these by name without defining them (``k8s/rbac.yaml`` binds
``system:auth-delegator``), so the emulator must know them to answer like a cluster.
``system:auth-delegator`` has no default binding: a workload gets it only when bound.
"""

from __future__ import annotations

import logging
from typing import Any

from compass_auth.testing.rbac import authorizer
from compass_auth.testing.rbac.objects import API_VERSION, RbacObject, decode

logger = logging.getLogger(__name__)

_METADATA = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}
_GET = ["get"]
_CREATE = ["create"]

#: name -> rules
CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
        {"verbs": ["*"], "nonResourceURLs": ["*"]},
    ],
    "system:discovery": [
        {
            "verbs": _GET,
            "nonResourceURLs": [
                "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                "/openapi/*", "/readyz", "/version", "/version/",
            ],
        }
    ],
    "system:public-info-viewer": [
        {
            "verbs": _GET,
            "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
        }
    ],
    "system:basic-user": [
        {
            "verbs": _CREATE,
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        },
        {
            "verbs": _CREATE,
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
        },
    ],
    # Delegated authentication and authorization (kube-aggregator, metrics-server, us).
    "system:auth-delegator": [
        {"verbs": _CREATE, "apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"]},
        {
            "verbs": _CREATE,
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
        },
    ],
    # Current releases list each path with and without a trailing slash.
    "system:service-account-issuer-discovery": [
        {
            "verbs": _GET,
            "nonResourceURLs": [
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ],
        }
    ],
}

#: binding name (= ClusterRole name) -> groups bound
CLUSTER_ROLE_BINDINGS: dict[str, list[str]] = {
    "cluster-admin": ["system:masters"],
    "system:discovery": ["system:authenticated"],
    "system:public-info-viewer": ["system:authenticated", "system:unauthenticated"],
    "system:basic-user": ["system:authenticated"],
    "system:service-account-issuer-discovery": ["system:serviceaccounts"],
}


def bootstrap_objects() -> list[RbacObject]:
    """The built-in ClusterRoles, then their ClusterRoleBindings, decoded like any object."""
    objects = [
        decode(
            {"apiVersion": API_VERSION, "metadata": {"name": name, **_METADATA}, "rules": rules},
            "ClusterRole",
            "",
        )
        for name, rules in CLUSTER_ROLES.items()
    ]
    for name, groups in CLUSTER_ROLE_BINDINGS.items():
        body = {
            "apiVersion": API_VERSION,
            "metadata": {"name": name, **_METADATA},
            "roleRef": {"apiGroup": authorizer.RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [
                {"apiGroup": authorizer.RBAC_GROUP, "kind": "Group", "name": group}
                for group in groups
            ],
        }
        objects.append(decode(body, "ClusterRoleBinding", ""))
    return objects
