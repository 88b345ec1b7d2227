"""RBAC objects from JSON and YAML: defaults, the API server's validation, the store's bounds."""

from __future__ import annotations

from typing import Any

import pytest

from compass_auth.testing.rbac import authorizer
from compass_auth.testing.rbac.errors import Invalid, Malformed
from compass_auth.testing.rbac.objects import decode
from compass_auth.testing.rbac.store import ManifestError, RbacStore, StoreFull, parse_manifests

V1 = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"


def _binding(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": V1,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "b"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}],
    }
    body.update(changes)
    return body


def test_defaults_fill_the_rbac_api_group() -> None:
    obj = decode(
        _binding(subjects=[{"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"}]),
        "ClusterRoleBinding",
        "",
    )
    assert isinstance(obj.value, authorizer.Binding)
    assert obj.value.role_ref == authorizer.RoleRef("ClusterRole", "view", authorizer.RBAC_GROUP)
    assert [s.api_group for s in obj.value.subjects] == [authorizer.RBAC_GROUP] * 2
    assert obj.to_wire()["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "view",
    }


def test_cluster_scoped_objects_drop_a_namespace() -> None:
    body = _binding(metadata={"name": "b", "namespace": "somewhere"})
    assert decode(body, "ClusterRoleBinding", "default").namespace == ""


INVALID = [
    ("rule without verbs", "ClusterRole", {"rules": [{"apiGroups": [""], "resources": ["pods"]}]},
     "rules[0].verbs: Required value: verbs must contain at least one value"),
    ("resource rule without groups", "ClusterRole",
     {"rules": [{"verbs": ["get"], "resources": ["pods"]}]},
     "rules[0].apiGroups: Required value: resource rules must supply at least one api group"),
    ("URLs in a Role", "Role", {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]},
     'rules[0].nonResourceURLs: Invalid value: ["/x"]: namespaced rules cannot apply to '
     "non-resource URLs"),
    ("URLs mixed with resources", "ClusterRole",
     {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}]},
     "rules cannot apply to both regular resources and non-resource URLs"),
    ("names over several resources", "ClusterRole",
     {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["a", "b"],
                 "resourceNames": ["n"]}]},
     "resource names cannot apply to multiple resources"),
    ("missing name", "ClusterRole", {"metadata": {}, "rules": []},
     "metadata.name: Required value: name or generateName is required"),
    ("name with a slash", "ClusterRole", {"metadata": {"name": "a/b"}, "rules": []},
     "metadata.name: Invalid value: \"a/b\": may not contain '/'"),
    ("cluster binding to a Role", "ClusterRoleBinding",
     {"roleRef": {"kind": "Role", "name": "r"}},
     'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'),
    ("roleRef in another group", "ClusterRoleBinding",
     {"roleRef": {"apiGroup": "example.com", "kind": "ClusterRole", "name": "r"}},
     'roleRef.apiGroup: Unsupported value: "example.com"'),
    ("cluster binding to an account without namespace", "ClusterRoleBinding",
     {"subjects": [{"kind": "ServiceAccount", "name": "sa"}]},
     "subjects[0].namespace: Required value"),
    ("account with an API group", "RoleBinding",
     {"subjects": [{"kind": "ServiceAccount", "name": "sa", "apiGroup": RBAC_GROUP}]},
     'subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""'),
    ("account name not a DNS subdomain", "RoleBinding",
     {"subjects": [{"kind": "ServiceAccount", "name": "Bad_Name"}]},
     'subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'),
    ("unknown subject kind", "RoleBinding", {"subjects": [{"kind": "Robot", "name": "r"}]},
     'subjects[0].kind: Unsupported value: "Robot"'),
]


@pytest.mark.parametrize(("case", "kind", "changes", "message"), INVALID,
                         ids=[c[0] for c in INVALID])
