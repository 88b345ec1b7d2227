"""The fields of ``AuthenticationConfiguration`` (``apiserver.config.k8s.io/v1``; ``v1beta1`` has
the same ones), as frozen values.

Names follow the upstream types (``staging/src/k8s.io/apiserver/pkg/apis/apiserver/v1/types.go``)
in snake case. A string the file leaves out is ``""``, as in Go; the one optional pointer upstream,
``prefix``, is ``None`` when absent, because an absent prefix and an empty one mean different
things (validation requires it with ``claim``; ``""`` turns prefixing off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

API_GROUP = "apiserver.config.k8s.io"
#: The versions read, newest first. v1alpha1 is refused: its fields differ.
API_VERSIONS = (f"{API_GROUP}/v1", f"{API_GROUP}/v1beta1")
KIND = "AuthenticationConfiguration"
#: ``audienceMatchPolicy``'s one value (required with more than one audience).
MATCH_ANY = "MatchAny"


@dataclass(frozen=True, slots=True)
class Issuer:
    """Where tokens come from and whom they are for."""

    url: str = ""
    discovery_url: str = ""
    certificate_authority: str = ""
    audiences: tuple[str, ...] = ()
    audience_match_policy: str = ""


@dataclass(frozen=True, slots=True)
class ClaimValidationRule:
    """``claim`` + ``requiredValue`` (a string claim equal to the value), or a CEL ``expression``
    over ``claims`` that must be true (``message`` says why it failed)."""

    claim: str = ""
    required_value: str = ""
    expression: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class PrefixedClaimOrExpression:
    """``username`` and ``groups``: a claim with a prefix, or a CEL expression."""

    claim: str = ""
    prefix: str | None = None
    expression: str = ""


@dataclass(frozen=True, slots=True)
class ClaimOrExpression:
    """``uid``: a claim, or a CEL expression."""

    claim: str = ""
    expression: str = ""


@dataclass(frozen=True, slots=True)
class ExtraMapping:
    """One ``extra`` entry: a domain-prefixed lowercase key and a CEL expression."""

    key: str = ""
    value_expression: str = ""


@dataclass(frozen=True, slots=True)
class ClaimMappings:
    """How claims become a user."""

    username: PrefixedClaimOrExpression = field(default_factory=PrefixedClaimOrExpression)
    groups: PrefixedClaimOrExpression = field(default_factory=PrefixedClaimOrExpression)
    uid: ClaimOrExpression = field(default_factory=ClaimOrExpression)
    extra: tuple[ExtraMapping, ...] = ()


@dataclass(frozen=True, slots=True)
class UserValidationRule:
    """A CEL ``expression`` over ``user`` that must be true."""

    expression: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class JWTAuthenticator:
    """One issuer and what its tokens map to."""

    issuer: Issuer = field(default_factory=Issuer)
    claim_validation_rules: tuple[ClaimValidationRule, ...] = ()
    claim_mappings: ClaimMappings = field(default_factory=ClaimMappings)
    user_validation_rules: tuple[UserValidationRule, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthenticationConfiguration:
    """The whole file."""

    api_version: str = API_VERSIONS[0]
    jwt: tuple[JWTAuthenticator, ...] = ()
