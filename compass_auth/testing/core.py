"""Lifecycle, TLS, minting and keys of the emulator; ``cluster.DevCluster`` adds the rest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

from compass_auth.testing.credentials.ca import CertificateAuthority, Issued
from compass_auth.testing.credentials.factory import TokenFactory
from compass_auth.testing.served import ServedEmulator
from compass_auth.testing.server.endpoints import FAULT_ENDPOINTS, make_app
from compass_auth.testing.state import (
    DEFAULT_SERVICE_ACCOUNT,
    DEFAULT_SERVICE_NAMESPACE,
    ClusterState,
)

logger = logging.getLogger(__name__)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: The audience ``mint()`` puts in tokens unless told otherwise (a test value: the library itself
#: has no default audience, see docs/settings.md).
DEFAULT_AUDIENCE = "compass-internal"
# A kind node's address: deliberately not loopback, so a verifier that fetches
# jwks_uri literally (instead of through the API server) fails loudly.
DEFAULT_EXTERNAL_ADDRESS = "https://172.18.0.2:6443"
DEFAULT_SERVER_CERT_NAMES = (
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


class ClusterCore(ServedEmulator[ClusterState]):
    """Server lifecycle, addresses, minting and signing keys (base of ``DevCluster``)."""

    _kind = "DevCluster"

    def __init__(
        self,
        issuer: str = DEFAULT_ISSUER,
        extra_issuers: Sequence[str] = (),
        key_type: Literal["RSA", "EC"] = "RSA",
        api_audiences: Sequence[str] | None = None,
        external_address: str | None = DEFAULT_EXTERNAL_ADDRESS,
        server_cert_names: Sequence[str] = DEFAULT_SERVER_CERT_NAMES,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # ``clock``: seconds since the epoch, the API server's "now" (a fixed time makes a test
        # exact, as upstream's claims_test.go fixes ``now``); advance_clock() adds to it.
        # ``external_address`` None: the served URL, known once the port is (start()), so the
        # discovery document's jwks_uri is reachable, as a cluster trusted by another one
        # through ``discoveryURL`` must be (kube-apiserver's --service-account-jwks-uri).
        self._jwks_on_served_url = external_address is None
        self._state = ClusterState(
            issuer=issuer,
            extra_issuers=extra_issuers,
            key_type=key_type,
            api_audiences=api_audiences,
            external_address=external_address or "",
            fault_endpoints=FAULT_ENDPOINTS,
            clock=clock,
        )
        self._tokens = TokenFactory(self._state)
        self._serve(CertificateAuthority(), make_app(self._state, self._tokens),
                    server_cert_names, host, port, name="devcluster")
        self._admin_cert: Issued | None = None
        # The service under test's own account exists from the start.
        self._state.objects.ensure(
            "serviceaccount", DEFAULT_SERVICE_NAMESPACE, DEFAULT_SERVICE_ACCOUNT
        )

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> Self:
        """Write the CA file and start serving; returns when the port listens."""
        self._start_serving("devcluster-")
        if self._jwks_on_served_url:
            self._state.external_address = self.url
        return self

    @property
    def issuer(self) -> str:
        """The issuer discovery declares now (see :meth:`set_issuer`)."""
        return self._state.issuer

    @property
    def discovery_url(self) -> str:
        """Where this server serves its discovery document: what an ``AuthenticationConfiguration``
        of another cluster names as ``discoveryURL`` (the issuer is not a served URL)."""
        return self.url + "/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        """The ``jwks_uri`` the discovery document declares: on ``external_address``, which is
        not loopback by default (``DevCluster(external_address=None)``: on :attr:`url`)."""
        return self._state.external_address + "/openid/v1/jwks"

    @property
    def api_audiences(self) -> tuple[str, ...]:
        """The API server's own audiences (default: the issuer)."""
        return self._state.api_audiences

    @property
    def admin_token(self) -> str:
        """Static bearer token of user ``kubernetes-admin`` (group system:masters)."""
        return self._state.admin_token

    # ---- minting ---------------------------------------------------------
    def mint(
        self,
        namespace: str = "default",
        service_account: str = "collector",
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
        lifetime: int = 3600,
        pod: str | None = "collector-6c9d8b7f5-x2k9q",
        node: str | None = "kind-worker",
        issued_at: int | None = None,
        issuer: str | None = None,
        warnafter: int | None = None,
        claims_override: Mapping[str, Any] | None = None,
        header_override: Mapping[str, Any] | None = None,
        key_id: str | None = None,
    ) -> str:
        """A bound token exactly as a real cluster mints it (docs/kubernetes-api.md#bound-tokens).

        Defaults give a pod-bound token with the pod's node. ``pod=None`` with
        a ``node`` gives a node-bound token; both None, a service-account-only
        token. ``claims_override``/``header_override`` are merged at top level
        (None deletes) to craft hostile tokens.
        """
        return self._tokens.mint(
            namespace=namespace,
            service_account=service_account,
            audiences=audiences,
            lifetime=lifetime,
            pod=pod,
            node=node,
            issued_at=issued_at,
            issuer=issuer,
            warnafter=warnafter,
            claims_override=claims_override,
            header_override=header_override,
            key_id=key_id,
        )

    def mint_legacy(
        self, namespace: str = "default", service_account: str = "collector"
    ) -> str:
        """A legacy Secret-based token (docs/kubernetes-api.md#legacy-tokens); its Secret is
        created too."""
        return self._tokens.mint_legacy(
            namespace=namespace, service_account=service_account
        )

    def sign_raw(
        self,
        header: Mapping[str, Any] | bytes,
        payload: Mapping[str, Any] | bytes,
        key_id: str | None = None,
        alg: str | None = None,
    ) -> str:
        """A JWS over arbitrary JSON (or raw bytes, for duplicate keys and other invalid JSON),
        nothing added; ``alg="none"`` gives an empty signature."""
        return self._tokens.sign_raw(header, payload, key_id=key_id, alg=alg)

    def service_account_uid(self, namespace: str, name: str) -> str:
        """UID of the service account, creating it if it does not exist yet."""
        return self._state.objects.ensure("serviceaccount", namespace, name)

    def pod_uid(self, namespace: str, name: str) -> str:
        """UID of the pod, creating it (without a node) if it does not exist yet."""
        return self._state.objects.ensure("pod", namespace, name)

    def secret_uid(self, namespace: str, name: str) -> str:
        """UID of the Secret, creating it if it does not exist yet (a token bound to a Secret
        names it in ``kubernetes.io.secret``)."""
        return self._state.objects.ensure("secret", namespace, name)

    def delete_secret(self, namespace: str, name: str, grace_period: int | None = None) -> None:
        """Delete a Secret: tokens bound to it, and its legacy token, fail TokenReview;
        ``grace_period`` as for :meth:`delete_pod`."""
        self._state.objects.delete("secret", namespace, name, grace_period=grace_period)

    def node_uid(self, name: str) -> str:
        """UID of the node, creating it if it does not exist yet."""
        return self._state.objects.ensure("node", "", name)

    def delete_pod(self, namespace: str, name: str, grace_period: int | None = None) -> None:
        """Delete a pod: its tokens fail TokenReview (JWKS verification still passes).

        ``grace_period`` None removes it at once (tokens refused from then on). A number
        deletes it gracefully, as ``kubectl delete pod`` does (default 30 s): the pod stays,
        ``deletionTimestamp`` = now + ``grace_period``, and TokenReview keeps accepting its
        tokens until 60 s after that timestamp (``advance_clock`` skips the wait), or until a
        second call without grace removes it (the kubelet's final delete).
        """
        self._state.objects.delete("pod", namespace, name, grace_period=grace_period)

    def delete_service_account(
        self, namespace: str, name: str, grace_period: int | None = None
    ) -> None:
        """Delete a service account: all its tokens fail TokenReview.

        ``grace_period`` as for :meth:`delete_pod`; a service account held by a finalizer is
        ``grace_period=0``: ``deletionTimestamp`` now, refused 60 s later.
        """
        self._state.objects.delete("serviceaccount", namespace, name, grace_period=grace_period)

    def delete_node(self, name: str, grace_period: int | None = None) -> None:
        """Delete a node: tokens bound to it alone fail TokenReview (pod-bound tokens only
        carry the node's name); ``grace_period`` as for :meth:`delete_pod`."""
        self._state.objects.delete("node", "", name, grace_period=grace_period)

    def recreate_service_account(self, namespace: str, name: str) -> str:
        """Remove the service account and create it again under the same name; returns the new
        UID. Its old tokens fail TokenReview (UID mismatch); new mints carry the new UID."""
        return self._state.objects.recreate("serviceaccount", namespace, name)

    def recreate_pod(self, namespace: str, name: str) -> str:
        """Remove the pod and create it again under the same name (a StatefulSet's pod);
        returns the new UID."""
        return self._state.objects.recreate("pod", namespace, name)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (TokenReview's time checks and deletion leeway,
        minting, TokenRequest), so a test need not wait out the 60 s leeway. Tokens minted
        afterwards carry the advanced ``iat``; :meth:`reset` puts the clock back."""
        self._state.clock.advance(seconds)

    # ---- keys ------------------------------------------------------------
    def remove_key(self, kid: str) -> None:
        """Unpublish ``kid`` and reject it in TokenReview (mint(key_id=kid) still works)."""
        self._state.keys.remove(kid)

    def public_key_pem(self, kid: str) -> bytes:
        """PEM public key of ``kid`` (e.g. as the secret of an HS256 confusion attack)."""
        return self._state.keys.public_key_pem(kid)