def test_invalid_objects_are_refused_like_the_api_server(
    case: str, kind: str, changes: dict[str, Any], message: str
) -> None:
    body: dict[str, Any] = {"metadata": {"name": "x"}}
    if kind.endswith("Binding"):
        body.update(roleRef={"kind": "ClusterRole", "name": "view"})
    body.update(changes)
    with pytest.raises(Invalid) as caught:
        decode(body, kind, "team")
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{kind}.rbac.authorization.k8s.io ")
    status = caught.value.status()
    assert (status["code"], status["reason"], status["details"]["kind"]) == (422, "Invalid", kind)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rules": "get"}, "cannot unmarshal string into Go struct field ClusterRole.rules"),
        ({"rules": [{"verbs": "get"}]}, "cannot unmarshal string into Go struct field "
                                        "PolicyRule.rules.verbs of type []string"),
        ({"rules": [{"verbs": [1]}]}, "cannot unmarshal number"),
        ({"metadata": {"name": 7}}, "ObjectMeta.metadata.name of type string"),
        ({"metadata": {"name": "x", "labels": {"a": 1}}}, "of type string"),
        ({"apiVersion": "rbac.authorization.k8s.io/v1beta1"}, "does not match the expected"),
        ({"kind": "Role"}, "must be of type ClusterRole"),
    ],
)
def test_wrong_types_are_malformed(body: dict[str, Any], message: str) -> None:
    with pytest.raises(Malformed, match=None) as caught:
        decode({"metadata": {"name": "x"}, **body}, "ClusterRole", "")
    assert message in str(caught.value)


def test_null_means_absent_as_in_go() -> None:
    obj = decode({"metadata": {"name": "x", "labels": None}, "rules": None}, "ClusterRole", "")
    assert isinstance(obj.value, authorizer.Role)
    assert obj.value.rules == ()
    assert obj.to_wire()["rules"] is None


MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: loose}
---
# a comment-only document, then an empty one
---
apiVersion: v1
kind: List
items:
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata: {name: reader}
    rules: [{verbs: [get], apiGroups: [""], resources: [pods]}]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: reader, namespace: team}
    roleRef: {kind: Role, name: reader}
    subjects: [{kind: ServiceAccount, name: builder}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
"""


def test_manifests_keep_rbac_and_service_accounts_only() -> None:
    loaded = parse_manifests(MANIFESTS, default_namespace="fallback")
    assert [(o.kind, o.namespace, o.name) for o in loaded.objects] == [
        ("Role", "fallback", "reader"),
        ("RoleBinding", "team", "reader"),
    ]
    assert loaded.service_accounts == (("team", "builder"), ("fallback", "loose"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Role\nmetadata: {name: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "document 1: not a mapping"),
        ("kind: ClusterRole\nmetadata: {name: x}\nrules: [{resources: [pods]}]\n",
         "document 1 (ClusterRole): ClusterRole.rbac.authorization.k8s.io \"x\" is invalid"),
        ("---\n# nothing\n---\nkind: ServiceAccount\nmetadata: {}\n",
         "document 2 (ServiceAccount): metadata.name is required"),
        ("kind: List\nitems: [{kind: Role, metadata: {name: r}, rules: [{}]}]\n",
         "document 1 items[0] (Role)"),
    ],
)
def test_bad_manifests_say_which_document(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifests(text)
    assert message in str(caught.value)


def test_store_bounds_and_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    store = RbacStore()
    built_in = len(store)
    monkeypatch.setattr("compass_auth.testing.rbac.store.MAX_OBJECTS", built_in + 2)
    roles = [decode({"metadata": {"name": f"r{i}"}, "rules": []}, "ClusterRole", "")
             for i in range(3)]
    with pytest.raises(StoreFull):
        store.apply(roles)
    assert len(store) == built_in  # all or none
    store.apply(roles[:2])
    with pytest.raises(StoreFull):
        store.create(roles[2])
    store.apply(roles[:2])  # replacing takes no room
    store.reset()
    assert len(store) == built_in
    store.apply(roles[:1], persistent=True)
    store.reset()
    assert store.get("ClusterRole", "", "r0") is not None


def test_a_scoped_object_hides_a_built_in_one_until_reset() -> None:
    store = RbacStore()
    empty = decode({"metadata": {"name": "system:auth-delegator"}, "rules": []}, "ClusterRole", "")
    asked = authorizer.Attributes("u", ("g",), "create", True, "", "authentication.k8s.io",
                            "tokenreviews")
    grant = decode(
        {"metadata": {"name": "g"}, "roleRef": {"kind": "ClusterRole",
                                                "name": "system:auth-delegator"},
         "subjects": [{"kind": "Group", "name": "g"}]},
        "ClusterRoleBinding", "",
    )
    store.apply([grant], persistent=True)
    assert store.authorize(asked).allowed
    store.apply([empty])
    assert not store.authorize(asked).allowed
    store.reset()
    assert store.authorize(asked).allowed
