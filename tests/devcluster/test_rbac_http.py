"""SubjectAccessReview and RBAC creation over real HTTPS against the running emulator."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    AuthorizationV1Api,
    Configuration,
    RbacAuthorizationV1Api,
    V1ClusterRoleBinding,
    V1NonResourceAttributes,
    V1ObjectMeta,
    V1RoleRef,
    V1SubjectAccessReview,
    V1SubjectAccessReviewSpec,
)
from kubernetes_asyncio.config import load_kube_config

from compass_auth.testing import DevCluster, Fault
from compass_auth.testing.server.handlers.authorization import MAX_BODY_BYTES

from ..deploy.tools import tool
from .kubehttp import SARS, Response, call, can, can_get, sar, tls_context

RBAC = "/apis/rbac.authorization.k8s.io/v1"
WORKLOAD = "system:serviceaccount:apps:worker"
SA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated"]
DISCOVERY_REASON = (
    'RBAC: allowed by ClusterRoleBinding "system:service-account-issuer-discovery" of '
    'ClusterRole "system:service-account-issuer-discovery" to Group "system:serviceaccounts"'
)


def allowed(cluster: DevCluster, spec: dict[str, Any]) -> bool:
    answer = sar(cluster, spec)
    assert answer.status == 201, answer.body
    result: bool = answer.json()["status"]["allowed"]
    return result


def test_answer_shape_and_built_in_discovery_role(devcluster: DevCluster) -> None:
    spec = {
        "nonResourceAttributes": {"verb": "get", "path": "/openid/v1/jwks/"},
        "uid": "1234",
        "extra": {"b": ["2"], "a": ["1"]},
        "groups": SA_GROUPS,
        "user": WORKLOAD,
    }
    answer = sar(devcluster, spec)
    assert answer.status == 201
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert list(body) == ["kind", "apiVersion", "metadata", "spec", "status"]
    assert body["kind"] == "SubjectAccessReview"
    assert body["apiVersion"] == "authorization.k8s.io/v1"
    assert body["metadata"] == {"creationTimestamp": None}
    # Echoed in Go's field order, extra keys sorted.
    assert list(body["spec"]) == ["nonResourceAttributes", "user", "groups", "extra", "uid"]
    assert list(body["spec"]["nonResourceAttributes"]) == ["path", "verb"]
    assert list(body["spec"]["extra"]) == ["a", "b"]
    assert body["status"] == {"allowed": True, "reason": DISCOVERY_REASON}


def test_denied_is_allowed_false_without_reason(devcluster: DevCluster) -> None:
    # Without its groups the account has no discovery grant (the binding is to the group).
    answer = sar(devcluster, can_get(WORKLOAD, "/openid/v1/jwks"))
    assert answer.status == 201
    assert answer.json()["status"] == {"allowed": False}
    assert not allowed(devcluster, can(WORKLOAD, "list", "secrets", groups=SA_GROUPS))


def test_system_masters_may_do_anything(devcluster: DevCluster) -> None:
    spec = can("someone", "delete", "nodes", groups=["system:masters"])
    assert sar(devcluster, spec).json()["status"] == {"allowed": True}


def _post(cluster: DevCluster, path: str, body: Any, token: str | None = None) -> Response:
    return call(cluster, RBAC + path, token=token or cluster.admin_token, body=body)


ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "log-reader", "labels": {"team": "apps"}},
    "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}],
}
ROLE_BINDING = {
    "metadata": {"name": "worker-logs"},
    "roleRef": {"kind": "Role", "name": "log-reader"},
    "subjects": [{"kind": "ServiceAccount", "name": "worker"}],
}


def test_create_role_and_binding_over_http(devcluster: DevCluster) -> None:
    logs = can(WORKLOAD, "get", "pods", namespace="apps", subresource="log", name="p")
    assert not allowed(devcluster, logs)

    created = _post(devcluster, "/namespaces/apps/roles", ROLE)
    assert created.status == 201, created.body
    role = created.json()
    assert (role["kind"], role["apiVersion"]) == ("Role", "rbac.authorization.k8s.io/v1")
    assert role["metadata"]["name"] == "log-reader"
    assert role["metadata"]["namespace"] == "apps"
    assert role["metadata"]["labels"] == {"team": "apps"}
    assert role["metadata"]["uid"]
    assert role["metadata"]["resourceVersion"]
    assert role["rules"] == ROLE["rules"]
    binding = _post(devcluster, "/namespaces/apps/rolebindings", ROLE_BINDING)
    assert binding.status == 201, binding.body
    assert binding.json()["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"  # defaulted

    answer = sar(devcluster, logs)
    assert answer.json()["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by RoleBinding "worker-logs/apps" of Role "log-reader" to '
        'ServiceAccount "worker/apps"',
    }
    assert not allowed(devcluster, {**logs, "resourceAttributes": {
        **logs["resourceAttributes"], "namespace": "other"}})
    assert not allowed(devcluster, can(WORKLOAD, "get", "pods", namespace="apps"))

    again = _post(devcluster, "/namespaces/apps/roles", ROLE)
    assert again.status == 409
    assert again.json()["reason"] == "AlreadyExists"
    assert devcluster.request_count("rbac") == 3

    devcluster.reset()  # what tests create is gone for the next one
    assert not allowed(devcluster, logs)


def test_cluster_role_binding_to_a_cluster_role(devcluster: DevCluster) -> None:
    role = {"metadata": {"name": "node-reader"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["nodes"]}]}
    assert _post(devcluster, "/clusterroles", role).status == 201
    crb = {"metadata": {"name": "ops-nodes"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": "node-reader"},
           "subjects": [{"kind": "Group", "name": "ops"}]}
    assert _post(devcluster, "/clusterrolebindings", crb).status == 201
    assert allowed(devcluster, can("ann", "list", "nodes", groups=["ops"]))
    assert not allowed(devcluster, can("ann", "list", "nodes"))
    assert not allowed(devcluster, can("bo", "delete", "nodes", groups=["ops"]))


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/clusterroles", b"{", 400, "json parse error"),
        ("/clusterroles", {"metadata": {"name": "r"}, "rules": {"verbs": ["get"]}}, 400,
         "cannot unmarshal object into Go struct field ClusterRole.rules"),
        ("/namespaces/apps/roles", {**ROLE, "metadata": {"name": "r", "namespace": "other"}},
         400, "does not match the namespace sent on the request"),
        ("/clusterroles", {**ROLE, "kind": "Role"}, 400, "must be of type ClusterRole"),
        ("/namespaces/apps/roles", {"metadata": {"name": "r"}, "rules": [{"verbs": []}]}, 422,
         "rules[0].verbs: Required value"),
        ("/clusterrolebindings", {"metadata": {"name": "b"}, "roleRef": {"kind": "Role",
                                                                          "name": "r"}},
         422, 'roleRef.kind: Unsupported value: "Role"'),
    ],
)
def test_bad_rbac_objects(
    devcluster: DevCluster, path: str, body: Any, status: int, fragment: str
) -> None:
    answer = _post(devcluster, path, body)
    assert answer.status == status
    assert answer.json()["kind"] == "Status"
    assert answer.json()["code"] == status
    assert fragment in answer.json()["message"]


def test_creating_rbac_needs_rbac(devcluster: DevCluster) -> None:
    worker = devcluster.mint(namespace="apps", service_account="worker",
                             audiences=devcluster.api_audiences)
    answer = _post(devcluster, "/namespaces/apps/roles", ROLE, token=worker)
    assert answer.status == 403
    assert answer.json()["message"] == (
        'roles.rbac.authorization.k8s.io is forbidden: User "system:serviceaccount:apps:worker" '
        'cannot create resource "roles" in API group "rbac.authorization.k8s.io" in the '
        'namespace "apps"'
    )
    # Granted through RBAC itself: a RoleBinding to the built-in cluster-admin.
    grant = {"metadata": {"name": "worker-admin"},
             "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"kind": "ServiceAccount", "name": "worker"}]}
    assert _post(devcluster, "/namespaces/apps/rolebindings", grant).status == 201
    assert _post(devcluster, "/namespaces/apps/roles", ROLE, token=worker).status == 201
    elsewhere = _post(devcluster, "/namespaces/other/roles", ROLE, token=worker)
    assert elsewhere.status == 403
    assert call(devcluster, RBAC + "/clusterroles", body={}).status == 403  # anonymous
    assert call(devcluster, RBAC + "/clusterroles", body={}, token="junk").status == 401


YAML = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: worker, namespace: apps}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scaler}
rules:
  - {verbs: [get, update, patch], apiGroups: [apps], resources: ["*/scale"]}
  - {verbs: [get], apiGroups: [""], resources: [configmaps], resourceNames: [settings]}
  - {verbs: [get], nonResourceURLs: ["/metrics", "/debug/*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: scaler, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scaler}
subjects: [{kind: ServiceAccount, name: worker, namespace: apps}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops-urls}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scaler}
subjects: [{kind: Group, name: ops}]
"""


