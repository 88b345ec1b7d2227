"""kube-apiserver's start-up validation of an AuthenticationConfiguration, rule for rule, with
its messages (``staging/src/k8s.io/apiserver/pkg/apis/apiserver/validation/validation.go``; the
wording follows the upstream test table ported in tests/test_authn_config_upstream_validation.py).

Validation also compiles the CEL expressions, as upstream does
(``CompileAndValidateJWTAuthenticator`` returns the compiled mapper): a file that validates is
ready to use. One difference is stated where it applies: the "claims.email needs
claims.email_verified" rule looks for ``claims.email`` and ``claims.?email`` in the expression's
text (string literals removed) where upstream walks the checked AST; both see selections of the
``claims`` variable, not ``claims['email']``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from cryptography import x509

from . import expressions
from .errors import FieldError
from .keys import extra_key_errors
from .model import (
    MATCH_ANY,
    AuthenticationConfiguration,
    ClaimMappings,
    ClaimValidationRule,
    Issuer,
    JWTAuthenticator,
    PrefixedClaimOrExpression,
    UserValidationRule,
)
from .urls import url_errors

#: Upstream's limit on ``jwt`` authenticators.
MAX_AUTHENTICATORS = 64
_EMAIL_RULE = (
    "claims.email_verified must be used in claimMappings.username.expression or "
    "claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when "
    "claims.email is used in claimMappings.username.expression")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A CEL validation rule: true lets the token through, false refuses it with ``message``."""

    program: expressions.Program
    message: str


@dataclass(frozen=True, slots=True)
class CompiledAuthenticator:
    """One ``jwt`` entry with its expressions compiled (``None``: that part uses a claim or is
    not configured)."""

    spec: JWTAuthenticator
    claim_rules: tuple[CompiledRule, ...] = ()
    username: expressions.Program | None = None
    groups: expressions.Program | None = None
    uid: expressions.Program | None = None
    extra: tuple[tuple[str, expressions.Program], ...] = ()
    user_rules: tuple[CompiledRule, ...] = ()

    @property
    def uses_claims_expressions(self) -> bool:
        return bool(self.claim_rules or self.username or self.groups or self.uid or self.extra)


class Mapped(NamedTuple):
    """The compiled expressions of ``claimMappings``."""

    username: expressions.Program | None
    groups: expressions.Program | None
    uid: expressions.Program | None
    extra: tuple[tuple[str, expressions.Program], ...]


# --- CEL text scanning (the email rule) -----------------------------------------------------

_STRING_LITERAL = re.compile(
    r"""[rRbB]{0,2}('''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""",
    re.DOTALL)


def selects_claim(source: str, claim: str) -> bool:
    """Whether ``source`` selects ``claims.<claim>`` or ``claims.?<claim>`` (upstream's
    ``hasSelectExp(ast, "claims", claim)``); text inside string literals does not count."""
    code = _STRING_LITERAL.sub('""', source)
    return re.search(rf"(?<![\w.])claims\s*\.\s*\??\s*{re.escape(claim)}(?!\w)", code) is not None


# --- the validator ----------------------------------------------------------------------------


class State:
    """What one authenticator's expressions use (upstream's ``validationState``)."""

    def __init__(self) -> None:
        self.uses_email = False
        self.uses_email_verified = False


