"""A token of another issuer, verified and mapped to a user as kube-apiserver's JWT authenticator
does (``staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc.go``): pure, no
I/O, given that issuer's key snapshot.

Order: the decoded token's ``alg``/``kid`` (``core.verifier.decode`` checked the header: an
asymmetric algorithm of the allow-list, a kid), the key of that kid in *this issuer's* JWKS
(its algorithm must be the token's), then PyJWT: signature, ``iss`` equal to ``issuer.url``,
``aud`` per ``audiences`` (one of them: ``MatchAny``, or the one audience), ``exp`` required,
``nbf``/``iat`` not in the future, with the service's clock skew as leeway (kube-apiserver's
authenticator allows none for ``exp``; the same skew as for the cluster's tokens keeps one rule
per service). Then ``claimValidationRules``, ``claimMappings``, ``userValidationRules``
(``authn_config.user_from_claims``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import jwt

from ..authn_config import CompiledAuthenticator, user_from_claims
from ..authn_config.mapping import CREDENTIAL_ID_KEY
from ..core.errors import (
    UnknownKey,
    UnsupportedAlgorithm,
)
from ..core.identity import Identity
from ..core.keyset import KeySet
from ..core.verifier import DecodedToken, pyjwt_errors_as_ours

#: kube-apiserver adds this group to every authenticated user (``AuthenticatedGroupAdder``).
AUTHENTICATED_GROUP = "system:authenticated"

_JWT = jwt.PyJWT(options={"require": ["exp", "iss", "aud"]})


def verify_jwt(decoded: DecodedToken, keys: KeySet, entry: CompiledAuthenticator,
               leeway: float) -> Identity:
    """The identity of a token of ``entry``'s issuer; raises an ``AuthError`` (401)."""
    key = keys.get(decoded.kid)
    if key is None:
        raise UnknownKey(f"no key of {entry.spec.issuer.url} has kid {decoded.kid[:64]!r}",
                         kid=decoded.kid)
    if key.algorithm != decoded.algorithm:
        raise UnsupportedAlgorithm(
            f"token alg {decoded.algorithm} does not match key alg {key.algorithm}")
    issuer = entry.spec.issuer
    with pyjwt_errors_as_ours():
        claims: dict[str, Any] = _JWT.decode(
            decoded.token, key.jwk, algorithms=[key.algorithm],
            audience=list(issuer.audiences), issuer=issuer.url, leeway=leeway)
    user = user_from_claims(claims, entry)
    groups = user.groups if AUTHENTICATED_GROUP in user.groups else (
        *user.groups, AUTHENTICATED_GROUP)
    aud = claims.get("aud")
    jti = claims.get("jti")
    credential = user.extra.get(CREDENTIAL_ID_KEY, ())
    return Identity(
        subject=user.username,
        namespace="", service_account="", service_account_uid=None,
        pod_name=None, pod_uid=None, node_name=None,
        audiences=(aud,) if isinstance(aud, str) else tuple(aud or ()),
        issued_at=_int(claims.get("iat")), expires_at=_int(claims.get("exp")),
        token_id=jti if isinstance(jti, str) else None,
        verified_by="jwks", claims=MappingProxyType(claims), key_id=decoded.kid,
        credential_id=credential[0] if credential else None,
        groups=groups, authenticator=issuer.url, uid=user.uid or None,
        extra=MappingProxyType(dict(user.extra)))


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