def test_yaml_then_reviews(devcluster: DevCluster, tmp_path: Path) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text(YAML)
    assert devcluster.load_rbac_file(path) == 3
    # The ServiceAccount exists now: TokenRequest for it works.
    token = call(devcluster, "/api/v1/namespaces/apps/serviceaccounts/worker/token",
                 token=devcluster.admin_token, body={})
    assert token.status == 201

    scale = can(WORKLOAD, "patch", "statefulsets", "apps", "apps", "web", "scale")
    assert sar(devcluster, scale).json()["status"]["reason"] == (
        'RBAC: allowed by RoleBinding "scaler/apps" of ClusterRole "scaler" to '
        'ServiceAccount "worker/apps"'
    )
    rows = [
        (scale, True),
        (can(WORKLOAD, "patch", "statefulsets", "apps", "other", "web", "scale"), False),
        (can(WORKLOAD, "patch", "statefulsets", "apps", "apps", "web"), False),
        (can(WORKLOAD, "get", "configmaps", "", "apps", "settings"), True),
        (can(WORKLOAD, "get", "configmaps", "", "apps", "other"), False),
        (can(WORKLOAD, "get", "configmaps", "", "apps"), False),
        # URLs come only from the ClusterRoleBinding: a RoleBinding never grants them.
        (can_get(WORKLOAD, "/metrics"), False),
        (can_get("ann", "/metrics", ["ops"]), True),
        (can_get("ann", "/debug/pprof/heap", ["ops"]), True),
        (can_get("ann", "/debug", ["ops"]), False),
    ]
    assert [allowed(devcluster, spec) for spec, _ in rows] == [want for _, want in rows]

    devcluster.reset()
    assert not allowed(devcluster, scale)


