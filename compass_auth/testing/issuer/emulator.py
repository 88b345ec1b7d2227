"""``OidcIssuer``: a plain OIDC issuer (not Kubernetes) on loopback, for tests of the ``jwt``
authenticators of an ``AuthenticationConfiguration`` (README.md beside the kit, "Several
issuers")."""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from compass_auth.testing.credentials import jws, minting
from compass_auth.testing.credentials.ca import CertificateAuthority, Issued
from compass_auth.testing.issuer.handlers import DISCOVERY_PATH, JWKS_PATH, make_app
from compass_auth.testing.issuer.state import IssuerState
from compass_auth.testing.server.faults import Fault
from compass_auth.testing.server.requestlog import RequestLog, RequestRecord
from compass_auth.testing.server.thread import ServerThread, server_ssl_context

logger = logging.getLogger(__name__)

#: The audience ``mint()`` uses unless told otherwise: the same as ``DevCluster.mint()``'s, the
#: default ``AUTH_AUDIENCE`` of ``devcluster_serve``.
DEFAULT_AUDIENCE = "compass-internal"
DEFAULT_SUBJECT = "alice"
#: Short, as ID tokens are (GitHub Actions' live 5 to 10 minutes).
DEFAULT_EXPIRES_IN = 600
DEFAULT_SERVER_CERT_NAMES = ("localhost", "127.0.0.1", "::1")


class OidcIssuer:
    """An HTTPS OIDC issuer on loopback with its own CA and signing keys.

    Serves ``<issuer>/.well-known/openid-configuration`` and the JWKS it names, mints tokens with
    any claims, rotates and retires keys, and has the fault switches of ``DevCluster`` for its
    two endpoints. Its issuer URL is the served URL plus ``path`` (what an
    ``AuthenticationConfiguration`` names as ``issuer.url``, its discovery under that URL), or
    ``issuer=`` for an issuer reached through ``discovery_url`` (``issuer.discoveryURL``).
    NOT a security boundary: the keys are for tests only.
    """

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
        self._ca = CertificateAuthority("oidc-issuer")
        self._cert_names = tuple(server_cert_names)
        self._default_context = self._context(self._ca.issue_server(self._cert_names))
        self._context_changed = False
        self._host = host
        self._server = ServerThread(make_app(self._state, path), self._default_context, host,
                                    port, name="oidc-issuer")
        self._workdir: Path | None = None
        self._paused = False

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> Self:
        """Write the CA file and start serving; returns when the port listens."""
        self._workdir = Path(tempfile.mkdtemp(prefix="oidc-issuer-"))
        self.ca_path.write_bytes(self.ca_pem)
        try:
            self._server.start()
        except BaseException:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            raise
        self._state.issuer = self._declared_issuer or self.url + self._path
        self._state.jwks_uri = self.url + self._path + JWKS_PATH
        logger.info("oidc-issuer serving issuer=%s", self._state.issuer)
        return self

    def stop(self) -> None:
        """Stop serving and remove the CA file."""
        self._server.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- addresses -------------------------------------------------------
    @property
    def port(self) -> int:
        """The listening port (chosen at start when 0 was asked)."""
        return self._server.port

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``, the served origin (IPv6 hosts bracketed)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"https://{host}:{self.port}"

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

    @property
    def ca_pem(self) -> bytes:
        """PEM of this issuer's own CA (``issuer.certificateAuthority``)."""
        return self._ca.cert_pem

    @property
    def ca_path(self) -> Path:
        """A file holding :attr:`ca_pem`, present between start and stop."""
        if self._workdir is None:
            raise RuntimeError("OidcIssuer not started")
        return self._workdir / "ca.crt"

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

    @property
    def clock_offset(self) -> float:
        """Seconds this issuer's clock runs ahead of the host's."""
        return self._state.clock.offset

    # ---- keys ------------------------------------------------------------
    @property
    def signing_key_id(self) -> str:
        """``kid`` of the key new tokens are signed with."""
        return self._state.keys.current.kid

    def add_key(self, key_type: Literal["RSA", "EC"] = "RSA", make_current: bool = False) -> str:
        """Publish a new key at once (and optionally sign with it); returns its kid."""
        return self._state.keys.add(key_type, make_current=make_current)

    def rotate_key(self, key_type: Literal["RSA", "EC"] = "RSA") -> str:
        """``add_key(make_current=True)``: the old key stays published until :meth:`remove_key`."""
        return self.add_key(key_type, make_current=True)

    def remove_key(self, kid: str) -> None:
        """Retire ``kid``: no longer published (``mint(kid=...)`` still signs with it)."""
        self._state.keys.remove(kid)

    def jwks(self) -> dict[str, Any]:
        """The document the JWKS path serves."""
        return {"keys": [jws.jwk(key.public_key, key.kid)
                         for key in self._state.keys.published()]}

    # ---- faults and switches ---------------------------------------------
    def set_fault(self, endpoint: str, fault: Fault) -> None:
        """Break ``discovery``, ``jwks`` or ``all`` (every path): a status (500, 503 with
        ``retry_after``), a ``delay`` (slow), ``drop`` (no answer), a ``body``; ``times=N``."""
        self._state.faults.set(endpoint, fault)

    def clear_faults(self) -> None:
        """Remove all faults."""
        self._state.faults.clear()

    def pause(self) -> None:
        """Stop listening (connection refused: the issuer is down) until :meth:`resume`."""
        self._server.pause()
        self._paused = True

    def resume(self) -> None:
        """Listen again on the same port."""
        self._server.resume()
        self._paused = False

    def set_server_certificate(self, names: Sequence[str] | None = None, expired: bool = False,
                               self_signed: bool = False) -> None:
        """Serve another certificate to new connections (wrong ``names``, ``expired``,
        ``self_signed``); :meth:`reset` restores the original one."""
        names = tuple(names) if names is not None else self._cert_names
        issued = self._ca.issue_server(names, expired=expired, self_signed=self_signed)
        self._server.set_context(self._context(issued))
        self._context_changed = True

    # ---- observation -------------------------------------------------------
    @property
    def requests(self) -> RequestLog:
        """The thread-safe request log (this issuer's only)."""
        return self._state.requests

    def request_count(self, endpoint: str) -> int:
        """Requests that reached ``endpoint`` (``discovery``, ``jwks``, ``notfound``) since the
        last reset, dropped ones too."""
        return self._state.requests.count(endpoint)

    @property
    def request_log(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        return self._state.requests.records()

    def reset(self) -> None:
        """Faults, the request log, the clock's offset, the certificate and a pause undone;
        keys are kept (as ``DevCluster.reset``)."""
        self._state.reset()
        if self._context_changed:
            self._server.set_context(self._default_context)
            self._context_changed = False
        if self._paused:
            self.resume()

    def _require_started(self) -> None:
        if not self._state.issuer:
            raise RuntimeError("OidcIssuer not started: its URL is known once it listens")

    def _context(self, issued: Issued) -> ssl.SSLContext:
        return server_ssl_context(issued.cert_pem, issued.key_pem, self._ca.cert_pem)
