"""Token validation the way kube-apiserver's service-account authenticators do it.

Used for TokenReview answers and to authenticate bearer tokens presented to the
emulator itself.  Follows ``pkg/serviceaccount/jwt.go`` (pre-check, keys by
kid, issuer, audience), ``claims.go`` (time with 60 s leeway, bound objects)
and ``legacy.go``; summarised in
docs/kubernetes-api.md#how-the-api-server-validates-a-token.  Error strings follow
upstream where known; clients must never parse them (their wording varies by
release).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from compass_auth.testing.credentials import jws
from compass_auth.testing.credentials.keys import KeyRing
from compass_auth.testing.credentials.minting import LEGACY_ISSUER, LEGACY_PREFIX, subject
from compass_auth.testing.objects import ObjectRecord, ObjectStore

logger = logging.getLogger(__name__)

# go-jose's DefaultLeeway, applied to exp, nbf and iat (claims.go).
LEEWAY_SECONDS = 60
_EXTRA = "authentication.kubernetes.io/"


class TokenInvalid(Exception):
    """A recognised token failed validation; the message is the upstream wording."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """``authentication.k8s.io/v1`` UserInfo."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """Go field order with omitempty; extra keys sorted like a Go map."""
        wire: dict[str, Any] = {"username": self.username}
        if self.uid:
            wire["uid"] = self.uid
        if self.groups:
            wire["groups"] = list(self.groups)
        if self.extra:
            wire["extra"] = {key: self.extra[key] for key in sorted(self.extra)}
        return wire


@dataclass(frozen=True, slots=True)
class Review:
    """Outcome of one review: a user with audiences, or an aggregated error."""

    user: UserInfo | None
    audiences: tuple[str, ...] = ()
    error: str = ""

    @property
    def authenticated(self) -> bool:
        """True when some authenticator accepted the token."""
        return self.user is not None


def _go_quote_list(values: Sequence[str]) -> str:
    # Go's %q on a []string: ["a" "b"]
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _aggregate(errors: Sequence[str]) -> str:
    """utilerrors.NewAggregate: one message alone, several deduplicated in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _claim_str(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name, "")
    if not isinstance(value, str):
        raise TokenInvalid(
            f"json: cannot unmarshal {type(value).__name__} into Go value of type string ({name})"
        )
    return value