def test_a_binding_to_a_missing_role_is_in_the_reason(devcluster: DevCluster) -> None:
    devcluster.load_rbac(
        "kind: ClusterRoleBinding\nmetadata: {name: dangling}\n"
        "roleRef: {kind: ClusterRole, name: not-there}\nsubjects: [{kind: User, name: ann}]\n"
    )
    assert sar(devcluster, can("ann", "get", "pods")).json()["status"] == {
        "allowed": False,
        "reason": 'RBAC: clusterrole.rbac.authorization.k8s.io "not-there" not found',
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "json parse error"),
        (b"\xff\xfe", "json parse error"),
        (b"[1, 2]", "not an object"),
        ({"spec": "user"}, "cannot unmarshal string into Go struct field SubjectAccessReview.spec"),
        ({"spec": {"user": 5}}, "SubjectAccessReviewSpec.spec.user of type string"),
        ({"spec": {"user": "u", "groups": "g"}}, "spec.groups of type []string"),
        ({"spec": {"user": "u", "groups": [None, 1]}}, "of type string"),
        ({"spec": {"user": "u", "extra": {"k": "v"}}}, "spec.extra of type []string"),
        ({"spec": {"user": "u", "resourceAttributes": []}}, "resourceAttributes of type"),
        ({"spec": {"user": "u", "resourceAttributes": {"verb": True}}}, "verb of type string"),
        ({"spec": {"user": "u", "nonResourceAttributes": {"path": {}}}}, "path of type string"),
        ({"metadata": [], "spec": {}}, "SubjectAccessReview.metadata"),
        ({"apiVersion": "authorization.k8s.io/v1beta1", "spec": {}}, "expected API version"),
        ({"kind": "SelfSubjectAccessReview", "spec": {}}, "not a SubjectAccessReview"),
    ],
)
def test_malformed_review_is_400_with_a_status(
    devcluster: DevCluster, body: Any, fragment: str
) -> None:
    answer = call(devcluster, SARS, token=devcluster.service_token(), body=body)
    assert answer.status == 400, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    status = answer.json()
    assert (status["kind"], status["status"], status["reason"], status["code"]) == (
        "Status", "Failure", "BadRequest", 400)
    assert fragment in status["message"]


