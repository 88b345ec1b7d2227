"""Claim sets exactly as kube-apiserver builds them (docs/kubernetes-api.md#bound-tokens and
#legacy-tokens).

Upstream (``pkg/serviceaccount/claims.go``, ``legacy.go``) merges public and
private claims into a Go map before serialising, so every object in the payload
has its keys sorted; callers serialise with ``sort_keys=True`` to match.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

LEGACY_ISSUER = "kubernetes/serviceaccount"
LEGACY_PREFIX = "kubernetes.io/serviceaccount/"

# Alphabet of apimachinery's utilrand.String (no vowels, no confusable digits):
# generated Secret names look like "collector-token-x7k2p".
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True, slots=True)
class Ref:
    """A bound object reference inside the ``kubernetes.io`` claim."""

    name: str
    uid: str

    def claim(self) -> dict[str, str]:
        """The ``{"name", "uid"}`` object the token carries."""
        return {"name": self.name, "uid": self.uid}


def subject(namespace: str, service_account: str) -> str:
    """``system:serviceaccount:<namespace>:<name>``, the token's ``sub`` and username."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def bound_claims(
    *,
    issuer: str,
    audiences: Sequence[str],
    issued_at: int,
    lifetime: int,
    namespace: str,
    service_account: Ref,
    pod: Ref | None = None,
    node: Ref | None = None,
    secret: Ref | None = None,
    warnafter: int | None = None,
) -> dict[str, Any]:
    """The payload of a bound (TokenRequest / projected) token.

    ``aud`` is always a list, ``iat == nbf``, ``jti`` a fresh uuid4.  ``node``
    is the pod's node for pod-bound tokens, or the only binding when ``pod``
    and ``secret`` are None.  ``warnafter`` is seconds after ``iat`` (the
    kubelet's 3607 when the server extends the token to a year).
    """
    kube: dict[str, Any] = {
        "namespace": namespace,
        "serviceaccount": service_account.claim(),
    }
    if pod is not None:
        kube["pod"] = pod.claim()
    if secret is not None:
        kube["secret"] = secret.claim()
    if node is not None:
        kube["node"] = node.claim()
    if warnafter is not None:
        kube["warnafter"] = issued_at + warnafter
    return {
        "aud": list(audiences),
        "exp": issued_at + lifetime,
        "iat": issued_at,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": kube,
        "nbf": issued_at,
        "sub": subject(namespace, service_account.name),
    }


def legacy_secret_name(service_account: str) -> str:
    """A name like the token controller gave: ``<sa>-token-<5 random chars>``."""
    suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    return f"{service_account}-token-{suffix}"


def legacy_claims(
    *, namespace: str, service_account: Ref, secret_name: str
) -> dict[str, Any]:
    """The payload of a legacy Secret-based token: no exp, aud, iat, nbf or jti."""
    return {
        "iss": LEGACY_ISSUER,
        LEGACY_PREFIX + "namespace": namespace,
        LEGACY_PREFIX + "secret.name": secret_name,
        LEGACY_PREFIX + "service-account.name": service_account.name,
        LEGACY_PREFIX + "service-account.uid": service_account.uid,
        "sub": subject(namespace, service_account.name),
    }


def merge(
    base: Mapping[str, Any], override: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Shallow merge for hostile tests: ``None`` values delete the claim or header."""
    merged = dict(base)
    for key, value in (override or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
