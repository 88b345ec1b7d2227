"""Minting: bound tokens, legacy tokens and arbitrary (hostile) JWS."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from compass_auth.testing.credentials import jws, minting
from compass_auth.testing.credentials.minting import Ref
from compass_auth.testing.state import ClusterState

logger = logging.getLogger(__name__)


class TokenFactory:
    """Signs tokens with the cluster's keys, creating bound objects on first use."""

    def __init__(self, state: ClusterState) -> None:
        self._state = state

    def mint(
        self,
        *,
        namespace: str,
        service_account: str,
        audiences: Sequence[str],
        lifetime: int,
        pod: str | None,
        node: str | None,
        issued_at: int | None,
        issuer: str | None,
        warnafter: int | None,
        claims_override: Mapping[str, Any] | None,
        header_override: Mapping[str, Any] | None,
        key_id: str | None,
    ) -> str:
        """A bound token byte-identical in layout to kube-apiserver's.

        Header ``{"alg":..,"kid":..}`` (no typ), payload keys sorted at every
        level. With ``pod`` the token is pod-bound (plus the pod's ``node``
        when given); with only ``node`` it is node-bound; with neither it is
        bound to the service account alone.
        """
        if isinstance(audiences, str):
            raise TypeError("audiences must be a sequence of strings, not a string")
        state = self._state
        objects = state.objects
        sa = Ref(
            service_account,
            objects.ensure("serviceaccount", namespace, service_account),
        )
        node_ref = (
            Ref(node, objects.ensure("node", "", node)) if node is not None else None
        )
        pod_ref = None
        if pod is not None:
            pod_ref = Ref(pod, objects.ensure("pod", namespace, pod, node=node))
        now = int(state.clock()) if issued_at is None else int(issued_at)
        claims = minting.bound_claims(
            issuer=issuer if issuer is not None else state.issuer,
            audiences=audiences,
            issued_at=now,
            lifetime=lifetime,
            namespace=namespace,
            service_account=sa,
            pod=pod_ref,
            node=node_ref,
            warnafter=warnafter,
        )
        claims = minting.merge(claims, claims_override)
        key = state.keys.get(key_id) if key_id is not None else state.keys.current
        header = minting.merge({"alg": key.alg, "kid": key.kid}, header_override)
        alg = header.get("alg", key.alg)
        signer: jws.PrivateKey | bytes | None = key.private_key
        if isinstance(alg, str) and alg.startswith("HS"):
            # Alg-confusion attack: HMAC keyed with the public key PEM.
            signer = state.keys.public_key_pem(key.kid)
        return jws.encode(header, claims, str(alg), signer, sort_payload=True)

    def mint_legacy(self, *, namespace: str, service_account: str) -> str:
        """A legacy Secret-based token; the Secret is created and stores the token."""
        state = self._state
        sa = Ref(
            service_account,
            state.objects.ensure("serviceaccount", namespace, service_account),
        )
        secret_name = minting.legacy_secret_name(service_account)
        state.objects.ensure("secret", namespace, secret_name)
        claims = minting.legacy_claims(
            namespace=namespace, service_account=sa, secret_name=secret_name
        )
        key = state.keys.current
        token = jws.encode(
            {"alg": key.alg, "kid": key.kid},
            claims,
            key.alg,
            key.private_key,
            sort_payload=True,
        )
        state.objects.put_secret_token(namespace, secret_name, token)
        return token

    def sign_raw(
        self,
        header: Mapping[str, Any] | bytes,
        payload: Mapping[str, Any] | bytes,
        *,
        key_id: str | None,
        alg: str | None,
    ) -> str:
        """A JWS over exactly the given JSON or bytes (key order kept, nothing added).

        ``alg`` defaults to the header's ``alg`` (not read from raw header bytes),
        else the key's own. ``none`` gives an empty signature; HS* uses the key's
        public PEM as the secret.
        """
        state = self._state
        key = state.keys.get(key_id) if key_id is not None else state.keys.current
        named = None if isinstance(header, bytes) else header.get("alg")
        chosen = alg or str(named or key.alg)
        signer: jws.PrivateKey | bytes | None = key.private_key
        if chosen.startswith("HS"):
            signer = state.keys.public_key_pem(key.kid)
        head = header if isinstance(header, bytes) else dict(header)
        body = payload if isinstance(payload, bytes) else dict(payload)
        return jws.encode(head, body, chosen, signer)