@pytest.mark.parametrize(
    ("spec", "metadata", "causes"),
    [
        ({"user": "u"}, None, [("spec.resourceAttributes", "Invalid value: \"null\": exactly one "
                                "of nonResourceAttributes or resourceAttributes must be "
                                "specified")]),
        ({"user": "u", "resourceAttributes": {"verb": "get"},
          "nonResourceAttributes": {"verb": "get", "path": "/"}}, None,
         [("spec.nonResourceAttributes", 'Invalid value: {"path":"/","verb":"get"}: cannot be '
           "specified in combination with resourceAttributes")]),
        ({"resourceAttributes": {}}, None,
         [("spec.user", 'Invalid value: "": at least one of user or group must be specified')]),
        ({"groups": ["g"], "resourceAttributes": {}}, {"name": "x"},
         [("metadata", 'Invalid value: {"name":"x"}: must be empty')]),
    ],
)
def test_invalid_review_is_422(
    devcluster: DevCluster,
    spec: dict[str, Any],
    metadata: dict[str, Any] | None,
    causes: list[tuple[str, str]],
) -> None:
    body: dict[str, Any] = {"spec": spec}
    if metadata is not None:
        body["metadata"] = metadata
    answer = call(devcluster, SARS, token=devcluster.service_token(), body=body)
    assert answer.status == 422
    status = answer.json()
    assert status["reason"] == "Invalid"
    assert status["message"].startswith('SubjectAccessReview.authorization.k8s.io "" is invalid: ')
    assert status["details"]["group"] == "authorization.k8s.io"
    assert [(c["field"], c["message"]) for c in status["details"]["causes"]] == causes


def test_missing_kind_and_api_version_are_defaulted(devcluster: DevCluster) -> None:
    answer = call(devcluster, SARS, token=devcluster.service_token(),
                  body={"spec": can_get(WORKLOAD, "/openid/v1/jwks", SA_GROUPS),
                        "metadata": {"creationTimestamp": None}})
    assert answer.status == 201
    assert answer.json()["status"]["allowed"] is True


def test_the_caller_needs_create_subjectaccessreviews(devcluster: DevCluster) -> None:
    spec = can_get(WORKLOAD, "/openid/v1/jwks", SA_GROUPS)
    stranger = devcluster.mint(namespace="apps", service_account="stranger",
                               audiences=devcluster.api_audiences)
    answer = sar(devcluster, spec, caller=stranger)
    assert answer.status == 403
    assert answer.json()["message"] == (
        "subjectaccessreviews.authorization.k8s.io is forbidden: "
        'User "system:serviceaccount:apps:stranger" cannot create resource '
        '"subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope'
    )
    assert answer.json()["details"] == {
        "group": "authorization.k8s.io", "kind": "subjectaccessreviews"}
    assert call(devcluster, SARS, body={"spec": spec}).status == 403  # anonymous
    assert call(devcluster, SARS, body={"spec": spec}, token="junk").status == 401
    assert sar(devcluster, spec, caller=devcluster.admin_token).status == 201
    assert sar(devcluster, spec).status == 201  # the service's account: a delegator

    # RBAC objects grant it too, with TokenReview (the same built-in role).
    devcluster.load_rbac(
        "kind: ClusterRoleBinding\nmetadata: {name: stranger-delegates}\n"
        "roleRef: {kind: ClusterRole, name: system:auth-delegator}\n"
        "subjects: [{kind: ServiceAccount, name: stranger, namespace: apps}]\n"
    )
    assert sar(devcluster, spec, caller=stranger).status == 201
    tokenreview = call(devcluster, "/apis/authentication.k8s.io/v1/tokenreviews",
                       token=stranger, body={"spec": {"token": devcluster.mint()}})
    assert tokenreview.status == 201

    devcluster.set_subjectaccessreview_allowed(False)
    assert sar(devcluster, spec, caller=stranger).status == 403
    assert sar(devcluster, spec).status == 403
    assert sar(devcluster, spec, caller=devcluster.admin_token).status == 201
    devcluster.reset()
    assert sar(devcluster, spec).status == 201
    assert sar(devcluster, spec, caller=stranger).status == 403


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        (Fault(status=500), 500, "InternalError"),
        (Fault(status=503, retry_after=3), 503, "ServiceUnavailable"),
        (Fault(status=429, retry_after=2), 429, "TooManyRequests"),
        (Fault(status=403), 403, "Forbidden"),
    ],
)
def test_faults(devcluster: DevCluster, fault: Fault, status: int, reason: str) -> None:
    devcluster.set_fault("subjectaccessreview", fault)
    answer = sar(devcluster, can_get(WORKLOAD, "/openid/v1/jwks", SA_GROUPS))
    assert answer.status == status
    assert answer.json()["reason"] == reason
    if fault.retry_after is not None:
        assert answer.headers["Retry-After"] == str(fault.retry_after)
        assert answer.json()["details"]["retryAfterSeconds"] == fault.retry_after
    assert devcluster.request_count("subjectaccessreview") == 1


