"""The access syntax (AUTH_REQUIRED_ACCESS), the checks and the SubjectAccessReview they build."""

from __future__ import annotations

import pytest

from compass_auth import AuthSettings, SettingsError
from compass_auth.core.access import (
    MAX_CHECKS,
    AccessSyntaxError,
    NonResourceCheck,
    ResourceCheck,
    UnresolvedTemplate,
    format_access,
    parse_access,
    review_body,
)
from compass_auth.core.identity import Identity
from compass_auth.tornado.handler import AuthenticatedHandler

from .helpers import service_process, settings_from

WHOAMI = ResourceCheck("get", "whoami", group="compass.example", namespace="{service_namespace}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("   ", ()),
        ("verb=get,resource=pods", (ResourceCheck("get", "pods"),)),
        ("verb=get,group=compass.example,resource=whoami,namespace={service_namespace}",
         (WHOAMI,)),
        (" verb = list , resource = pods , namespace = team-a ",
         (ResourceCheck("list", "pods", namespace="team-a"),)),
        ("verb=get,resource=pods,subresource=log,namespace=default,name=web-0",
         (ResourceCheck("get", "pods", subresource="log", namespace="default", name="web-0"),)),
        ("verb=get,resource=services,subresource=proxy,name={service}",
         (ResourceCheck("get", "services", subresource="proxy", name="{service}"),)),
        ("verb=get,path=/whoami", (NonResourceCheck("get", "/whoami"),)),
        ("verb=get,path=/whoami;verb=create,group=batch,resource=jobs,namespace={ns}",
         (NonResourceCheck("get", "/whoami"),
          ResourceCheck("create", "jobs", group="batch", namespace="{ns}"))),
        ("name=x,resource=configmaps,verb=update",
         (ResourceCheck("update", "configmaps", name="x"),)),
    ],
)
def test_the_syntax_reads(text: str, expected: tuple[object, ...]) -> None:
    checks = parse_access(text)
    assert checks == expected
    assert parse_access(format_access(checks)) == checks


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("get pods", "'get pods' is not key=value"),
        ("verb=get,resource=pods;", "check 2 is empty"),
        (";verb=get,resource=pods", "check 1 is empty"),
        ("verb=get,resource=pods,,", "'' is not key=value"),
        ("verb=get,resources=pods", "unknown key 'resources'"),
        ("verb=get,apiGroup=apps,resource=deployments", "unknown key 'apiGroup'"),
        ("verb=get,verb=list,resource=pods", "verb is given twice"),
        ("resource=pods", "verb= is missing"),
        ("verb=get", "resource= or path= is missing"),
        ("verb=get,namespace=default", "resource= or path= is missing"),
        ("verb=get,group=,resource=pods", "group is empty (leave the key out for the core group)"),
        ("verb=,resource=pods", "verb is empty"),
        ("verb=*,resource=pods", "verb='*' is not a valid verb"),
        ("verb=GET,resource=pods", "verb='GET' is not a valid verb"),
        ("verb=get,resource=pods/log", "name a subresource with subresource="),
        ("verb=get,resource=*", "resource='*' is not a valid resource"),
        ("verb=get,resource=Pods", "resource='Pods' is not a valid resource"),
        ("verb=get,group=Apps,resource=deployments", "group='Apps' is not a valid group"),
        ("verb=get,resource=pods,namespace=Team_A", "namespace='Team_A' is not a valid"),
        ("verb=get,resource=pods,namespace=" + "a" * 64, "is not a valid namespace"),
        ("verb=get,resource=pods,namespace={}", "namespace='{}' is not a valid namespace"),
        ("verb=get,resource=pods,namespace={a-b}", "is not a valid namespace"),
        ("verb=get,resource=pods,name=a b", "name='a b' is not a valid name"),
        ("verb=get,path=whoami", "path='whoami' is not a valid path"),
        ("verb=get,path=/metrics*", "`*` belongs in the ClusterRole's nonResourceURLs"),
        ("verb=get,path=/whoami?x=1", "no query"),
        ("verb=get,path=/whoami,resource=pods", "cannot be combined with resource"),
        ("verb=get,path=/whoami,namespace=a", "cannot be combined with namespace"),
        (";".join(["verb=get,resource=pods"] * (MAX_CHECKS + 1)), f"at most {MAX_CHECKS}"),
    ],
)
def test_the_syntax_refuses(text: str, message: str) -> None:
    with pytest.raises(AccessSyntaxError) as raised:
        parse_access(text)
    assert message in str(raised.value)


