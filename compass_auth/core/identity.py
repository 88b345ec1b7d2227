"""Who is calling: the verified identity of a Kubernetes workload.

Only the two constructors here know where each field lives: in a token's claims (``kubernetes.io``
private claims, docs/kubernetes-api.md#kubernetes-claims) or in a TokenReview status
(``status.user.extra``, docs/kubernetes-api.md#user-extra-keys). Everything else reads the
dataclass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .errors import MalformedToken

VerifiedBy = Literal["jwks", "tokenreview"]

#: ``system:serviceaccount:<namespace>:<name>``. Names are DNS labels/subdomains in Kubernetes,
#: so neither part may contain a colon; anything else is not a service-account subject.
SUBJECT_PATTERN = re.compile(r"system:serviceaccount:([a-z0-9.-]{1,253}):([a-z0-9.-]{1,253})")

_EXTRA_PREFIX = "authentication.kubernetes.io/"
#: The ``extra`` of a service-account identity: shared, read-only.
_NO_EXTRA: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified Kubernetes service-account caller.

    ``claims`` is a read-only view of the verified token claims (for TokenReview answers, the
    ``status.user`` object), for anything the named fields do not cover.
    """

    subject: str
    namespace: str
    service_account: str
    service_account_uid: str | None
    pod_name: str | None
    pod_uid: str | None
    node_name: str | None
    audiences: tuple[str, ...]
    issued_at: int | None
    expires_at: int | None
    token_id: str | None
    verified_by: VerifiedBy
    claims: Mapping[str, Any] = field(compare=False, repr=False)
    #: The ``kid`` of the key that signed the token (local verification only).
    key_id: str | None = None
    #: ``kubernetes.io.warnafter``: the API server stretched a kubelet-projected token to a year
    #: and wants clients to have replaced it by this time
    #: (docs/kubernetes-api.md#lifetime-and-warnafter).
    warn_after: int | None = None
    #: Past ``warn_after``: the caller keeps using a token its kubelet has long since rotated
    #: (an old client that reads the token file once). Set by the verifier, which knows the time.
    stale: bool = False
    #: ``JTI=<jti>``: what kube-apiserver records as ``authentication.kubernetes.io/credential-id``
    #: in its audit log when it issues and accepts the token (KEP-4193), so a decision logged
    #: here can be joined with the token's issuance. ``None`` for a token without ``jti``.
    credential_id: str | None = None
    #: The node the token's pod runs on (``kubernetes.io.node.uid``), or of a node-bound token.
    node_uid: str | None = None
    #: The groups kube-apiserver gives the caller: ``system:serviceaccounts``,
    #: ``system:serviceaccounts:<namespace>`` and ``system:authenticated``.
    groups: tuple[str, ...] = ()
    #: A caller of another issuer (a ``jwt`` authenticator of ``AUTH_AUTHENTICATION_CONFIG``):
    #: the ``issuer.url`` of the authenticator that answered, and the user's ``uid`` and
    #: ``extra`` as its ``claimMappings`` made them (``subject`` is the username, ``groups`` its
    #: groups). ``None``/empty for the cluster's service accounts, whose uid and extra come from
    #: the fields above.
    authenticator: str | None = None
    uid: str | None = None
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _NO_EXTRA, compare=False)

    @classmethod
    def from_claims(
        cls,
        claims: Mapping[str, Any],
        verified_by: VerifiedBy = "jwks",
        key_id: str | None = None,
    ) -> Identity:
        """Build from signature-verified JWT claims; raise ``MalformedToken`` on a wrong shape.

        The subject must name the same namespace and service account as the
        ``kubernetes.io`` claims: the API server always writes both, so a mismatch means the
        token was not minted by it.
        """
        namespace, service_account = _parse_subject(claims.get("sub"))
        private = _object(claims.get("kubernetes.io"), "kubernetes.io")
        if private.get("namespace") != namespace:
            raise MalformedToken(
                f"kubernetes.io.namespace {private.get('namespace')!r} does not match sub"
            )
        account = _object(private.get("serviceaccount"), "kubernetes.io.serviceaccount")
        if account.get("name") != service_account:
            raise MalformedToken("kubernetes.io.serviceaccount.name does not match sub")
        pod = _optional_object(private.get("pod"), "kubernetes.io.pod")
        node = _optional_object(private.get("node"), "kubernetes.io.node")
        aud = claims.get("aud")
        audiences = (aud,) if isinstance(aud, str) else tuple(aud or ())
        jti = _optional_str(claims.get("jti"), "jti")
        return cls(
            subject=claims["sub"],
            namespace=namespace,
            service_account=service_account,
            service_account_uid=_optional_str(account.get("uid"), "serviceaccount.uid"),
            pod_name=_optional_str(pod.get("name"), "pod.name"),
            pod_uid=_optional_str(pod.get("uid"), "pod.uid"),
            node_name=_optional_str(node.get("name"), "node.name"),
            audiences=audiences,
            issued_at=_optional_int(claims.get("iat")),
            expires_at=_optional_int(claims.get("exp")),
            token_id=jti,
            verified_by=verified_by,
            # A read-only view; the verifier hands over a dict nobody else holds.
            claims=MappingProxyType(claims if isinstance(claims, dict) else dict(claims)),
            key_id=key_id,
            warn_after=_optional_time(private.get("warnafter"), "kubernetes.io.warnafter"),
            # As kube-apiserver's service-account authenticator writes them (pkg/serviceaccount/
            # util.go, UserInfo): the TokenReview path reads the same values from its answer.
            credential_id=credential_id_of(jti),
            node_uid=_optional_str(node.get("uid"), "node.uid"),
            groups=service_account_groups(namespace),
        )

    @classmethod
    def from_token_review(
        cls,
        user: Mapping[str, Any],
        audiences: tuple[str, ...],
        expires_at: int | None,
    ) -> Identity:
        """Build from an authenticated TokenReview ``status.user``.

        The API server has no ``iat`` to report; ``expires_at`` is what the caller read from the
        token (it may be ``None``). ``credential-id`` holds ``JTI=<jti>`` when the token had one.
        """
        namespace, service_account = _parse_subject(user.get("username"))
        raw_extra = user.get("extra")
        extra: Mapping[str, Any] = raw_extra if isinstance(raw_extra, Mapping) else {}
        credential = _first_extra(extra, "credential-id")
        token_id = credential[4:] if credential and credential.startswith("JTI=") else None
        uid = user.get("uid")
        groups = user.get("groups")
        return cls(
            subject=user["username"],
            namespace=namespace,
            service_account=service_account,
            service_account_uid=uid if isinstance(uid, str) and uid else None,
            pod_name=_first_extra(extra, "pod-name"),
            pod_uid=_first_extra(extra, "pod-uid"),
            node_name=_first_extra(extra, "node-name"),
            audiences=audiences,
            issued_at=None,
            expires_at=expires_at,
            token_id=token_id,
            verified_by="tokenreview",
            claims=MappingProxyType(dict(user)),
            credential_id=credential,
            node_uid=_first_extra(extra, "node-uid"),
            # The API server's own list when it sent one (it is the authority on groups).
            groups=(tuple(groups) if isinstance(groups, list) and groups
                    and all(isinstance(group, str) for group in groups)
                    else service_account_groups(namespace)),
        )


