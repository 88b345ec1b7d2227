"""Claims to a user, as kube-apiserver's JWT authenticator does it, as a pure function.

Given claims that were already verified (signature, issuer, audience, time) and one compiled
``jwt`` authenticator: ``claimValidationRules``, then ``claimMappings`` (username, groups, uid,
extra), then ``userValidationRules``. The rules and the error texts follow
``staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc.go``
(``AuthenticateToken``, ``getUsername``, ``getGroups``, ``getUID``, ``getExtra``,
``convertCELValueToStringList``, ``checkValidationRulesEvaluation``). One difference: upstream maps
the claims before it checks ``claimValidationRules``; here the rules run first (issue 22: verify,
validate, map, validate the user), so a token that a rule refuses never reaches a mapping
expression. Both refuse the same tokens; only which message a doubly bad token gets may differ.

Does NOT: verify the token, resolve distributed claims (upstream fetches them over the network
for a ``groups`` claim; not done here), or cache anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import expressions
from .errors import ClaimRejected, UserRejected, go_quote
from .validation import CompiledAuthenticator, CompiledRule


@dataclass(frozen=True, slots=True)
class MappedUser:
    """The user the claims map to (upstream's ``user.DefaultInfo``)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


#: Credential ID in ``extra`` (upstream ``user.CredentialIDKey``): ``JTI=<jti>`` when the token
#: has a string ``jti``, so audit logs can tie requests to one token.
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"


_ABSENT = object()


def _json_type(value: Any) -> str:
    """The JSON type name Go's ``encoding/json`` errors use."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _unmarshal_error(value: Any, target: str) -> str:
    return f"json: cannot unmarshal {_json_type(value)} into Go value of type {target}"


def _claim_text(claims: Mapping[str, Any], name: str, what: str, *, quoted: bool = True) -> str:
    """A claim that must be a JSON string (Go's ``json.Unmarshal`` into a string: ``null``
    leaves it empty)."""
    value = claims.get(name, _ABSENT)
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    shown = go_quote(name) if quoted else name
    if value is _ABSENT:
        raise ClaimRejected(f"oidc: {what} {shown}: claim not present")
    raise ClaimRejected(f"oidc: {what} {shown}: {_unmarshal_error(value, 'string')}")


def _string_list(value: Any) -> tuple[str, ...] | None:
    """``convertCELValueToStringList``: a string or a list of strings; ``""``, ``[]``, null and
    empty strings inside a list count as absent. None: the value has another type."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item for item in value if item)
    return None


class _Claims:
    """The claims and, built on first use, their CEL activation (shared by every expression)."""

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims = claims
        self._activation: expressions.Activation | None = None

    def evaluate(self, program: expressions.Program, context: str) -> Any:
        activation = self._activation
        if activation is None:
            activation = self._activation = expressions.claims_activation(self.claims)
        try:
            try:
                return program.evaluate(activation)
            except expressions.NeedsConversion:
                self._activation = expressions.claims_activation(self.claims, converted=True)
                return program.evaluate(self._activation)
        except expressions.EvaluationError as error:
            raise ClaimRejected(f"oidc: error evaluating {context}: expression "
                                f"'{program.source}' resulted in error: {error}") from None


def _check_result(result: Any, rule: CompiledRule, failure: type[ClaimRejected | UserRejected],
                  context: str) -> None:
    if result is True:
        return
    if not isinstance(result, bool):
        raise failure(f"oidc: error evaluating {context}: validation expression must return a "
                      "boolean")
    raise failure(f"oidc: error evaluating {context}: validation expression "
                  f"'{rule.program.source}' failed: {rule.message}")


def _required_claims(claims: Mapping[str, Any], authenticator: CompiledAuthenticator) -> None:
    for rule in authenticator.spec.claim_validation_rules:
        if not rule.claim:
            continue
        if rule.claim not in claims:
            raise ClaimRejected(f"oidc: required claim {rule.claim} not present in ID token")
        # Only string values are supported as required claim values (upstream's note).
        value = _claim_text(claims, rule.claim, "parse claim", quoted=False)
        if value != rule.required_value:
            raise ClaimRejected(f"oidc: required claim {rule.claim} value does not match. "
                                f"Got = {value}, want = {rule.required_value}")


def _username(scope: _Claims, authenticator: CompiledAuthenticator) -> str:
    if authenticator.username is not None:
        value = scope.evaluate(authenticator.username, "username claim expression")
        if not isinstance(value, str):
            raise ClaimRejected("oidc: error evaluating username claim expression: username "
                                "claim expression must return a string")
        return value
    mapping = authenticator.spec.claim_mappings.username
    username = _claim_text(scope.claims, mapping.claim, "parse username claims")
    if mapping.claim == "email" and "email_verified" in scope.claims:
        # OIDC Core §5.1: an email is the user's only if the provider verified it; a present
        # email_verified must be true (https://openid.net/specs/openid-connect-core-1_0.html).
        verified = scope.claims["email_verified"]
        if verified is not None and not isinstance(verified, bool):
            raise ClaimRejected("oidc: parse 'email_verified' claim: "
                                + _unmarshal_error(verified, "bool"))
        if not verified:
            raise ClaimRejected("oidc: email not verified")
    return (mapping.prefix or "") + username


def _groups(scope: _Claims, authenticator: CompiledAuthenticator) -> tuple[str, ...]:
    mapping = authenticator.spec.claim_mappings.groups
    if mapping.claim:
        if mapping.claim not in scope.claims:
            return ()
        # Go's stringOrArray: a list of strings, or a single string as one group
        # (kubernetes#33290: "role" claims); unlike expression results, empty strings stay.
        value = scope.claims[mapping.claim]
        if value is None:
            groups: tuple[str, ...] = ()
        elif isinstance(value, str):
            groups = (value,)
        elif isinstance(value, list) and all(isinstance(item, str | None) for item in value):
            groups = tuple(item or "" for item in value)
        else:  # Go tried []string, then string: the error is the second attempt's
            raise ClaimRejected(f"oidc: parse groups claim {go_quote(mapping.claim)}: "
                                + _unmarshal_error(value, "string"))
        return tuple((mapping.prefix or "") + group for group in groups)
    if authenticator.groups is None:
        return ()
    mapped = _string_list(scope.evaluate(authenticator.groups, "group claim expression"))
    if mapped is None:
        raise ClaimRejected("oidc: error evaluating group claim expression: expression must "
                            "return a string or a list of strings")
    return mapped


def _uid(scope: _Claims, authenticator: CompiledAuthenticator) -> str:
    claim = authenticator.spec.claim_mappings.uid.claim
    if claim:
        return _claim_text(scope.claims, claim, "parse uid claim")
    if authenticator.uid is None:
        return ""
    value = scope.evaluate(authenticator.uid, "uid claim expression")
    if not isinstance(value, str):
        raise ClaimRejected("oidc: error evaluating uid claim expression: uid claim expression "
                            "must return a string")
    return value


def _extra(scope: _Claims, authenticator: CompiledAuthenticator) -> dict[str, tuple[str, ...]]:
    extra = {}
    for key, program in authenticator.extra:
        values = _string_list(scope.evaluate(program, "extra claim expression"))
        if values is None:
            raise ClaimRejected(f"oidc: error evaluating extra claim expression: "
                                f"{program.source}: expression must return a string or a list "
                                "of strings")
        if values:
            extra[key] = values
    jti = scope.claims.get("jti")
    if isinstance(jti, str) and jti:
        extra[CREDENTIAL_ID_KEY] = (f"JTI={jti}",)
    return extra


def user_from_claims(claims: Mapping[str, Any],
                     authenticator: CompiledAuthenticator) -> MappedUser:
    """The user ``claims`` map to under ``authenticator``; raises ``ClaimRejected`` (a rule on
    the claims failed, or a mapping could not be applied) or ``UserRejected`` (a rule on the
    user failed). Both are 401s."""
    scope = _Claims(claims)
    _required_claims(claims, authenticator)
    for rule in authenticator.claim_rules:
        _check_result(scope.evaluate(rule.program, "claim validation expression"), rule,
                      ClaimRejected, "claim validation expression")
    user = MappedUser(username=_username(scope, authenticator), uid=_uid(scope, authenticator),
                      groups=_groups(scope, authenticator), extra=_extra(scope, authenticator))
    if authenticator.user_rules:
        activation = expressions.user_activation({
            "username": user.username, "uid": user.uid, "groups": list(user.groups),
            "extra": {key: list(values) for key, values in user.extra.items()}})

        for rule in authenticator.user_rules:
            try:
                result = rule.program.evaluate(activation)
            except expressions.EvaluationError as error:
                raise UserRejected(f"oidc: error evaluating user info validation rule: "
                                   f"expression '{rule.program.source}' resulted in error: "
                                   f"{error}") from None
            _check_result(result, rule, UserRejected, "user info validation rule")
    return user