def test_a_malformed_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^AUTH_REQUIRED_ACCESS: check 1 .*unknown key"):
        settings_from({"AUTH_REQUIRED_ACCESS": "verb=get,resources=pods"})
    settings = settings_from({"AUTH_REQUIRED_ACCESS": format_access((WHOAMI,))})
    assert settings.required_access == (WHOAMI,)
    assert settings.describe()["required_access"] == str(WHOAMI)
    with pytest.raises(SettingsError, match="AUTH_REQUIRED_ACCESS must be a tuple"):
        AuthSettings(audience="a", required_access=("verb=get,resource=pods",))  # type: ignore[arg-type]


def test_checks_given_in_code_are_validated() -> None:
    with pytest.raises(AccessSyntaxError, match="verb='Get'"):
        ResourceCheck("Get", "pods")
    with pytest.raises(TypeError, match=r"Bad\.required_access holds 'verb=get,resource=pods'"):
        type("Bad", (AuthenticatedHandler,), {"required_access": ["verb=get,resource=pods"]})


def test_templates_are_filled_and_checked() -> None:
    check = ResourceCheck("get", "reports", group="compass.example", namespace="{team}",
                          name="{report}")
    assert check.resolve({"team": "team-a", "report": "q3"}) == ResourceCheck(
        "get", "reports", group="compass.example", namespace="team-a", name="q3")
    with pytest.raises(UnresolvedTemplate, match=r"\{report\}"):
        check.resolve({"team": "team-a"})
    # A value taken from the URL is held to the same rules as a written one.
    with pytest.raises(AccessSyntaxError, match=r"namespace='\.\./kube-system'"):
        check.resolve({"team": "../kube-system", "report": "q3"})
    # Issue 18 §9: no exemption for a value from the URL: absent (an optional group that did
    # not match), empty, or a template itself, none is a namespace or name.
    with pytest.raises(AccessSyntaxError, match=r"template \{team\} is absent"):
        check.resolve({"team": None, "report": "q3"})
    with pytest.raises(AccessSyntaxError, match=r"template \{team\} is empty in the request"):
        check.resolve({"team": "", "report": "q3"})
    with pytest.raises(AccessSyntaxError, match=r"name='\{service_namespace\}' is not a valid"):
        check.resolve({"team": "team-a", "report": "{service_namespace}"})
    assert check.templates() == {"team", "report"}
    fixed = ResourceCheck("get", "pods", namespace="default")
    assert fixed.resolve({"namespace": "other"}) is fixed


def identity(**overrides: object) -> Identity:
    claims = {
        "sub": "system:serviceaccount:team-a:collector",
        "aud": ["compass-internal"], "iat": 1, "exp": 2, "jti": "7b1c-uuid",
        "kubernetes.io": {"namespace": "team-a",
                          "serviceaccount": {"name": "collector", "uid": "sa-uid"},
                          "pod": {"name": "collector-0", "uid": "pod-uid"},
                          "node": {"name": "kind-worker", "uid": "node-uid"}},
    }
    claims.update(overrides)
    return Identity.from_claims(claims)


def test_the_review_carries_what_kube_apiserver_would_use() -> None:
    check = WHOAMI.resolve({"service_namespace": "compass"})
    assert review_body(identity(), check) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "resourceAttributes": {"namespace": "compass", "verb": "get",
                                   "group": "compass.example", "resource": "whoami"},
            "user": "system:serviceaccount:team-a:collector",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a",
                       "system:authenticated"],
            "extra": {
                "authentication.kubernetes.io/credential-id": ["JTI=7b1c-uuid"],
                "authentication.kubernetes.io/node-name": ["kind-worker"],
                "authentication.kubernetes.io/node-uid": ["node-uid"],
                "authentication.kubernetes.io/pod-name": ["collector-0"],
                "authentication.kubernetes.io/pod-uid": ["pod-uid"],
            },
            "uid": "sa-uid",
        },
    }


def test_a_token_without_jti_or_pod_sends_no_such_extra() -> None:
    bare = identity(jti=None, **{"kubernetes.io": {
        "namespace": "team-a", "serviceaccount": {"name": "collector", "uid": "sa-uid"}}})
    spec = review_body(bare, NonResourceCheck("get", "/whoami"))["spec"]
    assert bare.credential_id is None
    assert "extra" not in spec
    assert spec["nonResourceAttributes"] == {"path": "/whoami", "verb": "get"}


def test_the_service_refuses_to_start_with_a_malformed_value() -> None:
    process = service_process({"AUTH_REQUIRED_ACCESS": "verb=get,resource=pods/log",
                               "KUBECONFIG": "/nonexistent"})
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert ("AUTH_REQUIRED_ACCESS: check 1 ('verb=get,resource=pods/log'): resource='pods/log' "
            "is not a valid resource (name a subresource with subresource=)") in stderr