def credential_id_of(jti: str | None) -> str | None:
    """``JTI=<jti>``, the credential id kube-apiserver gives a service-account token (KEP-4193)."""
    return f"JTI={jti}" if jti else None


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """The groups kube-apiserver puts a service account in (``serviceaccount.MakeGroupNames``,
    plus ``system:authenticated`` for every authenticated user)."""
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
            "system:authenticated")


def parse_subject(subject: object) -> tuple[str, str] | None:
    """Return ``(namespace, name)`` for a service-account subject, else ``None``."""
    if not isinstance(subject, str):
        return None
    match = SUBJECT_PATTERN.fullmatch(subject)
    return (match.group(1), match.group(2)) if match else None


def _parse_subject(subject: object) -> tuple[str, str]:
    parsed = parse_subject(subject)
    if parsed is None:
        raise MalformedToken(
            f"subject {str(subject)[:80]!r} is not system:serviceaccount:<namespace>:<name>"
        )
    return parsed


def _object(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedToken(f"claim {name} is missing or not an object")
    return value


def _optional_object(value: object, name: str) -> Mapping[str, Any]:
    return {} if value is None else _object(value, name)


def _optional_str(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedToken(f"claim {name} is not a string")
    return value


def _optional_int(value: object) -> int | None:
    # The verifier has already checked the time claims' types; bool is an int in Python.
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _optional_time(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedToken(f"claim {name} is not an integer")
    return value


def _first_extra(extra: Mapping[str, Any], key: str) -> str | None:
    values = extra.get(_EXTRA_PREFIX + key)
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None