def test_slow_and_dropped_reviews(devcluster: DevCluster) -> None:
    spec = can_get(WORKLOAD, "/openid/v1/jwks", SA_GROUPS)
    devcluster.set_fault("subjectaccessreview", Fault(delay=0.5, times=1))
    start = time.monotonic()
    assert sar(devcluster, spec).status == 201
    assert time.monotonic() - start >= 0.5
    devcluster.set_fault("subjectaccessreview", Fault(drop=True, times=1))
    with pytest.raises(http.client.RemoteDisconnected):
        sar(devcluster, spec)
    assert sar(devcluster, spec).status == 201  # times=1: cleared itself
    devcluster.set_fault("rbac", Fault(status=503, times=1))
    assert _post(devcluster, "/clusterroles", {"metadata": {"name": "x"}}).status == 503


def test_a_body_over_the_limit_is_413(devcluster: DevCluster) -> None:
    huge = b'{"spec": {"user": "' + b"u" * MAX_BODY_BYTES + b'"}}'
    answer = call(devcluster, SARS, token=devcluster.service_token(), body=huge, timeout=30)
    assert answer.status == 413
    assert answer.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"Request entity too large: limit is {MAX_BODY_BYTES}",
        "reason": "RequestEntityTooLarge", "code": 413,
    }
    assert _post(devcluster, "/clusterroles", huge).status == 413


def test_expect_100_continue_is_refused_before_the_upload(devcluster: DevCluster) -> None:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", devcluster.port, context=tls_context(devcluster), timeout=5
    )
    try:
        connection.putrequest("POST", SARS)
        connection.putheader("Authorization", f"Bearer {devcluster.service_token()}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()  # and no body: the answer must come without it
        answer = connection.getresponse()
        assert answer.status == 413
        assert json.loads(answer.read())["reason"] == "RequestEntityTooLarge"
    finally:
        connection.close()


def test_other_verbs_are_405(devcluster: DevCluster) -> None:
    answer = call(devcluster, SARS, token=devcluster.admin_token)
    assert answer.status == 405
    assert answer.json()["reason"] == "MethodNotAllowed"
    assert call(devcluster, SARS).status == 403  # anonymous: refused before the verb


async def test_kubernetes_asyncio_client(devcluster: DevCluster, tmp_path: Path) -> None:
    """The generated client (what the library will use) creates and reads these types."""
    configuration = Configuration()
    await load_kube_config(
        config_file=str(devcluster.write_kubeconfig(tmp_path / "kubeconfig", auth="client-cert")),
        client_configuration=configuration,
        persist_config=False,
    )
    async with ApiClient(configuration=configuration) as client:
        binding = V1ClusterRoleBinding(
            metadata=V1ObjectMeta(name="metrics-readers"),
            role_ref=V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                               name="system:service-account-issuer-discovery"),
            subjects=[{"kind": "User", "name": "ann"}],
        )
        created = await RbacAuthorizationV1Api(client).create_cluster_role_binding(
            binding, _request_timeout=5
        )
        assert created.metadata.uid
        assert created.subjects[0].api_group == "rbac.authorization.k8s.io"
        review = V1SubjectAccessReview(
            spec=V1SubjectAccessReviewSpec(
                user="ann",
                non_resource_attributes=V1NonResourceAttributes(
                    path="/.well-known/openid-configuration", verb="get"
                ),
            )
        )
        answer = await AuthorizationV1Api(client).create_subject_access_review(
            review, _request_timeout=5
        )
    assert answer.status.allowed is True
    assert answer.status.reason == (
        'RBAC: allowed by ClusterRoleBinding "metrics-readers" of ClusterRole '
        '"system:service-account-issuer-discovery" to User "ann"'
    )
    assert answer.spec.non_resource_attributes.path == "/.well-known/openid-configuration"


def test_kubectl_create_raw(devcluster: DevCluster, tmp_path: Path) -> None:
    """kubectl (the pinned one, else the system's) posts both kinds and reads the answers."""
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig", auth="client-cert")

    def kubectl(path: str, body: Any) -> subprocess.CompletedProcess[str]:
        file = tmp_path / "body.json"
        file.write_text(json.dumps(body))
        return subprocess.run(
            [tool("kubectl"), "--kubeconfig", str(kubeconfig), "create", "--raw", path,
             "-f", str(file)],
            capture_output=True, text=True, timeout=60, check=False,
        )

    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "ann-nodes"},
               "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "User", "name": "ann"}]}
    created = kubectl(RBAC + "/clusterrolebindings", binding)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["metadata"]["name"] == "ann-nodes"
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": can("ann", "delete", "nodes", name="n1")}
    answered = kubectl(SARS, review)
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by ClusterRoleBinding "ann-nodes" of ClusterRole '
        '"cluster-admin" to User "ann"',
    }
    refused = kubectl(SARS, {"spec": {"user": ["ann"]}})
    assert refused.returncode != 0
    assert "(BadRequest)" in refused.stderr
    assert "spec.user of type string" in refused.stderr
