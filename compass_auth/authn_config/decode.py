"""Strict decoding: the parsed document (dicts and lists) -> ``model`` values.

kube-apiserver decodes this file strictly (``runtime.Decode`` with the strict serializer,
``staging/src/k8s.io/apiserver/pkg/server/options/authentication.go``): an unknown or duplicated
field is an error, not something silently dropped, because a misspelt ``claimValidationRules``
would otherwise drop a security check. We do the same and collect every problem with its path.
A JSON/YAML ``null`` counts as absent, as it does for Go's decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import FieldError
from .model import (
    API_VERSIONS,
    KIND,
    AuthenticationConfiguration,
    ClaimMappings,
    ClaimOrExpression,
    ClaimValidationRule,
    ExtraMapping,
    Issuer,
    JWTAuthenticator,
    PrefixedClaimOrExpression,
    UserValidationRule,
)

T = TypeVar("T")

#: Fields of the upstream types that this library refuses by name, with the reason: they
#: configure the API server itself, and accepting them silently would pretend they apply.
_NOT_SUPPORTED = {
    "anonymous": "anonymous authentication configures the API server's own endpoints; "
                 "compass-auth does not support it",
    "egressSelectorType": "egress selectors are the API server's network; compass-auth does "
                          "not support them",
}


class _Decoder:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def mapping(self, value: Any, path: str, known: set[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.errors.append(FieldError(path or "<root>", "Invalid", "must be an object",
                                          _shown(value)))
            return {}
        for key in value:
            where = f"{path}.{key}" if path else str(key)
            if key in _NOT_SUPPORTED and key not in known:
                self.errors.append(FieldError(where, "Forbidden", _NOT_SUPPORTED[key]))
            elif key not in known:
                self.errors.append(FieldError(where, "Unknown"))
        return value

    def string(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.errors.append(FieldError(path, "Invalid", "must be a string", _shown(value)))
            return ""
        return value

    def optional_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path)

    def items(self, value: Any, path: str, item: Callable[[Any, str], T]) -> tuple[T, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.errors.append(FieldError(path, "Invalid", "must be a list", _shown(value)))
            return ()
        return tuple(item(entry, f"{path}[{index}]") for index, entry in enumerate(value))

    # --- one method per type ---------------------------------------------------------------

    def configuration(self, document: Any) -> AuthenticationConfiguration:
        fields = self.mapping(document, "", {"apiVersion", "kind", "jwt"})
        api_version = self.string(fields.get("apiVersion"), "apiVersion")
        if api_version not in API_VERSIONS:
            self.errors.append(FieldError("apiVersion", "NotSupported",
                                          "supported values: " + ", ".join(
                                              f'"{version}"' for version in API_VERSIONS),
                                          api_version))
        kind = self.string(fields.get("kind"), "kind")
        if kind != KIND:
            self.errors.append(FieldError("kind", "NotSupported",
                                          f'supported values: "{KIND}"', kind))
        return AuthenticationConfiguration(
            api_version=api_version, jwt=self.items(fields.get("jwt"), "jwt", self.jwt))

    def jwt(self, value: Any, path: str) -> JWTAuthenticator:
        fields = self.mapping(value, path, {"issuer", "claimValidationRules", "claimMappings",
                                            "userValidationRules"})
        return JWTAuthenticator(
            issuer=self.issuer(fields.get("issuer"), f"{path}.issuer"),
            claim_validation_rules=self.items(fields.get("claimValidationRules"),
                                              f"{path}.claimValidationRules",
                                              self.claim_validation_rule),
            claim_mappings=self.claim_mappings(fields.get("claimMappings"),
                                               f"{path}.claimMappings"),
            user_validation_rules=self.items(fields.get("userValidationRules"),
                                             f"{path}.userValidationRules",
                                             self.user_validation_rule),
        )

    def issuer(self, value: Any, path: str) -> Issuer:
        fields = self.mapping(value, path, {"url", "discoveryURL", "certificateAuthority",
                                            "audiences", "audienceMatchPolicy"})
        return Issuer(
            url=self.string(fields.get("url"), f"{path}.url"),
            discovery_url=self.string(fields.get("discoveryURL"), f"{path}.discoveryURL"),
            certificate_authority=self.string(fields.get("certificateAuthority"),
                                              f"{path}.certificateAuthority"),
            audiences=self.items(fields.get("audiences"), f"{path}.audiences", self.string),
            audience_match_policy=self.string(fields.get("audienceMatchPolicy"),
                                              f"{path}.audienceMatchPolicy"),
        )

    def claim_validation_rule(self, value: Any, path: str) -> ClaimValidationRule:
        fields = self.mapping(value, path, {"claim", "requiredValue", "expression", "message"})
        return ClaimValidationRule(
            claim=self.string(fields.get("claim"), f"{path}.claim"),
            required_value=self.string(fields.get("requiredValue"), f"{path}.requiredValue"),
            expression=self.string(fields.get("expression"), f"{path}.expression"),
            message=self.string(fields.get("message"), f"{path}.message"),
        )

    def claim_mappings(self, value: Any, path: str) -> ClaimMappings:
        fields = self.mapping(value, path, {"username", "groups", "uid", "extra"})
        return ClaimMappings(
            username=self.prefixed(fields.get("username"), f"{path}.username"),
            groups=self.prefixed(fields.get("groups"), f"{path}.groups"),
            uid=self.claim_or_expression(fields.get("uid"), f"{path}.uid"),
            extra=self.items(fields.get("extra"), f"{path}.extra", self.extra),
        )

    def prefixed(self, value: Any, path: str) -> PrefixedClaimOrExpression:
        fields = self.mapping(value, path, {"claim", "prefix", "expression"})
        return PrefixedClaimOrExpression(
            claim=self.string(fields.get("claim"), f"{path}.claim"),
            prefix=self.optional_string(fields.get("prefix"), f"{path}.prefix"),
            expression=self.string(fields.get("expression"), f"{path}.expression"),
        )

    def claim_or_expression(self, value: Any, path: str) -> ClaimOrExpression:
        fields = self.mapping(value, path, {"claim", "expression"})
        return ClaimOrExpression(
            claim=self.string(fields.get("claim"), f"{path}.claim"),
            expression=self.string(fields.get("expression"), f"{path}.expression"),
        )

    def extra(self, value: Any, path: str) -> ExtraMapping:
        fields = self.mapping(value, path, {"key", "valueExpression"})
        return ExtraMapping(
            key=self.string(fields.get("key"), f"{path}.key"),
            value_expression=self.string(fields.get("valueExpression"),
                                         f"{path}.valueExpression"),
        )

    def user_validation_rule(self, value: Any, path: str) -> UserValidationRule:
        fields = self.mapping(value, path, {"expression", "message"})
        return UserValidationRule(
            expression=self.string(fields.get("expression"), f"{path}.expression"),
            message=self.string(fields.get("message"), f"{path}.message"),
        )


def _shown(value: Any) -> object:
    """A value for an error message: scalars as they are, containers by their type only (never
    a whole nested document)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return type(value).__name__


def decode_configuration(document: Any) -> tuple[AuthenticationConfiguration, list[FieldError]]:
    """The configuration a parsed document describes, and every decoding error (unknown fields,
    wrong types, another apiVersion or kind). The values are usable only if the list is empty."""
    decoder = _Decoder()
    configuration = decoder.configuration(document)
    return configuration, decoder.errors


def decode_authenticator(value: Any, path: str = "jwt[0]") -> tuple[JWTAuthenticator,
                                                                    list[FieldError]]:
    """One ``jwt`` entry from its parsed form (tests and tools build entries this way)."""
    decoder = _Decoder()
    authenticator = decoder.jwt(value, path)
    return authenticator, decoder.errors