def _numeric(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalid(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field "
            f"Claims.{name} of type jwt.NumericDate"
        )
    return float(value)


def _audiences(claims: dict[str, Any]) -> list[str]:
    # go-jose's Audience accepts a single string as well as a list.
    value = claims.get("aud")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TokenInvalid(
        "json: cannot unmarshal aud into Go struct field Claims.aud of type jwt.Audience"
    )


class TokenValidator:
    """Reviews tokens against the emulator's keys, issuers and objects."""

    def __init__(
        self,
        keys: KeyRing,
        objects: ObjectStore,
        issuers: Callable[[], Sequence[str]],
        api_audiences: Sequence[str],
        clock: Callable[[], float],
        revoked: Callable[[str], bool] = lambda token: False,
    ) -> None:
        self._keys = keys
        self._objects = objects
        self._issuers = issuers
        self._api_audiences = tuple(api_audiences)
        self._clock = clock
        self._revoked = revoked

    def review(self, token: str, audiences: Sequence[str] = ()) -> Review:
        """Run the bound and the legacy authenticator, as the API server's union does.

        ``audiences`` empty means the API server's own audiences. A token that
        no authenticator recognises yields the bare "invalid bearer token".
        """
        requested = tuple(audiences) or self._api_audiences
        if self._revoked(token):
            # What a token whose bound object is gone gets (claims.go); the emulator lets tests
            # revoke a token directly, e.g. the service's own token after a rotation.
            return Review(
                None,
                error=_aggregate(
                    ["invalid bearer token", "service account token has been invalidated"]
                ),
            )
        errors: list[str] = []
        for issuers, legacy in (
            (tuple(self._issuers()), False),
            ((LEGACY_ISSUER,), True),
        ):
            try:
                review = self._authenticate(token, requested, issuers, legacy=legacy)
            except TokenInvalid as exc:
                errors.append(str(exc))
                continue
            if review is not None:
                return review
        # bearertoken.go adds "invalid bearer token" in front of the authenticators' errors.
        return Review(None, error=_aggregate(["invalid bearer token", *errors]))

    def _authenticate(
        self,
        token: str,
        requested: Sequence[str],
        issuers: Sequence[str],
        *,
        legacy: bool,
    ) -> Review | None:
        parsed = _parse(token, issuers)
        if parsed is None:
            return None  # not recognised by this authenticator
        header, claims, signing_input, signature = parsed
        kid = header.get("kid", "")
        keys = self._keys.verification_keys(kid if isinstance(kid, str) else "")
        if not keys:
            raise TokenInvalid("invalid signature, no keys found")
        failures: list[str] = []
        for key in keys:
            try:
                jws.verify(
                    signing_input, signature, str(header.get("alg")), key.public_key
                )
                break
            except jws.SignatureError as exc:
                failures.append(str(exc))
        else:
            raise TokenInvalid(_aggregate(failures))
        token_auds = _audiences(claims) or list(self._api_audiences)
        # Intersect keeps the requested order (authenticator.Audiences.Intersect).
        granted = tuple(a for a in requested if a in token_auds)
        if not granted and self._api_audiences:
            raise TokenInvalid(
                f"token audiences {_go_quote_list(token_auds)} is invalid for the "
                f"target audiences {_go_quote_list(requested)}"
            )
        user = (
            self._validate_legacy(token, claims)
            if legacy
            else self._validate_bound(claims)
        )
        return Review(user, granted)

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        nbf, exp, iat = (
            _numeric(claims, "nbf"),
            _numeric(claims, "exp"),
            _numeric(claims, "iat"),
        )
        # Same order as go-jose's Claims.ValidateWithLeeway.
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            raise TokenInvalid("service account token is not valid yet")
        if exp is not None and now - LEEWAY_SECONDS > exp:
            raise TokenInvalid("service account token has expired")
        if iat is not None and now + LEEWAY_SECONDS < iat:
            raise TokenInvalid("service account token is issued in the future")

    def _validate_bound(self, claims: dict[str, Any]) -> UserInfo:
        """``validator.Validate`` of upstream ``pkg/serviceaccount/claims.go``: the times, then
        the bound objects in its order and with its words (service account, secret, pod, and the
        node of a token bound to a node alone), each refused when missing, of another UID, or
        deleted (``deletionTimestamp``) more than the leeway ago. Ported cases:
        tests/devcluster/test_claims_upstream.py."""
        self._check_times(claims)
        kube = claims.get("kubernetes.io")
        if not isinstance(kube, dict):
            raise TokenInvalid("service account token claims are missing kubernetes.io")
        namespace = _claim_str(kube, "namespace")
        refs = {
            kind: _ref(kube, kind)
            for kind in ("serviceaccount", "pod", "secret", "node")
        }
        sa = refs["serviceaccount"]
        if sa is None or not namespace:
            raise TokenInvalid(
                "service account token claims are missing the service account"
            )
        # "consider things deleted prior to now()-leeway to be invalid"; Before() is strict.
        invalid_if_deleted_before = self._clock() - LEEWAY_SECONDS
        record = self._objects.get("serviceaccount", namespace, sa[0])
        if record is None:
            # The getter falls back from its informer to a live GET, whose NotFound names the
            # plural resource (pkg/controller/serviceaccount/tokengetter.go).
            raise TokenInvalid(f'serviceaccounts "{sa[0]}" not found')
        if record.uid != sa[1]:
            raise TokenInvalid(
                f"service account UID ({record.uid}) does not match claim ({sa[1]})"
            )
        if _deleted_before(record, invalid_if_deleted_before):
            raise TokenInvalid(f"service account {namespace}/{sa[0]} has been deleted")
        extra: dict[str, list[str]] = {}
        for kind in ("secret", "pod"):
            ref = refs[kind]
            if ref is None:
                continue
            self._check_bound(self._objects.get(kind, namespace, ref[0]), kind, ref,
                              invalid_if_deleted_before)
            if kind == "pod":
                extra[_EXTRA + "pod-name"] = [ref[0]]
                extra[_EXTRA + "pod-uid"] = [ref[1]]
        node = refs["node"]
        if node is not None:
            if refs["pod"] is None:
                # Bound to the node itself (ServiceAccountTokenNodeBindingValidation, GA and
                # locked on since 1.32): the node must still be there. On a pod-bound token
                # the node is only information (ServiceAccountTokenPodNodeInfo).
                self._check_bound(self._objects.get("node", "", node[0]), "node", node,
                                  invalid_if_deleted_before)
            extra[_EXTRA + "node-name"] = [node[0]]
            extra[_EXTRA + "node-uid"] = [node[1]]
        jti = _claim_str(claims, "jti")
        if jti:
            extra[_EXTRA + "credential-id"] = [f"JTI={jti}"]
        return _sa_user(namespace, sa[0], sa[1], extra)

    @staticmethod
    def _check_bound(bound: ObjectRecord | None, kind: str, ref: tuple[str, str],
                     invalid_if_deleted_before: float) -> None:
        """Missing, then UID, then deletion: upstream's order for secret, pod and node."""
        if bound is None:
            raise TokenInvalid("service account token has been invalidated")
        if bound.uid != ref[1]:
            raise TokenInvalid(
                f"{kind} UID ({bound.uid}) does not match service account "
                f"{kind} ref claim ({ref[1]})"
            )
        if _deleted_before(bound, invalid_if_deleted_before):
            raise TokenInvalid("service account token has been invalidated")

    def _validate_legacy(self, token: str, claims: dict[str, Any]) -> UserInfo:
        names = {
            key: _claim_str(claims, LEGACY_PREFIX + key)
            for key in (
                "namespace",
                "secret.name",
                "service-account.name",
                "service-account.uid",
            )
        }
        for key, label in (
            ("namespace", "namespace"),
            ("secret.name", "secretName"),
            ("service-account.name", "serviceAccountName"),
            ("service-account.uid", "serviceAccountUID"),
        ):
            if not names[key]:
                raise TokenInvalid(f"{label} claim is missing")
        namespace, name = names["namespace"], names["service-account.name"]
        if _claim_str(claims, "sub") != subject(namespace, name):
            raise TokenInvalid("sub claim is invalid")
        # legacy.go has no leeway: any deletionTimestamp invalidates the Secret's token.
        secret = self._objects.get("secret", namespace, names["secret.name"])
        if secret is None or secret.deletion_timestamp is not None:
            raise TokenInvalid("Token has been invalidated")
        if secret.token != token:
            raise TokenInvalid("Token does not match server's copy")
        record = self._objects.get("serviceaccount", namespace, name)
        if record is None:
            raise TokenInvalid(f'serviceaccounts "{name}" not found')
        if record.deletion_timestamp is not None:
            raise TokenInvalid(f"ServiceAccount {namespace}/{name} has been deleted")
        if record.uid != names["service-account.uid"]:
            raise TokenInvalid(
                f"ServiceAccount UID ({record.uid}) does not match claim "
                f"({names['service-account.uid']})"
            )
        return _sa_user(namespace, name, record.uid, {})


def _deleted_before(record: ObjectRecord, instant: float) -> bool:
    """``DeletionTimestamp != nil && DeletionTimestamp.Time.Before(instant)``."""
    return record.deletion_timestamp is not None and record.deletion_timestamp < instant


def _sa_user(
    namespace: str, name: str, uid: str, extra: dict[str, list[str]]
) -> UserInfo:
    groups = (
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    )
    return UserInfo(subject(namespace, name), uid, groups, extra)


def _ref(kube: dict[str, Any], kind: str) -> tuple[str, str] | None:
    value = kube.get(kind)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TokenInvalid(f"json: cannot unmarshal kubernetes.io.{kind}")
    return _claim_str(value, "name"), _claim_str(value, "uid")


def _parse(
    token: str, issuers: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes] | None:
    """hasCorrectIssuer + jwt.ParseSigned: None when the token is not recognised."""
    if token.strip().startswith("{"):
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(jws.b64url_decode(parts[1]))
        header = json.loads(jws.b64url_decode(parts[0]))
        signature = jws.b64url_decode(parts[2])
    except ValueError:  # bad base64, bad UTF-8 and bad JSON are all ValueErrors
        return None
    if not isinstance(claims, dict) or not isinstance(header, dict):
        return None
    if not isinstance(claims.get("iss"), str) or claims["iss"] not in issuers:
        return None
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature
