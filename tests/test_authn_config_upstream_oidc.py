"""Kubernetes' JWT authenticator table, ported as data: claims + one ``jwt`` entry -> the user
(or the error) that ``user_from_claims`` gives.

Upstream: kubernetes/kubernetes
``staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc_test.go`` at commit
5441f5fdef781298cd7d924eecd00e20e08831ce, table ``TestToken`` (83 cases). Inputs and expected
outcomes are copied; the Go harness is not. Each case keeps its upstream name. A case that
cannot apply to a pure function over verified claims stays in the table with the reason
(signature, expiry, audience and algorithm checks are the verifier's, tested in
tests/test_verifier.py; distributed claims and discovery need a live issuer).

Errors compare equal to upstream's text, except where cel-cpp words a run-time error differently
from cel-go (normalised in compass_auth/authn_config/expressions.py) and where upstream's
``wantInitErr`` is a validation error: then the configuration is refused at load with that text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from compass_auth.authn_config import (
    ClaimRejected,
    IssuerUnknown,
    UserRejected,
    user_from_claims,
    validate_authenticator,
)
from compass_auth.authn_config.decode import decode_authenticator
from compass_auth.authn_config.errors import aggregate
from compass_auth.authn_config.loading import AuthenticationConfig
from compass_auth.authn_config.model import AuthenticationConfiguration

UPSTREAM = ("kubernetes/kubernetes", "5441f5fdef781298cd7d924eecd00e20e08831ce",
            "staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc_test.go")
ISSUER = {"url": "https://auth.example.com", "audiences": ["my-client"]}
BASE_CLAIMS = {"iss": "https://auth.example.com", "aud": "my-client", "exp": 2_000_000_000}


def claim(name: str, prefix: str = "") -> dict[str, str]:
    return {"claim": name, "prefix": prefix}


def expr(text: str) -> dict[str, str]:
    return {"expression": text}


@dataclass
class Case:
    name: str
    mappings: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    #: Expected user: (username, uid, groups, extra); None when an error is expected.
    want: tuple[str, str, tuple[str, ...], dict[str, tuple[str, ...]]] | None = None
    want_err: str = ""
    #: The configuration is refused at load with this text (upstream's wantInitErr).
    want_init_err: str = ""
    rules: list[dict[str, str]] = field(default_factory=list)
    user_rules: list[dict[str, str]] = field(default_factory=list)
    issuer: dict[str, Any] = field(default_factory=lambda: dict(ISSUER))
    disallowed: tuple[str, ...] = ()
    #: Not applicable here, and why.
    skip: str = ""
    #: The token names another issuer: the authenticator is not chosen (upstream's wantSkip).
    other_issuer: str = ""


def user(name: str, uid: str = "", groups: tuple[str, ...] = (),
         extra: dict[str, tuple[str, ...]] | None = None) -> tuple[
             str, str, tuple[str, ...], dict[str, tuple[str, ...]]]:
    return (name, uid, groups, extra or {})


VERIFIER = ("a check of the verifier (signature, expiry, audience or algorithm): "
            "tests/test_verifier.py")
DISTRIBUTED = ("distributed claims are fetched from a live endpoint; not supported by this "
               "pure layer")
NETWORK = "needs a live issuer (discovery, health check); the integration step's"
GO_OPTION = "a Go constructor option, not a field of the configuration file"
U = claim("username")
TURTLE = {"turtle": {"foo": {"1": "a", "2": "b",
                             "other1": {"bit1": True, "bit2": False, "bit3": 1},
                             "bar": {"3": "c", "4": "d",
                                     "other1": {"bit1": True, "bit2": False, "bit3": 1},
                                     "baz": {"5": "e", "6": "f",
                                             "panda": ["snorlax", "007", "santa", "claus"],
                                             "other1": {"bit1": True, "bit2": False,
                                                        "bit3": 1}}}}}}
TURTLE_RULES = [{"expression": "claims.turtle.foo.other1.bit1 && "
                               "!claims.turtle.foo.bar.other1.bit2"}]
TURTLE_EXTRA = [
    {"key": "bio.snorlax.org/1", "valueExpression": "string(claims.turtle.foo.bar.other1.bit2)"},
    {"key": "bio.snorlax.org/2",
     "valueExpression": "string(claims.turtle.foo.bar.baz.other1.bit3)"},
    {"key": "bio.snorlax.org/3", "valueExpression":
        "[string(claims.turtle.foo.bar.baz.other1.bit1)] + ['a', 'b', 'c']"},
]
TURTLE_USER_RULES = [{"expression": 'user.username != "bad"'}, {"expression": 'user.uid == "007"'},
                     {"expression": '"claus" in user.groups'},
                     {"expression": 'user.extra["bio.snorlax.org/3"].size() == 4'}]
TURTLE_EXTRA_WANT = {"bio.snorlax.org/1": ("false",), "bio.snorlax.org/2": ("1",),
                     "bio.snorlax.org/3": ("true", "a", "b", "c")}
FULL = {"username": expr("claims.username"), "groups": expr("claims.groups"),
        "uid": expr("claims.uid"),
        "extra": [{"key": "example.org/foo", "valueExpression": "claims.foo"},
                  {"key": "example.org/bar", "valueExpression": "claims.bar"}]}
EMPTY_USER_RULES = [
    {"expression": 'user.uid == ""', "message": "uid must be empty string"},
    {"expression": "!('bar' in user.groups)", "message": "groups must not contain bar"},
    {"expression": "!('bar' in user.extra)", "message": "extra must not contain bar"},
]
TEAMS = ["team1", "team2"]

CASES = [
    Case("token", {"username": U}, {"username": "jane"}, user("jane")),
    Case("no-username", {"username": claim("username", "prefix:")}, {},
         want_err='oidc: parse username claims "username": claim not present'),
    Case("email", {"username": claim("email")},
         {"email": "jane@example.com", "email_verified": True}, user("jane@example.com")),
    Case("email-not-verified", {"username": claim("email")},
         {"email": "jane@example.com", "email_verified": False},
         want_err="oidc: email not verified"),
    Case("no-email-verified-claim", {"username": claim("email")}, {"email": "jane@example.com"},
         user("jane@example.com")),
    Case("invalid-email-verified-claim", {"username": claim("email")},
         {"email": "jane@example.com", "email_verified": "false"},
         want_err="oidc: parse 'email_verified' claim: json: cannot unmarshal string into Go "
                  "value of type bool"),
    Case("groups", {"username": U, "groups": claim("groups")},
         {"username": "jane", "groups": TEAMS}, user("jane", groups=("team1", "team2"))),
    Case("groups-distributed", skip=DISTRIBUTED),
    Case("groups-distributed invalid client", skip=DISTRIBUTED),
    Case("groups-distributed-malformed-claim-names", skip=DISTRIBUTED),
    Case("groups-distributed-malformed-names-and-sources", skip=DISTRIBUTED),
    Case("groups-distributed-malformed-distributed-claim", skip=DISTRIBUTED),
    Case("groups-distributed-unusual-name", skip=DISTRIBUTED),
    Case("groups-distributed-wrong-audience", skip=DISTRIBUTED),
    Case("groups-distributed-expired-token", skip=DISTRIBUTED),
    Case("groups-distributed-normal-claim-wins", {"username": U, "groups": claim("groups")},
         {"username": "jane", "groups": "team1", "_claim_names": {"groups": "src1"},
          "_claim_sources": {"src1": {"endpoint": "https://x/groups",
                                      "access_token": "groups_token"}}},
         user("jane", groups=("team1",))),
    Case("group-string-claim", {"username": U, "groups": claim("groups")},
         {"username": "jane", "groups": "team1"}, user("jane", groups=("team1",))),
    Case("group-string-claim-distributed", skip=DISTRIBUTED),
    Case("group-string-claim-aggregated-not-supported", {"username": U, "groups": claim("groups")},
         {"username": "jane", "_claim_names": {"groups": "src1"},
          "_claim_sources": {"src1": {"JWT": "some.jwt.token"}}}, user("jane")),
    Case("no-groups-claim", {"username": U, "groups": claim("groups")}, {"username": "jane"},
         user("jane")),
    Case("invalid-groups-claim", {"username": U, "groups": claim("groups")},
         {"username": "jane", "groups": 42},
         want_err='oidc: parse groups claim "groups": json: cannot unmarshal number into Go '
                  "value of type string"),
    Case("required-claim", {"username": U, "groups": claim("groups")},
         {"username": "jane", "hd": "example.com", "sub": "test"}, user("jane"),
         rules=[{"claim": "hd", "requiredValue": "example.com"},
                {"claim": "sub", "requiredValue": "test"}]),
    Case("no-required-claim", {"username": U, "groups": claim("groups")}, {"username": "jane"},
         want_err="oidc: required claim hd not present in ID token",
         rules=[{"claim": "hd", "requiredValue": "example.com"}]),
    Case("invalid-required-claim", {"username": U, "groups": claim("groups")},
         {"username": "jane", "hd": "example.org"},
         want_err="oidc: required claim hd value does not match. Got = example.org, want = "
                  "example.com", rules=[{"claim": "hd", "requiredValue": "example.com"}]),
    Case("invalid-signature", skip=VERIFIER),
    Case("expired", skip=VERIFIER),
    Case("invalid-aud", skip=VERIFIER),
    Case("multiple-audiences", skip=VERIFIER),
    Case("multiple-audiences in authentication config", skip=VERIFIER),
    Case("multiple-audiences in authentication config, multiple matches", skip=VERIFIER),
    Case("multiple-audiences in authentication config, no match", skip=VERIFIER),
    Case("nuanced audience validation using claim validation rules", {"username": U},
         {"aud": ["foo", "bar", "baz"], "azp": "not-my-client", "username": "jane"}, user("jane"),
         issuer={"url": "https://auth.example.com", "audiences": ["bar", "foo", "baz"],
                 "audienceMatchPolicy": "MatchAny"},
         rules=[{"expression": 'sets.equivalent(claims.aud, ["bar", "foo", "baz"])',
                 "message": "audience must exactly contain [bar, foo, baz]"}]),
    Case("audience validation using claim validation rules fails", {"username": U},
         {"aud": ["foo", "baz"], "azp": "not-my-client", "username": "jane"},
         issuer={"url": "https://auth.example.com", "audiences": ["bar", "foo", "baz"],
                 "audienceMatchPolicy": "MatchAny"},
         want_err="oidc: error evaluating claim validation expression: validation expression "
                  "'sets.equivalent(claims.aud, [\"bar\", \"foo\", \"baz\"])' failed: "
                  "audience must exactly contain [bar, foo, baz]",
         rules=[{"expression": 'sets.equivalent(claims.aud, ["bar", "foo", "baz"])',
                 "message": "audience must exactly contain [bar, foo, baz]"}]),
    Case("invalid-issuer", {"username": claim("username", "prefix:")},
         other_issuer="https://example.com"),
    Case("username-prefix", {"username": claim("username", "oidc:")}, {"username": "jane"},
         user("oidc:jane")),
    Case("groups-prefix", {"username": claim("username", "oidc:"),
                           "groups": claim("groups", "groups:")},
         {"username": "jane", "groups": TEAMS},
         user("oidc:jane", groups=("groups:team1", "groups:team2"))),
    Case("groups-prefix-distributed", skip=DISTRIBUTED),
    Case("invalid-signing-alg", skip=VERIFIER),
    Case("ps256", skip=VERIFIER),
    Case("es512", skip=VERIFIER),
    Case("not-https", {"username": claim("username", "prefix:")},
         issuer={"url": "http://auth.example.com", "audiences": ["my-client"]},
         want_init_err='issuer.url: Invalid value: "http://auth.example.com": URL scheme must '
                       "be https"),
    Case("no-username-claim", {"username": {"prefix": ""}},
         want_init_err="claimMappings.username: Required value: claim or expression is "
                       "required"),
    Case("invalid-sig-alg", skip=GO_OPTION),
    Case("client and ca mutually exclusive", skip=GO_OPTION),
    Case("keyset and discovery URL mutually exclusive", skip=GO_OPTION),
    Case("health check failure", skip=NETWORK),
    # Upstream also maps the legacy iss "accounts.google.com" to https://; that is the
    # verifier's issuer check. The mapping of the claims is ported.
    Case("accounts.google.com issuer", {"username": claim("email")},
         {"iss": "accounts.google.com", "email": "thomas.jefferson@gmail.com"},
         user("thomas.jefferson@gmail.com"),
         issuer={"url": "https://accounts.google.com", "audiences": ["my-client"]}),
    Case("good token with bad client id", skip=VERIFIER),
    Case("user validation rule fails for user.username", {"username": claim("username",
                                                                            "system:")},
         {"username": "jane"},
         want_err="oidc: error evaluating user info validation rule: validation expression "
                  "'!user.username.startsWith('system:')' failed: username cannot used reserved "
                  "system: prefix",
         user_rules=[{"expression": "!user.username.startsWith('system:')",
                      "message": "username cannot used reserved system: prefix"}]),
    Case("user validation rule fails for user.groups",
         {"username": expr("claims.username"), "groups": claim("groups", "system:")},
         {"username": "jane", "groups": TEAMS},
         want_err="oidc: error evaluating user info validation rule: validation expression "
                  "'user.groups.all(group, !group.startsWith('system:'))' failed: groups cannot "
                  "used reserved system: prefix",
         user_rules=[{"expression": "user.groups.all(group, !group.startsWith('system:'))",
                      "message": "groups cannot used reserved system: prefix"}]),
    Case("claim validation rule with expression fails", {"username": U}, {"username": "jane"},
         want_err="oidc: error evaluating claim validation expression: expression "
                  "'claims.hd == \"example.com\"' resulted in error: no such key: hd",
         rules=[{"expression": 'claims.hd == "example.com"',
                 "message": "hd claim must be example.com"}]),
    Case("claim validation rule with expression", {"username": U},
         {"username": "jane", "hd": "example.com"}, user("jane"),
         rules=[{"expression": 'claims.hd == "example.com"',
                 "message": "hd claim must be example.com"}]),
    Case("claim validation rule with expression and nested claims", {"username": U},
         {"username": "jane", "hd": "example.com", "foo": {"bar": "baz"}}, user("jane"),
         rules=[{"expression": 'claims.foo.bar == "baz"', "message": "foo.bar claim must be baz"}]),
    Case("claim validation rule with mix of expression and claim", {"username": U},
         {"username": "jane", "hd": "example.com", "foo": {"bar": "baz"}}, user("jane"),
         rules=[{"expression": 'claims.foo.bar == "baz"', "message": "foo.bar claim must be baz"},
                {"claim": "hd", "requiredValue": "example.com"}]),
    Case("username claim mapping with expression", {"username": expr("claims.username")},
         {"username": "jane"}, user("jane")),
    Case("username claim mapping with expression and nested claim",
         {"username": expr("claims.foo.username")},
         {"username": "jane", "foo": {"username": "jane"}}, user("jane")),
    Case("claim mappings with expressions and deeply nested claim - success",
         {"username": expr("claims.turtle.foo.bar.baz.panda[0]"),
          "uid": expr("claims.turtle.foo.bar.baz.panda[1]"),
          "groups": expr("claims.turtle.foo.bar.baz.panda"), "extra": TURTLE_EXTRA},
         TURTLE, user("snorlax", "007", ("snorlax", "007", "santa", "claus"), TURTLE_EXTRA_WANT),
         rules=TURTLE_RULES, user_rules=TURTLE_USER_RULES),
    Case("claim mappings with expressions and deeply nested claim - success via optional",
         {"username": expr("claims.turtle.foo.bar.baz.panda[0]"),
          "uid": expr("claims.turtle.foo.bar.baz.panda[1]"),
          "groups": expr("claims.turtle.foo.bar.baz.?a.b.c.d.orValue([ 'claus' ])"),
          "extra": TURTLE_EXTRA},
         TURTLE, user("snorlax", "007", ("claus",), TURTLE_EXTRA_WANT),
         rules=TURTLE_RULES, user_rules=TURTLE_USER_RULES),
    Case("claim mappings with expressions and deeply nested claim - failure without optional",
         {"username": expr("claims.turtle.foo.bar.baz.panda[0]"),
          "uid": expr("claims.turtle.foo.bar.baz.panda[1]"),
          "groups": expr("claims.turtle.foo.bar.baz.a.b.c.d"), "extra": TURTLE_EXTRA},
         TURTLE, want_err="oidc: error evaluating group claim expression: expression "
                          "'claims.turtle.foo.bar.baz.a.b.c.d' resulted in error: no such key: a",
         rules=TURTLE_RULES, user_rules=TURTLE_USER_RULES),
    Case("groups claim mapping with expression",
         {"username": expr("claims.username"), "groups": expr("claims.groups")},
         {"username": "jane", "groups": TEAMS}, user("jane", groups=("team1", "team2"))),
    Case("groups claim with expression",
         {"username": claim("username", "oidc:"), "groups": expr(
             '(claims.roles.split(",") + claims.other_roles.split(",")).map(role, "groups:" + '
             "role)")},
         {"username": "jane", "roles": "foo,bar", "other_roles": "baz,qux"},
         user("oidc:jane", groups=("groups:foo", "groups:bar", "groups:baz", "groups:qux"))),
    Case("uid claim mapping with expression",
         {"username": expr("claims.username"), "groups": expr("claims.groups"),
          "uid": expr("claims.uid")},
         {"username": "jane", "groups": TEAMS, "uid": "1234"},
         user("jane", "1234", ("team1", "team2"))),
    Case("uid claim mapping with claim",
         {"username": expr("claims.username"), "groups": expr("claims.groups"),
          "uid": {"claim": "uid"}},
         {"username": "jane", "groups": TEAMS, "uid": "1234"},
         user("jane", "1234", ("team1", "team2"))),
    Case("extra claim mapping with expression", FULL,
         {"username": "jane", "groups": TEAMS, "uid": "1234", "foo": "bar", "bar": ["baz", "qux"]},
         user("jane", "1234", ("team1", "team2"),
              {"example.org/foo": ("bar",), "example.org/bar": ("baz", "qux")})),
    Case("extra claim mapping, value derived from claim value",
         {"username": expr("claims.username"), "extra": [
             {"key": "example.org/admin",
              "valueExpression": '(has(claims.is_admin) && claims.is_admin) ? "true":""'},
             {"key": "example.org/admin_1",
              "valueExpression": 'claims.?is_admin.orValue(false) == true ? "true":""'},
             {"key": "example.org/non_existent", "valueExpression":
                 'claims.?non_existent.orValue("default") == "default" ? "true":""'}]},
         {"username": "jane", "is_admin": True},
         user("jane", extra={"example.org/admin": ("true",), "example.org/admin_1": ("true",),
                             "example.org/non_existent": ("true",)})),
    Case("hardcoded extra claim mapping",
         {"username": expr("claims.username"),
          "extra": [{"key": "example.org/admin", "valueExpression": '"true"'}]},
         {"username": "jane", "is_admin": True},
         user("jane", extra={"example.org/admin": ("true",)})),
    Case("extra claim mapping, multiple expressions for same key",
         {**FULL, "extra": [*FULL["extra"],
                            {"key": "example.org/foo", "valueExpression": "claims.bar"}]},
         want_init_err='claimMappings.extra[2].key: Duplicate value: "example.org/foo"'),
    Case("disallowed issuer via configured value", FULL, disallowed=("https://auth.example.com",),
         want_init_err='issuer.url: Invalid value: "https://auth.example.com": URL must not '
                       "overlap with disallowed issuers: [https://auth.example.com]"),
    Case("extra claim mapping, empty string value for key", FULL,
         {"username": "jane", "groups": TEAMS, "uid": "1234", "foo": "", "bar": ["baz", "qux"]},
         user("jane", "1234", ("team1", "team2"), {"example.org/bar": ("baz", "qux")})),
    Case("extra claim mapping with user validation rule succeeds",
         {**FULL, "extra": [{"key": "example.org/foo", "valueExpression": "'bar'"},
                            {"key": "example.org/baz", "valueExpression": "claims.baz"}]},
         {"username": "jane", "groups": TEAMS, "uid": "1234", "baz": "qux"},
         user("jane", "1234", ("team1", "team2"),
              {"example.org/foo": ("bar",), "example.org/baz": ("qux",)}),
         user_rules=[{"expression": "'bar' in user.extra['example.org/foo'] && 'qux' in "
                                    "user.extra['example.org/baz']",
                      "message": "example.org/foo must be bar and example.org/baz must be qux"}]),
    Case("groups expression returns null",
         {"username": expr("claims.username"), "groups": expr("claims.groups")},
         {"username": "jane", "groups": None, "uid": "1234", "baz": "qux"}, user("jane")),
    Case("test user validation rule doesn't fail when user info is empty except username",
         {"username": expr("claims.username"), "groups": expr("claims.groups")},
         {"username": " ", "groups": None, "baz": "qux"}, user(" "),
         user_rules=[{"expression": 'user.username == " "',
                      "message": "username must be single space"}, *EMPTY_USER_RULES]),
    Case("empty username is allowed via claim",
         {"username": U, "groups": expr("claims.groups")},
         {"username": "", "groups": None, "baz": "qux"}, user(""),
         user_rules=[{"expression": 'user.username == ""',
                      "message": "username must be empty string"}, *EMPTY_USER_RULES]),
    Case("minimum valid jwt payload", {"username": expr("claims.user")}, {"user": "jane"},
         user("jane")),
    Case("discovery-url", skip=NETWORK),
    Case("discovery url, issuer has a path", skip=NETWORK),
    Case("discovery url has a path, issuer url has no path", skip=NETWORK),
    Case("discovery url and issuer url have paths", skip=NETWORK),
    Case("discovery url and issuer url have paths, issuer url has trailing slash", skip=NETWORK),
    Case("credential id set in extra even when no extra claim mappings are defined",
         {"username": expr("claims.username")}, {"username": "jane", "jti": "1234"},
         user("jane", extra={"authentication.kubernetes.io/credential-id": ("JTI=1234",)})),
    Case("credential id set in extra when extra claim mappings are defined",
         {"username": expr("claims.username"), "extra": FULL["extra"]},
         {"username": "jane", "jti": "1234", "foo": "bar", "bar": ["baz", "qux"]},
         user("jane", extra={"authentication.kubernetes.io/credential-id": ("JTI=1234",),
                             "example.org/foo": ("bar",), "example.org/bar": ("baz", "qux")})),
    Case("non-string jti claim does not set credential id in extra or error",
         {"username": expr("claims.username")}, {"username": "jane", "jti": 1234}, user("jane")),
    Case("missing jti claim does not set credential id in extra or error",
         {"username": expr("claims.username")}, {"username": "jane"}, user("jane")),
]


def compile_case(case: Case) -> tuple[Any, list[Any]]:
    spec, errors = decode_authenticator({
        "issuer": case.issuer, "claimValidationRules": case.rules,
        "claimMappings": case.mappings, "userValidationRules": case.user_rules}, "")
    assert errors == []
    return validate_authenticator(spec, case.disallowed)


def test_the_table_is_the_upstream_one() -> None:
    """Every upstream case is listed once (83 in TestToken at the cited commit)."""
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)) == 83


@pytest.mark.parametrize("case", [case for case in CASES if not case.skip],
                         ids=lambda case: case.name)
def test_upstream_case(case: Case) -> None:
    compiled, errors = compile_case(case)
    if case.want_init_err:
        assert aggregate(errors) == case.want_init_err
        return
    assert errors == []
    if case.other_issuer:
        config = AuthenticationConfig("<test>", AuthenticationConfiguration(jwt=(compiled.spec,)),
                                      (compiled,))
        with pytest.raises(IssuerUnknown):
            config.authenticator_for(case.other_issuer)
        assert config.authenticator_for(case.issuer["url"]) is compiled
        return
    claims = {**BASE_CLAIMS, **case.claims}
    if case.want_err:
        with pytest.raises((ClaimRejected, UserRejected)) as raised:
            user_from_claims(claims, compiled)
        assert raised.value.detail == case.want_err
        assert raised.value.status == 401
        return
    assert case.want is not None
    got = user_from_claims(claims, compiled)
    assert (got.username, got.uid, got.groups, dict(got.extra)) == case.want


def test_counts_per_outcome() -> None:
    """The numbers the report gives: ported (run above) and not applicable, with reasons."""
    ported = [case for case in CASES if not case.skip]
    skipped = [case for case in CASES if case.skip]
    assert (len(ported), len(skipped)) == (53, 30)
    assert {case.skip for case in skipped} == {VERIFIER, DISTRIBUTED, NETWORK, GO_OPTION}