class Validator:
    """Collects the errors of the checks it runs (one method per upstream function, so the
    upstream tables can test each)."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def compile(self, source: str, variable: str, path: str, *,
                boolean: bool) -> expressions.Program | None:
        try:
            return expressions.compile_expression(source, variable, boolean=boolean)
        except expressions.CelUnavailable as error:
            self.errors.append(FieldError(path, "Invalid", str(error), source))
        except expressions.CompileError as error:
            self.errors.append(FieldError(path, "Invalid", str(error), source))
        return None

    # issuer -----------------------------------------------------------------------------------

    def issuer(self, issuer: Issuer, path: str, disallowed: frozenset[str]) -> None:
        self.issuer_url(issuer.url, f"{path}.url", disallowed)
        self.discovery_url(issuer.url, issuer.discovery_url, f"{path}.discoveryURL")
        self.audiences(issuer.audiences, issuer.audience_match_policy, f"{path}.audiences",
                       f"{path}.audienceMatchPolicy")
        self.certificate_authority(issuer.certificate_authority, f"{path}.certificateAuthority")

    def issuer_url(self, url: str, path: str, disallowed: frozenset[str] = frozenset()) -> None:
        if not url:
            self.errors.append(FieldError(path, "Required", "URL is required"))
        else:
            self.errors += url_errors(url, path, disallowed)

    def discovery_url(self, url: str, discovery_url: str, path: str) -> None:
        if not discovery_url:
            return
        if url and url.rstrip("/") == discovery_url.rstrip("/"):
            self.errors.append(FieldError(path, "Invalid",
                                          "discoveryURL must be different from URL",
                                          discovery_url))
        # Not an issuer: never compared with the disallowed issuers (as upstream).
        self.errors += url_errors(discovery_url, path)

    def audiences(self, audiences: tuple[str, ...], policy: str, path: str,
                  policy_path: str) -> None:
        if not audiences:
            self.errors.append(FieldError(path, "Required", f"at least one {path} is required"))
            return
        seen: set[str] = set()
        for index, audience in enumerate(audiences):
            where = f"{path}[{index}]"
            if not audience:
                self.errors.append(FieldError(where, "Required", "audience can't be empty"))
            if audience in seen:
                self.errors.append(FieldError(where, "Duplicate", value=audience))
            seen.add(audience)
        if len(audiences) > 1 and policy != MATCH_ANY:
            self.errors.append(FieldError(policy_path, "Invalid", "audienceMatchPolicy must be "
                                          "MatchAny for multiple audiences", policy))
        if len(audiences) == 1 and policy and policy != MATCH_ANY:
            self.errors.append(FieldError(policy_path, "Invalid", "audienceMatchPolicy must be "
                                          "empty or MatchAny for single audience", policy))

    def certificate_authority(self, bundle: str, path: str) -> None:
        if not bundle:
            return
        try:
            x509.load_pem_x509_certificates(bundle.encode())
        except ValueError:
            self.errors.append(FieldError(
                path, "Invalid", "data does not contain any valid RSA or ECDSA certificates",
                "<omitted>"))

    # claim validation rules -------------------------------------------------------------------

    def claim_rules(self, rules: Iterable[ClaimValidationRule], path: str,
                    state: State) -> tuple[CompiledRule, ...]:
        compiled: list[CompiledRule] = []
        seen_claims: set[str] = set()
        seen_expressions: set[str] = set()
        for index, rule in enumerate(rules):
            where = f"{path}[{index}]"
            if rule.claim and rule.expression:
                self.errors.append(FieldError(where, "Invalid",
                                              "claim and expression can't both be set",
                                              rule.claim))
            elif not rule.claim and not rule.expression:
                self.errors.append(FieldError(where, "Required",
                                              "claim or expression is required"))
            elif rule.claim:
                if rule.message:
                    self.errors.append(FieldError(f"{where}.message", "Invalid",
                                                  "message can't be set when claim is set",
                                                  rule.message))
                if rule.claim in seen_claims:
                    self.errors.append(FieldError(f"{where}.claim", "Duplicate",
                                                  value=rule.claim))
                seen_claims.add(rule.claim)
            else:
                if rule.required_value:
                    self.errors.append(FieldError(
                        f"{where}.requiredValue", "Invalid",
                        "requiredValue can't be set when expression is set",
                        rule.required_value))
                if rule.expression in seen_expressions:
                    self.errors.append(FieldError(f"{where}.expression", "Duplicate",
                                                  value=rule.expression))
                    continue
                seen_expressions.add(rule.expression)
                program = self.compile(rule.expression, "claims", f"{where}.expression",
                                       boolean=True)
                if program is not None:
                    compiled.append(CompiledRule(program, rule.message))
                    state.uses_email_verified |= selects_claim(rule.expression, "email_verified")
        return tuple(compiled)

    # claim mappings ---------------------------------------------------------------------------

    def prefixed(self, mapping: PrefixedClaimOrExpression, path: str, *,
                 required: bool) -> expressions.Program | None:
        if mapping.expression and mapping.claim:
            self.errors.append(FieldError(path, "Invalid",
                                          "claim and expression can't both be set", ""))
        elif not mapping.expression and not mapping.claim and required:
            self.errors.append(FieldError(path, "Required", "claim or expression is required"))
        elif mapping.expression:
            if mapping.prefix is not None:
                self.errors.append(FieldError(f"{path}.prefix", "Invalid",
                                              "prefix can't be set when expression is set",
                                              mapping.prefix))
            return self.compile(mapping.expression, "claims", f"{path}.expression",
                                boolean=False)
        elif mapping.claim and mapping.prefix is None:
            self.errors.append(FieldError(
                f"{path}.prefix", "Required",
                "prefix is required when claim is set. It can be set to an empty string to "
                "disable prefixing"))
        return None

    def claim_mappings(self, mappings: ClaimMappings, path: str, state: State) -> Mapped:
        username = self.prefixed(mappings.username, f"{path}.username", required=True)
        if username is not None:
            state.uses_email |= selects_claim(username.source, "email")
            state.uses_email_verified |= selects_claim(username.source, "email_verified")
        groups = self.prefixed(mappings.groups, f"{path}.groups", required=False)
        uid = None
        if mappings.uid.claim and mappings.uid.expression:
            self.errors.append(FieldError(f"{path}.uid", "Invalid",
                                          "claim and expression can't both be set", ""))
        elif mappings.uid.expression:
            uid = self.compile(mappings.uid.expression, "claims", f"{path}.uid.expression",
                               boolean=False)
        extra: list[tuple[str, expressions.Program]] = []
        seen_keys: set[str] = set()
        for index, mapping in enumerate(mappings.extra):
            where = f"{path}.extra[{index}]"
            self.errors += extra_key_errors(mapping.key, f"{where}.key")
            if mapping.key in seen_keys:
                self.errors.append(FieldError(f"{where}.key", "Duplicate", value=mapping.key))
                continue
            seen_keys.add(mapping.key)
            if not mapping.value_expression:
                self.errors.append(FieldError(f"{where}.valueExpression", "Required",
                                              "valueExpression is required"))
                continue
            program = self.compile(mapping.value_expression, "claims",
                                   f"{where}.valueExpression", boolean=False)
            if program is not None:
                extra.append((mapping.key, program))
                state.uses_email_verified |= selects_claim(mapping.value_expression,
                                                           "email_verified")
        if state.uses_email and not state.uses_email_verified:
            self.errors.append(FieldError(f"{path}.username.expression", "Invalid", _EMAIL_RULE,
                                          mappings.username.expression))
        return Mapped(username, groups, uid, tuple(extra))

    # user validation rules --------------------------------------------------------------------

    def user_rules(self, rules: Iterable[UserValidationRule],
                   path: str) -> tuple[CompiledRule, ...]:
        compiled: list[CompiledRule] = []
        seen: set[str] = set()
        for index, rule in enumerate(rules):
            where = f"{path}[{index}].expression"
            if not rule.expression:
                self.errors.append(FieldError(where, "Required", "expression is required"))
                continue
            if rule.expression in seen:
                self.errors.append(FieldError(where, "Duplicate", value=rule.expression))
                continue
            seen.add(rule.expression)
            program = self.compile(rule.expression, "user", where, boolean=True)
            if program is not None:
                compiled.append(CompiledRule(program, rule.message))
        return tuple(compiled)

    def authenticator(self, spec: JWTAuthenticator, path: str,
                      disallowed: frozenset[str]) -> CompiledAuthenticator:
        def at(name: str) -> str:
            return f"{path}.{name}" if path else name

        state = State()
        self.issuer(spec.issuer, at("issuer"), disallowed)
        claim_rules = self.claim_rules(spec.claim_validation_rules, at("claimValidationRules"),
                                       state)
        mapped = self.claim_mappings(spec.claim_mappings, at("claimMappings"), state)
        user_rules = self.user_rules(spec.user_validation_rules, at("userValidationRules"))
        return CompiledAuthenticator(spec, claim_rules, mapped.username, mapped.groups,
                                     mapped.uid, mapped.extra, user_rules)


def validate_authenticator(spec: JWTAuthenticator, disallowed_issuers: Iterable[str] = ()
                           ) -> tuple[CompiledAuthenticator, list[FieldError]]:
    """One ``jwt`` entry alone: its compiled form and its errors, with paths from the entry
    (``issuer.url``; upstream's ``CompileAndValidateJWTAuthenticator``)."""
    validator = Validator()
    compiled = validator.authenticator(spec, "", frozenset(disallowed_issuers))
    return compiled, validator.errors


def validate_configuration(configuration: AuthenticationConfiguration,
                           disallowed_issuers: Iterable[str] = ()) -> tuple[
                               tuple[CompiledAuthenticator, ...], list[FieldError]]:
    """Every ``jwt`` authenticator, compiled, and every error (upstream's
    ``ValidateAuthenticationConfiguration``). ``disallowed_issuers``: the issuers no entry may
    name, above all the cluster's own service-account issuer (kube-apiserver passes its
    ``--service-account-issuer`` values), whose tokens the service-account path verifies."""
    disallowed = frozenset(disallowed_issuers)
    if len(configuration.jwt) > MAX_AUTHENTICATORS:
        return (), [FieldError("jwt", "TooMany", f"must have at most {MAX_AUTHENTICATORS} items",
                               len(configuration.jwt))]
    validator = Validator()
    compiled = []
    seen_issuers: set[str] = set()
    seen_discovery: set[str] = set()
    for index, spec in enumerate(configuration.jwt):
        path = f"jwt[{index}]"
        compiled.append(validator.authenticator(spec, path, disallowed))
        if spec.issuer.url in seen_issuers:
            validator.errors.append(FieldError(f"{path}.issuer.url", "Duplicate",
                                               value=spec.issuer.url))
        seen_issuers.add(spec.issuer.url)
        if spec.issuer.discovery_url:
            if spec.issuer.discovery_url in seen_discovery:
                validator.errors.append(FieldError(f"{path}.issuer.discoveryURL", "Duplicate",
                                                   value=spec.issuer.discovery_url))
            seen_discovery.add(spec.issuer.discovery_url)
    return tuple(compiled), validator.errors
