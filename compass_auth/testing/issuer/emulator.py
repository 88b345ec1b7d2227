"""``OidcIssuer``: a plain OIDC issuer (not Kubernetes) on loopback, for tests of the ``jwt``
authenticators of an ``AuthenticationConfiguration`` (README.md beside the kit, "Several
issuers")."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

from compass_auth.testing.credentials import jws, minting
from compass_auth.testing.credentials.ca import CertificateAuthority
from compass_auth.testing.issuer.handlers import DISCOVERY_PATH, JWKS_PATH, make_app
from compass_auth.testing.issuer.state import IssuerState
from compass_auth.testing.served import ServedEmulator
from compass_auth.testing.server.faults import Fault

logger = logging.getLogger(__name__)

#: The audience ``mint()`` uses unless told otherwise: the same as ``DevCluster.mint()``'s, the
#: default ``AUTH_AUDIENCE`` of ``devcluster_serve``.
DEFAULT_AUDIENCE = "compass-internal"
DEFAULT_SUBJECT = "alice"
#: Short, as ID tokens are (GitHub Actions' live 5 to 10 minutes).
DEFAULT_EXPIRES_IN = 600
DEFAULT_SERVER_CERT_NAMES = ("localhost", "127.0.0.1", "::1")


class OidcIssuer(ServedEmulator[IssuerState]):
    """An HTTPS OIDC issuer on loopback with its own CA and signing keys.

    Serves ``<issuer>/.well-known/openid-configuration`` and the JWKS it names, mints tokens with
    any claims, rotates and retires keys, and has the fault switches of ``DevCluster`` for its
    two endpoints. Its issuer URL is the served URL plus ``path`` (what an
    ``AuthenticationConfiguration`` names as ``issuer.url``, its discovery under that URL), or
    ``issuer=`` for an issuer reached through ``discovery_url`` (``issuer.discoveryURL``).
    NOT a security boundary: the keys are for tests only.
    """

    _kind = "OidcIssuer"

    def __init__(
        self,
        path: str = "",
        *,
        issuer: str | None = None,
        key_type: Literal["RSA", "EC"] = "RSA",
        host: str = "127.0.0.1",
        port: int = 0,
        server_cert_names: Sequence[str] = DEFAULT_SERVER_CERT_NAMES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if path and (not path.startswith("/") or path.endswith("/")):
            raise ValueError(f"path must be empty or start, and not end, with '/': {path!r}")
        self._path = path
        self._declared_issuer = issuer
        self._state = IssuerState(key_type, clock)
        self._serve(CertificateAuthority("oidc-issuer"), make_app(self._state, path),
                    server_cert_names, host, port, name="oidc-issuer")

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> Self:
        """Write the CA file and start serving; returns when the port listens."""
        self._start_serving("oidc-issuer-")
        self._state.issuer = self._declared_issuer or self.url + self._path
        self._state.jwks_uri = self.url + self._path + JWKS_PATH
        logger.info("oidc-issuer serving issuer=%s", self._state.issuer)
        return self

    # ---- addresses -------------------------------------------------------
    @property
    def issuer(self) -> str:
        """The issuer URL: tokens' ``iss``, the discovery document's ``issuer``, the
        configuration's ``issuer.url``. Known once started."""
        self._require_started()
        return self._state.issuer

    @property
    def discovery_url(self) -> str:
        """Where the discovery document is served: ``issuer + /.well-known/openid-configuration``
        unless ``issuer=`` named another URL (then the configuration needs ``discoveryURL``)."""
        self._require_started()
        return self.url + self._path + DISCOVERY_PATH

    @property
    def jwks_uri(self) -> str:
        """The key set's URL, as the discovery document names it."""
        self._require_started()
        return self._state.jwks_uri

    # ---- minting -----------------------------------------------------------
    def mint(
        self,
        subject: str = DEFAULT_SUBJECT,
        *,
        claims: Mapping[str, Any] | None = None,
        audience: str | Sequence[str] = DEFAULT_AUDIENCE,
        expires_in: int = DEFAULT_EXPIRES_IN,
        issued_at: int | None = None,
        kid: str | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed ID token: ``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``, then
        ``claims`` on top (any claim: ``email``, ``email_verified``, ``groups``...; a None value
        deletes one).

        ``audience``: a string gives a string ``aud``, a sequence a list (issuers do both).
        ``issued_at`` defaults to the issuer's clock (:meth:`advance_clock`). ``kid``: sign with
        that key, published or retired (:meth:`remove_key`); ``header`` is merged into
        ``{"alg", "kid", "typ"}`` (None deletes).
        """
        now = int(self._state.clock()) if issued_at is None else int(issued_at)
        base: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience if isinstance(audience, str) else list(audience),
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "jti": str(uuid.uuid4()),
        }
        key = self._state.keys.get(kid) if kid is not None else self._state.keys.current
        head = minting.merge({"alg": key.alg, "kid": key.kid, "typ": "JWT"}, header)
        return jws.encode(head, minting.merge(base, claims), str(head.get("alg", key.alg)),
                          key.private_key)

    def sign_raw(self, header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes,
                 kid: str | None = None) -> str:
        """A JWS over exactly ``header`` and ``payload`` (or raw bytes), signed with the key's
        own algorithm; nothing added."""
        key = self._state.keys.get(kid) if kid is not None else self._state.keys.current
        head = header if isinstance(header, bytes) else dict(header)
        body = payload if isinstance(payload, bytes) else dict(payload)
        return jws.encode(head, body, key.alg, key.private_key)

    def advance_clock(self, seconds: float) -> None:
        """Move this issuer's clock forward (the ``iat`` of tokens minted afterwards); others'
        clocks do not move. :meth:`reset` puts it back."""
        self._state.clock.advance(seconds)

    # ---- keys ------------------------------------------------------------
    def remove_key(self, kid: str) -> None:
        """Retire ``kid``: no longer published (``mint(kid=...)`` still signs with it)."""
        self._state.keys.remove(kid)

    # ---- faults and switches ---------------------------------------------
    def set_fault(self, endpoint: str, fault: Fault) -> None:
        """Break ``discovery``, ``jwks`` or ``all`` (every path): a status (500, 503 with
        ``retry_after``), a ``delay`` (slow), ``drop`` (no answer), a ``body``; ``times=N``."""
        self._state.faults.set(endpoint, fault)

    def _require_started(self) -> None:
        if not self._state.issuer:
            raise RuntimeError("OidcIssuer not started: its URL is known once it listens")
