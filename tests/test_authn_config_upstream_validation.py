"""Kubernetes' validation tables for AuthenticationConfiguration, ported as data: a
configuration (or one part of it) -> the error text kube-apiserver gives ("" when valid).

Upstream: kubernetes/kubernetes
``staging/src/k8s.io/apiserver/pkg/apis/apiserver/validation/validation_test.go`` at commit
0ea83df1135d2477e564f66f5a78d82a7b8633df. Tables: TestValidateAuthenticationConfiguration,
TestValidateIssuerURL, TestValidateIssuerDiscoveryURL, TestValidateAudiences,
TestValidateCertificateAuthority, TestValidateClaimValidationRules, TestValidateClaimMappings,
TestValidateUserValidationRules. The file's other tables validate AuthorizationConfiguration, a
different API: not applicable.

Cases with the StructuredAuthenticationConfiguration feature gate disabled are not applicable
(the feature is GA; there is no gate here). CEL compile errors: cel-cpp reports the undeclared
name as ``'foo.bar'`` at column 4 where cel-go says ``'foo'`` at column 1, so those cases compare
everything up to ``ERROR: <input>:1:`` exactly and then require "undeclared reference to 'foo".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from compass_auth.authn_config.decode import decode_authenticator
from compass_auth.authn_config.errors import aggregate
from compass_auth.authn_config.model import AuthenticationConfiguration
from compass_auth.authn_config.validation import State, Validator, validate_configuration

UPSTREAM = ("kubernetes/kubernetes", "0ea83df1135d2477e564f66f5a78d82a7b8633df",
            "staging/src/k8s.io/apiserver/pkg/apis/apiserver/validation/validation_test.go")
GATE = "the StructuredAuthenticationConfiguration feature gate is GA here: no disabled mode"
EMAIL_RULE = ("claims.email_verified must be used in claimMappings.username.expression or "
              "claimMappings.extra[*].valueExpression or claimValidationRules[*].expression "
              "when claims.email is used in claimMappings.username.expression")
#: Stands for cel-go's compile error of ``foo.bar`` (see the module docstring).
FOO_BAR = "<compile error of foo.bar>"


@dataclass
class Case:
    name: str
    given: Any = None
    want: str = ""
    skip: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def errors_match(got: str, want: str) -> bool:
    if FOO_BAR not in want:
        return got == want
    head, _, tail = want.partition(FOO_BAR)
    pattern = (re.escape(head) + r"compilation failed: ERROR: <input>:1:\d+: undeclared "
               r"reference to 'foo[^']*' \(in container ''\)\n \| foo\.bar\n \| \.*\^"
               + re.escape(tail))
    return re.fullmatch(pattern, got) is not None


def jwt(url: str = "https://issuer-url", **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"issuer": {"url": url, "audiences": ["audience"]},
                             "claimValidationRules": [{"claim": "foo", "requiredValue": "bar"}],
                             "claimMappings": {"username": {"claim": "sub", "prefix": "prefix"}}}
    entry.update(fields)
    return entry


def username_expression(text: str, **more: Any) -> dict[str, Any]:
    return {"claimMappings": {"username": {"expression": text}, **more}}


def email_error(expression: str) -> str:
    from compass_auth.authn_config.errors import go_quote

    return (f"jwt[0].claimMappings.username.expression: Invalid value: {go_quote(expression)}: "
            + EMAIL_RULE)


# --- TestValidateAuthenticationConfiguration ----------------------------------------------------

CONFIGURATIONS = [
    Case("jwt authenticator is empty", []),
    Case("duplicate issuer across jwt authenticators", [jwt(), jwt()],
         'jwt[1].issuer.url: Duplicate value: "https://issuer-url"'),
    Case("duplicate discoveryURL across jwt authenticators", [
        jwt(issuer={"url": "https://issuer-url", "audiences": ["audience"],
                    "discoveryURL": "https://discovery-url/.well-known/openid-configuration"}),
        jwt(issuer={"url": "https://different-issuer-url", "audiences": ["audience"],
                    "discoveryURL": "https://discovery-url/.well-known/openid-configuration"})],
         'jwt[1].issuer.discoveryURL: Duplicate value: '
         '"https://discovery-url/.well-known/openid-configuration"'),
    Case("failed issuer validation",
         [jwt("invalid-url", claimValidationRules=[],
              claimMappings={"username": {"claim": "claim", "prefix": "prefix"}})],
         'jwt[0].issuer.url: Invalid value: "invalid-url": URL scheme must be https'),
    Case("failed claimValidationRule validation",
         [jwt(claimValidationRules=[{"claim": "foo", "requiredValue": "bar"},
                                    {"claim": "foo", "requiredValue": "baz"}])],
         'jwt[0].claimValidationRules[1].claim: Duplicate value: "foo"'),
    Case("failed claimMapping validation", [jwt(claimMappings={"username": {"prefix": "prefix"}})],
         "jwt[0].claimMappings.username: Required value: claim or expression is required"),
    Case("failed userValidationRule validation",
         [jwt(userValidationRules=[{"expression": "user.username == 'foo'"},
                                   {"expression": "user.username == 'foo'"}])],
         "jwt[0].userValidationRules[1].expression: Duplicate value: \"user.username == 'foo'\""),
    Case("valid authentication configuration with disallowed issuer", [jwt()],
         'jwt[0].issuer.url: Invalid value: "https://issuer-url": URL must not overlap with '
         "disallowed issuers: [a b c https://issuer-url]",
         extra={"disallowed": ["a", "b", "https://issuer-url", "c"]}),
    Case("valid authentication configuration that uses unverified email",
         [jwt(**username_expression("claims.email"))], email_error("claims.email")),
    Case("valid authentication configuration that almost uses unverified email",
         [jwt(**username_expression("claims.email_"))]),
    Case("valid authentication configuration that uses unverified email join",
         [jwt(**username_expression("['yay', string(claims.email), 'panda'].join(' ')"))],
         email_error("['yay', string(claims.email), 'panda'].join(' ')")),
    Case("valid authentication configuration that uses unverified optional email",
         [jwt(**username_expression("claims.?email"))], email_error("claims.?email")),
    Case("valid authentication configuration that uses unverified optional map email key",
         [jwt(**username_expression('{claims.?email: "panda"}'))],
         email_error('{claims.?email: "panda"}')),
    Case("valid authentication configuration that uses unverified optional map email value",
         [jwt(**username_expression('{"fancy": claims.?email}'))],
         email_error('{"fancy": claims.?email}')),
    Case("valid authentication configuration that uses unverified email value in list iteration",
         [jwt(**username_expression('["a"].map(i, i + claims.email)'))],
         email_error('["a"].map(i, i + claims.email)')),
    Case("valid authentication configuration that uses verified email join via rule",
         [jwt(claimValidationRules=[{"expression": 'string(claims.email_verified) == "panda"'}],
              **username_expression("['yay', string(claims.email), 'panda'].join(' ')"))]),
    Case("valid authentication configuration that uses verified email join via extra",
         [jwt(**username_expression(
             "['yay', string(claims.email), 'panda'].join(' ')",
             extra=[{"key": "panda.io/foo",
                     "valueExpression": "claims.email_verified.upperAscii()"}]))]),
    Case("valid authentication configuration that uses verified email join via extra optional",
         [jwt(**username_expression(
             "['yay', string(claims.email), 'panda'].join(' ')",
             extra=[{"key": "panda.io/foo", "valueExpression": "claims.?email_verified"}]))]),
    Case("valid authentication configuration that uses email and email_verified || true via "
         "username", [jwt(**username_expression(
             "claims.?email_verified.orValue(true) ? claims.email : claims.sub"))]),
    Case("valid authentication configuration that uses email and email_verified || false via "
         "username", [jwt(**username_expression(
             "claims.?email_verified.orValue(false) ? claims.email : claims.sub"))]),
    Case("valid authentication configuration", [jwt()]),
]


@pytest.mark.parametrize("case", CONFIGURATIONS, ids=lambda case: case.name)
def test_validate_authentication_configuration(case: Case) -> None:
    entries = []
    for index, entry in enumerate(case.given):
        spec, errors = decode_authenticator(entry, f"jwt[{index}]")
        assert errors == []
        entries.append(spec)
    _, errors = validate_configuration(AuthenticationConfiguration(jwt=tuple(entries)),
                                       case.extra.get("disallowed", ()))
    assert (aggregate(errors) if errors else "") == case.want


# --- the per-function tables ----------------------------------------------------------------------

ISSUER_URLS = [
    Case("url is empty", "", "issuer.url: Required value: URL is required"),
    Case("url parse error", "https://issuer-url:invalid-port",
         'issuer.url: Invalid value: "https://issuer-url:invalid-port": parse '
         '"https://issuer-url:invalid-port": invalid port ":invalid-port" after host'),
    Case("url is not https", "http://issuer-url",
         'issuer.url: Invalid value: "http://issuer-url": URL scheme must be https'),
    Case("url user info is not allowed", "https://user:pass@issuer-url",
         'issuer.url: Invalid value: "https://user:pass@issuer-url": URL must not contain a '
         "username or password"),
    Case("url raw query is not allowed", "https://issuer-url?query",
         'issuer.url: Invalid value: "https://issuer-url?query": URL must not contain a query'),
    Case("url fragment is not allowed", "https://issuer-url#fragment",
         'issuer.url: Invalid value: "https://issuer-url#fragment": URL must not contain a '
         "fragment"),
    Case("valid url that is disallowed", "https://issuer-url",
         'issuer.url: Invalid value: "https://issuer-url": URL must not overlap with disallowed '
         "issuers: [https://issuer-url]", extra={"disallowed": ["https://issuer-url"]}),
    Case("valid url", "https://issuer-url"),
]

SVC = "https://oidc.oidc-namespace.svc"
DISCOVERY_URLS = [
    Case("url is empty", ""),
    Case("url parse error", SVC + ":invalid-port",
         f'issuer.discoveryURL: Invalid value: "{SVC}:invalid-port": parse "{SVC}:invalid-port":'
         ' invalid port ":invalid-port" after host'),
    Case("url is not https", "http://oidc.oidc-namespace.svc",
         'issuer.discoveryURL: Invalid value: "http://oidc.oidc-namespace.svc": URL scheme must '
         "be https"),
    Case("url user info is not allowed", "https://user:pass@oidc.oidc-namespace.svc",
         'issuer.discoveryURL: Invalid value: "https://user:pass@oidc.oidc-namespace.svc": URL '
         "must not contain a username or password"),
    Case("url raw query is not allowed", SVC + "?query",
         f'issuer.discoveryURL: Invalid value: "{SVC}?query": URL must not contain a query'),
    Case("url fragment is not allowed", SVC + "#fragment",
         f'issuer.discoveryURL: Invalid value: "{SVC}#fragment": URL must not contain a '
         "fragment"),
    Case("valid url", SVC),
    Case("valid url with path", SVC + "/path"),
    Case("discovery url same as issuer url", "https://issuer-url",
         'issuer.discoveryURL: Invalid value: "https://issuer-url": discoveryURL must be '
         "different from URL", extra={"issuer": "https://issuer-url"}),
    Case("discovery url same as issuer url, with trailing slash", "https://issuer-url/",
         'issuer.discoveryURL: Invalid value: "https://issuer-url/": discoveryURL must be '
         "different from URL", extra={"issuer": "https://issuer-url"}),
    Case("discovery url same as issuer url, with multiple trailing slashes",
         "https://issuer-url///",
         'issuer.discoveryURL: Invalid value: "https://issuer-url///": discoveryURL must be '
         "different from URL", extra={"issuer": "https://issuer-url"}),
    Case("discovery url same as issuer url, issuer url with trailing slash", "https://issuer-url",
         'issuer.discoveryURL: Invalid value: "https://issuer-url": discoveryURL must be '
         "different from URL", extra={"issuer": "https://issuer-url/"}),
]

AUDIENCES = [
    Case("audiences is empty", [],
         "issuer.audiences: Required value: at least one issuer.audiences is required"),
    Case("audience is empty", [""], "issuer.audiences[0]: Required value: audience can't be empty"),
    Case("invalid match policy with single audience", ["audience"],
         'issuer.audienceMatchPolicy: Invalid value: "MatchExact": audienceMatchPolicy must be '
         "empty or MatchAny for single audience", extra={"policy": "MatchExact"}),
    Case("valid audience", ["audience"]),
    Case("valid audience with MatchAny policy", ["audience"], extra={"policy": "MatchAny"}),
    Case("duplicate audience", ["audience", "audience"],
         'issuer.audiences[1]: Duplicate value: "audience"', extra={"policy": "MatchAny"}),
    Case("match policy not set with multiple audiences", ["audience1", "audience2"],
         'issuer.audienceMatchPolicy: Invalid value: "": audienceMatchPolicy must be MatchAny '
         "for multiple audiences"),
    Case("valid multiple audiences", ["audience1", "audience2"], extra={"policy": "MatchAny"}),
]


def self_signed_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


CERTIFICATE_AUTHORITIES = [
    Case("invalid certificate authority", "invalid",
         'issuer.certificateAuthority: Invalid value: "<omitted>": data does not contain any '
         "valid RSA or ECDSA certificates"),
    Case("certificate authority is empty", ""),
    Case("valid certificate authority", "<generated>"),
]


@pytest.mark.parametrize("case", ISSUER_URLS, ids=lambda case: case.name)
def test_validate_issuer_url(case: Case) -> None:
    validator = Validator()
    validator.issuer_url(case.given, "issuer.url", frozenset(case.extra.get("disallowed", ())))
    assert (aggregate(validator.errors) if validator.errors else "") == case.want


@pytest.mark.parametrize("case", DISCOVERY_URLS, ids=lambda case: case.name)
def test_validate_issuer_discovery_url(case: Case) -> None:
    validator = Validator()
    validator.discovery_url(case.extra.get("issuer", ""), case.given, "issuer.discoveryURL")
    assert (aggregate(validator.errors) if validator.errors else "") == case.want


@pytest.mark.parametrize("case", AUDIENCES, ids=lambda case: case.name)
def test_validate_audiences(case: Case) -> None:
    validator = Validator()
    validator.audiences(tuple(case.given), case.extra.get("policy", ""), "issuer.audiences",
                        "issuer.audienceMatchPolicy")
    assert (aggregate(validator.errors) if validator.errors else "") == case.want


@pytest.mark.parametrize("case", CERTIFICATE_AUTHORITIES, ids=lambda case: case.name)
def test_validate_certificate_authority(case: Case) -> None:
    bundle = self_signed_ca() if case.given == "<generated>" else case.given
    validator = Validator()
    validator.certificate_authority(bundle, "issuer.certificateAuthority")
    assert (aggregate(validator.errors) if validator.errors else "") == case.want


# --- claim validation rules, claim mappings, user validation rules --------------------------------

CLAIM_RULES = [
    Case("claim and expression are empty, structured authn feature enabled", [{}],
         "issuer.claimValidationRules[0]: Required value: claim or expression is required"),
    Case("claim and expression are set", [{"claim": "claim", "expression": "expression"}],
         'issuer.claimValidationRules[0]: Invalid value: "claim": claim and expression can\'t '
         "both be set"),
    Case("message set when claim is set", [{"claim": "claim", "message": "message"}],
         'issuer.claimValidationRules[0].message: Invalid value: "message": message can\'t be '
         "set when claim is set"),
    Case("requiredValue set when expression is set",
         [{"expression": "claims.foo == 'bar'", "requiredValue": "value"}],
         'issuer.claimValidationRules[0].requiredValue: Invalid value: "value": requiredValue '
         "can't be set when expression is set"),
    Case("duplicate claim", [{"claim": "claim"}, {"claim": "claim"}],
         'issuer.claimValidationRules[1].claim: Duplicate value: "claim"'),
    Case("duplicate expression", [{"expression": "claims.foo == 'bar'"},
                                  {"expression": "claims.foo == 'bar'"}],
         "issuer.claimValidationRules[1].expression: Duplicate value: \"claims.foo == 'bar'\""),
    Case("expression set when structured authn feature is disabled", skip=GATE),
    Case("CEL expression compilation error", [{"expression": "foo.bar"}],
         'issuer.claimValidationRules[0].expression: Invalid value: "foo.bar": ' + FOO_BAR),
    Case("expression does not evaluate to bool", [{"expression": "claims.foo"}],
         'issuer.claimValidationRules[0].expression: Invalid value: "claims.foo": must '
         "evaluate to bool"),
    Case("valid claim validation rule with expression", [{"expression": "claims.foo == 'bar'"}],
         extra={"compiled": 1}),
    Case("valid claim validation rule with multiple rules and email_verified check",
         [{"claim": "claim1", "requiredValue": "value1"},
          {"claim": "claim2", "requiredValue": "value2"},
          {"expression": "has(claims.email_verified)"}], extra={"email_verified": True}),
    Case("valid claim validation rule with multiple rules and almost email_verified check",
         [{"claim": "claim1", "requiredValue": "value1"},
          {"claim": "claim2", "requiredValue": "value2"},
          {"expression": "has(claims.email_verified_)"}], extra={"email_verified": False}),
    Case("valid claim validation rule with multiple rules",
         [{"claim": "claim1", "requiredValue": "value1"},
          {"claim": "claim2", "requiredValue": "claims.email_verified"}],
         extra={"email_verified": False}),
]

CLAIM = {"claim": "claim", "prefix": "prefix"}
EXPRESSIONS = {"username": {"expression": "claims.username"},
               "groups": {"expression": "claims.groups"}}
MAPPING_EMAIL = ("issuer.claimMappings.username.expression: Invalid value: {}: " + EMAIL_RULE)


def mapped(username: str, extra: str = "claims.extra") -> dict[str, Any]:
    return {"username": {"expression": username}, "groups": {"expression": "claims.groups"},
            "uid": {"expression": "claims.uid"},
            "extra": [{"key": "example.org/foo", "valueExpression": extra}]}


CLAIM_MAPPINGS = [
    Case("username expression and claim are set",
         {"username": {"claim": "claim", "expression": "claims.username"}},
         'issuer.claimMappings.username: Invalid value: "": claim and expression can\'t both '
         "be set"),
    Case("username expression and claim are empty", {"username": {}},
         "issuer.claimMappings.username: Required value: claim or expression is required"),
    Case("username prefix set when expression is set",
         {"username": {"expression": "claims.username", "prefix": "prefix"}},
         'issuer.claimMappings.username.prefix: Invalid value: "prefix": prefix can\'t be set '
         "when expression is set"),
    Case("username prefix is nil when claim is set", {"username": {"claim": "claim"}},
         "issuer.claimMappings.username.prefix: Required value: prefix is required when claim "
         "is set. It can be set to an empty string to disable prefixing"),
    Case("username expression is invalid", {"username": {"expression": "foo.bar"}},
         'issuer.claimMappings.username.expression: Invalid value: "foo.bar": ' + FOO_BAR),
    Case("groups expression and claim are set",
         {"username": CLAIM, "groups": {"claim": "claim", "expression": "claims.groups"}},
         'issuer.claimMappings.groups: Invalid value: "": claim and expression can\'t both be '
         "set"),
    Case("groups prefix set when expression is set",
         {"username": CLAIM, "groups": {"expression": "claims.groups", "prefix": "prefix"}},
         'issuer.claimMappings.groups.prefix: Invalid value: "prefix": prefix can\'t be set '
         "when expression is set"),
    Case("groups prefix is nil when claim is set",
         {"username": CLAIM, "groups": {"claim": "claim"}},
         "issuer.claimMappings.groups.prefix: Required value: prefix is required when claim is "
         "set. It can be set to an empty string to disable prefixing"),
    Case("groups expression is invalid", {"username": CLAIM, "groups": {"expression": "foo.bar"}},
         'issuer.claimMappings.groups.expression: Invalid value: "foo.bar": ' + FOO_BAR),
    Case("uid claim and expression are set",
         {"username": CLAIM, "uid": {"claim": "claim", "expression": "claims.uid"}},
         'issuer.claimMappings.uid: Invalid value: "": claim and expression can\'t both be set'),
    Case("uid expression is invalid", {"username": CLAIM, "uid": {"expression": "foo.bar"}},
         'issuer.claimMappings.uid.expression: Invalid value: "foo.bar": ' + FOO_BAR),
    Case("extra mapping key is empty",
         {"username": CLAIM, "extra": [{"key": "", "valueExpression": "claims.extra"}]},
         "issuer.claimMappings.extra[0].key: Required value"),
    Case("extra mapping value expression is empty",
         {"username": CLAIM, "extra": [{"key": "example.org/foo", "valueExpression": ""}]},
         "issuer.claimMappings.extra[0].valueExpression: Required value: valueExpression is "
         "required"),
    Case("extra mapping value expression is invalid",
         {"username": CLAIM, "extra": [{"key": "example.org/foo", "valueExpression": "foo.bar"}]},
         'issuer.claimMappings.extra[0].valueExpression: Invalid value: "foo.bar": ' + FOO_BAR),
    Case("username expression is invalid when structured authn feature is disabled", skip=GATE),
    Case("groups expression is invalid when structured authn feature is disabled", skip=GATE),
    Case("uid expression is invalid when structured authn feature is disabled", skip=GATE),
    Case("uid claim is invalid when structured authn feature is disabled", skip=GATE),
    Case("extra mapping is invalid when structured authn feature is disabled", skip=GATE),
    Case("duplicate extra mapping key",
         {**EXPRESSIONS, "extra": [{"key": "example.org/foo", "valueExpression": "claims.extra"},
                                   {"key": "example.org/foo", "valueExpression": "claims.extras"}]},
         'issuer.claimMappings.extra[1].key: Duplicate value: "example.org/foo"'),
    Case("extra mapping key is not domain prefix path",
         {**EXPRESSIONS, "extra": [{"key": "foo", "valueExpression": "claims.extra"}]},
         'issuer.claimMappings.extra[0].key: Invalid value: "foo": must be a domain-prefixed '
         'path (such as "acme.io/foo")'),
    Case("extra mapping key is not lower case",
         {**EXPRESSIONS, "extra": [{"key": "example.org/Foo", "valueExpression": "claims.extra"}]},
         'issuer.claimMappings.extra[0].key: Invalid value: "example.org/Foo": key must be '
         "lowercase"),
    Case("valid claim mappings but uses email without verification", mapped("claims.email"),
         MAPPING_EMAIL.format('"claims.email"')),
    Case("valid claim mappings but uses email in complex CEL expression without verification",
         mapped("has(claims.email) ? claims.email : claims.sub"),
         MAPPING_EMAIL.format('"has(claims.email) ? claims.email : claims.sub"')),
    Case("valid claim mappings but uses email in CEL expression function without verification",
         mapped("claims.email.trim()"), MAPPING_EMAIL.format('"claims.email.trim()"')),
    Case("valid claim mappings and uses email with verification via extra",
         mapped("claims.email", "claims.email_verified")),
    Case("valid claim mappings and uses email with verification via extra optional",
         mapped("claims.email",
                'has(claims.email_verified) ? string(claims.email_verified) : "false"')),
    Case("valid claim mappings and almost uses email with verification via extra optional",
         mapped("claims.email",
                'has(claims.email_verified_) ? string(claims.email_verified_) : "false"'),
         MAPPING_EMAIL.format('"claims.email"')),
    Case("valid claim mappings and uses email with verification via hasVerifiedEmail",
         mapped("claims.email"), extra={"email_verified": True}),
    Case("valid claim mappings that almost use claims.email", mapped("claims.email_")),
    Case("valid claim mappings that almost use claims.email via nesting",
         mapped("claims.other.claims.email")),
    Case("valid claim mappings", mapped("claims.username")),
]

USER_RULES = [
    Case("user info validation rule, expression is empty", [{}],
         "issuer.userValidationRules[0].expression: Required value: expression is required"),
    Case("duplicate expression", [{"expression": "user.username == 'foo'"},
                                  {"expression": "user.username == 'foo'"}],
         "issuer.userValidationRules[1].expression: Duplicate value: \"user.username == 'foo'\""),
    Case("user validation rule is invalid when structured authn feature is disabled", skip=GATE),
    Case("expression is invalid", [{"expression": "foo.bar"}],
         'issuer.userValidationRules[0].expression: Invalid value: "foo.bar": ' + FOO_BAR),
    Case("expression does not return bool", [{"expression": "user.username"}],
         'issuer.userValidationRules[0].expression: Invalid value: "user.username": must '
         "evaluate to bool"),
    Case("valid user info validation rule",
         [{"expression": "user.username == 'foo'"},
          {"expression": "!user.username.startsWith('system:')",
           "message": "username cannot used reserved system: prefix"}], extra={"compiled": 2}),
]


def entry_parts(**fields: Any) -> Any:
    spec, errors = decode_authenticator(fields, "jwt[0]")
    assert errors == []
    return spec


@pytest.mark.parametrize("case", [c for c in CLAIM_RULES if not c.skip], ids=lambda c: c.name)
def test_validate_claim_validation_rules(case: Case) -> None:
    spec = entry_parts(claimValidationRules=case.given)
    validator, state = Validator(), State()
    compiled = validator.claim_rules(spec.claim_validation_rules, "issuer.claimValidationRules",
                                     state)
    got = aggregate(validator.errors) if validator.errors else ""
    assert errors_match(got, case.want), got
    if "compiled" in case.extra:
        assert len(compiled) == case.extra["compiled"]
    if "email_verified" in case.extra:
        assert state.uses_email_verified is case.extra["email_verified"]


@pytest.mark.parametrize("case", [c for c in CLAIM_MAPPINGS if not c.skip], ids=lambda c: c.name)
def test_validate_claim_mappings(case: Case) -> None:
    spec = entry_parts(claimMappings=case.given)
    validator, state = Validator(), State()
    state.uses_email_verified = case.extra.get("email_verified", False)
    result = validator.claim_mappings(spec.claim_mappings, "issuer.claimMappings", state)
    got = aggregate(validator.errors) if validator.errors else ""
    assert errors_match(got, case.want), got
    if not case.want:  # upstream's wantCELMapper: every expression given was compiled
        mappings = spec.claim_mappings
        assert (result.username is not None) == bool(mappings.username.expression)
        assert (result.groups is not None) == bool(mappings.groups.expression)
        assert (result.uid is not None) == bool(mappings.uid.expression)
        assert len(result.extra) == len(mappings.extra)


@pytest.mark.parametrize("case", [c for c in USER_RULES if not c.skip], ids=lambda c: c.name)
def test_validate_user_validation_rules(case: Case) -> None:
    spec = entry_parts(userValidationRules=case.given)
    validator = Validator()
    compiled = validator.user_rules(spec.user_validation_rules, "issuer.userValidationRules")
    got = aggregate(validator.errors) if validator.errors else ""
    assert errors_match(got, case.want), got
    if "compiled" in case.extra:
        assert len(compiled) == case.extra["compiled"]


TABLES = {
    "TestValidateAuthenticationConfiguration": CONFIGURATIONS,
    "TestValidateIssuerURL": ISSUER_URLS,
    "TestValidateIssuerDiscoveryURL": DISCOVERY_URLS,
    "TestValidateAudiences": AUDIENCES,
    "TestValidateCertificateAuthority": CERTIFICATE_AUTHORITIES,
    "TestValidateClaimValidationRules": CLAIM_RULES,
    "TestValidateClaimMappings": CLAIM_MAPPINGS,
    "TestValidateUserValidationRules": USER_RULES,
}


def test_counts_per_table() -> None:
    """(ported, not applicable) per upstream table, as the report states them."""
    counts = {name: (sum(not case.skip for case in cases), sum(bool(case.skip) for case in cases))
              for name, cases in TABLES.items()}
    assert counts == {
        "TestValidateAuthenticationConfiguration": (21, 0),
        "TestValidateIssuerURL": (8, 0),
        "TestValidateIssuerDiscoveryURL": (12, 0),
        "TestValidateAudiences": (8, 0),
        "TestValidateCertificateAuthority": (3, 0),
        "TestValidateClaimValidationRules": (12, 1),
        "TestValidateClaimMappings": (27, 5),
        "TestValidateUserValidationRules": (5, 1),
    }
